/* RFC 2047 encoding of the Subject header: the text is cut, at character boundaries, into
 * pieces whose encoded word fits its line. */
#include "daemon/mail_subject.h"

#include "core/crypto.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORD_START "=?UTF-8?B?"
#define WORD_END "?="
/* RFC 2047 §2: an encoded word is at most 75 characters, a line holding one at most 76. */
#define WORD_MAX 75
#define LINE_MAX_CHARS 76
#define HEADER_NAME "Subject: "

/* Bytes of the UTF-8 character at s (at most left): the lead byte's length when that many
 * continuation bytes follow, else 1 (a stray byte is carried alone, unchanged). */
static size_t char_len(const unsigned char *s, size_t left)
{
    size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 1;
    if (n > left)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return n;
}

/* The longest prefix of s (len bytes) of whole characters that base64-encodes into room
 * characters: 3 bytes become 4. At least one character, so that every piece makes progress. */
static size_t piece_len(const unsigned char *s, size_t len, size_t room)
{
    size_t max_bytes = room / 4 * 3, n = 0;
    while (n < len) {
        size_t c = char_len(s + n, len - n);
        if (n + c > max_bytes && n > 0)
            break;
        n += c;
    }
    return n;
}

int mail_subject_header(const char *subject, char **out)
{
    size_t len = strlen(subject), wrap = strlen(WORD_START WORD_END), name = strlen(HEADER_NAME);
    /* at worst one byte per word: 4 base64 characters, the wrapping, CRLF SP */
    size_t cap = name + (len + 1) * (4 + wrap + 3) + 1, at = name, used = 0, line_used = name;
    char *h = malloc(cap);
    if (!h)
        return SAASD_ENOMEM;
    memcpy(h, HEADER_NAME, name + 1);
    do {
        size_t room = LINE_MAX_CHARS - line_used - wrap;
        room = room < WORD_MAX - wrap ? room : WORD_MAX - wrap;
        size_t n = piece_len((const unsigned char *)subject + used, len - used, room);
        char *b64 = NULL;
        if (crypto_base64_encode(subject + used, n, &b64)) {
            free(h);
            return SAASD_ENOMEM;
        }
        at += (size_t)snprintf(h + at, cap - at, "%s" WORD_START "%s" WORD_END, used ? "\r\n " : "", b64);
        free(b64);
        used += n;
        line_used = 1; /* the folding space */
    } while (used < len);
    *out = h;
    return 0;
}
