/* The offer's extra questions on the confirmation page (the rule file's landing.fields: name,
 * label, type, required, pattern, max, help), as form inputs and checked on the server: the
 * browser's own checks (required, maxlength, pattern) are a convenience, never the guard. */
#include "daemon/html.h"
#include "daemon/landing.h"

#include "core/httpd.h"
#include "core/log.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX_DEFAULT 200

static const char *field_str(json_t *f, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(f, key));
    return s ? s : def;
}

static long field_max(json_t *f)
{
    json_t *m = json_object_get(f, "max");
    return json_is_integer(m) && json_integer_value(m) > 0 ? (long)json_integer_value(m) : FIELD_MAX_DEFAULT;
}

void landing_fields_form(FILE *f, json_t *landing, json_t *answers, json_t *errors)
{
    size_t i;
    json_t *field;
    json_array_foreach(json_object_get(landing, "fields"), i, field) {
        const char *name = field_str(field, "name", NULL);
        if (!name)
            continue;
        const char *err = json_string_value(json_object_get(errors, name));
        int required = json_is_true(json_object_get(field, "required"));
        fprintf(f, "<label for=\"f-");
        html_put(f, name);
        fprintf(f, "\">");
        html_put(f, field_str(field, "label", name));
        fprintf(f, "%s</label>\n", required ? " (required)" : "");
        if (json_object_get(field, "help")) {
            fprintf(f, "<div id=\"h-");
            html_put(f, name);
            fprintf(f, "\">");
            html_put(f, field_str(field, "help", ""));
            fprintf(f, "</div>\n");
        }
        if (err) {
            fprintf(f, "<p class=\"error\" id=\"e-");
            html_put(f, name);
            fprintf(f, "\">");
            html_put(f, err);
            fprintf(f, "</p>\n");
        }
        fprintf(f, "<input id=\"f-");
        html_put(f, name);
        fprintf(f, "\" name=\"");
        html_put(f, name);
        fprintf(f, "\" type=\"");
        html_put(f, field_str(field, "type", "text"));
        fprintf(f, "\" maxlength=\"%ld\" value=\"", field_max(field));
        html_put(f, json_string_value(json_object_get(answers, name)));
        fprintf(f, "\"%s%s", required ? " required" : "", err ? " aria-invalid=\"true\"" : "");
        if (err || json_object_get(field, "help")) {
            fprintf(f, " aria-describedby=\"%s", err ? "e-" : "h-");
            html_put(f, name);
            fprintf(f, "\"");
        }
        fprintf(f, ">\n");
    }
}

/* The whole value must match the ISV's POSIX extended regular expression. */
static int matches(const char *pattern, const char *value, int *bad_pattern)
{
    size_t n = strlen(pattern) + 8;
    char *anchored = malloc(n);
    if (!anchored)
        return 0;
    snprintf(anchored, n, "^(%s)$", pattern);
    regex_t re;
    int ok = 0;
    if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB) == 0) {
        ok = regexec(&re, value, 0, NULL, 0) == 0;
        regfree(&re);
    } else {
        *bad_pattern = 1;
    }
    free(anchored);
    return ok;
}

static int email_ok(const char *value)
{
    const char *at = strchr(value, '@');
    return at && at != value && at[1] && !strchr(at + 1, '@') && !strchr(value, ' ') && strchr(at, '.');
}

static int number_ok(const char *value)
{
    char *end;
    strtod(value, &end);
    return !*end;
}

static int url_ok(const char *value)
{
    return html_link_ok(value) && value[0] != '/';
}

/* The format each field type (lua/saas/contract.lua's FIELD_TYPES) must have, and what the
 * buyer is told when it does not; text and tel have none beyond the field's pattern. */
static const struct {
    const char *type;
    int (*ok)(const char *value);
    const char *refusal;
} field_formats[] = {
    {"email", email_ok, "Please enter an e-mail address like name@example.com."},
    {"number", number_ok, "Please enter a number."},
    {"url", url_ok, "Please enter a web address starting with https://."},
};

/* Why value is not in the format of the field's type, or NULL. */
static const char *format_refusal(const char *type, const char *value)
{
    for (size_t i = 0; i < sizeof field_formats / sizeof field_formats[0]; i++)
        if (!strcmp(field_formats[i].type, type))
            return field_formats[i].ok(value) ? NULL : field_formats[i].refusal;
    return NULL;
}

/* Why value is refused for field, or NULL. */
static const char *check_value(json_t *field, const char *type, const char *value)
{
    size_t len = strlen(value);
    int bad_pattern = 0;
    if (len == 0)
        return json_is_true(json_object_get(field, "required")) ? "Please fill in this field." : NULL;
    if ((long)len > field_max(field))
        return "This answer is too long.";
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            return "This answer contains characters that are not allowed.";
    const char *refusal = format_refusal(type, value);
    if (refusal)
        return refusal;
    const char *pattern = json_string_value(json_object_get(field, "pattern"));
    if (pattern && !matches(pattern, value, &bad_pattern)) {
        if (bad_pattern)
            log_error("landing", "the offer's field pattern is not a valid regular expression", "field",
                      json_string_value(json_object_get(field, "name")));
        return "This answer does not have the expected format.";
    }
    return NULL;
}

void landing_fields_read(const struct httpd_request *req, json_t *landing, json_t **answers, json_t **errors)
{
    *answers = json_object();
    *errors = json_object();
    size_t i;
    json_t *field;
    json_array_foreach(json_object_get(landing, "fields"), i, field) {
        const char *name = field_str(field, "name", NULL);
        if (!name)
            continue;
        char *value = NULL;
        httpd_form_value(req, name, &value);
        /* leading and trailing blanks are typing noise */
        char *start = value ? value : "";
        while (*start == ' ' || *start == '\t')
            start++;
        for (size_t n = strlen(start); n && (start[n - 1] == ' ' || start[n - 1] == '\t');)
            start[--n] = 0;
        const char *err = check_value(field, field_str(field, "type", "text"), start);
        json_object_set_new(*answers, name, json_string(start));
        if (err)
            json_object_set_new(*errors, name, json_string(err));
        free(value);
    }
}
