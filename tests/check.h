/* Minimal test harness for the C test programs. Each check prints one TAP line
 * ("ok - name" / "not ok - name"); tests/run-all.sh counts them across programs.
 * Name each check after the guarantee it proves. */
#ifndef SAASD_TEST_CHECK_H
#define SAASD_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Remove a test directory and everything in it. */
static inline void check_rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

/* Monotonic milliseconds, for waiting loops (never for asserting speed). */
static inline double check_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Write dir/name from a format, atomically (temporary file + rename), as a careful deploy
 * would: a rule watcher never sees half a file. Aborts on failure. */
static inline void check_write_file(const char *dir, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void check_write_file(const char *dir, const char *name, const char *fmt, ...)
{
    char path[512], tmp[520];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "w");
    if (!f)
        abort();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    if (rename(tmp, path))
        abort();
}

/* Run a saasd command function in-process with its stdout captured into out (NUL-terminated);
 * returns its exit status. */
static inline int check_run_captured(int (*cmd)(int, char **), int argc, char **argv, char *out, size_t size)
{
    char path[] = "/tmp/saasd-test-stdout-XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int status = cmd(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    ssize_t n = pread(fd, out, size - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return status;
}

#endif
