/* The buyers' side of Entra ID: a small directory of test users (work accounts in customer
 * tenants and personal Microsoft accounts) who can sign in on the emulator's sign-in page, and
 * the link between them and purchases: a purchase's purchaser and beneficiary are users of this
 * directory, so the landing page can compare the signed-in user's tenant with the purchaser's.
 * Everything here runs with emu.lock held. */
#include "core/crypto.h"
#include "core/err.h"
#include "emu/emu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The users every emulator starts with (ids fixed so tests and screenshots are stable): the
 * default purchaser, a colleague in the same tenant, a user of another tenant and a personal
 * Microsoft account. */
static const struct {
    const char *oid, *name, *email, *tid, *tenant_name;
} seed_users[] = {
    {"aaaaaaaa-0001-4000-8000-000000000001", "Alex Buyer", EMU_BUYER_EMAIL, EMU_BUYER_TENANT, "Contoso Customer"},
    {"aaaaaaaa-0002-4000-8000-000000000002", "Sam Colleague", "colleague@contoso-customer.example", EMU_BUYER_TENANT,
     "Contoso Customer"},
    {"aaaaaaaa-0003-4000-8000-000000000003", "Robin Other", "robin@fabrikam.example", EMU_OTHER_TENANT, "Fabrikam"},
    {"aaaaaaaa-0004-4000-8000-000000000004", "Pat Personal", "pat.personal@outlook.example", EMU_MSA_TENANT,
     "Microsoft account"},
};

static json_t *users(struct emu *e)
{
    json_t *u = json_object_get(e->db, "users");
    if (!json_is_object(u)) {
        u = json_object();
        json_object_set_new(e->db, "users", u);
    }
    return u;
}

static json_t *user_new(const char *oid, const char *name, const char *email, const char *tid, const char *tname)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "objectId", oid, "name", name, "email", email, "tenantId", tid,
                     "tenantName", tname, "personal", !strcmp(tid, EMU_MSA_TENANT));
}

void emu_users_seed(struct emu *e)
{
    json_t *u = users(e);
    for (size_t i = 0; i < sizeof seed_users / sizeof seed_users[0]; i++)
        if (!json_object_get(u, seed_users[i].oid)) {
            json_object_set_new(u, seed_users[i].oid, user_new(seed_users[i].oid, seed_users[i].name, seed_users[i].email,
                                                              seed_users[i].tid, seed_users[i].tenant_name));
            e->dirty = 1;
        }
}

json_t *emu_user(struct emu *e, const char *oid) { return oid ? json_object_get(users(e), oid) : NULL; }

json_t *emu_user_by_email(struct emu *e, const char *email)
{
    const char *k;
    json_t *u;
    json_object_foreach(users(e), k, u)
        if (email && !strcasecmp(emu_jstr(u, "email"), email))
            return u;
    return NULL;
}

int emu_user_tenant_known(struct emu *e, const char *tid)
{
    const char *k;
    json_t *u;
    json_object_foreach(users(e), k, u)
        if (!strcmp(emu_jstr(u, "tenantId"), tid))
            return 1;
    return 0;
}

/* A display name for an address nobody named: "jo.smith@x" -> "jo.smith". */
static void name_from_email(const char *email, char *out, size_t n)
{
    snprintf(out, n, "%s", email);
    char *at = strchr(out, '@');
    if (at && at != out)
        *at = 0;
}

int emu_user_put(struct emu *e, const json_t *in, struct emu_error *err, json_t **out)
{
    const char *email = emu_jstr(in, "email"), *name = emu_jstr(in, "name"), *oid = emu_jstr(in, "objectId");
    const char *tid = emu_jstr(in, "tenantId"), *tname = emu_jstr(in, "tenantName");
    int personal = json_is_true(json_object_get(in, "personal"));
    char goid[37], gtid[37], gname[128];
    if (!email || !strchr(email, '@') || (personal && tid && strcmp(tid, EMU_MSA_TENANT))) {
        emu_fail(err, 400, "BadArgument",
                 "a user needs email (with @); optional name, objectId, tenantId, tenantName, personal (true = a "
                 "personal Microsoft account, tenant " EMU_MSA_TENANT ")");
        return SAASD_EINVAL;
    }
    json_t *same = emu_user_by_email(e, email);
    if (same && (!oid || strcmp(oid, emu_jstr(same, "objectId")))) {
        emu_fail(err, 409, "Conflict", "a user with this email already exists (objectId %s)", emu_jstr(same, "objectId"));
        return SAASD_EEXIST;
    }
    if (!oid) {
        emu_uuid(goid);
        oid = goid;
    }
    if (personal)
        tid = EMU_MSA_TENANT;
    if (!tid) {
        emu_uuid(gtid);
        tid = gtid;
    }
    if (!name) {
        name_from_email(email, gname, sizeof gname);
        name = gname;
    }
    json_t *u = user_new(oid, name, email, tid, tname ? tname : (personal ? "Microsoft account" : tid));
    if (!u)
        return SAASD_ENOMEM;
    json_object_set_new(users(e), oid, u);
    e->dirty = 1;
    if (out)
        *out = u;
    return 0;
}

/* A purchase's purchaser or beneficiary ({emailId, objectId, tenantId, puid}): what the
 * purchase named, the rest taken from the directory user with that email, and a user created
 * for an address the directory does not know yet, so whoever bought can also sign in. */
json_t *emu_buyer_identity(struct emu *e, const json_t *in, const char *default_email)
{
    const char *email = emu_jstr(in, "emailId") ? emu_jstr(in, "emailId") : default_email;
    const char *oid = emu_jstr(in, "objectId"), *tid = emu_jstr(in, "tenantId");
    json_t *u = emu_user_by_email(e, email);
    if (!u) {
        json_t *spec = json_pack("{s:s,s:s?,s:s?}", "email", email, "objectId", oid, "tenantId", tid);
        struct emu_error err;
        if (!spec || emu_user_put(e, spec, &err, &u) != 0)
            u = NULL;
        json_decref(spec);
    }
    return json_pack("{s:s,s:s,s:s,s:n}", "emailId", email, "objectId",
                     oid ? oid : (u ? emu_jstr(u, "objectId") : "00000000-0000-0000-0000-000000000000"), "tenantId",
                     tid ? tid : (u ? emu_jstr(u, "tenantId") : EMU_BUYER_TENANT), "puid");
}

json_t *emu_users_json(struct emu *e)
{
    json_t *list = json_array();
    const char *k;
    json_t *u;
    json_object_foreach(users(e), k, u)
        json_array_append(list, u);
    return list;
}
