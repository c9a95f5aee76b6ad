/* Reading an RFC 2047 Subject back, independently of saasd's code (base64 by OpenSSL): for the
 * checks of mail_subject.c (tests/test_mail_subject.c) and of the mails an e-mail sink sends
 * (tests/test_events.c). Not a test program itself. */
#ifndef SAASD_TEST_MAIL_WORDS_H
#define SAASD_TEST_MAIL_WORDS_H

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* 1 when s (n bytes) is well-formed UTF-8: no stray or missing continuation byte, no
 * character cut at either end. */
static int mw_utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

struct mail_words {
    int words;         /* encoded words found */
    int lines;         /* lines of the header (1 + folded continuation lines) */
    size_t longest_word, longest_line;
    int all_utf8;      /* every word decodes to whole UTF-8 characters on its own */
    char text[4096];   /* the decoded words, concatenated */
    char why[128];     /* what was wrong, "" when the header reads */
};

/* Reads the Subject header out of a raw message (headers, CRLF line ends): its folded lines,
 * each of which holds encoded words =?UTF-8?B?...?= separated by spaces. 0, or -1 with w->why. */
static int mail_words_read(const char *mail, struct mail_words *w)
{
    memset(w, 0, sizeof *w);
    w->all_utf8 = 1;
    const char *p = strstr(mail, "\r\nSubject: ");
    p = p ? p + 2 : !strncmp(mail, "Subject: ", 9) ? mail : NULL;
    if (!p) {
        snprintf(w->why, sizeof w->why, "no Subject header");
        return -1;
    }
    size_t out = 0;
    for (int first = 1; first || *p == ' ' || *p == '\t'; first = 0) { /* one header line a turn */
        const char *end = strstr(p, "\r\n");
        size_t line_len = end ? (size_t)(end - p) : strlen(p);
        w->lines++;
        w->longest_line = line_len > w->longest_line ? line_len : w->longest_line;
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(first ? line_len - 9 : line_len), first ? p + 9 : p);
        char *save = NULL;
        for (char *word = strtok_r(line, " \t", &save); word; word = strtok_r(NULL, " \t", &save)) {
            size_t len = strlen(word);
            w->longest_word = len > w->longest_word ? len : w->longest_word;
            if (len < 12 || strncasecmp(word, "=?UTF-8?B?", 10) || strcmp(word + len - 2, "?=")) {
                snprintf(w->why, sizeof w->why, "not a B encoded word: %.60s", word);
                return -1;
            }
            unsigned char bin[256];
            size_t b64 = len - 12;
            int n = b64 && b64 % 4 == 0 && b64 / 4 * 3 <= sizeof bin ? EVP_DecodeBlock(bin, (unsigned char *)word + 10, (int)b64) : 0;
            if (b64 && n <= 0) {
                snprintf(w->why, sizeof w->why, "bad base64 in %.60s", word);
                return -1;
            }
            n -= b64 ? (word[len - 3] == '=') + (word[len - 4] == '=') : 0; /* EVP_DecodeBlock counts the padding */
            w->all_utf8 &= mw_utf8_ok(bin, (size_t)n);
            if (out + (size_t)n >= sizeof w->text) {
                snprintf(w->why, sizeof w->why, "subject too long for the test");
                return -1;
            }
            memcpy(w->text + out, bin, (size_t)n);
            out += (size_t)n;
            w->words++;
        }
        if (!end)
            break;
        p = end + 2;
    }
    w->text[out] = 0;
    return 0;
}

#endif
