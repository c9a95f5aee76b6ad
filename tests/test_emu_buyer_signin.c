/* Emulator: Entra ID for buyers. The OpenID Connect authorization code flow with PKCE over
 * real HTTP (discovery, the sign-in page, the POST that signs a test user in, the code grant),
 * the ID token checked with saasd's own verifier (src/core/jwt.c) against the emulator's JWKS,
 * and each refusal Entra makes, in Entra's words. */
#include "emu_harness.h"
#include "core/crypto.h"
#include "core/jwt.h"

#define REDIRECT "http://127.0.0.1:8080/landing/callback"
#define REDIRECT_Q "http%3A%2F%2F127.0.0.1%3A8080%2Flanding%2Fcallback"
#define VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" /* RFC 7636 appendix B */
#define CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
#define ALEX "aaaaaaaa-0001-4000-8000-000000000001"
#define SAM "aaaaaaaa-0002-4000-8000-000000000002"
#define ROBIN "aaaaaaaa-0003-4000-8000-000000000003"
#define PAT "aaaaaaaa-0004-4000-8000-000000000004"
#define MSA_TID "9188040d-6c67-4c5b-b112-36a304b66dad"
#define SIGNIN_APP "66666666-6666-4666-8666-666666666666"

/* The authorize request's parameters, overridable one by one. */
struct req {
    const char *tenant, *client, *redirect_q, *rtype, *mode, *state, *nonce, *challenge, *prompt;
};

static struct req dflt(void)
{
    return (struct req){"organizations", CLIENT, REDIRECT_Q, "code", NULL, "st-1", "nonce-1", CHALLENGE, NULL};
}

static void params(const struct req *q, const char *user, char *out, size_t n)
{
    snprintf(out, n,
             "client_id=%s&response_type=%s&redirect_uri=%s&scope=openid+profile+email&state=%s&nonce=%s"
             "&code_challenge=%s&code_challenge_method=S256%s%s%s%s%s%s",
             q->client, q->rtype, q->redirect_q, q->state, q->nonce, q->challenge, q->mode ? "&response_mode=" : "",
             q->mode ? q->mode : "", q->prompt ? "&prompt=" : "", q->prompt ? q->prompt : "", user ? "&user=" : "",
             user ? user : "");
}

static struct reply authorize_get(const struct req *q, const char *user)
{
    char p[2048], path[2300];
    params(q, user, p, sizeof p);
    snprintf(path, sizeof path, "/%s/oauth2/v2.0/authorize?%s", q->tenant, p);
    return call("GET", url_of(path), NULL, NULL);
}

static struct reply sign_in(const struct req *q, const char *user)
{
    char p[2048], path[300];
    params(q, user, p, sizeof p);
    snprintf(path, sizeof path, "/%s/oauth2/v2.0/authorize", q->tenant);
    return call("POST", url_of(path), p, "Content-Type", "application/x-www-form-urlencoded", NULL);
}

/* A query value of the Location the sign-in answered with ("" when absent). */
static const char *loc_param(const struct reply *r, const char *name, char *out, size_t n)
{
    const char *loc = reply_header(r, "Location");
    char key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = loc ? strstr(loc, key) : NULL;
    while (p && p[-1] != '?' && p[-1] != '&')
        p = strstr(p + 1, key);
    snprintf(out, n, "%.*s", p ? (int)strcspn(p + strlen(key), "&") : 0, p ? p + strlen(key) : "");
    return out;
}

/* Signs `user` in with the default request and returns the code (static buffer, "" on failure). */
static const char *code_for(const char *user)
{
    static char code[256];
    struct req q = dflt();
    struct reply r = sign_in(&q, user);
    loc_param(&r, "code", code, sizeof code);
    reply_free(&r);
    return code;
}

static struct reply redeem(const char *tenant, const char *client, const char *secret, const char *code,
                           const char *redirect_q, const char *verifier)
{
    char body[2048], path[200];
    snprintf(body, sizeof body, "grant_type=authorization_code&client_id=%s&client_secret=%s&code=%s&redirect_uri=%s%s%s",
             client, secret, code, redirect_q, verifier ? "&code_verifier=" : "", verifier ? verifier : "");
    snprintf(path, sizeof path, "/%s/oauth2/v2.0/token", tenant);
    return call("POST", url_of(path), body, "Content-Type", "application/x-www-form-urlencoded", NULL);
}

static int entra_error(const struct reply *r, long status, const char *error, long code)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "AADSTS%ld:", code);
    return r->status == status && jstr(r->json, "error") && !strcmp(jstr(r->json, "error"), error) &&
           jstr(r->json, "error_description") && !strncmp(jstr(r->json, "error_description"), prefix, strlen(prefix)) &&
           json_integer_value(jpath(r->json, "error_codes.0")) == code;
}

/* An error page at "Microsoft": the given AADSTS code shown, and no way back to the app. */
static int error_page(const struct reply *r, long code)
{
    char want[32];
    snprintf(want, sizeof want, "AADSTS%ld:", code);
    return r->status == 400 && !reply_header(r, "Location") && r->body && strstr(r->body, want) &&
           strstr(r->raw.headers, "text/html");
}

static json_t *claims_of(const char *jwt)
{
    const char *a = strchr(jwt, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    uint8_t *raw = NULL;
    size_t n = 0;
    if (!b || crypto_base64url_decode(a + 1, (size_t)(b - a - 1), &raw, &n) != 0)
        return NULL;
    json_t *j = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    return j;
}

/* saasd's verifier for ID tokens of tenant tid issued to client. */
static int verify_id_token(const char *tid, const char *client, const char *token, struct jwt_claims *c)
{
    char jwks[256];
    snprintf(jwks, sizeof jwks, "%s/%s/discovery/v2.0/keys", BASE, tid);
    struct jwt_verifier_options o = {.tenant_id = tid, .audience = client, .app_id = client, .authority_url = BASE,
                                     .jwks_url = jwks, .skew_s = 60, .http = H};
    struct jwt_verifier *v = NULL;
    int rc = jwt_verifier_new(&o, &v);
    if (rc == 0)
        rc = jwt_verify(v, token, strlen(token), c);
    jwt_verifier_free(v);
    return rc;
}

static void discovery_and_page(void)
{
    struct reply r = call("GET", url_of("/organizations/v2.0/.well-known/openid-configuration"), NULL, NULL);
    char want[256];
    snprintf(want, sizeof want, "%s/organizations/oauth2/v2.0/authorize", BASE);
    CHECK(r.status == 200 && jstr(r.json, "authorization_endpoint") && !strcmp(jstr(r.json, "authorization_endpoint"), want) &&
              !strcmp(jstr(r.json, "issuer"), "https://login.microsoftonline.com/{tenantid}/v2.0") &&
              strstr(jstr(r.json, "jwks_uri"), BASE) && strstr(jstr(r.json, "token_endpoint"), "/oauth2/v2.0/token"),
          "discovery at /organizations names the emulator's authorize, token and JWKS endpoints and Entra's "
          "{tenantid} issuer template");
    reply_free(&r);

    struct req q = dflt();
    r = authorize_get(&q, NULL);
    CHECK(r.status == 200 && r.body && strstr(r.body, "customer@contoso-customer.example") &&
              strstr(r.body, "colleague@contoso-customer.example") && strstr(r.body, "robin@fabrikam.example") &&
              strstr(r.body, "pat.personal@outlook.example") && strstr(r.body, "method=\"post\"") &&
              strstr(r.body, "Contoso SaaS (publisher app)"),
          "the sign-in page names the app and lists the purchaser, a colleague, a user of another tenant and a "
          "personal account, and signs in by POST");
    reply_free(&r);

    r = authorize_get(&q, ALEX);
    CHECK(r.status == 200 && !reply_header(&r, "Location"), "a GET naming a user still only shows the page (no GET signs in)");
    reply_free(&r);

    r = ctl("GET", "/_emulator/users", NULL);
    json_t *u;
    size_t i;
    int msa = 0, other = 0;
    json_array_foreach(json_object_get(r.json, "users"), i, u) {
        msa |= !strcmp(jstr(u, "tenantId"), MSA_TID) && json_is_true(json_object_get(u, "personal"));
        other |= !strcmp(jstr(u, "tenantId"), EMU_OTHER_TENANT);
    }
    CHECK(msa && other, "the test users include a personal Microsoft account (tid 9188040d-…) and another tenant");
    reply_free(&r);
}

static void full_flow(void)
{
    struct req q = dflt();
    struct reply r = sign_in(&q, ALEX);
    char code[256], state[64], loc[512];
    snprintf(loc, sizeof loc, "%s", reply_header(&r, "Location") ? reply_header(&r, "Location") : "");
    loc_param(&r, "code", code, sizeof code);
    loc_param(&r, "state", state, sizeof state);
    CHECK(r.status == 302 && !strncmp(loc, REDIRECT "?", strlen(REDIRECT) + 1) && strlen(code) > 40 &&
              !strcmp(state, "st-1"),
          "choosing a user redirects to the registered redirect_uri with a code and the state echoed");
    reply_free(&r);

    r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    const char *idt = jstr(r.json, "id_token");
    CHECK(r.status == 200 && idt && jstr(r.json, "access_token") && !strcmp(jstr(r.json, "token_type"), "Bearer") &&
              json_integer_value(json_object_get(r.json, "expires_in")) > 0,
          "the code and the PKCE verifier buy an ID token and an access token");
    struct jwt_claims c = {0};
    int vrc = idt ? verify_id_token(EMU_BUYER_TENANT, CLIENT, idt, &c) : -1;
    CHECK(vrc == 0 && !strcmp(c.tid, EMU_BUYER_TENANT) && !strcmp(c.oid, ALEX) && !strcmp(c.ver, "2.0"),
          "the ID token verifies with saasd's jwt.c against the emulator's JWKS (RS256, kid, iss, aud, tid, exp)");
    json_t *cl = idt ? claims_of(idt) : NULL;
    char iss[200];
    snprintf(iss, sizeof iss, "https://login.microsoftonline.com/%s/v2.0", EMU_BUYER_TENANT);
    long long now = (long long)time(NULL), exp = json_integer_value(json_object_get(cl, "exp"));
    long long iat = json_integer_value(json_object_get(cl, "iat")), nbf = json_integer_value(json_object_get(cl, "nbf"));
    CHECK(cl && !strcmp(jstr(cl, "iss"), iss) && !strcmp(jstr(cl, "aud"), CLIENT) && !strcmp(jstr(cl, "nonce"), "nonce-1") &&
              !strcmp(jstr(cl, "name"), "Alex Buyer") && !strcmp(jstr(cl, "email"), EMU_BUYER_EMAIL) &&
              !strcmp(jstr(cl, "preferred_username"), EMU_BUYER_EMAIL) && jstr(cl, "sub") &&
              strcmp(jstr(cl, "sub"), ALEX) && iat <= now + 5 && nbf <= now + 5 && exp > now + 600,
          "the ID token carries iss of the user's tenant, aud = client id, the nonce echoed, name, email, "
          "preferred_username, a pairwise sub and iat/nbf/exp");
    json_decref(cl);
    reply_free(&r);

    r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    CHECK(entra_error(&r, 400, "invalid_grant", 54005), "a code redeemed twice is invalid_grant AADSTS54005");
    reply_free(&r);

    r = ctl("GET", "/_emulator/calls?method=POST&path=*/oauth2/v2.0/token", NULL);
    size_t n = json_array_size(json_object_get(r.json, "calls"));
    CHECK(n >= 2 && json_integer_value(jpath(r.json, "calls.0.status")) == 200,
          "the call log shows the token requests with their status");
    reply_free(&r);
}

static void token_refusals(void)
{
    char code[256];
    snprintf(code, sizeof code, "%s", code_for(ALEX));
    struct reply r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q,
                            "wrong-verifier-wrong-verifier-wrong-verifier-0");
    CHECK(entra_error(&r, 400, "invalid_grant", 501481), "a wrong code_verifier is invalid_grant AADSTS501481");
    reply_free(&r);
    r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, NULL);
    CHECK(entra_error(&r, 400, "invalid_request", 900144), "a missing code_verifier is invalid_request AADSTS900144");
    reply_free(&r);
    r = redeem("organizations", CLIENT, "emulator-secret", code, "http%3A%2F%2F127.0.0.1%3A8080%2Fother", VERIFIER);
    CHECK(entra_error(&r, 400, "invalid_grant", 500112),
          "a redirect_uri other than the authorize request's is invalid_grant AADSTS500112");
    reply_free(&r);
    r = redeem("organizations", CLIENT, "not-the-secret", code, REDIRECT_Q, VERIFIER);
    CHECK(entra_error(&r, 401, "invalid_client", 7000215), "a bad client secret is 401 invalid_client AADSTS7000215");
    reply_free(&r);
    r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    CHECK(r.status == 200, "refused redemptions do not burn the code: the right request still gets its tokens");
    reply_free(&r);

    snprintf(code, sizeof code, "%s", code_for(ALEX));
    struct reply adv = ctl("POST", "/_emulator/clock/advance", "{\"seconds\":601}");
    reply_free(&adv);
    r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    CHECK(entra_error(&r, 400, "invalid_grant", 70008), "a code older than ten minutes is invalid_grant AADSTS70008");
    reply_free(&r);
    adv = ctl("POST", "/_emulator/clock/advance", "{\"seconds\":-601}");
    reply_free(&adv);

    r = redeem("organizations", CLIENT, "emulator-secret", "made-up-code", REDIRECT_Q, VERIFIER);
    CHECK(entra_error(&r, 400, "invalid_grant", 9002313), "a code the emulator never issued is invalid_grant");
    reply_free(&r);
}

static void authorize_refusals(void)
{
    struct req q = dflt();
    q.client = "77777777-7777-4777-8777-777777777777";
    struct reply r = authorize_get(&q, NULL);
    CHECK(error_page(&r, 700016), "an unknown client_id is an error page AADSTS700016, not a redirect");
    reply_free(&r);
    r = sign_in(&q, ALEX);
    CHECK(error_page(&r, 700016), "... and the sign-in POST is refused the same way");
    reply_free(&r);

    q = dflt();
    q.redirect_q = "https%3A%2F%2Fevil.example%2Fcallback";
    r = authorize_get(&q, NULL);
    CHECK(error_page(&r, 50011), "a redirect_uri not registered for the app is an error page AADSTS50011, not a redirect");
    reply_free(&r);
    r = sign_in(&q, ALEX);
    CHECK(error_page(&r, 50011), "... also when the form is posted with the redirect_uri changed");
    reply_free(&r);

    q = dflt();
    q.tenant = "99999999-9999-4999-8999-999999999999";
    r = authorize_get(&q, NULL);
    CHECK(error_page(&r, 90002), "an unknown tenant is an error page AADSTS90002");
    reply_free(&r);

    q = dflt();
    q.rtype = "token";
    r = authorize_get(&q, NULL);
    char err[64], state[64];
    loc_param(&r, "error", err, sizeof err);
    loc_param(&r, "state", state, sizeof state);
    CHECK(r.status == 302 && !strcmp(err, "unsupported_response_type") && !strcmp(state, "st-1"),
          "a response_type other than code goes back to the app as error=unsupported_response_type with the state");
    reply_free(&r);

    q = dflt();
    q.prompt = "none";
    r = authorize_get(&q, NULL);
    loc_param(&r, "error", err, sizeof err);
    CHECK(r.status == 302 && !strcmp(err, "login_required"), "prompt=none answers login_required (no session at the emulator)");
    reply_free(&r);
}

static void accounts(void)
{
    struct req q = dflt();
    struct reply r = sign_in(&q, PAT);
    CHECK(error_page(&r, 50020), "a personal account cannot sign in at /organizations (error page, no code)");
    reply_free(&r);

    q.tenant = "common";
    r = sign_in(&q, PAT);
    char code[256];
    loc_param(&r, "code", code, sizeof code);
    reply_free(&r);
    r = redeem("common", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    json_t *cl = jstr(r.json, "id_token") ? claims_of(jstr(r.json, "id_token")) : NULL;
    CHECK(cl && !strcmp(jstr(cl, "tid"), MSA_TID) && strstr(jstr(cl, "iss"), MSA_TID),
          "at /common a personal account signs in with tid 9188040d-6c67-4c5b-b112-36a304b66dad");
    json_decref(cl);
    reply_free(&r);

    q = dflt();
    r = sign_in(&q, ROBIN);
    loc_param(&r, "code", code, sizeof code);
    reply_free(&r);
    r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    cl = jstr(r.json, "id_token") ? claims_of(jstr(r.json, "id_token")) : NULL;
    CHECK(cl && !strcmp(jstr(cl, "tid"), EMU_OTHER_TENANT) && !strcmp(jstr(cl, "oid"), ROBIN),
          "a user of another tenant signs in at /organizations with their own tid (the landing page compares it)");
    json_decref(cl);
    reply_free(&r);

    q.tenant = EMU_BUYER_TENANT;
    r = sign_in(&q, ROBIN);
    CHECK(error_page(&r, 50020), "at a tenant's own authority a user of another tenant is refused AADSTS50020");
    reply_free(&r);
    r = sign_in(&q, SAM);
    CHECK(r.status == 302, "... and a user of that tenant signs in");
    reply_free(&r);
}

static void purchasers_are_users(void)
{
    struct reply p = ctl("POST", "/_emulator/purchases", "{\"offerId\":\"emulator-offer\",\"planId\":\"basic\"}");
    CHECK(p.status == 201 && !strcmp(jps(p.json, "subscription.purchaser.emailId"), EMU_BUYER_EMAIL) &&
              !strcmp(jps(p.json, "subscription.purchaser.tenantId"), EMU_BUYER_TENANT) &&
              !strcmp(jps(p.json, "subscription.purchaser.objectId"), ALEX),
          "a purchase's default purchaser is the test user Alex Buyer (same email, tenant and object id)");
    reply_free(&p);

    p = ctl("POST", "/_emulator/purchases",
            "{\"offerId\":\"emulator-offer\",\"planId\":\"basic\",\"purchaser\":{\"emailId\":\"new.buyer@northwind.example\"}}");
    const char *oid = jps(p.json, "subscription.purchaser.objectId");
    char who[64];
    snprintf(who, sizeof who, "%s", oid ? oid : "");
    reply_free(&p);
    struct req q = dflt();
    struct reply r = sign_in(&q, who);
    CHECK(*who && r.status == 302, "a purchaser the directory did not know becomes a test user who can sign in");
    reply_free(&r);
}

static void apps(void)
{
    struct req q = dflt();
    q.client = SIGNIN_APP;
    struct reply r = sign_in(&q, ALEX);
    char code[256];
    loc_param(&r, "code", code, sizeof code);
    CHECK(r.status == 302 && *code, "a separate multitenant sign-in app (emu_options.signin_client_id) signs buyers in");
    reply_free(&r);
    r = redeem("organizations", SIGNIN_APP, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    CHECK(entra_error(&r, 401, "invalid_client", 7000215), "... its code needs its own secret, not the publisher app's");
    reply_free(&r);
    r = redeem("organizations", SIGNIN_APP, "landing-secret", code, REDIRECT_Q, VERIFIER);
    json_t *cl = jstr(r.json, "id_token") ? claims_of(jstr(r.json, "id_token")) : NULL;
    CHECK(cl && !strcmp(jstr(cl, "aud"), SIGNIN_APP), "... and its ID token's aud is the sign-in app");
    json_decref(cl);
    reply_free(&r);

    snprintf(code, sizeof code, "%s", code_for(ALEX));
    r = redeem("organizations", SIGNIN_APP, "landing-secret", code, REDIRECT_Q, VERIFIER);
    CHECK(entra_error(&r, 400, "invalid_grant", 70000), "a code issued to one app is refused to another");
    reply_free(&r);

    r = ctl("PATCH", "/_emulator/apps/" CLIENT, "{\"redirectUris\":[\"https://saas.example/landing/callback\"]}");
    CHECK(r.status == 200 && !strcmp(jps(r.json, "redirectUris.0"), "https://saas.example/landing/callback"),
          "PATCH /_emulator/apps/{clientId} sets the app's redirect URIs");
    reply_free(&r);
    q = dflt();
    r = authorize_get(&q, NULL);
    CHECK(error_page(&r, 50011), "... after which the old redirect URI is refused (AADSTS50011)");
    reply_free(&r);
    r = ctl("PATCH", "/_emulator/apps/" CLIENT,
            "{\"redirectUris\":[\"" REDIRECT "\"],\"signInAudience\":\"AzureADMyOrg\"}");
    reply_free(&r);
    r = authorize_get(&q, NULL);
    CHECK(error_page(&r, 50194), "a single-tenant app at /organizations is an error page AADSTS50194");
    reply_free(&r);
    r = ctl("PATCH", "/_emulator/apps/" CLIENT, "{\"signInAudience\":\"AzureADandPersonalMicrosoftAccount\"}");
    reply_free(&r);
}

static void form_post(void)
{
    struct req q = dflt();
    q.mode = "form_post";
    struct reply r = sign_in(&q, ALEX);
    CHECK(r.status == 200 && r.body && strstr(r.body, "action=\"" REDIRECT "\"") && strstr(r.body, "name=\"code\"") &&
              strstr(r.body, "name=\"state\" value=\"st-1\""),
          "response_mode=form_post answers a form that posts code and state to the redirect_uri");
    reply_free(&r);
}

/* The idTokenFault knob spoils the next ID tokens in one named way, so a relying party's
 * refusals can be tested; saasd's own verifier must refuse each for the named reason. */
static void spoiled_id_tokens(void)
{
    static const struct {
        const char *fault;
        int reason; /* jwt_verify's refusal; 0 = verifies, but the nonce is not the one sent */
    } cases[] = {{"wrong-nonce", 0},           {"foreign-issuer", JWT_EISSUER},  {"expired", JWT_EEXPIRED},
                 {"wrong-audience", JWT_EAUDIENCE}, {"bad-signature", JWT_ESIGNATURE}, {"unknown-key", JWT_EUNKNOWNKID}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[128], name[200];
        snprintf(body, sizeof body, "{\"idTokenFault\":\"%s\"}", cases[i].fault);
        struct reply k = ctl("PUT", "/_emulator/config", body);
        reply_free(&k);
        char code[256];
        snprintf(code, sizeof code, "%s", code_for(ALEX));
        struct reply r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
        const char *idt = jstr(r.json, "id_token");
        struct jwt_claims c = {0};
        int rc = idt ? verify_id_token(EMU_BUYER_TENANT, CLIENT, idt, &c) : -1;
        json_t *cl = idt ? claims_of(idt) : NULL;
        int ok = cases[i].reason ? rc == cases[i].reason : rc == 0 && jstr(cl, "nonce") && strcmp(jstr(cl, "nonce"), "nonce-1");
        snprintf(name, sizeof name, "idTokenFault %s: the ID token is refused by jwt.c as %s", cases[i].fault,
                 cases[i].reason ? jwt_reason_name(cases[i].reason) : "(verifies, but carries another nonce)");
        CHECK(ok, name);
        json_decref(cl);
        reply_free(&r);
    }
    struct reply k = ctl("PUT", "/_emulator/config", "{\"idTokenFault\":\"made-up\"}");
    CHECK(k.status == 400, "an unknown idTokenFault is refused");
    reply_free(&k);
    k = ctl("PUT", "/_emulator/config", "{\"idTokenFault\":null}");
    reply_free(&k);
    char code[256];
    snprintf(code, sizeof code, "%s", code_for(ALEX));
    struct reply r = redeem("organizations", CLIENT, "emulator-secret", code, REDIRECT_Q, VERIFIER);
    struct jwt_claims c = {0};
    CHECK(jstr(r.json, "id_token") && verify_id_token(EMU_BUYER_TENANT, CLIENT, jstr(r.json, "id_token"), &c) == 0,
          "idTokenFault null: ID tokens are sound again");
    reply_free(&r);
}

/* With --data the directory (test users) and the apps' sign-in registrations survive a restart. */
static char *data_dir;
static void with_data(struct emu_options *o) { o->data_dir = data_dir; }

static void persistence(void)
{
    data_dir = check_tmpdir("buyer-signin");
    emu_up(with_data);
    struct reply r = ctl("POST", "/_emulator/users", "{\"email\":\"kept@northwind.example\",\"name\":\"Kept User\"}");
    char oid[64];
    snprintf(oid, sizeof oid, "%s", jstr(r.json, "objectId") ? jstr(r.json, "objectId") : "");
    reply_free(&r);
    r = ctl("POST", "/_emulator/apps",
            "{\"tenantId\":\"" TENANT "\",\"clientId\":\"" SIGNIN_APP "\",\"clientSecret\":\"s3\","
            "\"redirectUris\":[\"https://saas.example/landing/callback\"]}");
    CHECK(r.status == 201 && !strcmp(jps(r.json, "redirectUris.0"), "https://saas.example/landing/callback"),
          "POST /_emulator/apps registers an app with its redirect URIs");
    reply_free(&r);
    emu_down();
    emu_up(with_data);
    struct req q = dflt();
    r = sign_in(&q, oid);
    CHECK(*oid && r.status == 302, "with --data a test user added before a restart still signs in after it");
    reply_free(&r);
    q.client = SIGNIN_APP;
    q.redirect_q = "https%3A%2F%2Fsaas.example%2Flanding%2Fcallback";
    r = sign_in(&q, ALEX);
    CHECK(r.status == 302, "... and an app's registered redirect URI is still accepted");
    reply_free(&r);
    emu_down();
    check_rm_rf(data_dir);
    free(data_dir);
}

static void with_signin_app(struct emu_options *o)
{
    o->signin_client_id = SIGNIN_APP;
    o->signin_client_secret = "landing-secret";
}

int main(void)
{
    emu_up(with_signin_app);
    discovery_and_page();
    full_flow();
    token_refusals();
    authorize_refusals();
    accounts();
    purchasers_are_users();
    apps();
    form_post();
    spoiled_id_tokens();
    emu_down();
    persistence();
    http_client_free(H);
    return CHECK_DONE();
}
