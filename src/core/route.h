/* Path patterns for the request routers' tables (the public listener, the admin API and its
 * /admin/usage paths, the emulator's control API): one table of rows per router, each row a
 * method, a pattern and a handler, read in order.
 *
 * A pattern is literal text with {parts}:
 *   {id}    one non-empty path segment (no '/'), copied to id;
 *   {seq}   the same, digits only;
 *   {rest}  the non-empty remainder of the path, slashes included, copied to rest (last part);
 *   {tail}  nothing, or the remainder from its leading '/' (tail points into the path; last part).
 * A part too long for its buffer does not match. */
#ifndef SAASD_ROUTE_H
#define SAASD_ROUTE_H

struct route_args {
    char id[160];
    char rest[200];
    const char *tail; /* "" when the pattern has no {tail} */
};

/* 1 when path matches pattern, with *out filled in; 0 otherwise. */
int route_matches(const char *pattern, const char *path, struct route_args *out);

/* The same for a table row that also names its method (NULL: any): 1 when the request's
 * method is the row's and its path matches the row's pattern. */
int route_row_matches(const char *row_method, const char *pattern, const char *method, const char *path,
                      struct route_args *out);

#endif
