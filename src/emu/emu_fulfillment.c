/* Fulfillment v2 and Operations routes (§3, §4) under /api/saas/subscriptions. Every call
 * needs api-version=2018-08-31 and a bearer the emulator issued for the publisher app. */
#include "core/err.h"
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

/* §3.6: every subscription of every offer registered with the calling app. */
static void list_subscriptions(struct emu *e, const struct httpd_request *r, struct httpd_response *res,
                               const char *caller)
{
    json_t *order = json_array();
    size_t k;
    json_t *id;
    json_array_foreach(json_object_get(e->db, "subOrder"), k, id)
        if (!strcmp(emu_sub_client(e, emu_sub(e, json_string_value(id))), caller))
            json_array_append(order, id);
    size_t offset = 0, page = e->k.page_size > 0 ? (size_t)e->k.page_size : 100;
    const char *ct = httpd_query(r, "continuationToken");
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

static void forbidden_resource(struct httpd_response *res)
{
    struct emu_error err;
    emu_fail(&err, 403, "Forbidden", "The subscription belongs to an offer registered with another app");
    emu_reply_error(res, &err);
}

static void resolve(struct emu *e, const struct httpd_request *r, struct httpd_response *res, const char *caller)
{
    struct emu_error err;
    const char *token = httpd_header(r, "x-ms-marketplace-token");
    json_t *sub = NULL;
    if (!token || !*token) {
        emu_fail(&err, 400, "HeaderNotPresent", "The x-ms-marketplace-token header is required");
        err.target = "x-ms-marketplace-token";
        emu_reply_error(res, &err);
        return;
    }
    if (emu_landing_resolve(e, token, &err, &sub) != 0) {
        emu_reply_error(res, &err);
        return;
    }
    if (strcmp(emu_sub_client(e, sub), caller)) {
        forbidden_resource(res);
        return;
    }
    json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", emu_jstr(sub, "id"), "subscriptionName",
                             emu_jstr(sub, "name"), "offerId", emu_jstr(sub, "offerId"), "planId",
                             emu_jstr(sub, "planId"), "subscription", emu_sub_view(e, sub));
    if (json_object_get(sub, "quantity"))
        json_object_set(body, "quantity", json_object_get(sub, "quantity"));
    emu_reply_json(res, 200, body);
}

static void available_plans(struct emu *e, const json_t *sub, const struct httpd_request *r,
                            struct httpd_response *res)
{
    json_t *offer = emu_offer(e, emu_jstr(sub, "offerId"));
    const char *only = httpd_query(r, "planId"), *current = emu_jstr(sub, "planId");
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
    emu_reply_json(res, 200, json_pack("{s:o}", "plans", plans));
}

static void outstanding(struct emu *e, const json_t *sub, struct httpd_response *res)
{
    json_t *list = json_array();
    size_t i;
    json_t *id;
    json_array_foreach(emu_sub_ops(e, emu_jstr(sub, "id")), i, id) {
        json_t *op = emu_op(e, json_string_value(id));
        if (!strcmp(emu_jstr(op, "status"), "InProgress") && json_is_true(json_object_get(op, "_ackable")) &&
            !strcmp(emu_op_source(op), "Azure"))
            json_array_append_new(list, emu_public_view(op));
    }
    emu_reply_json(res, 200, json_pack("{s:o}", "operations", list));
}

/* What sscanf(rest, "/%63[^/]/%63[^/]/%63[^/]", ...) gives, without its cost on every call: up
 * to three '/'-led non-empty segments of at most 63 bytes (a longer one is cut and ends the
 * scan); the number read. */
static int path_segments(const char *rest, char *seg[3])
{
    int n = 0;
    const char *p = rest;
    while (n < 3 && *p == '/' && p[1] && p[1] != '/') {
        size_t len = strcspn(p + 1, "/");
        size_t keep = len < 63 ? len : 63;
        memcpy(seg[n], p + 1, keep);
        seg[n][keep] = 0;
        n++;
        if (len > 63)
            break;
        p += 1 + len;
    }
    return n;
}

static void method_not_allowed(struct httpd_response *res)
{
    struct emu_error err;
    emu_fail(&err, 405, "MethodNotAllowed", "The method is not allowed on this resource");
    emu_reply_error(res, &err);
}

void emu_fulfillment_route(struct emu *e, const struct httpd_request *r, struct httpd_response *res)
{
    struct emu_error err;
    const char *m = httpd_method(r);
    const char *rest = httpd_path(r) + strlen("/api/saas/subscriptions");
    if (!emu_api_version_ok(r, res))
        return;
    char caller[64];
    if (emu_check_bearer(e, r, &err, caller) != 0) {
        emu_reply_error(res, &err);
        return;
    }
    if (!*rest || !strcmp(rest, "/")) {
        if (strcmp(m, "GET"))
            method_not_allowed(res);
        else
            list_subscriptions(e, r, res, caller);
        return;
    }
    if (!strcmp(rest, "/resolve")) {
        if (strcmp(m, "POST"))
            method_not_allowed(res);
        else
            resolve(e, r, res, caller);
        return;
    }
    char sid[64] = "", tail[64] = "", opid[64] = "";
    int n = path_segments(rest, (char *[]){sid, tail, opid});
    json_t *sub = emu_sub(e, sid);
    if (n < 1 || !sub) {
        not_found(res, "The subscription");
        return;
    }
    if (strcmp(emu_sub_client(e, sub), caller)) {
        forbidden_resource(res);
        return;
    }
    json_t *body = NULL, *op = NULL;
    if (n == 1) {
        if (rest[1 + strlen(sid)] != 0 && strcmp(rest + 1 + strlen(sid), "/")) {
            not_found(res, "The resource");
        } else if (!strcmp(m, "GET")) {
            emu_reply_text_of(e, res, EMU_TEXT_SUB, sub);
        } else if (!strcmp(m, "PATCH")) {
            body = emu_body_json(r);
            if (emu_publisher_update(e, sub, body, &err, &op) != 0) {
                emu_reply_error(res, &err);
            } else {
                emu_reply_empty(res, 202);
                emu_operation_location(e, op, res);
            }
        } else if (!strcmp(m, "DELETE")) {
            if (emu_publisher_delete(e, sub, &err, &op) != 0) {
                emu_reply_error(res, &err);
            } else {
                emu_reply_empty(res, 202);
                emu_operation_location(e, op, res);
            }
        } else {
            method_not_allowed(res);
        }
    } else if (n == 2 && !strcmp(tail, "activate")) {
        if (strcmp(m, "POST")) {
            method_not_allowed(res);
        } else {
            body = emu_body_json(r);
            if (emu_activate(e, sub, body, &err) != 0)
                emu_reply_error(res, &err);
            else
                emu_reply_empty(res, 200);
        }
    } else if (n == 2 && !strcmp(tail, "listAvailablePlans")) {
        if (strcmp(m, "GET"))
            method_not_allowed(res);
        else
            available_plans(e, sub, r, res);
    } else if (n == 2 && !strcmp(tail, "operations")) {
        if (strcmp(m, "GET"))
            method_not_allowed(res);
        else
            outstanding(e, sub, res);
    } else if (n == 3 && !strcmp(tail, "operations")) {
        op = emu_op(e, opid);
        if (!op || strcmp(emu_jstr(op, "subscriptionId"), sid)) {
            not_found(res, "The operation");
        } else if (!strcmp(m, "GET")) {
            emu_reply_text_of(e, res, EMU_TEXT_OP, op);
        } else if (!strcmp(m, "PATCH")) {
            body = emu_body_json(r);
            if (emu_op_ack(e, op, emu_jstr(body, "status"), &err) != 0)
                emu_reply_error(res, &err);
            else
                emu_reply_empty(res, 200);
        } else {
            method_not_allowed(res);
        }
    } else {
        not_found(res, "The resource");
    }
    json_decref(body);
}
