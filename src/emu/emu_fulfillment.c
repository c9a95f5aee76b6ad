/* Fulfillment v2 and Operations routes (§3, §4) under /api/saas/subscriptions. Every call
 * needs api-version=2018-08-31 and a bearer the emulator issued for the publisher app.
 * Routed by one table (routes[], at the end of this file). */
#include "core/err.h"
#include "core/route.h"
#include "emu/emu_internal.h"

#include "core/http_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int emu_api_version_ok(const struct httpd_request *r, struct httpd_response *res)
{
    const char *v = httpd_query(r, "api-version");
    if (!v) {
        emu_reply_json(res, 400, json_pack("{s:{s:s,s:s}}", "Error", "Code", "ApiVersionUnspecified", "Message",
                                           "The api-version query parameter (?api-version=) is required for all "
                                           "requests."));
        return 0;
    }
    if (strcmp(v, EMU_API_VERSION)) {
        emu_reply_json(res, 400, json_pack("{s:{s:s,s:s}}", "Error", "Code", "UnsupportedApiVersion", "Message",
                                           "Unsupported api-version. The supported version is 2018-08-31."));
        return 0;
    }
    return 1;
}

void emu_operation_location(struct emu *e, const json_t *op, struct httpd_response *res)
{
    char loc[1024];
    snprintf(loc, sizeof loc, "%s/api/saas/subscriptions/%s/operations/%s?api-version=%s", e->base_url,
             emu_jstr(op, "subscriptionId"), emu_jstr(op, "id"), EMU_API_VERSION);
    httpd_add_header(res, "Operation-Location", loc);
    httpd_add_header(res, "Operation-Id", emu_jstr(op, "id"));
}

static void not_found(struct httpd_response *res, const char *what)
{
    struct emu_error err;
    emu_fail(&err, 404, "EntityNotFound", "%s was not found", what);
    emu_reply_error(res, &err);
}

static void forbidden_resource(struct httpd_response *res)
{
    struct emu_error err;
    emu_fail(&err, 403, "Forbidden", "The subscription belongs to an offer registered with another app");
    emu_reply_error(res, &err);
}

static void method_not_allowed(struct httpd_response *res)
{
    struct emu_error err;
    emu_fail(&err, 405, "MethodNotAllowed", "The method is not allowed on this resource");
    emu_reply_error(res, &err);
}

/* What a route's handler gets: the calling app, and the subscription and operation of the
 * path, looked up and checked by the router before the handler runs (NULL when the route has
 * none). */
struct call {
    struct emu *e;
    const struct httpd_request *r;
    struct httpd_response *res;
    const char *caller;
    json_t *sub, *op;
};

/* §3.6: every subscription of every offer registered with the calling app. */
static void list_subscriptions(const struct call *c)
{
    struct emu *e = c->e;
    struct httpd_response *res = c->res;
    json_t *order = json_array();
    size_t k;
    json_t *id;
    json_array_foreach(json_object_get(e->db, "subOrder"), k, id)
        if (!strcmp(emu_sub_client(e, emu_sub(e, json_string_value(id))), c->caller))
            json_array_append(order, id);
    size_t offset = 0, page = e->k.page_size > 0 ? (size_t)e->k.page_size : 100;
    const char *ct = httpd_query(c->r, "continuationToken");
    if (ct) {
        json_t *t = json_loads(ct, 0, NULL);
        json_t *o = json_object_get(t, "offset");
        if (!json_is_integer(o) || json_integer_value(o) < 0) {
            json_decref(t);
            struct emu_error err;
            emu_fail(&err, 400, "BadArgument", "continuationToken is not valid");
            err.target = "continuationToken";
            emu_reply_error(res, &err);
            json_decref(order);
            return;
        }
        offset = (size_t)json_integer_value(o);
        json_decref(t);
    }
    json_t *list = json_array();
    for (size_t i = offset; i < json_array_size(order) && i < offset + page; i++)
        json_array_append_new(list, emu_sub_view(e, emu_sub(e, json_string_value(json_array_get(order, i)))));
    json_t *body = json_pack("{s:o}", "subscriptions", list);
    if (offset + page < json_array_size(order)) {
        /* Like the live service: the token is URL-encoded JSON inside an absolute link. */
        char tok[64], link[1024];
        snprintf(tok, sizeof tok, "{\"offset\":%zu,\"v\":1}", offset + page);
        char *enc = NULL;
        http_url_escape(tok, &enc);
        snprintf(link, sizeof link, "%s/api/saas/subscriptions?continuationToken=%s&api-version=%s", e->base_url,
                 enc ? enc : "", EMU_API_VERSION);
        free(enc);
        json_object_set_new(body, "@nextLink", json_string(link));
    }
    json_decref(order);
    emu_reply_json(res, 200, body);
}

static void resolve(const struct call *c)
{
    struct emu_error err;
    const char *token = httpd_header(c->r, "x-ms-marketplace-token");
    json_t *sub = NULL;
    if (!token || !*token) {
        emu_fail(&err, 400, "HeaderNotPresent", "The x-ms-marketplace-token header is required");
        err.target = "x-ms-marketplace-token";
        emu_reply_error(c->res, &err);
        return;
    }
    if (emu_landing_resolve(c->e, token, &err, &sub) != 0) {
        emu_reply_error(c->res, &err);
        return;
    }
    if (strcmp(emu_sub_client(c->e, sub), c->caller)) {
        forbidden_resource(c->res);
        return;
    }
    json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", emu_jstr(sub, "id"), "subscriptionName",
                             emu_jstr(sub, "name"), "offerId", emu_jstr(sub, "offerId"), "planId",
                             emu_jstr(sub, "planId"), "subscription", emu_sub_view(c->e, sub));
    if (json_object_get(sub, "quantity"))
        json_object_set(body, "quantity", json_object_get(sub, "quantity"));
    emu_reply_json(c->res, 200, body);
}

static void available_plans(const struct call *c)
{
    json_t *offer = emu_offer(c->e, emu_jstr(c->sub, "offerId"));
    const char *only = httpd_query(c->r, "planId"), *current = emu_jstr(c->sub, "planId");
    json_t *plans = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(offer, "plans"), i, p) {
        const char *id = emu_jstr(p, "planId");
        if (only && strcmp(only, id))
            continue;
        if (json_is_true(json_object_get(p, "isStopSell")) && strcmp(id, current))
            continue;
        json_array_append_new(plans, json_deep_copy(p));
    }
    emu_reply_json(c->res, 200, json_pack("{s:o}", "plans", plans));
}

static void outstanding(const struct call *c)
{
    json_t *list = json_array();
    size_t i;
    json_t *id;
    json_array_foreach(emu_sub_ops(c->e, emu_jstr(c->sub, "id")), i, id) {
        json_t *op = emu_op(c->e, json_string_value(id));
        if (!strcmp(emu_jstr(op, "status"), "InProgress") && json_is_true(json_object_get(op, "_ackable")) &&
            !strcmp(emu_op_source(op), "Azure"))
            json_array_append_new(list, emu_public_view(op));
    }
    emu_reply_json(c->res, 200, json_pack("{s:o}", "operations", list));
}

static void get_subscription(const struct call *c)
{
    emu_reply_text_of(c->e, c->res, EMU_TEXT_SUB, c->sub);
}

/* PATCH and DELETE of a subscription: 202 with the Operation-Location of the change. */
static void reply_accepted(const struct call *c, int rc, const struct emu_error *err, const json_t *op)
{
    if (rc != 0) {
        emu_reply_error(c->res, err);
        return;
    }
    emu_reply_empty(c->res, 202);
    emu_operation_location(c->e, op, c->res);
}

static void update_subscription(const struct call *c)
{
    struct emu_error err;
    json_t *op = NULL, *body = emu_body_json(c->r);
    int rc = emu_publisher_update(c->e, c->sub, body, &err, &op);
    reply_accepted(c, rc, &err, op);
    json_decref(body);
}

static void delete_subscription(const struct call *c)
{
    struct emu_error err;
    json_t *op = NULL;
    int rc = emu_publisher_delete(c->e, c->sub, &err, &op);
    reply_accepted(c, rc, &err, op);
}

static void activate(const struct call *c)
{
    struct emu_error err;
    json_t *body = emu_body_json(c->r);
    if (emu_activate(c->e, c->sub, body, &err) != 0)
        emu_reply_error(c->res, &err);
    else
        emu_reply_empty(c->res, 200);
    json_decref(body);
}

static void get_operation(const struct call *c)
{
    emu_reply_text_of(c->e, c->res, EMU_TEXT_OP, c->op);
}

static void ack_operation(const struct call *c)
{
    struct emu_error err;
    json_t *body = emu_body_json(c->r);
    if (emu_op_ack(c->e, c->op, emu_jstr(body, "status"), &err) != 0)
        emu_reply_error(c->res, &err);
    else
        emu_reply_empty(c->res, 200);
    json_decref(body);
}

typedef void call_fn(const struct call *c);

enum method { M_GET, M_POST, M_PATCH, M_DELETE, M_COUNT };
static const char *const method_names[M_COUNT] = {"GET", "POST", "PATCH", "DELETE"};

/* What the router looks up and checks before the method: a subscription path's subscription
 * must exist (404) and belong to the caller (403); an operation path's operation must exist and
 * belong to that subscription (404), whatever the method. */
enum needs { NEEDS_NOTHING, NEEDS_SUB, NEEDS_OP };

#define SUBS "/api/saas/subscriptions"

/* First match wins (patterns: core/route.h). A method without a handler on a matching row is
 * 405; a row without any handler is a known subscription with no such resource (404); a path
 * that matches no row is an unknown subscription (404). The {tail} rows keep what the router
 * always accepted: after a sub-resource, an empty path segment ("//") ends the path; after an
 * operation id ({rest}) the rest of the path is ignored. */
static const struct fulfillment_route {
    const char *pattern;
    enum needs needs;
    call_fn *on[M_COUNT];
} routes[] = {
    {SUBS, NEEDS_NOTHING, {[M_GET] = list_subscriptions}},
    {SUBS "/", NEEDS_NOTHING, {[M_GET] = list_subscriptions}},
    {SUBS "/resolve", NEEDS_NOTHING, {[M_POST] = resolve}},
    {SUBS "/{id}", NEEDS_SUB, {[M_GET] = get_subscription, [M_PATCH] = update_subscription, [M_DELETE] = delete_subscription}},
    {SUBS "/{id}/", NEEDS_SUB, {[M_GET] = get_subscription, [M_PATCH] = update_subscription, [M_DELETE] = delete_subscription}},
    {SUBS "/{id}/activate", NEEDS_SUB, {[M_POST] = activate}},
    {SUBS "/{id}/activate/{tail}", NEEDS_SUB, {[M_POST] = activate}},
    {SUBS "/{id}/listAvailablePlans", NEEDS_SUB, {[M_GET] = available_plans}},
    {SUBS "/{id}/listAvailablePlans/{tail}", NEEDS_SUB, {[M_GET] = available_plans}},
    {SUBS "/{id}/operations", NEEDS_SUB, {[M_GET] = outstanding}},
    {SUBS "/{id}/operations/{tail}", NEEDS_SUB, {[M_GET] = outstanding}},
    {SUBS "/{id}/operations/{rest}", NEEDS_OP, {[M_GET] = get_operation, [M_PATCH] = ack_operation}},
    {SUBS "/{id}{tail}", NEEDS_SUB, {NULL}},
};

static const struct fulfillment_route *find_route(const char *path, struct route_args *a)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (route_matches(routes[i].pattern, path, a))
            return &routes[i];
    return NULL;
}

static call_fn *handler_of(const struct fulfillment_route *row, const char *method)
{
    for (int m = 0; m < M_COUNT; m++)
        if (!strcmp(method_names[m], method))
            return row->on[m];
    return NULL;
}

static int has_handlers(const struct fulfillment_route *row)
{
    for (int m = 0; m < M_COUNT; m++)
        if (row->on[m])
            return 1;
    return 0;
}

/* The row's subscription and operation into c; 0, or -1 once the refusal is answered. */
static int look_up(const struct fulfillment_route *row, struct route_args *a, struct call *c)
{
    if (row->needs == NEEDS_NOTHING)
        return 0;
    c->sub = emu_sub(c->e, a->id);
    if (!c->sub) {
        not_found(c->res, "The subscription");
        return -1;
    }
    if (strcmp(emu_sub_client(c->e, c->sub), c->caller)) {
        forbidden_resource(c->res);
        return -1;
    }
    if (row->needs != NEEDS_OP)
        return 0;
    a->rest[strcspn(a->rest, "/")] = 0; /* the operation id */
    c->op = emu_op(c->e, a->rest);
    if (!c->op || strcmp(emu_jstr(c->op, "subscriptionId"), a->id)) {
        not_found(c->res, "The operation");
        return -1;
    }
    return 0;
}

void emu_fulfillment_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    struct emu_error err;
    char caller[64];
    if (!emu_api_version_ok(r, res))
        return;
    if (emu_check_bearer(e, r, &err, caller) != 0) {
        emu_reply_error(res, &err);
        return;
    }
    struct call c = {.e = e, .r = r, .res = res, .caller = caller};
    struct route_args a;
    const struct fulfillment_route *row = find_route(httpd_path(r), &a);
    if (!row) {
        not_found(res, "The subscription");
        return;
    }
    if (look_up(row, &a, &c) != 0)
        return;
    call_fn *handle = handler_of(row, httpd_method(r));
    if (handle)
        handle(&c);
    else if (has_handlers(row))
        method_not_allowed(res);
    else
        not_found(res, "The resource");
}
