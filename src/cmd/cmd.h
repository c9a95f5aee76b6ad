/* Sub-commands of the saasd binary. Each takes the arguments after its own name and returns
 * the process exit status. Each prints its own --help. */
#ifndef SAASD_CMD_H
#define SAASD_CMD_H

int cmd_version(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_run(int argc, char **argv);     /* emulator + daemon + a purchase: `make run` */
int cmd_rules(int argc, char **argv);   /* rules check */
int cmd_test(int argc, char **argv);    /* busted specs of a rules repository (saasd-busted) */
int cmd_mp(int argc, char **argv);      /* marketplace client for operators */
int cmd_emulate(int argc, char **argv); /* built-in marketplace emulator */
int cmd_admin(int argc, char **argv);   /* operator CLI over the admin API */

/* The config file when no --config is given. */
#define CMD_DEFAULT_CONFIG "examples/saasd.conf"
/* Load the config at path (NULL: CMD_DEFAULT_CONFIG); on failure print why and return
 * SAASD_ECONFIG. */
struct saasd_config;
int cmd_load_config(const char *path, struct saasd_config **out);
/* Block SIGTERM, SIGINT (and SIGHUP when with_hup) in this thread and every thread it starts
 * from now on, so that the caller takes them with sigwait(set). */
#include <signal.h>
void cmd_block_signals(sigset_t *set, int with_hup);
/* 1 when argv has --help or -h: only for a command that hands its other options on to another
 * program (saasd test -> busted); every other command parses with cmd_parse (args.h). */
int cmd_wants_help(int argc, char **argv);

#endif
