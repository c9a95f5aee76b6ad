/* Prefetching the ctx.store keys a rule reads (engine-internal; see prefetch.c).
 * A rule call is a round trip to its worker process, and each ctx.store.get another one. Most
 * rules read the same keys on every call, made of the subscription's id and constant text
 * ("seats:" .. sub.id). The daemon learns those key templates per worker state from the reads
 * it answers, reads their values when the next call starts and sends them with the call; the
 * worker answers ctx.store.get from them, and says which it used, so the call's recorded reads
 * (for replay) are the same as without prefetching. */
#ifndef SAASD_ENGINE_PREFETCH_H
#define SAASD_ENGINE_PREFETCH_H

#include <stddef.h>

#define PREFETCH_MAX 8           /* templates per worker state (bits of the used mask) */
#define PREFETCH_KEY_MAX 256     /* a rule's keys are at most 200 bytes (bind/store.c) */
#define PREFETCH_VALUE_MAX 4096  /* larger values are not sent ahead: the rule asks for them */
#define PREFETCH_IDLE_MAX 8      /* a template unused by this many calls in a row is dropped */

struct prefetch_tpl {
    char text[PREFETCH_KEY_MAX]; /* the key, with the subscription id cut out at cut */
    size_t len;
    size_t cut;                  /* where the id goes; (size_t)-1: a constant key */
    unsigned idle;               /* calls in a row that sent it and did not use it */
};

struct prefetch {
    struct prefetch_tpl t[PREFETCH_MAX];
    size_t n;
};

/* A key a call read the slow way: remember its template (the key, with the call's
 * subscription id, when it holds it, as the variable part). Nothing is learned from a call
 * without a subscription id (sub_id NULL). */
void prefetch_learn(struct prefetch *p, const char *sub_id, const char *key, size_t klen);

/* Template i's key for sub_id into buf (PREFETCH_KEY_MAX bytes): its length, or 0 when the
 * template needs an id the call does not have (or the key would be too long). */
size_t prefetch_key(const struct prefetch *p, size_t i, const char *sub_id, char *buf);

/* After a call: sent[k] is the template of the k-th key sent with it, used has bit k set when
 * the rule read that key. Templates unused PREFETCH_IDLE_MAX calls in a row are dropped. */
void prefetch_settle(struct prefetch *p, const size_t *sent, size_t nsent, unsigned used);

#endif
