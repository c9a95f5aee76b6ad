/* A secret kept in a file of its own (the client secret, the admin key, a sink's HMAC key):
 * read at start by the config loader and again when the daemon reloads its credential. */
#ifndef SAASD_SECRET_FILE_H
#define SAASD_SECRET_FILE_H

#include <stddef.h>

/* The file's text (at most 4095 bytes) without its trailing newlines, CRs and spaces, in *out
 * (malloc'd; wipe it before freeing). 0, SAASD_ENOTFOUND, SAASD_EIO (errno says why) or
 * SAASD_ENOMEM. An empty file gives "". */
int secret_file_read(const char *path, char **out);

#endif
