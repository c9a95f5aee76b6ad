/* The answer texts of GET subscription and GET operation, kept between requests (memory only).
 * Serialising a subscription or operation (a public copy, then json_dumps) was about 17 % of the
 * emulator's CPU while a daemon drains events; clients read the same one again
 * (an operation polled until it is final, a subscription read once per event of it), so the
 * text is made once per change. Every change of a subscription goes through touch() and every
 * change of an operation's public fields through op_finish() (emu_state.c): those forget its
 * text; the control API may change anything (knobs, clock, reset), so each of its requests
 * forgets them all (emu.c). A subscription still showing its previous state
 * (sub_update_delay_ms) is never served from here. */
#include "emu/emu_internal.h"

#include <stdlib.h>
#include <string.h>

/* Bounds the memory: a full cache is emptied and refills with what clients read now. */
#define EMU_TEXTS_MAX 4096

static json_t **cache_of(struct emu *e, int kind) { return kind == EMU_TEXT_SUB ? &e->sub_texts : &e->op_texts; }

static json_t *view_of(struct emu *e, int kind, const json_t *o)
{
    return kind == EMU_TEXT_SUB ? emu_sub_view(e, o) : emu_public_view(o);
}

void emu_text_forget(struct emu *e, int kind, const json_t *o)
{
    const char *id = emu_jstr(o, "id");
    if (id && *cache_of(e, kind))
        json_object_del(*cache_of(e, kind), id);
}

void emu_texts_clear(struct emu *e)
{
    json_decref(e->sub_texts);
    json_decref(e->op_texts);
    e->sub_texts = e->op_texts = NULL;
}

/* The cached text of o (which has an id), made and kept on a miss; borrowed, or NULL. */
static json_t *text_of(struct emu *e, int kind, const json_t *o, const char *id)
{
    json_t **cache = cache_of(e, kind);
    json_t *t = json_object_get(*cache, id);
    if (t)
        return t;
    if (!*cache || json_object_size(*cache) >= EMU_TEXTS_MAX) {
        json_decref(*cache);
        if (!(*cache = json_object()))
            return NULL;
    }
    json_t *view = view_of(e, kind, o);
    char *s = view ? json_dumps(view, JSON_COMPACT) : NULL;
    json_decref(view);
    t = s ? json_string_nocheck(s) : NULL; /* json_dumps wrote valid UTF-8 */
    free(s);
    if (!t || json_object_set_new(*cache, id, t) != 0)
        return NULL;
    return t;
}

void emu_reply_text_of(struct emu *e, struct httpd_response *res, int kind, const json_t *o)
{
    const char *id = emu_jstr(o, "id");
    json_t *t = id && !(kind == EMU_TEXT_SUB && emu_sub_showing_previous(e, o)) ? text_of(e, kind, o, id) : NULL;
    char *body = t ? strndup(json_string_value(t), json_string_length(t)) : NULL;
    if (!body) {
        emu_reply_json(res, 200, view_of(e, kind, o));
        return;
    }
    free(res->body);
    res->status = 200;
    res->content_type = "application/json; charset=utf-8";
    res->body = body;
    res->body_len = json_string_length(t);
}
