#include "core/dirlock.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int dirlock_acquire(const char *dir, int *fd, char *err, size_t err_size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/saasd.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) {
        snprintf(err, err_size, "cannot open the lock file %s: %s", path, strerror(errno));
        return SAASD_EIO;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        char pid[32] = "unknown";
        ssize_t n = busy ? pread(*fd, pid, sizeof pid - 1, 0) : -1;
        if (n > 0)
            pid[strcspn(pid, "\n")] = pid[n] = 0;
        if (busy)
            snprintf(err, err_size,
                     "the data directory %s is in use by another saasd (pid %s, lock file %s): stop it, or give "
                     "this daemon its own data_dir",
                     dir, pid, path);
        else
            snprintf(err, err_size, "cannot lock %s: %s", path, strerror(errno));
        close(*fd);
        *fd = -1;
        return busy ? SAASD_ECONFLICT : SAASD_EIO;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, pid, (size_t)len, 0) != len) {
        snprintf(err, err_size, "cannot write the lock file %s: %s", path, strerror(errno));
        dirlock_release(*fd);
        *fd = -1;
        return SAASD_EIO;
    }
    return 0;
}

void dirlock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the last descriptor releases the flock */
}
