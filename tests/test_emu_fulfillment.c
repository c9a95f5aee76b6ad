/* Emulator, Fulfillment v2 + Operations (§1, §3, §4, §6), driven over HTTP like a client would. */
#include "emu_harness.h"
#include "core/crypto.h"

static const char *op_id_of(const struct reply *r)
{
    static char id[64];
    const char *loc = reply_header(r, "Operation-Location");
    const char *p = loc ? strstr(loc, "/operations/") : NULL;
    snprintf(id, sizeof id, "%.36s", p ? p + 12 : "none");
    return id;
}

static long mp_status(const char *method, const char *path, const char *body)
{
    struct reply r = mp(method, path, body);
    long s = r.status;
    reply_free(&r);
    return s;
}

static long patch_sub(const char *sid, const char *body, char op_out[64])
{
    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    struct reply r = mp("PATCH", path, body);
    long s = r.status;
    if (op_out)
        snprintf(op_out, 64, "%s", op_id_of(&r));
    reply_free(&r);
    return s;
}

static void transport_and_auth(void)
{
    struct reply r = call("GET", url_of("/api/saas/subscriptions"), NULL, NULL);
    CHECK(r.status == 400 && !strcmp(jps(r.json, "Error.Code") ? jps(r.json, "Error.Code") : "", "ApiVersionUnspecified"),
          "§1.1 a call without api-version is 400 ApiVersionUnspecified");
    reply_free(&r);
    r = call("GET", url_of("/api/saas/subscriptions?api-version=2018-09-15"), NULL, NULL);
    CHECK(r.status == 400 && !strcmp(jps(r.json, "Error.Code") ? jps(r.json, "Error.Code") : "", "UnsupportedApiVersion"),
          "§1.1 an unsupported api-version is 400 UnsupportedApiVersion");
    reply_free(&r);

    char auth[8300];
    snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
    r = call("GET", url_of("/api/saas/subscriptions?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-requestid", "req-123", "x-ms-correlationid", "corr-456", NULL);
    CHECK(r.status == 200 && reply_header(&r, "x-ms-requestid") && !strcmp(reply_header(&r, "x-ms-requestid"), "req-123"),
          "§1.3 x-ms-requestid is echoed");
    CHECK(reply_header(&r, "x-ms-correlationid") && !strcmp(reply_header(&r, "x-ms-correlationid"), "corr-456"),
          "§1.3 x-ms-correlationid is echoed");
    reply_free(&r);
    r = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(reply_header(&r, "x-ms-requestid") && strlen(reply_header(&r, "x-ms-requestid")) == 36,
          "§1.3 a missing x-ms-requestid is generated (GUID)");
    reply_free(&r);

    r = call("GET", url_of("/api/saas/subscriptions?api-version=2018-08-31"), NULL, NULL);
    CHECK(r.status == 403, "§3.1 a call without a bearer token is 403");
    reply_free(&r);

    char forged[8300];
    snprintf(forged, sizeof forged, "%s", auth);
    size_t n = strlen(forged);
    forged[n - 5] = forged[n - 5] == 'A' ? 'B' : 'A';
    r = call("GET", url_of("/api/saas/subscriptions?api-version=2018-08-31"), NULL, "Authorization", forged, NULL);
    CHECK(r.status == 403, "§3.1 a token with a broken signature is 403");
    reply_free(&r);

    r = ctl("POST", "/_emulator/tokens", "{\"kind\":\"webhook\"}");
    snprintf(forged, sizeof forged, "Bearer %s", jstr(r.json, "access_token") ? jstr(r.json, "access_token") : "");
    reply_free(&r);
    r = call("GET", url_of("/api/saas/subscriptions?api-version=2018-08-31"), NULL, "Authorization", forged, NULL);
    CHECK(r.status == 403, "§2.2 a token whose aud is not the marketplace app (a webhook token) is 403");
    reply_free(&r);

    char v1[8192];
    CHECK(fetch_token(1, v1, sizeof v1) == 0, "§2.1 the v1 token endpoint issues a token");
    snprintf(forged, sizeof forged, "Bearer %s", v1);
    r = call("GET", url_of("/api/saas/subscriptions?api-version=2018-08-31"), NULL, "Authorization", forged, NULL);
    CHECK(r.status == 200, "§2.1 tokens from the v1 endpoint are accepted by the marketplace API");
    reply_free(&r);

    struct reply k = ctl("PUT", "/_emulator/config", "{\"clockOffsetS\":7200}");
    reply_free(&k);
    CHECK(mp_status("GET", "/api/saas/subscriptions", NULL) == 403, "§2.4 an expired token is 403");
    struct reply c = ctl("PUT", "/_emulator/config", "{\"clockOffsetS\":0}");
    reply_free(&c);
    CHECK(mp_status("GET", "/api/saas/subscriptions", NULL) == 200, "the same token works again once the clock is back");
}

static void resolve_and_activate(void)
{
    char tok[1024], path[256];
    struct reply p = ctl("POST", "/_emulator/purchases", "{\"offerId\":\"emulator-offer\",\"planId\":\"seats\",\"quantity\":5}");
    CHECK(p.status == 201 && jstr(p.json, "subscriptionId") && jstr(p.json, "landingUrl"),
          "control purchase answers 201 with subscriptionId, landingUrl and token");
    char sid[64];
    snprintf(sid, sizeof sid, "%s", jstr(p.json, "subscriptionId"));
    snprintf(tok, sizeof tok, "%s", jstr(p.json, "token"));
    const char *landing = jstr(p.json, "landingUrl");
    CHECK(strchr(tok, '+') != NULL, "§3.4 landing tokens contain '+' like the real base64 blob");
    CHECK(landing && strstr(landing, "?token=") && strstr(landing, "%2B") && !strchr(strstr(landing, "?token="), '+'),
          "§3.4 landingUrl carries the token URL-encoded once");
    reply_free(&p);

    struct reply r = mp("POST", "/api/saas/subscriptions/resolve", NULL);
    CHECK(r.status == 400 && jstatus_is(r.json, "HeaderNotPresent"),
          "§3.4 resolve without x-ms-marketplace-token is 400 HeaderNotPresent");
    reply_free(&r);

    char auth[8300];
    snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
    r = call("POST", url_of("/api/saas/subscriptions/resolve?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-marketplace-token", tok, NULL);
    CHECK(r.status == 200 && jstr(r.json, "id") && !strcmp(jstr(r.json, "id"), sid),
          "§3.3 resolve returns the purchased subscription id");
    CHECK(jstr(r.json, "planId") && !strcmp(jstr(r.json, "planId"), "seats") &&
              json_integer_value(json_object_get(r.json, "quantity")) == 5 && jstr(r.json, "subscriptionName") &&
              !strcmp(jps(r.json, "subscription.saasSubscriptionStatus"), "PendingFulfillmentStart"),
          "§3.3 resolve carries planId, quantity, subscriptionName and the full subscription");
    reply_free(&r);

    char mangled[1024];
    snprintf(mangled, sizeof mangled, "%s", tok);
    for (char *c = mangled; *c; c++)
        if (*c == '+')
            *c = ' ';
    r = call("POST", url_of("/api/saas/subscriptions/resolve?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-marketplace-token", mangled, NULL);
    CHECK(r.status == 400 && jstatus_is(r.json, "InvalidValue") && strstr(jstr(r.json, "message"), "failed to decrypt"),
          "§3.4 a token whose '+' became spaces is 400 InvalidValue 'failed to decrypt token'");
    reply_free(&r);
    mangled[0] = 0;
    {
        char *raw = NULL;
        const char *fake = "{\"s\":\"00000000-0000-4000-8000-000000000000\",\"e\":9999999999}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        crypto_base64_encode(fake, strlen(fake), &raw);
        snprintf(mangled, sizeof mangled, "%s", raw);
        free(raw);
    }
    r = call("POST", url_of("/api/saas/subscriptions/resolve?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-marketplace-token", mangled, NULL);
    CHECK(r.status == 400 && jstatus_is(r.json, "InvalidValue"), "§3.4 a forged token (bad HMAC) is 400 InvalidValue");
    reply_free(&r);

    snprintf(path, sizeof path, "/_emulator/subscriptions/%s/landing-token", sid);
    struct reply lt = ctl("POST", path, "{\"lifetimeS\":1}");
    char short_tok[1024];
    snprintf(short_tok, sizeof short_tok, "%s", jstr(lt.json, "token") ? jstr(lt.json, "token") : "");
    reply_free(&lt);
    struct reply c = ctl("POST", "/_emulator/clock/advance", "{\"seconds\":5}");
    reply_free(&c);
    fetch_token(2, TOKEN, sizeof TOKEN);
    snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
    r = call("POST", url_of("/api/saas/subscriptions/resolve?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-marketplace-token", short_tok, NULL);
    CHECK(r.status == 400, "§3.4 an expired landing token is 400");
    reply_free(&r);
    c = ctl("PUT", "/_emulator/config", "{\"clockOffsetS\":0}");
    reply_free(&c);
    fetch_token(2, TOKEN, sizeof TOKEN);

    CHECK(activate(sid, "{\"quantity\":5}") == 400, "§6 activate without planId is 400");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/activate", sid);
    r = mp("POST", path, "{}");
    CHECK(jps(r.json, "details.0.code") && !strcmp(jps(r.json, "details.0.code"), "RequiredField"),
          "§8.1 a missing planId is reported as RequiredField");
    reply_free(&r);
    CHECK(activate(sid, "{\"planId\":\"gold\",\"quantity\":5}") == 400, "§6 activate with another plan is 400");
    CHECK(activate(sid, "{\"planId\":\"seats\",\"quantity\":7}") == 400, "§6 activate with another quantity is 400");
    r = mp("POST", path, "{\"planId\":\"seats\",\"quantity\":\"5\"}");
    CHECK(r.status == 200 && r.raw.body_len == 0, "§3.5 activate answers 200 with an empty body (quantity as string ok)");
    reply_free(&r);
    json_t *s = get_sub(sid);
    const char *start = jps(s, "term.startDate");
    CHECK(!strcmp(jstr(s, "saasSubscriptionStatus"), "Subscribed") && start && strstr(start, "T00:00:00") &&
              jps(s, "term.endDate") && strcmp(jstr(s, "lastModified"), "0001-01-01T00:00:00"),
          "§3.5 activation sets Subscribed, term dates from midnight UTC, lastModified");
    json_decref(s);
    CHECK(activate(sid, "{\"planId\":\"seats\",\"quantity\":5}") == 400, "§6 activate while Subscribed is 400");

    r = call("POST", url_of("/api/saas/subscriptions/resolve?api-version=2018-08-31"), NULL, "Authorization", auth,
             "x-ms-marketplace-token", tok, NULL);
    CHECK(r.status == 200 && !strcmp(jps(r.json, "subscription.saasSubscriptionStatus"), "Subscribed"),
          "§3.3 resolve still works on an active subscription (Manage account)");
    reply_free(&r);

    customer(sid, "suspend", NULL, NULL);
    CHECK(activate(sid, "{\"planId\":\"seats\",\"quantity\":5}") == 400, "§6 activate while Suspended is 400");
    customer(sid, "unsubscribe", NULL, NULL);
    CHECK(activate(sid, "{\"planId\":\"seats\",\"quantity\":5}") == 404, "§6 activate while Unsubscribed is 404");
    CHECK(activate("00000000-0000-4000-8000-000000000000", "{\"planId\":\"basic\"}") == 404,
          "§3.1 activate of an unknown subscription is 404");
}

static void list_get_plans(void)
{
    struct reply c = ctl("POST", "/_emulator/reset", NULL);
    reply_free(&c);
    c = ctl("PUT", "/_emulator/config", "{\"pageSize\":2}");
    reply_free(&c);
    struct reply r = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(r.status == 200 && json_is_array(json_object_get(r.json, "subscriptions")) &&
              json_array_size(json_object_get(r.json, "subscriptions")) == 0,
          "§3.6 no subscriptions is {\"subscriptions\":[]}");
    reply_free(&r);
    char ids[5][64];
    for (int i = 0; i < 5; i++)
        snprintf(ids[i], 64, "%s", buy("{\"planId\":\"basic\"}", NULL, 0));
    customer(ids[4], "unsubscribe", NULL, NULL);

    int pages = 0, seen = 0, dup = 0, absolute = 1;
    char next[2048];
    snprintf(next, sizeof next, "%s/api/saas/subscriptions/?api-version=2018-08-31", BASE);
    char auth[8300];
    snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
    int found_unsub = 0;
    while (*next && pages < 10) {
        r = call("GET", next, NULL, "Authorization", auth, NULL);
        pages++;
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(r.json, "subscriptions"), i, s) {
            seen++;
            for (int k = 0; k < 5; k++)
                if (!strcmp(jstr(s, "id"), ids[k]) && k == 4)
                    found_unsub = !strcmp(jstr(s, "saasSubscriptionStatus"), "Unsubscribed");
            if (i > 0 && !strcmp(jstr(s, "id"), jstr(json_array_get(json_object_get(r.json, "subscriptions"), i - 1), "id")))
                dup++;
        }
        const char *nl = jstr(r.json, "@nextLink");
        if (nl && (strncmp(nl, BASE, strlen(BASE)) || !strstr(nl, "api-version=2018-08-31") ||
                   !strstr(nl, "continuationToken=")))
            absolute = 0;
        snprintf(next, sizeof next, "%s", nl ? nl : "");
        reply_free(&r);
    }
    CHECK(pages == 3 && seen == 5 && !dup, "§3.6 following @nextLink with page size 2 yields all 5 subscriptions in 3 pages");
    CHECK(absolute, "§3.6 @nextLink is absolute and carries continuationToken and api-version");
    CHECK(found_unsub, "§3.6 Unsubscribed subscriptions stay in the list");
    r = mp("GET", "/api/saas/subscriptions?continuationToken=garbage", NULL);
    CHECK(r.status == 400, "§3.6 a forged continuationToken is 400");
    reply_free(&r);
    c = ctl("PUT", "/_emulator/config", "{\"pageSize\":100}");
    reply_free(&c);

    r = mp("GET", "/api/saas/subscriptions/00000000-0000-4000-8000-000000000000", NULL);
    CHECK(r.status == 404 && jstatus_is(r.json, "EntityNotFound"), "§3.1 get of an unknown subscription is 404 EntityNotFound");
    reply_free(&r);
    json_t *flat = get_sub(ids[0]);
    CHECK(flat && !json_object_get(flat, "quantity") && jstr(flat, "publisherId") && json_is_array(json_object_get(flat, "allowedCustomerOperations")),
          "§3.2 a flat-rate subscription has no quantity and carries publisherId, allowedCustomerOperations");
    CHECK(!json_object_get(flat, "_purchasedPlan"), "internal bookkeeping fields are never served");
    json_decref(flat);

    char path[256];
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/listAvailablePlans", ids[0]);
    r = mp("GET", path, NULL);
    json_t *plans = json_object_get(r.json, "plans");
    int has_current = 0;
    size_t i;
    json_t *p;
    json_array_foreach(plans, i, p) has_current |= !strcmp(jstr(p, "planId"), "basic");
    CHECK(r.status == 200 && json_array_size(plans) == 4 && has_current, "§3.7 listAvailablePlans lists the offer's plans, current included");
    CHECK(json_is_array(jpath(r.json, "plans.0.planComponents.meteringDimensions")) &&
              json_is_array(jpath(r.json, "plans.0.planComponents.recurrentBillingTerms")),
          "§3.7 plans carry planComponents (billing terms, metering dimensions)");
    reply_free(&r);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/listAvailablePlans?planId=gold", ids[0]);
    r = mp("GET", path, NULL);
    CHECK(json_array_size(json_object_get(r.json, "plans")) == 1 && !strcmp(jps(r.json, "plans.0.planId"), "gold"),
          "§3.7 the planId query filters to one plan");
    reply_free(&r);
    CHECK(mp_status("GET", "/api/saas/subscriptions/00000000-0000-4000-8000-000000000000/listAvailablePlans", NULL) == 404,
          "§10 listAvailablePlans of an unknown subscription is 404");
}

static void changes(void)
{
    char sid[64], seats[64], op[64], path[256];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    subscribed("{\"planId\":\"seats\",\"quantity\":3}", "seats", seats);

    /* a completion delay long enough to look at the operation while it is in progress */
    struct reply k = ctl("PUT", "/_emulator/config", "{\"opDelayMs\":800}");
    reply_free(&k);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    struct reply r = mp("PATCH", path, "{\"planId\":\"gold\"}");
    const char *loc = reply_header(&r, "Operation-Location");
    CHECK(r.status == 202 && loc && !strncmp(loc, BASE, strlen(BASE)) && strstr(loc, "/operations/") &&
              strstr(loc, "api-version=2018-08-31"),
          "§3.8 change plan answers 202 with an absolute Operation-Location");
    snprintf(op, sizeof op, "%s", op_id_of(&r));
    reply_free(&r);
    json_t *o = get_op(sid, op);
    CHECK(o && !strcmp(jstr(o, "status"), "InProgress") && !strcmp(jstr(o, "action"), "ChangePlan") &&
              !strcmp(jstr(o, "planId"), "gold") && !strcmp(jstr(o, "operationRequestSource"), "Partner"),
          "§4 the new operation is InProgress, ChangePlan to the target plan, source Partner");
    json_decref(o);
    json_t *s = get_sub(sid);
    CHECK(!strcmp(jstr(s, "planId"), "basic") && !strcmp(jstr(s, "saasSubscriptionStatus"), "Subscribed"),
          "§3.8 nothing is applied while the operation is in progress");
    json_decref(s);
    CHECK(patch_sub(sid, "{\"planId\":\"annual\"}", NULL) == 400, "§3.8 a change while an operation is InProgress is 400 (locked)");
    CHECK(!strcmp(wait_op(sid, op, 4000), "Succeeded"), "§3.8 the operation ends Succeeded");
    k = ctl("PUT", "/_emulator/config", "{\"opDelayMs\":50}");
    reply_free(&k);
    s = get_sub(sid);
    CHECK(!strcmp(jstr(s, "planId"), "gold"), "§3.8 the new plan is applied once the operation succeeded");
    json_decref(s);

    CHECK(patch_sub(sid, "{\"planId\":\"gold\"}", NULL) == 400, "§3.8 changing to the current plan is 400");
    CHECK(patch_sub(sid, "{\"planId\":\"platinum\"}", NULL) == 400, "§3.8 changing to an unknown plan is 400");
    CHECK(patch_sub(sid, "{\"planId\":\"basic\",\"quantity\":2}", NULL) == 400, "§3.8 planId and quantity together is 400");
    CHECK(patch_sub(sid, "{}", NULL) == 400, "§3.8 neither planId nor quantity is 400");
    CHECK(patch_sub(sid, "{\"quantity\":4}", NULL) == 400, "§3.8 a quantity change on a flat-rate plan is 400");
    CHECK(patch_sub(seats, "{\"quantity\":3}", NULL) == 400, "§3.8 the same quantity is 400");
    CHECK(patch_sub(seats, "{\"quantity\":101}", NULL) == 400, "§3.8 a quantity above the plan maximum is 400");
    CHECK(patch_sub(seats, "{\"quantity\":0}", NULL) == 400, "§3.8 a quantity below the plan minimum is 400");
    CHECK(patch_sub(seats, "{\"quantity\":8}", op) == 202 && !strcmp(wait_op(seats, op, 2000), "Succeeded"),
          "§3.8 a quantity change within limits is accepted and succeeds");
    s = get_sub(seats);
    CHECK(json_integer_value(json_object_get(s, "quantity")) == 8, "§3.8 the new quantity is applied");
    json_decref(s);
    CHECK(patch_sub("00000000-0000-4000-8000-000000000000", "{\"planId\":\"gold\"}", NULL) == 404,
          "§3.8 PATCH of an unknown subscription is 404");

    char pending[64];
    snprintf(pending, sizeof pending, "%s", buy("{\"planId\":\"basic\"}", NULL, 0));
    CHECK(patch_sub(pending, "{\"planId\":\"gold\"}", NULL) == 400, "§6 change while PendingFulfillmentStart is 400");
    customer(seats, "suspend", NULL, NULL);
    CHECK(patch_sub(seats, "{\"quantity\":9}", NULL) == 400, "§6 change while Suspended is 400");

    char csp[64];
    subscribed("{\"planId\":\"basic\",\"csp\":true}", "basic", csp);
    s = get_sub(csp);
    CHECK(json_array_size(json_object_get(s, "allowedCustomerOperations")) == 1 && !strcmp(jstr(s, "sandboxType"), "Csp"),
          "§3.2 a CSP purchase exposes only Read");
    json_decref(s);
    CHECK(patch_sub(csp, "{\"planId\":\"gold\"}", NULL) == 400, "§3.8 Update not in allowedCustomerOperations is 400");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", csp);
    CHECK(mp_status("DELETE", path, NULL) == 400, "§3.9 Delete not in allowedCustomerOperations is 400");

    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    r = mp("DELETE", path, NULL);
    CHECK(r.status == 202 && reply_header(&r, "Operation-Location"), "§3.9 DELETE answers 202 with Operation-Location");
    snprintf(op, sizeof op, "%s", op_id_of(&r));
    reply_free(&r);
    CHECK(!strcmp(wait_op(sid, op, 2000), "Succeeded") && !strcmp(sub_status(sid), "Unsubscribed"),
          "§3.9 the cancel operation succeeds and the subscription is Unsubscribed");
    CHECK(mp_status("DELETE", path, NULL) == 400, "§3.9 DELETE of an Unsubscribed subscription is 400");
    CHECK(patch_sub(sid, "{\"planId\":\"basic\"}", NULL) == 400 && activate(sid, "{\"planId\":\"basic\"}") == 404 &&
              !strcmp(sub_status(sid), "Unsubscribed"),
          "§6 nothing revives an Unsubscribed subscription");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", pending);
    r = mp("DELETE", path, NULL);
    snprintf(op, sizeof op, "%s", op_id_of(&r));
    reply_free(&r);
    CHECK(!strcmp(wait_op(pending, op, 2000), "Succeeded") && !strcmp(sub_status(pending), "Unsubscribed"),
          "§6 DELETE of a pending purchase makes it Unsubscribed");
}

static void operations_api(void)
{
    struct reply c = ctl("PUT", "/_emulator/config", "{\"ackWindowMs\":60000,\"webhookUrl\":null}");
    reply_free(&c);
    char sid[64], other[64], op[64], path[256];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    subscribed("{\"planId\":\"basic\"}", "basic", other);
    CHECK(customer(sid, "change-plan", "{\"planId\":\"gold\"}", op) == 202, "§5.7 a customer plan change is accepted (202)");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/operations", sid);
    struct reply r = mp("GET", path, NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "operations")) == 1 &&
              !strcmp(jps(r.json, "operations.0.id"), op) && !strcmp(jps(r.json, "operations.0.status"), "InProgress"),
          "§4 List outstanding returns {operations:[...]} with the operation awaiting ACK");
    int internal = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_array_get(json_object_get(r.json, "operations"), 0), k, v)
        internal |= k[0] == '_';
    reply_free(&r);
    json_t *o = get_op(sid, op);
    CHECK(!strcmp(jstr(o, "operationRequestSource"), "Azure") && jstr(o, "timeStamp") && jstr(o, "activityId") &&
              !strcmp(jstr(o, "subscriptionId"), sid) && jstr(o, "offerId") && jstr(o, "publisherId"),
          "§4 the operation carries source Azure, timeStamp, activityId, subscription/offer/publisher ids");
    json_object_foreach(o, k, v)
        internal |= k[0] == '_';
    CHECK(!internal && json_object_get(o, "subscriptionId"),
          "operations are served without the emulator's internal bookkeeping fields (_phase, _dueAt ...)");
    json_decref(o);

    char opp[300];
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", other, op);
    CHECK(mp_status("GET", opp, NULL) == 404, "§4 an operation looked up under another subscription is 404");
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/00000000-0000-4000-8000-000000000000", sid);
    CHECK(mp_status("GET", opp, NULL) == 404, "§4 an unknown operation is 404");
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    r = mp("PATCH", opp, "{\"status\":\"Succeeded\"}");
    CHECK(r.status == 400 && jstatus_is(r.json, "InvalidValue"), "§4 PATCH status Succeeded (not Success) is 400 InvalidValue");
    reply_free(&r);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Success\"}") == 200, "§4 PATCH Success answers 200");
    json_t *s = get_sub(sid);
    CHECK(!strcmp(jstr(s, "planId"), "gold") && !strcmp(wait_op(sid, op, 0), "Succeeded"),
          "§4 PATCH Success applies the change and the operation is Succeeded");
    json_decref(s);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Success\"}") == 409, "§4 a PATCH of a final operation is 409");

    customer(sid, "change-plan", "{\"planId\":\"basic\"}", op);
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Failure\"}") == 200 && !strcmp(wait_op(sid, op, 0), "Failed"),
          "§4 PATCH Failure makes the operation Failed");
    s = get_sub(sid);
    CHECK(!strcmp(jstr(s, "planId"), "gold"), "§6 a rejected change leaves the subscription unchanged");
    json_decref(s);

    char sq[64];
    subscribed("{\"planId\":\"seats\",\"quantity\":2}", "seats", sq);
    CHECK(customer(sq, "change-quantity", "{\"quantity\":6}", op) == 202, "§5.7 a customer quantity change is accepted");
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sq, op);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Success\"}") == 200 &&
              sub_quantity(sq) == 6,
          "§4 an accepted ChangeQuantity applies the seats");

    customer(sq, "suspend", NULL, op);
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sq, op);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Success\"}") == 400, "§4 PATCH of a notify-only operation (Suspend) is 400");
    c = ctl("PUT", "/_emulator/config", "{\"reinstateAckable\":true}");
    reply_free(&c);
    CHECK(customer(sq, "reinstate", NULL, op) == 202, "§5.7 reinstate of a Suspended subscription is accepted");
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sq, op);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Success\"}") == 200 && !strcmp(sub_status(sq), "Subscribed"),
          "§4 with reinstateAckable (life-cycle page) PATCH Success of a Reinstate makes the subscription Subscribed");
    c = ctl("PUT", "/_emulator/config", "{\"reinstateAckable\":false}");
    reply_free(&c);
    customer(sq, "suspend", NULL, op);
    CHECK(customer(sq, "reinstate", NULL, op) == 202 && !strcmp(sub_status(sq), "Subscribed"),
          "§5.3 by default (webhook page) a Reinstate is applied at once");
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sq, op);
    CHECK(mp_status("PATCH", opp, "{\"status\":\"Success\"}") == 400,
          "§5.3 by default (webhook page) a Reinstate is not ACK-able: PATCH is 400");

    c = ctl("PUT", "/_emulator/config", "{\"opDelayMs\":5000}");
    reply_free(&c);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    r = mp("PATCH", path, "{\"planId\":\"annual\"}");
    snprintf(op, sizeof op, "%s", op_id_of(&r));
    reply_free(&r);
    snprintf(opp, sizeof opp, "/api/saas/subscriptions/%s/operations/%s", sid, op);
    r = mp("PATCH", opp, "{\"status\":\"Success\"}");
    CHECK(r.status == 500, "§4 PATCH of a publisher-initiated (Partner) operation is 500, as seen live");
    reply_free(&r);
    r = mp("GET", path, NULL);
    reply_free(&r);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/operations", sid);
    r = mp("GET", path, NULL);
    CHECK(json_array_size(json_object_get(r.json, "operations")) == 0,
          "§4 List outstanding omits publisher-initiated operations (nothing to ACK)");
    reply_free(&r);

    c = ctl("PUT", "/_emulator/config", "{\"ackWindowMs\":300,\"opDelayMs\":50}");
    reply_free(&c);
    char auto_sid[64];
    subscribed("{\"planId\":\"basic\"}", "basic", auto_sid);
    customer(auto_sid, "change-plan", "{\"planId\":\"gold\"}", op);
    double t0 = now_s();
    const char *fin = wait_op(auto_sid, op, 3000);
    double took = now_s() - t0;
    s = get_sub(auto_sid);
    CHECK(!strcmp(fin, "Succeeded") && !strcmp(jstr(s, "planId"), "gold") && took >= 0.2,
          "§5.3 without a PATCH the change is auto-accepted after the ACK window");
    json_decref(s);
}

#define T2 "44444444-4444-4444-8444-444444444444"
#define C2 "55555555-5555-4555-8555-555555555555"

/* §3.1 / §7.3 / §9.17: resources of an offer registered with another app are refused. */
/* "/api/saas/subscriptions" + tmpl with {s} and {o} replaced by sid and op. */
static void expand(const char *tmpl, const char *sid, const char *op, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "/api/saas/subscriptions");
    for (const char *p = tmpl; *p && n < size; p++) {
        const char *put = !strncmp(p, "{s}", 3) ? sid : !strncmp(p, "{o}", 3) ? op : NULL;
        n += put ? (size_t)snprintf(out + n, size - n, "%s", put) : (size_t)snprintf(out + n, size - n, "%c", *p);
        p += put ? 2 : 0;
    }
}

/* The router's table: every known path answers 405 to a method it does not serve, with or
 * without a trailing slash; an unknown path is 404 naming what was not found. */
static void routing(void)
{
    char sid[64], op[64];
    subscribed("{\"planId\":\"basic\"}", "basic", sid);
    customer(sid, "change-plan", "{\"planId\":\"gold\"}", op);
    static const struct {
        const char *method, *path; /* {s}: the subscription, {o}: its operation */
        long status;
        const char *message;
    } cases[] = {
        {"PUT", "", 405, NULL},
        {"GET", "/", 200, NULL},
        {"GET", "/resolve", 405, NULL},
        {"PUT", "/{s}", 405, NULL},
        {"POST", "/{s}/", 405, NULL},
        {"GET", "/{s}/", 200, NULL},
        {"GET", "/{s}/activate", 405, NULL},
        {"GET", "/{s}/listAvailablePlans/", 200, NULL},
        {"POST", "/{s}/listAvailablePlans", 405, NULL},
        {"GET", "/{s}/operations/", 200, NULL},
        {"DELETE", "/{s}/operations", 405, NULL},
        {"GET", "/{s}/operations/{o}/", 200, NULL},
        {"POST", "/{s}/operations/{o}", 405, NULL},
        {"DELETE", "/{s}/operations/no-such-op", 404, "The operation was not found"},
        {"GET", "/{s}/nothing", 404, "The resource was not found"},
        {"PUT", "/{s}/nothing", 404, "The resource was not found"},
        {"GET", "/{s}//x", 404, "The resource was not found"},
        {"POST", "/{s}/activate/x", 404, "The resource was not found"},
        {"GET", "/00000000-0000-4000-8000-000000000000/operations", 404, "The subscription was not found"},
        {"GET", "//x", 404, "The subscription was not found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512], name[256];
        expand(cases[i].path, sid, op, path, sizeof path);
        struct reply r = mp(cases[i].method, path, NULL);
        const char *msg = jps(r.json, "message");
        snprintf(name, sizeof name, "routing: %s /api/saas/subscriptions%s answers %ld %s", cases[i].method, cases[i].path, cases[i].status,
                 cases[i].message ? cases[i].message : "");
        CHECK(r.status == cases[i].status && (!cases[i].message || (msg && !strcmp(msg, cases[i].message))), name);
        reply_free(&r);
    }
}

static void other_app(void)
{
    struct reply r = ctl("POST", "/_emulator/apps",
                         "{\"tenantId\":\"" T2 "\",\"clientId\":\"" C2 "\",\"clientSecret\":\"other-secret\"}");
    CHECK(r.status == 201, "control API registers a second publisher app");
    reply_free(&r);
    r = ctl("POST", "/_emulator/offers",
            "{\"offerId\":\"other-offer\",\"clientId\":\"" C2 "\",\"plans\":[{\"planId\":\"p\",\"dimensions\":[\"d\"]}]}");
    CHECK(r.status == 201, "control API registers an offer with that app");
    reply_free(&r);
    char other_token[8192], main_token[8192];
    snprintf(main_token, sizeof main_token, "%s", TOKEN);
    CHECK(fetch_app_token(T2, C2, "other-secret", other_token, sizeof other_token) == 0,
          "§2.1 the second app gets tokens from its own tenant");
    CHECK(fetch_app_token(TENANT, C2, "other-secret", NULL, 0) == -400,
          "§2.3 the second app is unknown in the first tenant (400)");

    char sid[64], path[256];
    snprintf(sid, sizeof sid, "%s", buy("{\"offerId\":\"other-offer\"}", NULL, 0));
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    r = mp("GET", path, NULL);
    CHECK(r.status == 403, "§3.1 a subscription of an offer registered with another app is 403");
    reply_free(&r);
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s/nothing", sid);
    CHECK(mp_status("GET", path, NULL) == 403, "§3.1 any path under another app's subscription is 403 (before 404)");
    snprintf(path, sizeof path, "/api/saas/subscriptions/%s", sid);
    CHECK(activate(sid, "{\"planId\":\"p\"}") == 403, "§3.1 activating another app's subscription is 403");
    r = mp("GET", "/api/saas/subscriptions", NULL);
    int leaked = r.body && strstr(r.body, sid) != NULL;
    reply_free(&r);
    snprintf(TOKEN, sizeof TOKEN, "%s", other_token);
    r = mp("GET", "/api/saas/subscriptions", NULL);
    CHECK(!leaked && r.status == 200 && json_array_size(json_object_get(r.json, "subscriptions")) == 1 &&
              !strcmp(jps(r.json, "subscriptions.0.id"), sid),
          "§3.6 List returns only the calling app's subscriptions");
    reply_free(&r);
    CHECK(activate(sid, "{\"planId\":\"p\"}") == 200, "§3.5 the owning app activates it");
    snprintf(TOKEN, sizeof TOKEN, "%s", main_token);
    char body[512], hour[40];
    time_t t = time(NULL);
    t -= t % 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(hour, sizeof hour, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof body,
             "{\"resourceId\":\"%s\",\"quantity\":1,\"dimension\":\"d\",\"effectiveStartTime\":\"%s\",\"planId\":\"p\"}",
             sid, hour);
    r = mp("POST", "/api/usageEvent", body);
    CHECK(r.status == 403 && strstr(r.body, "Client is not authorized for this usage resource."),
          "§7.3 usage for another app's resource is 403 'Client is not authorized for this usage resource.'");
    reply_free(&r);
    char batch[700];
    snprintf(batch, sizeof batch, "{\"request\":[%s]}", body);
    r = mp("POST", "/api/batchUsageEvent", batch);
    CHECK(r.status == 200 && !strcmp(jps(r.json, "result.0.status") ? jps(r.json, "result.0.status") : "", "ResourceNotAuthorized"),
          "§7.3 in a batch it is the item status ResourceNotAuthorized");
    reply_free(&r);
    snprintf(TOKEN, sizeof TOKEN, "%s", other_token);
    r = mp("POST", "/api/usageEvent", body);
    CHECK(r.status == 200, "§7.3 the owning app meters it");
    reply_free(&r);
    snprintf(TOKEN, sizeof TOKEN, "%s", main_token);
}

int main(void)
{
    emu_up(NULL);
    transport_and_auth();
    resolve_and_activate();
    list_get_plans();
    changes();
    operations_api();
    routing();
    other_app();
    emu_down();
    http_client_free(H);
    return CHECK_DONE();
}
