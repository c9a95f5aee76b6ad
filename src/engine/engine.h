/* The Lua rule engine: one rule file per offer (rules/<offerId>.lua, rules/default.lua for the
 * rest), run in a sandbox with CPU and memory limits, hot-reloaded as whole generations.
 *
 * Generations. A generation is the set of rule files read from the rules directory at one
 * moment: their text, SHA-256 and number. A reload builds the next generation on the side,
 * loads and validates every file in the real sandbox, and swaps it in atomically only if all
 * pass; otherwise the old generation keeps serving and the failure is logged ("rules NOT
 * changed") and counted. A call runs entirely on the generation it started with, even if a
 * reload happens meanwhile; the hash it reports is that of the text that actually ran.
 *
 * Workers. Rules never run in the daemon's process: the engine has a small pool of rule worker
 * processes (engine_options.states), shared by its generations, each holding one lua_State per
 * offer it has served (only that offer's rule file, the runtime and the bindings: offers share
 * no Lua value, not even those served by default.lua; a state is keyed by offer, path and
 * SHA-256 of the text, so a reload reloads only what changed). A call
 * takes a free worker for its whole duration, starting one if the pool is not full, otherwise
 * waiting for one. The calling thread waits for the answer until cpu_ms of wall time have
 * passed (time in C functions and in ctx.http included) and then SIGKILLs the worker; the
 * worker's memory (C libraries included) is bounded by RLIMIT_DATA. A worker that hit a limit
 * or died is replaced. ctx.store reads, ctx.http and ctx.log are requests the worker sends to
 * the calling thread, which performs them. See engine/worker.h.
 *
 * Thread safety: every function may be called from any thread, concurrently, except
 * engine_close (no other call may be running or start).
 *
 * Offer ids: 1..128 characters from [A-Za-z0-9._-]. A file rules/<id>.lua serves offer <id>;
 * rules/default.lua serves every offer without its own file; without default.lua a built-in
 * default (the same text as the shipped rules/default.lua: accept everything) is used. */
#ifndef SAASD_ENGINE_H
#define SAASD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_batch;
struct http_client;

enum rule_handler {
    RULE_PROVISION = 0,   /* (sub, ctx, landing): the buyer confirmed on the landing page */
    RULE_CHANGE_PLAN,     /* (sub, change, ctx): ChangePlan webhook */
    RULE_CHANGE_QUANTITY, /* (sub, change, ctx): ChangeQuantity webhook */
    RULE_SUSPEND,         /* (sub, event, ctx) */
    RULE_REINSTATE,       /* (sub, event, ctx): may refuse */
    RULE_UNSUBSCRIBE,     /* (sub, event, ctx) */
    RULE_RENEW,           /* (sub, event, ctx) */
    RULE_USAGE,           /* (sub, usage, ctx): metered usage reported by the ISV's systems */
    RULE_TIMER,           /* (sub, name, data, ctx): a durable ctx.timer fell due; arg_json is
                             {"name", "data"} */
    RULE_HANDLER_COUNT
};

enum rule_outcome {
    RULE_OK = 0,          /* the handler ran and its answer passed the schema */
    RULE_DEFAULT,         /* the file has no such handler: the documented default applies */
    RULE_ERROR,           /* the handler raised, or returned nil, err (side effects: retry) */
    RULE_CPU_LIMIT,       /* ran past rule_cpu_ms */
    RULE_MEMORY_LIMIT,    /* its state passed rule_memory */
    RULE_INVALID_RESULT,  /* returned something the schema refuses */
    RULE_BAD_INPUT,       /* sub_json / arg_json not a JSON object, bad offer id, no engine */
    RULE_OUTCOME_COUNT
};

enum rule_action {
    RULE_ACTION_NONE = 0, /* not a provision call, or the call failed */
    RULE_ACTION_ACTIVATE,
    RULE_ACTION_PENDING,  /* wait for manual approval; an admin command activates later */
    RULE_ACTION_REJECT
};

/* The outcome of one engine_call. Every string is a malloc'd copy owned by the result and
 * valid until rule_result_free(); NULL when absent. */
struct rule_result {
    enum rule_outcome outcome;
    enum rule_handler handler;
    /* The decision (meaningful when outcome is RULE_OK or RULE_DEFAULT):
     *   provision:                action (+ message, redirect)
     *   change_plan/_quantity:    accept (+ reason when refused)
     *   reinstate:                accept (+ reason)
     *   suspend/unsubscribe/renew: accept = 1 means "done"
     *   usage:                    bill (>= 0) when has_bill, otherwise bill all of it */
    enum rule_action action;
    int accept;
    char *message;  /* shown to the customer on the landing page */
    char *reason;   /* why a change or reinstate was refused */
    char *redirect; /* where the landing page sends the customer */
    int has_bill;
    double bill;    /* usage: the part of the reported quantity to send to Microsoft */

    char *offer_id;           /* the offer asked for */
    char *rule_offer;         /* the file's offer id, "default" for default.lua / built-in */
    char *file;               /* path of the rule file that ran ("<built-in default>") */
    char sha256[65];          /* hex SHA-256 of the exact text that ran ("" when none ran) */
    uint64_t generation;
    char *error;              /* failures: "offer 'x' handler 'y' (rules/x.lua:12): message" */
    int error_line;           /* line in file, 0 when unknown */
    double elapsed_ms;
    char *reads;              /* with engine_call_opts.record: JSON object of the committed
                                 ctx.store reads the call made (key -> value or null) */
    char *http;               /* with engine_call_opts.record: JSON array of the ctx.http calls
                                 and their answers, as engine/http_record.c keeps them; NULL when
                                 the call made none */
    char *http_refused;       /* replay: JSON array of texts, one per ctx.http call the record
                                 could not answer or the mode refused; NULL when none */
    char *effects;            /* JSON array of the call's ctx.meter/ctx.timer/ctx.notify effects, only when
                                 the call succeeded and made some (see engine/caps.h) */
};

struct engine_options {
    const char *rules_dir;        /* required; copied */
    int cpu_ms;                   /* wall time per handler call (and per file load), including
                                     C functions and ctx.http; 0 = 2000 */
    size_t memory;                /* cap per call in bytes (Lua heap, pending ctx.store writes,
                                     HTTP bodies; C buffers via RLIMIT_DATA); 0 = 32 MiB */
    char *const *http_allow;      /* NULL-terminated host patterns; copied; NULL = none */
    int http_timeout_ms;          /* ctx.http timeout per request; 0 = 3000 */
    int http_budget_ms;           /* total ctx.http time per call; 0 = 3/4 of cpu_ms */
    struct store *store;          /* ctx.store reads; may be NULL (then only the call's writes) */
    struct http_client *http;     /* may be NULL: ctx.http answers nil, "http disabled" */
    int states;                   /* worker processes per generation; 0 = 8 */
    int watch_debounce_ms;        /* quiet time before an inotify-triggered reload; 0 = 200 */
    const char *worker_exe;       /* executable of the rule workers; copied; NULL = the
                                     environment's SAASD_RULE_WORKER, else /proc/self/exe */
};

struct engine;

/* Load the rules directory (generation 1). Fails with SAASD_ERULE when a file is invalid
 * (each problem is logged as "file:line: message"), SAASD_EIO when the directory cannot be
 * read. store and http must outlive the engine. */
int engine_open(const struct engine_options *opt, struct engine **out);
/* Stops the watcher and frees everything. No call may be in flight. */
void engine_close(struct engine *e);

/* Run handler h of the rule serving offer_id. sub_json: the subscription (contract §3.2);
 * arg_json: the change (ChangePlan/ChangeQuantity webhook payload, §5.4), the usage report
 * ({dimension, quantity, time}) for usage, the event (webhook payload) for the other
 * handlers, and for provision the landing input {buyer, fields} (or NULL). Both are read, not kept.
 * batch: ctx.store writes of the call are appended to it, in order, if and only if the call
 * returns 0, so the daemon commits them with its decision and audit record; NULL = writes are
 * visible within the call and then dropped.
 * *out is always filled (release with rule_result_free). Returns 0 when out->outcome is
 * RULE_OK or RULE_DEFAULT; SAASD_ELIMIT (cpu/memory), SAASD_ERULE (error/invalid result),
 * SAASD_EINVAL (bad input), SAASD_ENOMEM otherwise. A failure was already logged once. */
int engine_call(struct engine *e, const char *offer_id, enum rule_handler h, const char *sub_json,
                const char *arg_json, struct store_batch *batch, struct rule_result *out);
void rule_result_free(struct rule_result *r);

/* The landing table of the rule serving offer_id (its confirmation-page fields and brand,
 * `landing = { fields = {...}, brand = {...} }`, checked at load) as JSON text, read from the
 * rule's state in a worker (loaded there first if needed), like a handler call but running no
 * rule code. *json is malloc'd, or NULL when the rule has none. 0, SAASD_EINVAL (bad offer
 * id), a worker's I/O or load error. */
int engine_landing(struct engine *e, const char *offer_id, char **json);

/* How ctx.http is answered: for real, refused, or from the calls recorded with the decision
 * being replayed (same method and URL, in the order the calls were made). */
enum engine_http_mode {
    ENGINE_HTTP_LIVE = 0,
    ENGINE_HTTP_REFUSE,   /* nil, "ctx.http is refused during a replay" */
    ENGINE_HTTP_RECORDED, /* from engine_call_opts.http; a call not in it is refused */
};
/* "recorded" / "refuse" -> mode: 0, or SAASD_EINVAL for any other name. */
int engine_http_mode_from_name(const char *name, enum engine_http_mode *out);
const char *engine_http_mode_name(enum engine_http_mode m);

/* What a call may be told beyond engine_call's arguments: the clock, and replay's isolation. */
struct engine_call_opts {
    long long now_s;               /* ctx.now() of the call (and ctx.timer.after's base); 0 = real clock */
    const char *sub_id;            /* the subscription's id, or NULL: ctx.store keys the rule reads
                                      that hold it are sent ahead with its next calls */
    int record;                    /* fill out->reads and out->http with what the call read */
    const struct json_t *reads;    /* replay: ctx.store reads answered from this object only */
    enum engine_http_mode http_mode;
    const struct json_t *http;     /* ENGINE_HTTP_RECORDED: the recorded calls (out->http of the
                                      recorded call); NULL: none recorded */
};
/* engine_call with options (o may be NULL: engine_call). */
int engine_call_ex(struct engine *e, const char *offer_id, enum rule_handler h, const char *sub_json,
                   const char *arg_json, struct store_batch *batch, const struct engine_call_opts *o,
                   struct rule_result *out);

/* The decision of a call as replay compares it, as a JSON object (new reference, NULL when out of
 * memory): {"failed", "action", "accept", "message", "reason", "redirect", "bill", "effects"}.
 * Failure texts and file paths are left out: they name the file, not the decision. */
struct json_t *rule_result_decision(const struct rule_result *r);

/* Shadow replay (replay.c): run the rule files of candidate_dir against the inputs recorded with
 * past decisions (audit records of action "RuleCall": subscription view, change/event, the
 * clock, the ctx.store reads, the ctx.http answers), in the same sandbox and limits, without side
 * effects (ctx.store reads answered from the record, writes discarded, ctx.http answered from the
 * record or refused, as http_mode says), and compare decisions.
 * *out: {"calls", "differ", "http_refused", "seconds", "http",
 * "groups": {"offer handler": {"same", "differ"}}, "differences": [{"group", "subscription",
 * "event", "old", "new", "old_sha256", "new_sha256"[, "http_refused": [text]]}]}. */
struct replay_options {
    const char *candidate_dir;
    long long since_ms;            /* only calls recorded at or after this time */
    const char *offer;             /* only this offer; NULL: all */
    int cpu_ms;
    size_t memory;
    enum engine_http_mode http_mode; /* LIVE is taken as RECORDED: a replay never calls out */
};
int engine_replay(struct store *s, const struct replay_options *o, struct json_t **out);

/* Rebuild from the rules directory. 0: swapped in (generation + 1). Otherwise the old
 * generation keeps serving, "rules NOT changed" is logged with every problem, the failure is
 * counted, and SAASD_ERULE / SAASD_EIO is returned. Reloads are serialised. */
int engine_reload(struct engine *e);
/* Promotion: swap(arg) changes what rules_dir names (renameat2 RENAME_EXCHANGE of a complete
 * directory: its own inverse) while no reload can read the directory, then the engine reloads
 * from it, all under the reload lock. When the reload fails, swap(arg) is called again to put
 * the old directory back, and the old generation keeps serving. 0, swap's error, or a reload's. */
int engine_replace_dir(struct engine *e, int (*swap)(void *arg), void *arg);
/* Start a thread that watches rules_dir with inotify and reloads after watch_debounce_ms of
 * quiet. The daemon calls engine_reload on SIGHUP itself. Stopped by engine_close. */
int engine_watch_start(struct engine *e);

/* What is loaded, for the admin API. Owned by the caller: engine_info_free(). */
struct engine_rule_info {
    char *offer_id; /* "default" for default.lua and the built-in default */
    char *file;
    char sha256[65];
};
struct engine_info {
    uint64_t generation;
    uint64_t reloads_ok, reloads_failed;
    long live_generations;  /* current + older ones still finishing calls */
    long live_states;       /* rule worker processes alive across those generations */
    size_t nrules;
    struct engine_rule_info *rules;
    int last_load_rc;          /* 0: the last load/reload swapped in; else why it did not */
    long long last_load_at;    /* epoch seconds */
    char *last_load_problems;  /* its "file:line: message" lines, "\n"-separated; NULL when it passed */
};
int engine_info(struct engine *e, struct engine_info **out);
void engine_info_free(struct engine_info *info);

/* Append the engine's metrics in Prometheus text format to *buf (malloc'd, grown with realloc;
 * *len bytes used of *cap; *buf may start NULL). The caller frees *buf. */
int engine_metrics(struct engine *e, char **buf, size_t *len, size_t *cap);

/* Load every *.lua of dir in the real sandbox, as a reload would, without keeping anything.
 * Calls problem(arg, "file:line: message") for each problem. 0 when all are valid,
 * SAASD_ERULE when not, SAASD_EIO when dir cannot be read. opt may be NULL (defaults). */
typedef void (*engine_problem_fn)(void *arg, const char *problem);
int engine_check_dir(const char *dir, const struct engine_options *opt, engine_problem_fn problem,
                     void *arg);

/* resolve.c. 1 when offer_id has a rule file of its own in the serving generation, 0 when the
 * default rule serves it. */
int engine_offer_has_rule(struct engine *e, const char *offer_id);
/* 1 when a rule file name (without .lua) cannot be a Partner Center offer id because of
 * underscores or capitals; suggest gets the likely intended name ("acme_analytics" ->
 * "acme-analytics"). */
int engine_offer_name_hint(const char *name, char *suggest, size_t size);

/* The offer -> rule file table of the rule files in dir as they are on disk (the default's
 * row has offer "*"), with warnings: file names no Partner Center offer id can match
 * (acme_analytics.lua: did you mean acme-analytics.lua?) and offers in seen (offers with
 * subscriptions in the store; NULL-terminated, may be NULL) that have no file. *out:
 * {"dir", "offers": [{"offer", "file", "sha256"[, "decides"]}], "warnings": [text]}. */
struct json_t;
int engine_resolution(const char *dir, const char *const *seen, int unknown_default, struct json_t **out);

/* The distinct offer ids of the subscriptions in the store (NULL-terminated; free with
 * engine_offers_free). */
int engine_offers_in_store(struct store *s, char ***out);
void engine_offers_free(char **offers);

/* globals_check.c: report every read or write of a global the sandbox does not give (static,
 * with luacheck) as "file:line: ..."; *count of them. SAASD_ENOTFOUND when luacheck is not
 * installed (nothing checked). */
int engine_check_globals(const char *dir, engine_problem_fn problem, void *arg, int *count);

/* Names: "provision", "change_plan", ...; "ok", "default", "error", "cpu_limit", ...;
 * "activate", "pending", "reject", "none". Never NULL. */
const char *rule_handler_name(enum rule_handler h);
const char *rule_outcome_name(enum rule_outcome o);
const char *rule_action_name(enum rule_action a);
/* RULE_HANDLER_COUNT when name is unknown. */
enum rule_handler rule_handler_from_name(const char *name);

/* The audit fields of a result as one JSON object (jansson), malloc'd, caller frees:
 * {"offer","rule_offer","handler","outcome","file","sha256","generation","action","accept",
 *  "message","reason","redirect","error"}. The daemon stores it with the decision. */
int rule_result_audit_json(const struct rule_result *r, char **out);

#endif
