/* libFuzzer target: the config loader (src/engine/config_load.c). The input is the config
 * text; it is handed to config_load() through an in-memory file (memfd), the same code path as
 * a file on disk, with nothing written to the file system. Secrets come from an environment
 * variable the harness sets. Oracle besides the sanitizers: a failed load always explains
 * itself, a successful one yields a listen port in 1..65535 and a data directory. */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_ERROR);
    setenv("SAASD_FUZZ_SECRET", "fuzz-secret", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    int fd = memfd_create("saasd-fuzz-config", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    char path[64], err[1024];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct saasd_config *cfg = NULL;
    int rc = config_load(path, &cfg, err, sizeof err);
    if (rc != 0 && !err[0])
        abort(); /* refused without a message */
    if (rc == 0 && (!cfg || cfg->listen_port < 0 || cfg->listen_port > 65535 || !cfg->data_dir))
        abort();
    config_free(cfg);
    close(fd);
    return 0;
}
