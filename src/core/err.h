/* Error codes shared by every saasd module.
 * Functions return 0 on success or one of these negative codes; outputs come last. */
#ifndef SAASD_ERR_H
#define SAASD_ERR_H

enum saasd_err {
    SAASD_OK        = 0,
    SAASD_ENOMEM    = -1,  /* allocation failed */
    SAASD_EINVAL    = -2,  /* caller passed something malformed */
    SAASD_ENOTFOUND = -3,  /* key, file, subscription, offer ... does not exist */
    SAASD_EEXIST    = -4,  /* already there (duplicate operation id, guard key) */
    SAASD_EIO       = -5,  /* file system or socket failure */
    SAASD_EFULL     = -6,  /* storage map full and could not grow */
    SAASD_ETIMEOUT  = -7,  /* deadline passed */
    SAASD_EHTTP     = -8,  /* upstream answered with an unexpected status */
    SAASD_EAUTH     = -9,  /* credentials or token refused */
    SAASD_ESCHEMA   = -10, /* data on disk has a schema this build does not know */
    SAASD_ECONFIG   = -11, /* configuration invalid */
    SAASD_ERULE     = -12, /* a rule raised an error or returned a bad value */
    SAASD_ELIMIT    = -13, /* a rule hit its CPU or memory limit */
    SAASD_ERETRY    = -14, /* transient failure: try again later */
    SAASD_ECLOSED   = -15, /* the component is shutting down */
    SAASD_ETOOBIG   = -16, /* input larger than allowed */
    SAASD_ECONFLICT = -17, /* state does not allow this (e.g. wrong subscription status) */
    SAASD_EINTERNAL = -18  /* a bug: should not happen */
};

/* Short stable name of an error code, e.g. "not_found". Never NULL. */
const char *saasd_strerror(int err);

#endif
