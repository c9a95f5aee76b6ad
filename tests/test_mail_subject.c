/* The e-mail sink's Subject header (src/daemon/mail_subject.c): RFC 2047 encoded words of at
 * most 75 characters on lines of at most 76, never cutting a UTF-8 character, read back here
 * with OpenSSL's base64 (tests/mail_words.h). Each check names the guarantee it proves. */
#include "check.h"
#include "mail_words.h"

#include "core/crypto.h"
#include "daemon/mail_subject.h"

#include <stdlib.h>
#include <string.h>

/* mail_subject_header(subject) read back: 0 when it reads, and w filled. */
static int encode_and_read(const char *subject, struct mail_words *w, char **header)
{
    char *h = NULL;
    if (mail_subject_header(subject, &h))
        return -1;
    int rc = mail_words_read(h, w);
    if (rc)
        printf("# %s\n", w->why);
    if (header)
        *header = h;
    else
        free(h);
    return rc;
}

static void short_subject(void)
{
    struct mail_words w;
    char *h = NULL, *b64 = NULL;
    const char *subject = "[saasd] offer-a: subscription activated";
    int rc = encode_and_read(subject, &w, &h);
    crypto_base64_encode(subject, strlen(subject), &b64);
    char want[256];
    snprintf(want, sizeof want, "Subject: =?UTF-8?B?%s?=", b64 ? b64 : "");
    CHECK(rc == 0 && h && !strcmp(h, want) && w.words == 1,
          "a subject that fits one line is one encoded word, as before");
    free(h);
    free(b64);
    rc = encode_and_read("", &w, &h);
    CHECK(rc == 0 && h && !strcmp(h, "Subject: =?UTF-8?B?" "?=") && w.words == 1 && !w.text[0],
          "an empty subject is one empty encoded word");
    free(h);
}

static void long_subject(void)
{
    char subject[1024] = "";
    const char *parts[] = {"[saasd] Café ", "coûte 12 € ", "日本の顧客 ", "plan naïve-pro ", "😀 ", "seats "};
    for (int i = 0; strlen(subject) < 200; i++)
        strcat(subject, parts[i % 6]);
    struct mail_words w;
    char *h = NULL;
    int rc = encode_and_read(subject, &w, &h);
    printf("# a %zu-byte subject: %d words on %d lines, longest word %zu, longest line %zu\n", strlen(subject),
           w.words, w.lines, w.longest_word, w.longest_line);
    CHECK(rc == 0 && w.words >= 5 && w.lines == w.words && strstr(h, "?=\r\n =?UTF-8?B?"),
          "a ~200-byte subject is several encoded words, one a line, folded with CRLF SP");
    CHECK(rc == 0 && w.longest_word <= 75 && w.longest_line <= 76,
          "no encoded word is longer than 75 characters and no line longer than 76 (RFC 2047 section 2)");
    CHECK(rc == 0 && w.all_utf8, "every encoded word decodes to whole UTF-8 characters on its own (RFC 2047 section 5)");
    CHECK(rc == 0 && !strcmp(w.text, subject), "the decoded words, concatenated, are the subject");
    free(h);
}

/* Whatever the alignment of the multi-byte characters against the words' byte budget, no
 * character is cut: ASCII prefixes of 0 to 60 bytes before runs of 2-, 3- and 4-byte characters. */
static void every_alignment(void)
{
    const char *runs[] = {"é", "€", "日", "😀"};
    int cut = 0, wrong = 0, over = 0, tried = 0;
    for (size_t r = 0; r < 4; r++)
        for (int prefix = 0; prefix <= 60; prefix++) {
            char subject[512];
            memset(subject, 'a', (size_t)prefix);
            subject[prefix] = 0;
            while (strlen(subject) + strlen(runs[r]) < 300)
                strcat(subject, runs[r]);
            struct mail_words w;
            if (encode_and_read(subject, &w, NULL)) {
                wrong++;
                continue;
            }
            tried++;
            cut += !w.all_utf8;
            wrong += strcmp(w.text, subject) != 0;
            over += w.longest_word > 75 || w.longest_line > 76;
        }
    CHECK(tried == 244 && !cut && !wrong && !over,
          "at every alignment of 2-, 3- and 4-byte characters no word cuts a character, and the words stay in bounds");
}

/* Bytes that are not UTF-8 (a template file may hold them) are carried as they are, one by one. */
static void stray_bytes(void)
{
    char subject[300];
    memset(subject, 0xFF, 120);
    memcpy(subject + 120, "\xE2\x82", 2); /* the start of "€" with its last byte missing */
    strcpy(subject + 122, " end");
    struct mail_words w;
    int rc = encode_and_read(subject, &w, NULL);
    CHECK(rc == 0 && !strcmp(w.text, subject) && w.longest_word <= 75 && w.longest_line <= 76,
          "bytes that are not UTF-8 are carried unchanged, within the word and line bounds");
}

int main(void)
{
    short_subject();
    long_subject();
    every_alignment();
    stray_bytes();
    return CHECK_DONE();
}
