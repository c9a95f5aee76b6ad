/* Minimal test harness for the C test programs. Each check prints one TAP line
 * ("ok - name" / "not ok - name"); tests/run-all.sh counts them across programs.
 * Name each check after the guarantee it proves. */
#ifndef SAASD_TEST_CHECK_H
#define SAASD_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failed_count;
static int check_passed_count;

#define CHECK(cond, name)                                                                   \
    do {                                                                                    \
        if (cond) {                                                                         \
            check_passed_count++;                                                           \
            printf("ok - %s\n", name);                                                      \
        } else {                                                                            \
            check_failed_count++;                                                           \
            printf("not ok - %s  (%s:%d: %s)\n", name, __FILE__, __LINE__, #cond);          \
        }                                                                                   \
        fflush(stdout);                                                                     \
    } while (0)

/* Exit status of a test program: non-zero when any check failed. */
#define CHECK_DONE() (check_failed_count ? 1 : 0)

/* A fresh temporary directory for one test (LMDB environments, rule files). Caller frees. */
static inline char *check_tmpdir(const char *tag)
{
    char *dir = malloc(256);
    if (!dir)
        abort();
    /* Under tests/run-all.sh TMPDIR is a directory of the run's own, removed at its end. */
    const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, 256, "%s/saasd-test-%s-XXXXXX", base, tag);
    if (!mkdtemp(dir))
        abort();
    return dir;
}

#endif
