/* Lenient reading of Microsoft's JSON (contract §1.4): member names case-insensitively,
 * numbers that arrive as strings, optional values that are absent, null or "", enum strings
 * padded with blanks, unknown members ignored. Read-only helpers over jansson; returned
 * json_t pointers are borrowed from the object passed in. */
#ifndef SAASD_JSON_LENIENT_H
#define SAASD_JSON_LENIENT_H

#include <stddef.h>

#include <jansson.h>

/* Member `name` of obj: an exact match wins, otherwise the first case-insensitive match.
 * NULL when obj is not an object or has no such member. Borrowed reference. */
json_t *jl_get(const json_t *obj, const char *name);

/* Follow a dotted path ("term.startDate"), each step case-insensitive. Borrowed. */
json_t *jl_path(const json_t *obj, const char *path);

/* 1 when the member is absent, null, or a string that is empty after trimming blanks. */
int jl_is_unset(const json_t *obj, const char *name);

/* Copy a string member, blanks trimmed on both ends, into buf (always NUL-terminated).
 * Numbers and booleans are rendered as text. SAASD_ENOTFOUND when unset (see jl_is_unset),
 * SAASD_ETOOBIG when it did not fit (buf holds a truncated copy). */
int jl_string(const json_t *obj, const char *name, char *buf, size_t size);

/* Integer member: a JSON integer, an integral real, or a string holding one ("20", " 20 ").
 * SAASD_ENOTFOUND when unset, SAASD_EINVAL when present but not an integer. */
int jl_int(const json_t *obj, const char *name, long long *out);

/* Real member: a JSON number or a numeric string. Same errors as jl_int. */
int jl_real(const json_t *obj, const char *name, double *out);

/* Boolean member: true/false or the strings "true"/"false" (any case). Unset → SAASD_ENOTFOUND. */
int jl_bool(const json_t *obj, const char *name, int *out);

/* Compare a string member to want, trimmed and case-insensitively: 1 equal, 0 otherwise. */
int jl_string_is(const json_t *obj, const char *name, const char *want);

/* Whether a JSON text Microsoft sent can be passed on and stored as it came: it holds no CR or
 * LF (records, the RuleCall record among them, are one line each). */
int jl_text_one_line(const char *text, size_t len);

#endif
