/* Watches the rules directory with inotify and reloads after a quiet period (debounce), so an
 * editor's burst of writes and renames causes one reload. */
#include "core/err.h"
#include "core/log.h"
#include "engine/engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>


static void *watch_main(void *arg)
{
    struct engine *e = arg;
    int ifd = e->watch_fd;
    int pending = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = ifd, .events = POLLIN}, {.fd = e->watch_stop[0], .events = POLLIN}};
        int n = poll(p, 2, pending ? e->opt.watch_debounce_ms : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & (POLLIN | POLLHUP)))
            break;
        if (n == 0) { /* quiet long enough */
            pending = 0;
            engine_reload(e);
            continue;
        }
        char buf[4096];
        while (read(ifd, buf, sizeof buf) > 0)
            ; /* which file changed does not matter: the whole directory is reloaded */
        pending = 1;
    }
    return NULL;
}

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB)

void engine_watch_rearm(struct engine *e)
{
    if (!e->watching)
        return;
    /* the same inode gives the same watch back; a new one replaces the old directory's */
    int wd = inotify_add_watch(e->watch_fd, e->rules_dir, WATCH_MASK);
    if (wd >= 0 && wd != e->watch_wd) {
        inotify_rm_watch(e->watch_fd, e->watch_wd);
        e->watch_wd = wd;
    } else if (wd < 0) {
        log_error("engine", "cannot watch the rules directory; reload with SIGHUP", "dir", e->rules_dir,
                  "errno", strerror(errno));
    }
}

int engine_watch_start(struct engine *e)
{
    if (e->watching)
        return 0;
    /* the watch exists before this returns: a change made right after is seen */
    e->watch_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (e->watch_fd < 0 || (e->watch_wd = inotify_add_watch(e->watch_fd, e->rules_dir, WATCH_MASK)) < 0) {
        log_error("engine", "cannot watch the rules directory; reload with SIGHUP", "dir", e->rules_dir,
                  "errno", strerror(errno));
        if (e->watch_fd >= 0)
            close(e->watch_fd);
        e->watch_fd = -1;
        return SAASD_EIO;
    }
    if (pipe2(e->watch_stop, O_CLOEXEC) != 0) {
        close(e->watch_fd);
        return SAASD_EIO;
    }
    if (pthread_create(&e->watcher, NULL, watch_main, e) != 0) {
        close(e->watch_fd);
        close(e->watch_stop[0]);
        close(e->watch_stop[1]);
        e->watch_stop[0] = e->watch_stop[1] = -1;
        return SAASD_ENOMEM;
    }
    e->watching = 1;
    return 0;
}

void engine_watch_stop(struct engine *e)
{
    if (!e->watching)
        return;
    (void)!write(e->watch_stop[1], "x", 1);
    pthread_join(e->watcher, NULL);
    close(e->watch_stop[0]);
    close(e->watch_stop[1]);
    close(e->watch_fd);
    e->watch_stop[0] = e->watch_stop[1] = e->watch_fd = -1;
    e->watching = 0;
}
