/* The steps of a promotion (promote.c), apart so that a test can stop between them as a crash
 * would. rules_promote (daemon.h) runs them all. */
#ifndef SAASD_PROMOTE_H
#define SAASD_PROMOTE_H

struct engine;

struct promote_paths {
    char live[4096];     /* rules.dir, without a trailing slash */
    char staging[4200];  /* <live>.promote-new: the next rules directory while it is built */
    char previous[4200]; /* <live>.previous: the rules before the last promotion */
    char parent[4096];   /* the directory holding them (fsync'd after the swap) */
};

/* Fill p from rules_dir. 0 or SAASD_EINVAL (path too long). */
int promote_paths(const char *rules_dir, struct promote_paths *p);
/* Build p->staging: the live directory's files other than *.lua, and shadow_dir's *.lua (*copied
 * of them), fsync'd, then loaded in the real sandbox. On failure nothing is left behind;
 * SAASD_ERULE when it does not load, SAASD_EINVAL when the live directory has a sub-directory. */
int promote_stage(const char *shadow_dir, const struct promote_paths *p, int *copied);
/* Swap p->staging and p->live in one renameat2(RENAME_EXCHANGE); its own inverse. arg: the
 * struct promote_paths (the form engine_replace_dir takes). */
int promote_exchange(void *arg);
/* The whole promotion of shadow_dir's rules into rules_dir for engine e. */
int rules_promote_dirs(struct engine *e, const char *shadow_dir, const char *rules_dir, int *copied);

#endif
