/* The Subject header of an e-mail sink's mail, RFC 2047 encoded: any UTF-8 is safe in it. */
#ifndef SAASD_MAIL_SUBJECT_H
#define SAASD_MAIL_SUBJECT_H

/* "Subject: " + subject as "B" encoded words (=?UTF-8?B?...?=), folded with CRLF SP between
 * them so that no encoded word is longer than 75 characters and no line longer than 76
 * (RFC 2047 §2), and no UTF-8 character is split across two words (§5). At least one word
 * (an empty subject is one empty word). subject is one line (no CR or LF). malloc'd, NUL
 * terminated, no final CRLF. 0 or SAASD_ENOMEM. */
int mail_subject_header(const char *subject, char **out);

#endif
