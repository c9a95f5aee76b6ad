/* libFuzzer target: parsing of the marketplace's answers (src/core/mp_client.c). mp_client.c
 * is compiled into this target so its internal parsers can be reached without a network: the
 * error-body reader (parse_error), the list/plans/operations item collection (append_items),
 * the operation status, and the re-rooting of URLs Microsoft hands back (@nextLink,
 * Operation-Location) onto the configured base. The first byte picks: even = a response body,
 * odd = a bare Operation-Location value.
 * Oracle besides the sanitizers: a re-rooted URL always has the configured host (parsed with
 * libcurl's URL parser), so the bearer token can never travel elsewhere. */
#include "core/mp_client.c"

#include <stdint.h>

#include <curl/curl.h>

#define BASE "https://marketplaceapi.microsoft.com"
#define HOST "marketplaceapi.microsoft.com"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rerooted(struct mp_client *mp, const char *given)
{
    char out[URL_MAX];
    if (url_on_base(mp, given, out) != 0)
        return;
    CURLU *u = curl_url();
    char *host = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, out, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || strcmp(host, HOST))
        abort(); /* a URL on another host, or none curl would accept, was produced */
    curl_free(host);
    curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct mp_client mp = {.base = BASE, .api_version = "2018-08-31"};
    char *raw = malloc(size);
    memcpy(raw, data + 1, size - 1);
    raw[size - 1] = 0;
    if (data[0] & 1) {
        check_rerooted(&mp, raw);
        free(raw);
        return 0;
    }
    struct mp_result res = {0};
    res.body = json_loadb(raw, size - 1, JSON_DECODE_ANY, NULL);
    parse_error(&res, raw);
    if (!memchr(res.message, 0, sizeof res.message) || !memchr(res.error_code, 0, sizeof res.error_code))
        abort();
    note_operation_status(&res);
    mp_operation_is_final(res.operation_status);
    static const char *const keys[] = {"subscriptions", "plans", "operations"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *all = json_array();
        append_items(all, res.body, keys[i]);
        json_decref(all);
    }
    char link[URL_MAX];
    if (jl_string(res.body, "@nextLink", link, sizeof link) == 0)
        check_rerooted(&mp, link);
    mp_result_clear(&res);
    free(raw);
    return 0;
}
