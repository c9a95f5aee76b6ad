/* GET /admin/subscriptions, paged (admin_subs.c). */
#ifndef SAASD_ADMIN_SUBS_H
#define SAASD_ADMIN_SUBS_H

struct daemon;
struct httpd_request;
struct httpd_response;

void admin_list_subscriptions(struct daemon *d, const struct httpd_request *req, struct httpd_response *res);

#endif
