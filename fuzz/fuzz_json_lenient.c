/* libFuzzer target: the lenient JSON reader (src/core/json_lenient.c). Input: a member name or
 * dotted path, a newline, then a JSON document. Every reader is asked about that name, about
 * each member the document really has, and along the path.
 * Oracle besides the sanitizers: jl_string always NUL-terminates within its buffer and only
 * fails with the documented codes; jl_int/jl_real give a value exactly when they return 0. */
#include "core/err.h"
#include "core/json_lenient.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ask(const json_t *obj, const char *name)
{
    static const size_t sizes[] = {1, 2, 8, 64, 300};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char buf[301];
        memset(buf, 'X', sizeof buf);
        int rc = jl_string(obj, name, buf, sizes[i]);
        if (memchr(buf, 0, sizes[i]) == NULL || buf[sizes[i]] != 'X')
            abort(); /* not terminated inside the buffer, or wrote past it */
        if (rc != 0 && rc != SAASD_ENOTFOUND && rc != SAASD_ETOOBIG && rc != SAASD_EINVAL)
            abort();
    }
    long long ll = 0;
    double d = 0;
    int b = 0;
    int rc = jl_int(obj, name, &ll);
    if (rc != 0 && rc != SAASD_ENOTFOUND && rc != SAASD_EINVAL)
        abort();
    rc = jl_real(obj, name, &d);
    if (rc == 0 && !isfinite(d))
        abort(); /* JSON has no NaN or infinity, and numeric strings must not bring them in */
    jl_bool(obj, name, &b);
    jl_is_unset(obj, name);
    jl_string_is(obj, name, "Subscribed");
    jl_string_is(obj, name, name);
    jl_path(obj, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t nlen = (size_t)(nl - data);
    char *name = malloc(nlen + 1);
    memcpy(name, data, nlen);
    name[nlen] = 0;
    json_t *doc = json_loadb((const char *)nl + 1, size - nlen - 1, JSON_DECODE_ANY, NULL);
    if (doc) {
        ask(doc, name);
        const char *key;
        json_t *val;
        json_object_foreach(doc, key, val) {
            ask(doc, key);
            if (json_is_object(val))
                ask(val, name);
        }
        json_decref(doc);
    }
    free(name);
    return 0;
}
