/* ctx.crypto: hashes, HMAC, base64 and ids over src/core/crypto.h (OpenSSL).
 *   sha256(s) -> hex        hmac(key, s) -> hex (HMAC-SHA256)
 *   base64_encode(s) / base64url_encode(s) -> string
 *   base64_decode(s) / base64url_decode(s) -> string | nil, err
 *   uuid() -> random v4 GUID */
#include "bind/bind.h"
#include "core/crypto.h"

#include <lauxlib.h>
#include <stdlib.h>

static int l_crypto_sha256(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[CRYPTO_SHA256_HEX_LEN];
    if (crypto_sha256_hex(s, len, hex) < 0)
        return luaL_error(L, "sha256: %s", crypto_openssl_error());
    lua_pushstring(L, hex);
    return 1;
}

static int l_crypto_hmac(lua_State *L)
{
    size_t klen, len;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *s = luaL_checklstring(L, 2, &len);
    uint8_t mac[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    if (crypto_hmac_sha256(key, klen, s, len, mac) < 0)
        return luaL_error(L, "hmac: %s", crypto_openssl_error());
    crypto_hex(mac, sizeof mac, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int encode_with(lua_State *L, int (*enc)(const void *, size_t, char **))
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char *out = NULL;
    if (enc(s, len, &out) < 0)
        return luaL_error(L, "base64: out of memory");
    lua_pushstring(L, out); /* copy, then free ours */
    free(out);
    return 1;
}

static int decode_with(lua_State *L, int (*dec)(const char *, size_t, uint8_t **, size_t *))
{
    size_t len, olen = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    uint8_t *out = NULL;
    if (dec(s, len, &out, &olen) < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not valid base64");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, olen);
    free(out);
    return 1;
}

static int l_crypto_base64_encode(lua_State *L) { return encode_with(L, crypto_base64_encode); }
static int l_crypto_base64url_encode(lua_State *L) { return encode_with(L, crypto_base64url_encode); }
static int l_crypto_base64_decode(lua_State *L) { return decode_with(L, crypto_base64_decode); }
static int l_crypto_base64url_decode(lua_State *L) { return decode_with(L, crypto_base64url_decode); }

static int l_crypto_uuid(lua_State *L)
{
    char id[CRYPTO_UUID_LEN];
    if (crypto_uuid(id) < 0)
        return luaL_error(L, "uuid: %s", crypto_openssl_error());
    lua_pushstring(L, id);
    return 1;
}

int luaopen_saas_crypto(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"sha256", l_crypto_sha256},
        {"hmac", l_crypto_hmac},
        {"base64_encode", l_crypto_base64_encode},
        {"base64_decode", l_crypto_base64_decode},
        {"base64url_encode", l_crypto_base64url_encode},
        {"base64url_decode", l_crypto_base64url_decode},
        {"uuid", l_crypto_uuid},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
