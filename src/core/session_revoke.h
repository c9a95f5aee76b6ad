/* Signed-out sessions. A session cookie carries its own proof (session.h), so deleting it in
 * the browser does not end a copy taken elsewhere. Signing out therefore also records the
 * session, by a hash of its random CSRF token (unique per session), in the store until the
 * session would have expired; a recorded session is refused like a forged one. */
#ifndef SAASD_SESSION_REVOKE_H
#define SAASD_SESSION_REVOKE_H

#include "core/session.h"
#include "core/store.h"

/* Record s as signed out (durable on return) and drop records whose session has expired.
 * 0 or the store's error. */
int session_revoke(struct store *st, const struct session *s, long long now);

/* 1 when s was signed out, 0 when not, or the store's error. */
int session_revoked(struct store *st, const struct session *s);

#endif
