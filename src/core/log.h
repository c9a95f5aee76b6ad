/* Structured logging: one logfmt line per event on stderr (or a file set by the caller).
 *   time=2026-11-24T03:12:00.123Z level=info component=webhook msg="accepted" request_id=... op_id=...
 * Fields are (name, value) string pairs ending with NULL. A field whose name marks a secret
 * is printed as [REDACTED]; every value also passes redact_text(), so a token pasted into a
 * message is masked too. Safe from any thread; each line is written with one write(). */
#ifndef SAASD_LOG_H
#define SAASD_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn", "error"; returns 0 or SAASD_EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
/* Where lines go: a file descriptor (default 2). */
void log_set_fd(int fd);

void log_event(enum log_level level, const char *component, const char *msg, ...)
    __attribute__((sentinel));

#define log_debug(...) log_event(LOG_DEBUG, __VA_ARGS__, (char *)0)
#define log_info(...)  log_event(LOG_INFO, __VA_ARGS__, (char *)0)
#define log_warn(...)  log_event(LOG_WARN, __VA_ARGS__, (char *)0)
#define log_error(...) log_event(LOG_ERROR, __VA_ARGS__, (char *)0)

#endif
