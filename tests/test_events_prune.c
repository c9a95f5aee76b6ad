/* Pruning of old events (src/daemon/sinks.c, prune_job): every events.prune_every_s, events
 * every sink has passed and older than events.keep_s are deleted from the store; an event a
 * sink has not delivered is kept however old, and so is everything newer than keep_s. Real
 * purchases through the emulator make the events of the first daemon; the second starts on a
 * store holding events written here with chosen times (some missing or unreadable). Waits poll
 * the admin API with generous bounds. Each check names the guarantee it proves. */
#include "it_support.h"

#include "daemon/events.h"

#include <pthread.h>
#include <stdatomic.h>

static char dir[256];

static const char *activate_rule =
    "return { provision = function(sub, ctx) return { action = 'activate', message = 'ready' } end }\n";
static const char *note_rule = "return { provision = function(sub, ctx)\n"
                               "  ctx.notify('crm.held_note', { why = 'for the dead sink' })\n"
                               "  return { action = 'activate', message = 'ready' }\n"
                               "end }\n";

/* ------------------------------------------------------------------------------------------ */
/* A webhook sink that accepts everything and keeps the ids it got.                             */

struct ok_sink {
    struct httpd *h;
    pthread_mutex_t lock;
    json_t *ids;
};

static void ok_handler(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
    struct ok_sink *s = arg;
    const char *id = httpd_header(req, "X-Saasd-Event-Id");
    pthread_mutex_lock(&s->lock);
    json_array_append_new(s->ids, json_string(id ? id : ""));
    pthread_mutex_unlock(&s->lock);
    httpd_set_body(res, 200, "text/plain", "ok\n");
}

static int ok_sink_got(struct ok_sink *s, const char *id)
{
    size_t i;
    json_t *v;
    int got = 0;
    pthread_mutex_lock(&s->lock);
    json_array_foreach(s->ids, i, v) got |= !strcmp(json_string_value(v), id);
    pthread_mutex_unlock(&s->lock);
    return got;
}

/* ------------------------------------------------------------------------------------------ */

/* The stored event with this id (a new reference), or NULL. */
static json_t *stored(const char *id)
{
    json_t *all = it_stored_events(), *found = NULL, *e;
    size_t i;
    json_array_foreach(all, i, e) if (!strcmp(it_str(e, "id"), id)) found = json_incref(e);
    json_decref(all);
    return found;
}

static int is_stored(const char *id)
{
    json_t *e = stored(id);
    json_decref(e);
    return e != NULL;
}

/* Waits (up to timeout_ms) until none of ids (NULL-terminated) is stored: 1 when so. */
static int wait_gone(const char *const *ids, long timeout_ms)
{
    long long until = it_now_ms() + timeout_ms;
    for (;;) {
        int left = 0;
        for (const char *const *id = ids; *id; id++)
            left += is_stored(*id);
        if (!left || it_now_ms() > until)
            return !left;
        usleep(100 * 1000);
    }
}

/* The id of the stored event of this type about sub (waiting up to 15 s for it) into out, or "". */
static void event_of(const char *sub, const char *type, char *out, size_t size)
{
    out[0] = 0;
    long long until = it_now_ms() + 15000;
    while (sub[0] && !out[0] && it_now_ms() < until) {
        json_t *all = it_stored_events(), *e;
        size_t i;
        json_array_foreach(all, i, e) if (!strcmp(it_str(e, "subscription"), sub) && !strcmp(it_str(e, "type"), type))
            snprintf(out, size, "%s", it_str(e, "id"));
        json_decref(all);
        if (!out[0])
            usleep(30 * 1000);
    }
}

/* A purchase of offer that lands and is activated: the id of its subscription.activated event
 * (as stored) into event_id, "" when there is none; the subscription into sub. */
static void activation(const char *offer, char *event_id, size_t size, char sub[128])
{
    sub[0] = 0;
    if (it_buy_and_land(offer, 2, sub, 128) != 200)
        sub[0] = 0;
    event_of(sub, "subscription.activated", event_id, size);
}

/* Waits until the wall clock is past the event's time + ms. */
static void wait_older_than(const char *id, long long ms)
{
    json_t *e = stored(id);
    struct tm tm = {0};
    const char *t = it_str(e, "time");
    long long at = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) ? (long long)timegm(&tm) * 1000 + 1000 : 0;
    json_decref(e);
    while (it_wall_ms() < at + ms)
        usleep(100 * 1000);
}

static json_t *sink_state(const char *name)
{
    long st;
    json_t *r = it_admin("GET", "/admin/sinks", NULL, &st), *s, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(r, "sinks"), i, s) if (!strcmp(it_str(s, "name"), name)) found = json_incref(s);
    json_decref(r);
    return found ? found : json_object();
}

/* keep_s = 1, prune_every_s = 1: a sink "ok" that takes everything, a sink "dead" (a closed
 * port) that wants the subscription.* events of offer pr-held only. */
static void delivered_and_held(struct ok_sink *ok)
{
    char extra[2048], conf[512];
    snprintf(extra, sizeof extra,
             "metering = { interval = 0 }\n"
             "events = { retry_base_ms = 50, retry_cap_ms = 200, poll_ms = 20, keep_s = 1, prune_every_s = 1 }\n"
             "sinks = {\n"
             "  ok = { kind = \"webhook\", url = \"http://127.0.0.1:%u/hook\", secret_env = \"PRUNE_SECRET\" },\n"
             "  dead = { kind = \"webhook\", url = \"http://127.0.0.1:%u/hook\", secret_env = \"PRUNE_SECRET\",\n"
             "           offers = { \"pr-held\" }, events = { \"subscription.*\" }, timeout_ms = 500 },\n"
             "}\n",
             httpd_port(ok->h), it_free_port());
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), extra);
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return;
    it_offer("pr-a");
    it_offer("pr-held");

    char x1[64], x2[64], x3[64], note[64], held[64], after[64], sub[128];
    activation("pr-a", x1, sizeof x1, sub);
    activation("pr-a", x2, sizeof x2, sub);
    CHECK(x1[0] && x2[0], "two purchases land, each with its subscription.activated event");
    const char *first[] = {x1, x2, NULL};
    int gone = wait_gone(first, 20000);
    CHECK(gone && ok_sink_got(ok, x1) && ok_sink_got(ok, x2),
          "events older than keep_s that every sink has delivered (or filtered out) are deleted by the pruner");

    /* pr-held's purchase commits two events at once: the rule's crm.held_note, which the dead
     * sink filters out, then subscription.activated, which it wants and fails on. */
    activation("pr-a", x3, sizeof x3, sub);
    activation("pr-held", held, sizeof held, sub);
    event_of(sub, "crm.held_note", note, sizeof note);
    json_t *a = stored(note), *n = stored(held);
    CHECK(a && n && json_integer_value(json_object_get(a, "seq")) < json_integer_value(json_object_get(n, "seq")),
          "the held purchase's rule note and its activation are stored in that order");
    json_decref(a);
    json_decref(n);
    activation("pr-a", after, sizeof after, sub);
    const char *before_held[] = {x3, note, NULL};
    gone = wait_gone(before_held, 20000);
    wait_older_than(after, 1000 + 3000); /* keep_s, then three more pruning passes */
    json_t *dead = sink_state("dead");
    json_int_t retrying = json_integer_value(json_object_get(dead, "retrying_seq"));
    json_t *h = stored(held);
    printf("# events before the held one pruned: %d; held event seq %lld, dead sink retrying %lld, delivered %lld\n", gone,
           (long long)json_integer_value(json_object_get(h, "seq")), (long long)retrying,
           (long long)json_integer_value(json_object_get(dead, "delivered")));
    CHECK(gone && h && json_integer_value(json_object_get(h, "seq")) == retrying &&
              json_integer_value(json_object_get(dead, "delivered")) == 0,
          "an event a failing sink has not delivered is kept however old, while the older ones before it go (also "
          "one the sink filtered out just before it, in the same commit)");
    CHECK(is_stored(after) && ok_sink_got(ok, after),
          "an event after it is kept too, though every other sink has delivered it and it is older than keep_s");
    json_decref(dead);

    long st;
    json_decref(it_admin("POST", "/admin/sinks/dead/skip", json_pack("{s:I}", "seq", retrying), &st));
    const char *rest[] = {held, after, NULL};
    CHECK(st == 200 && wait_gone(rest, 20000),
          "once the failing sink is past that event (an operator skipped it), it and the events after it are pruned");
    json_decref(h);
    daemon_stop(d);
}

/* ------------------------------------------------------------------------------------------ */
/* Events written to the store here, with chosen times.                                         */

static void iso(long long ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03lldZ", ms % 1000);
}

/* Appends the events {id, type, time} (time NULL: none) to the daemon's store (not running). */
static int seed(const char *const events[][2], size_t n)
{
    char data[512];
    snprintf(data, sizeof data, "%s/data", dir);
    struct store *s = NULL;
    struct store_batch *b = NULL;
    int rc = store_open(data, NULL, &s);
    if (!rc)
        rc = store_batch_new(&b);
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *ev = json_pack("{s:s, s:s, s:s, s:{}}", "id", events[i][0], "type", "test.seeded", "offer", "seed", "data");
        if (events[i][1])
            json_object_set_new(ev, "time", json_string(events[i][1]));
        char *text = json_dumps(ev, JSON_COMPACT);
        rc = store_batch_append(b, STORE_EVENTS, "", 0, text, strlen(text));
        free(text);
        json_decref(ev);
    }
    if (!rc)
        rc = store_commit(s, b);
    store_batch_free(b);
    store_close(s);
    return rc;
}

/* keep_s = 3600 and no sink: events of two hours ago go, ten minutes ago stay; an event without a
 * readable time goes with the next old event and does not stop the pass. */
static void times_read(void)
{
    char two_h[40], two_h_later[40], ten_min[40];
    long long now = it_wall_ms();
    iso(now - 7200 * 1000LL, two_h);
    iso(now - 7199 * 1000LL, two_h_later);
    iso(now - 600 * 1000LL, ten_min);
    const char *const events[][2] = {
        {"old-1", two_h},     {"no-time", NULL},   {"bad-time", "yesterday at noon"}, {"old-2", two_h_later},
        {"new-1", ten_min},   {"no-time-2", NULL}, {"old-after-new", two_h},
    };
    CHECK(seed(events, sizeof events / sizeof events[0]) == 0, "events with chosen times are written to the store");
    char extra[512], conf[512];
    snprintf(extra, sizeof extra, "metering = { interval = 0 }\nevents = { keep_s = 3600, prune_every_s = 1 }\n");
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), extra);
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return;
    const char *old[] = {"old-1", "no-time", "bad-time", "old-2", NULL};
    int gone = wait_gone(old, 20000);
    CHECK(gone, "an event whose time is missing or unreadable does not stop the pruning: it goes with the next old "
                "event after it");
    CHECK(is_stored("new-1") && is_stored("no-time-2") && is_stored("old-after-new"),
          "events newer than keep_s are kept, and so is every event after them");
    daemon_stop(d);
}

/* prune_every_s up to a day: the pruner waits on the daemon's stop, not the interval. */
static void stops_with_daemon(void)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/saasd.conf", dir);
    it_write_config(conf, dir, 0, it_free_port(), "events = { keep_s = 60, prune_every_s = 86400 }\n");
    struct daemon *d = it_start_daemon(conf);
    if (!d)
        return;
    long long t0 = it_now_ms();
    daemon_stop(d);
    CHECK(it_now_ms() - t0 < 20000, "with prune_every_s = 86400 the daemon still stops at once (bound: 20 s)");
}

static int config_error(const char *events, const char *want)
{
    char path[512], err[1024] = "", text[1024];
    snprintf(path, sizeof path, "%s/bad.conf", dir);
    snprintf(text, sizeof text,
             "entra = { tenant_id = \"t\", client_id = \"c\", secret_env = \"SAASD_IT_SECRET\" }\n"
             "admin = { enabled = false }\nevents = { %s }\n", events);
    it_write_file(path, text);
    struct saasd_config *c = NULL;
    int rc = config_load(path, &c, err, sizeof err);
    int prune_every = c ? c->events_prune_every_s : -1;
    config_free(c);
    if (!want)
        return rc == 0 ? prune_every : -1;
    if (!strstr(err, want))
        printf("# got: %s\n", err);
    return rc != 0 && strstr(err, want) != NULL;
}

static void config_checks(void)
{
    CHECK(config_error("keep_s = 60", NULL) == 60 && config_error("prune_every_s = 5", NULL) == 5,
          "events.prune_every_s defaults to 60 and is read from the events table");
    CHECK(config_error("prune_every_s = 0", "events.prune_every_s: 0 is out of range [1, 86400]") &&
              config_error("prune_every_s = 86401", "events.prune_every_s: 86401 is out of range [1, 86400]"),
          "events.prune_every_s outside 1..86400 is refused");
}

int main(void)
{
    char rules[512], path[600];
    struct emu *emu = it_setup("events-prune", dir, rules);
    if (!emu)
        return CHECK_DONE();
    config_checks();
    snprintf(path, sizeof path, "%s/pr-a.lua", rules);
    it_write_file(path, activate_rule);
    snprintf(path, sizeof path, "%s/pr-held.lua", rules);
    it_write_file(path, note_rule);
    setenv("PRUNE_SECRET", "prune-signing-secret", 1);

    struct ok_sink ok = {.ids = json_array()};
    pthread_mutex_init(&ok.lock, NULL);
    struct httpd_options o = {.port = 0, .max_body = 1 << 20};
    CHECK(httpd_start(&o, ok_handler, &ok, &ok.h) == 0, "the test webhook sink listens on 127.0.0.1");
    if (ok.h) {
        delivered_and_held(&ok);
        httpd_stop(ok.h);
    }
    times_read();
    stops_with_daemon();

    json_decref(ok.ids);
    emu_stop(emu);
    http_client_free(it_http);
    return CHECK_DONE();
}
