/* Keeps secrets out of logs and error messages.
 * Two layers: by field name (a field called client_secret is never printed) and by shape
 * (anything that looks like a JWT or a "secret=..." pair inside free text is masked). */
#ifndef SAASD_REDACT_H
#define SAASD_REDACT_H

#include <stddef.h>

/* 1 when a field with this name carries a secret (token, secret, password, authorization, key...). */
int redact_is_secret_name(const char *name);

/* Copy text into out (size bytes, always NUL-terminated), masking JWTs, bearer tokens and
 * name=value pairs whose name is secret. Returns 0, or SAASD_ETOOBIG when out was too small
 * (out then holds a truncated, still redacted copy). */
int redact_text(const char *text, char *out, size_t size);

/* The mask written in place of a secret. */
#define REDACT_MASK "[REDACTED]"

#endif
