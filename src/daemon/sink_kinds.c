/* The kinds of sink, in one table: how an event becomes a message (format) and how the message
 * leaves (send). Signed webhooks POST the event itself; Slack and Teams POST their incoming
 * webhook JSON; e-mail goes through SMTP with libcurl, as text and HTML alternatives from
 * per-event templates (plain {{placeholder}} substitution, events_render). */
#include "daemon/events.h"
#include "daemon/mail_subject.h"
#include "daemon/sinks.h"

#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct message {
    char *body;    /* HTTP kinds: the request body */
    char *subject; /* e-mail */
    char *text;
    char *html;
};

static void message_clear(struct message *m)
{
    free(m->body);
    free(m->subject);
    free(m->text);
    free(m->html);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------------ */
/* Formats                                                                                      */

static int format_event(const struct sink_config *cfg, json_t *ev, const char *text, struct message *m)
{
    return (m->body = strdup(text)) ? 0 : SAASD_ENOMEM;
}

/* Slack reads &, < and > in text as markup: they are escaped (api.slack.com, "Formatting text"). */
static char *slack_escape(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '&' ? 5 : (*p == '<' || *p == '>') ? 4 : 1;
    char *out = malloc(n + 1), *o = out;
    for (const char *p = s; out && *p; p++) {
        const char *rep = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : NULL;
        size_t len = rep ? strlen(rep) : 1;
        memcpy(o, rep ? rep : p, len);
        o += len;
    }
    if (out)
        *o = 0;
    return out;
}

static int format_slack(const struct sink_config *cfg, json_t *ev, const char *text, struct message *m)
{
    char *summary = events_render("{{summary}}", ev, 0), *esc = summary ? slack_escape(summary) : NULL;
    char *ctx = events_render("`{{type}}` · offer {{offer}} · subscription {{subscription}} · {{time}} · id {{id}}", ev, 0);
    char *ctx_esc = ctx ? slack_escape(ctx) : NULL;
    json_t *j = esc && ctx_esc
                    ? json_pack("{s:s, s:[{s:s, s:{s:s, s:s}}, {s:s, s:[{s:s, s:s}]}]}", "text", esc, "blocks", "type",
                                "section", "text", "type", "mrkdwn", "text", esc, "type", "context", "elements", "type",
                                "mrkdwn", "text", ctx_esc)
                    : NULL;
    m->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(summary);
    free(esc);
    free(ctx);
    free(ctx_esc);
    return m->body ? 0 : SAASD_ENOMEM;
}

/* Teams: a Workflows ("Post to a channel when a webhook request is received") message carrying
 * an Adaptive Card; Teams renders the card's text as plain text with light markdown. */
static int format_teams(const struct sink_config *cfg, json_t *ev, const char *text, struct message *m)
{
    char *summary = events_render("{{summary}}", ev, 0);
    json_t *facts = json_array();
    static const char *const fields[][2] = {{"Event", "type"}, {"Offer", "offer"}, {"Subscription", "subscription"},
                                            {"Time", "time"}, {"Event id", "id"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = json_string_value(json_object_get(ev, fields[i][1]));
        json_array_append_new(facts, json_pack("{s:s, s:s}", "title", fields[i][0], "value", v ? v : ""));
    }
    json_t *card = summary ? json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:b}, {s:s, s:o}]}", "$schema",
                                       "http://adaptivecards.io/schemas/adaptive-card.json", "type", "AdaptiveCard",
                                       "version", "1.4", "body", "type", "TextBlock", "text", summary, "weight",
                                       "Bolder", "wrap", 1, "type", "FactSet", "facts", facts)
                           : NULL;
    if (!card)
        json_decref(facts);
    json_t *j = card ? json_pack("{s:s, s:[{s:s, s:n, s:o}]}", "type", "message", "attachments", "contentType",
                                 "application/vnd.microsoft.card.adaptive", "contentUrl", "content", card)
                     : NULL;
    m->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(summary);
    return m->body ? 0 : SAASD_ENOMEM;
}

static const char default_subject[] = "[saasd] {{summary}}";
static const char default_text[] = "{{summary}}\n\nEvent:        {{type}}\nOffer:        {{offer}}\n"
                                   "Subscription: {{subscription}}\nTime:         {{time}}\nEvent id:     {{id}}\n\n"
                                   "Details: {{data}}\n";
static const char default_html[] =
    "<!doctype html><html><body><p><strong>{{summary}}</strong></p><table>"
    "<tr><th align=\"left\">Event</th><td>{{type}}</td></tr><tr><th align=\"left\">Offer</th><td>{{offer}}</td></tr>"
    "<tr><th align=\"left\">Subscription</th><td>{{subscription}}</td></tr>"
    "<tr><th align=\"left\">Time</th><td>{{time}}</td></tr><tr><th align=\"left\">Event id</th><td>{{id}}</td></tr>"
    "</table><pre>{{data}}</pre></body></html>";

/* <dir>/<type>.<ext>, else <dir>/default.<ext>, else NULL (the built-in template). */
static char *read_template(const char *dir, const char *type, const char *ext)
{
    const char *names[] = {type, "default"};
    for (size_t i = 0; dir && i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.%s", dir, names[i], ext);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char *buf = calloc(1, 65536);
        size_t n = buf ? fread(buf, 1, 65535, f) : 0;
        fclose(f);
        if (buf)
            buf[n] = 0;
        return buf;
    }
    return NULL;
}

static char *render_template(const char *dir, const char *type, const char *ext, const char *builtin, json_t *ev,
                             int html)
{
    char *t = read_template(dir, type, ext);
    char *out = events_render(t ? t : builtin, ev, html);
    free(t);
    return out;
}

static int format_mail(const struct sink_config *cfg, json_t *ev, const char *text, struct message *m)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    m->subject = render_template(cfg->templates, type, "subject", default_subject, ev, 0);
    m->text = render_template(cfg->templates, type, "txt", default_text, ev, 0);
    m->html = render_template(cfg->templates, type, "html", default_html, ev, 1);
    for (char *p = m->subject; p && *p; p++) /* one header line: no header injection */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    return m->subject && m->text && m->html ? 0 : SAASD_ENOMEM;
}

/* ------------------------------------------------------------------------------------------ */
/* Transports                                                                                   */

int sink_signature(const char *secret, const char *timestamp, const char *body, size_t body_len, char out[65])
{
    size_t tlen = strlen(timestamp);
    char *signed_text = malloc(tlen + 1 + body_len);
    if (!signed_text)
        return SAASD_ENOMEM;
    memcpy(signed_text, timestamp, tlen);
    signed_text[tlen] = '.';
    memcpy(signed_text + tlen + 1, body, body_len);
    uint8_t mac[CRYPTO_SHA256_LEN];
    int rc = crypto_hmac_sha256(secret, strlen(secret), signed_text, tlen + 1 + body_len, mac);
    free(signed_text);
    if (!rc)
        crypto_hex(mac, sizeof mac, out);
    return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *arg) { return size * n; }

/* One POST with libcurl; 2xx is delivered, anything else an error naming the status. */
static int http_post(const struct sink_config *cfg, struct curl_slist *headers, const char *body, char *err,
                     size_t err_size)
{
    CURL *c = curl_easy_init();
    if (!c)
        return SAASD_ENOMEM;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, cfg->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(cfg->timeout_ms < 3000 ? cfg->timeout_ms : 3000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    if (cc != CURLE_OK) {
        snprintf(err, err_size, "%s", curl_easy_strerror(cc)); /* never the URL: chat URLs carry a token */
        return cc == CURLE_OPERATION_TIMEDOUT ? SAASD_ETIMEOUT : SAASD_EIO;
    }
    if (status < 200 || status > 299) {
        snprintf(err, err_size, "HTTP %ld", status);
        return SAASD_EIO;
    }
    return 0;
}

static int send_post(const struct sink_config *cfg, json_t *ev, const struct message *m, char *err, size_t err_size)
{
    return http_post(cfg, NULL, m->body, err, err_size);
}

/* The event as the body, with its id, type, the time of this attempt and the signature over
 * "<timestamp>.<body>" (see the README for verifying it). */
static int send_signed(const struct sink_config *cfg, json_t *ev, const struct message *m, char *err, size_t err_size)
{
    char ts[32], sig[65], h[256];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if (sink_signature(cfg->secret, ts, m->body, strlen(m->body), sig))
        return SAASD_EINTERNAL;
    struct curl_slist *headers = NULL;
    snprintf(h, sizeof h, "X-Saasd-Event-Id: %s", json_string_value(json_object_get(ev, "id")));
    headers = curl_slist_append(headers, h);
    snprintf(h, sizeof h, "X-Saasd-Event-Type: %s", json_string_value(json_object_get(ev, "type")));
    headers = curl_slist_append(headers, h);
    snprintf(h, sizeof h, "X-Saasd-Timestamp: %s", ts);
    headers = curl_slist_append(headers, h);
    snprintf(h, sizeof h, "X-Saasd-Signature: v1=%s", sig);
    headers = curl_slist_append(headers, h);
    return http_post(cfg, headers, m->body, err, err_size);
}

/* Date, Subject (RFC 2047 encoded words, mail_subject.c), From, To. */
static struct curl_slist *mail_headers(const struct sink_config *cfg, const struct message *m)
{
    char *subject = NULL, date[64], h[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S +0000", &tm);
    struct curl_slist *headers = curl_slist_append(NULL, date);
    if (mail_subject_header(m->subject, &subject) == 0) /* folded: one list entry, CRLF SP inside */
        headers = curl_slist_append(headers, subject);
    free(subject);
    snprintf(h, sizeof h, "From: <%s>", cfg->from);
    headers = curl_slist_append(headers, h);
    size_t n = (size_t)snprintf(h, sizeof h, "To: ");
    for (char **t = cfg->to; t && *t && n < sizeof h; t++)
        n += (size_t)snprintf(h + n, sizeof h - n, "%s<%s>", t == cfg->to ? "" : ", ", *t);
    return curl_slist_append(headers, h);
}

static int send_smtp(const struct sink_config *cfg, json_t *ev, const struct message *m, char *err, size_t err_size)
{
    CURL *c = curl_easy_init();
    if (!c)
        return SAASD_ENOMEM;
    char from[512];
    snprintf(from, sizeof from, "<%s>", cfg->from);
    struct curl_slist *rcpt = NULL, *headers = mail_headers(cfg, m);
    for (char **t = cfg->to; t && *t; t++) {
        char r[512];
        snprintf(r, sizeof r, "<%s>", *t);
        rcpt = curl_slist_append(rcpt, r);
    }
    curl_mime *mime = curl_mime_init(c), *alt = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(alt);
    curl_mime_data(part, m->text, CURL_ZERO_TERMINATED);
    curl_mime_type(part, "text/plain; charset=utf-8");
    part = curl_mime_addpart(alt);
    curl_mime_data(part, m->html, CURL_ZERO_TERMINATED);
    curl_mime_type(part, "text/html; charset=utf-8");
    part = curl_mime_addpart(mime);
    curl_mime_subparts(part, alt);
    curl_mime_type(part, "multipart/alternative");

    curl_easy_setopt(c, CURLOPT_URL, cfg->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (cfg->starttls && !strncmp(cfg->url, "smtp://", 7))
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL); /* STARTTLS or fail, never plain */
    if (cfg->ca_file) /* a private mail relay's CA; the certificate and host name are still verified */
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->username) {
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_mime_free(mime);
    curl_slist_free_all(rcpt);
    curl_slist_free_all(headers);
    if (cc != CURLE_OK) {
        snprintf(err, err_size, "%s (SMTP %ld)", curl_easy_strerror(cc), status);
        return cc == CURLE_OPERATION_TIMEDOUT ? SAASD_ETIMEOUT : SAASD_EIO;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*format)(const struct sink_config *cfg, json_t *ev, const char *text, struct message *m);
    int (*send)(const struct sink_config *cfg, json_t *ev, const struct message *m, char *err, size_t err_size);
} kinds[SINK_KIND_COUNT] = {
    [SINK_WEBHOOK] = {"webhook", format_event, send_signed},
    [SINK_SMTP] = {"smtp", format_mail, send_smtp},
    [SINK_SLACK] = {"slack", format_slack, send_post},
    [SINK_TEAMS] = {"teams", format_teams, send_post},
};

const char *sink_kind_name(int kind) { return kind >= 0 && kind < SINK_KIND_COUNT ? kinds[kind].name : "?"; }

int sink_kind_deliver(const struct sink_config *cfg, json_t *event, const char *event_text, char *err, size_t err_size)
{
    struct message m = {0};
    int rc = kinds[cfg->kind].format(cfg, event, event_text, &m);
    if (rc)
        snprintf(err, err_size, "cannot format the message: %s", saasd_strerror(rc));
    else
        rc = kinds[cfg->kind].send(cfg, event, &m, err, err_size);
    message_clear(&m);
    return rc;
}
