#include "core/err.h"

const char *saasd_strerror(int err)
{
    switch (err) {
    case SAASD_OK:        return "ok";
    case SAASD_ENOMEM:    return "out_of_memory";
    case SAASD_EINVAL:    return "invalid_argument";
    case SAASD_ENOTFOUND: return "not_found";
    case SAASD_EEXIST:    return "already_exists";
    case SAASD_EIO:       return "io_error";
    case SAASD_EFULL:     return "storage_full";
    case SAASD_ETIMEOUT:  return "timeout";
    case SAASD_EHTTP:     return "http_error";
    case SAASD_EAUTH:     return "auth_refused";
    case SAASD_ESCHEMA:   return "schema_mismatch";
    case SAASD_ECONFIG:   return "config_invalid";
    case SAASD_ERULE:     return "rule_error";
    case SAASD_ELIMIT:    return "rule_limit";
    case SAASD_ERETRY:    return "retry_later";
    case SAASD_ECLOSED:   return "closed";
    case SAASD_ETOOBIG:   return "too_big";
    case SAASD_ECONFLICT: return "conflict";
    case SAASD_EINTERNAL: return "internal_error";
    default:              return "unknown_error";
    }
}
