/* Tree-free reading of a plain webhook body (see webhook_scan.h). */
#include "daemon/webhook_scan.h"

#include "daemon/webhook_body.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_parse.h>

/* The top-level members read, and where each goes. (The pre-2020 operationId only counts when
 * id is blank or absent, and then the scan declines anyway.) */
enum { F_ID, F_SUB, F_ACTION, F_OFFER, F_QUANTITY, F_PLAN, N_FIELDS };
static const char *const field_names[N_FIELDS] = {"id", "subscriptionId", "action", "offerId", "quantity", "planId"};
#define FIRST_TARGET F_QUANTITY /* the targets: read when plain, left to the tree path otherwise (never declined) */

struct scan {
    struct webhook_event *ev;
    yajl_handle h;
    size_t end; /* bytes consumed when the top-level object closed */
    int depth, is_object;
    int field;   /* the member whose value comes next, -1 for any other */
    unsigned seen;
};

static char *field_buf(struct webhook_event *ev, int f, size_t *size)
{
    char *const bufs[N_FIELDS] = {ev->op_id, ev->sub_id, ev->action_text, ev->offer_id, NULL, ev->plan_id};
    const size_t sizes[N_FIELDS] = {sizeof ev->op_id, sizeof ev->sub_id, sizeof ev->action_text,
                                    sizeof ev->offer_id, 0, sizeof ev->plan_id};
    *size = sizes[f];
    return bufs[f];
}

/* A target read another way than the tree path surely reads it the same: the caller parses. */
static int target_unsure(struct scan *s)
{
    s->ev->targets |= WS_TARGET_UNSURE;
    s->field = -1;
    return 1;
}

/* A value at the top level: an id we read must be a string (0 declines otherwise); a target of
 * another type is only unsure. */
static int top_value(struct scan *s)
{
    if (s->depth != 1 || s->field < 0)
        return 1;
    return s->field >= FIRST_TARGET ? target_unsure(s) : 0;
}

static int on_null(void *ctx) { return top_value(ctx); }
static int on_bool(void *ctx, int b) { return top_value(ctx); }
/* Set (not NULL) so that yajl checks integer and real overflow the way jansson does. */
static int on_integer(void *ctx, long long i)
{
    struct scan *s = ctx;
    if (s->depth != 1 || s->field != F_QUANTITY)
        return top_value(s);
    s->ev->quantity = i;
    s->ev->targets |= WS_QUANTITY;
    s->seen |= 1u << F_QUANTITY;
    s->field = -1;
    return 1;
}
static int on_double(void *ctx, double d) { return top_value(ctx); }

static int on_string(void *ctx, const unsigned char *v, size_t len)
{
    struct scan *s = ctx;
    if (s->depth != 1 || s->field < 0)
        return 1;
    if (s->field == F_QUANTITY) /* a quantity in a string: json_lenient's reading */
        return target_unsure(s);
    while (len && isspace(*v)) { /* blanks trimmed, as jl_string does */
        v++;
        len--;
    }
    while (len && isspace(v[len - 1]))
        len--;
    size_t size;
    char *buf = field_buf(s->ev, s->field, &size);
    if (!len || len >= size) /* a blank or an oversized value: the tree path decides */
        return s->field >= FIRST_TARGET ? target_unsure(s) : 0;
    memcpy(buf, v, len);
    buf[len] = 0;
    s->ev->targets |= s->field == F_PLAN ? WS_PLAN : 0;
    s->seen |= 1u << s->field;
    s->field = -1;
    return 1;
}

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
    struct scan *s = ctx;
    s->field = -1;
    if (s->depth != 1)
        return 1;
    for (int f = 0; f < N_FIELDS; f++) {
        if (strlen(field_names[f]) != len || strncasecmp((const char *)k, field_names[f], len))
            continue;
        if (memcmp(k, field_names[f], len) || (s->seen & (1u << f))) /* another case, or a repeat */
            return f >= FIRST_TARGET ? target_unsure(s) : 0;       /* the tree path reads it */
        s->field = f;
    }
    return 1;
}

static int open_container(struct scan *s, int is_map)
{
    if (s->depth == 0)
        s->is_object = is_map;
    if (!top_value(s) || !s->is_object || ++s->depth > WS_MAX_DEPTH)
        return 0;
    return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, 1); }
static int on_start_array(void *ctx) { return open_container(ctx, 0); }
static int on_end(void *ctx)
{
    struct scan *s = ctx;
    if (--s->depth == 0)
        s->end = yajl_get_bytes_consumed(s->h);
    return 1;
}

/* Only blanks after the top-level object. yajl accepts the start of a token there (an
 * unterminated string: it waits for more input and never sees it end), jansson does not. */
static int ends_at(const char *body, size_t len, size_t end)
{
    while (len > end && (body[len - 1] == ' ' || body[len - 1] == '\t' || body[len - 1] == '\n' || body[len - 1] == '\r'))
        len--;
    return end > 0 && len == end;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null, .yajl_boolean = on_bool, .yajl_integer = on_integer, .yajl_double = on_double,
    .yajl_string = on_string, .yajl_start_map = on_start_map, .yajl_map_key = on_key,
    .yajl_end_map = on_end, .yajl_start_array = on_start_array, .yajl_end_array = on_end,
};

/* Printable ASCII, tab, CR, LF; no backslash. */
static int plain_text(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '\\' || c >= 0x7f || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
            return 0;
    }
    return 1;
}

int webhook_scan(const char *body, size_t len, struct webhook_event *out)
{
    if (!plain_text(body, len))
        return 0;
    struct scan s = {.ev = out, .field = -1};
    out->offer_id[0] = 0;
    out->plan_id[0] = 0;
    out->quantity = 0;
    out->targets = 0;
    yajl_handle h = s.h = yajl_alloc(&callbacks, NULL, &s);
    if (!h)
        return 0;
    int ok = yajl_parse(h, (const unsigned char *)body, len) == yajl_status_ok &&
             yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    const unsigned need = 1u << F_ID | 1u << F_SUB | 1u << F_ACTION;
    return ok && s.is_object && (s.seen & need) == need && ends_at(body, len, s.end);
}
