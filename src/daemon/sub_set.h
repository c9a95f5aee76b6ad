/* A set of subscription ids, for the inbox scans' passed-over
 * subscriptions: added and looked up for every entry a scan passes over, cleared at the start of
 * every pass. Open addressing with the ids kept in the slots (no allocation per id) and an epoch
 * per slot, so clearing costs nothing however large the set grew. Not thread-safe: its owner
 * locks (inbox.c: work_lock). */
#ifndef SAASD_DAEMON_SUB_SET_H
#define SAASD_DAEMON_SUB_SET_H

#include <stddef.h>

struct sub_set;

/* 0, or SAASD_ENOMEM; *out is freed with sub_set_free. */
int sub_set_new(struct sub_set **out);
void sub_set_free(struct sub_set *s);
/* 0 (added, or there already), or SAASD_ENOMEM when it had to grow and could not (the set is
 * unchanged). */
int sub_set_add(struct sub_set *s, const char *id);
int sub_set_has(const struct sub_set *s, const char *id);
void sub_set_clear(struct sub_set *s);
size_t sub_set_count(const struct sub_set *s);

#endif
