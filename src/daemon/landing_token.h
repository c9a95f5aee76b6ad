/* The marketplace token of a landing request (contract §3.3): the `token` query value, already
 * URL-decoded once by the listener, checked for shape before it is sent to Microsoft in the
 * x-ms-marketplace-token header. Pure; fuzzed by fuzz/fuzz_landing_token.c. */
#ifndef SAASD_LANDING_TOKEN_H
#define SAASD_LANDING_TOKEN_H

#define LANDING_TOKEN_MAX 8192

/* 0 when token can be resolved; SAASD_ENOTFOUND when absent or empty; SAASD_EINVAL when it
 * cannot be a marketplace token: longer than LANDING_TOKEN_MAX, or holding a byte outside the
 * base64/base64url/URL-encoding alphabet (blanks, markup, CR/LF that would split the header,
 * controls, non-ASCII). */
int landing_token_check(const char *token);

#endif
