/* Reading a secret from its file: one read, trailing whitespace an editor leaves removed. */
#include "core/secret_file.h"
#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int secret_file_read(const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? SAASD_ENOTFOUND : SAASD_EIO;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (failed) {
        memset(buf, 0, sizeof buf);
        errno = saved;
        return SAASD_EIO;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = 0;
    *out = strdup(buf);
    memset(buf, 0, sizeof buf); /* the stack keeps no copy */
    return *out ? 0 : SAASD_ENOMEM;
}
