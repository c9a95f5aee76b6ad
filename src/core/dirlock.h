/* One daemon per data directory: an exclusive flock on <dir>/saasd.lock, holding the owner's
 * pid. The kernel drops the lock when the process dies, so a crash never leaves it behind. */
#ifndef SAASD_DIRLOCK_H
#define SAASD_DIRLOCK_H

#include <stddef.h>

/* Take the lock. 0 and *fd (keep it open while the directory is in use); SAASD_ECONFLICT when
 * another process holds it (err names the directory and that process' pid), SAASD_EIO when
 * the lock file cannot be opened (err says why). */
int dirlock_acquire(const char *dir, int *fd, char *err, size_t err_size);
/* Release (fd < 0: nothing). */
void dirlock_release(int fd);

#endif
