/* luaraft TLS: an OpenSSL session over memory BIOs, for any byte stream
 * (a libuv TCP stream in practice) whose I/O the caller does itself.
 *
 * The caller owns the socket. It feeds the ciphertext it reads into the
 * session (lr_tls_feed), drives the handshake (lr_tls_handshake) until it
 * is established, reads plaintext out (lr_tls_read), encrypts plaintext
 * (lr_tls_write), and after every call sends what lr_tls_take hands it
 * (lr_tls_pending says how much is waiting). Nothing here blocks or
 * touches a socket, so it works on any event loop.
 *
 *   ctx = lr_tls_ctx_new({cert, key, ca, verify_peer = true}, ...)
 *   s = lr_tls_new(ctx, LR_TLS_CLIENT or LR_TLS_SERVER, ...)
 *   on bytes in:  lr_tls_feed(s, ...); if (!lr_tls_established(s)) rv = lr_tls_handshake(s);
 *                 then while (lr_tls_read(s, buf, cap, &got) == 0 && got > 0) use(buf, got);
 *   to send:      lr_tls_write(s, data, len);
 *   always after: while (lr_tls_pending(s)) send(lr_tls_take(s, buf, cap) bytes)
 *
 * Verification: with a CA file and verify_peer, each side requires the
 * other's certificate and checks it chains to that CA (mutual TLS when both
 * contexts set it; a server context may also leave client certificates
 * optional with verify_peer false). Host names are not checked: peers are
 * identified by the CA (a private CA per cluster) and then by the luaraft
 * handshake; a caller that wants a name checked passes it to lr_tls_new.
 *
 * Errors are negative codes (X-macro below) plus a sentence from
 * lr_tls_error (the OpenSSL reason, e.g. "certificate verify failed:
 * unable to get local issuer certificate").
 *
 * Threading: a context may be shared by sessions on one thread; a session
 * is used by one thread at a time. */
#ifndef LUARAFT_TLS_H
#define LUARAFT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#define LR_TLS_ERRORS(X)                                                                  \
  X(NOMEM, -1, "out of memory")                                                           \
  X(INVAL, -2, "invalid argument")                                                        \
  X(CONFIG, -3, "bad TLS configuration (certificate, key or CA file)")                    \
  X(AGAIN, -4, "more data needed")                                                        \
  X(HANDSHAKE, -5, "TLS handshake failed")                                                \
  X(VERIFY, -6, "the peer's certificate did not verify")                                  \
  X(PROTOCOL, -7, "TLS protocol error")                                                   \
  X(CLOSED, -8, "the peer closed the TLS session")                                        \
  X(STATE, -9, "the TLS session is not established")

enum {
#define X(name, code, msg) LR_TLS_E##name = code,
  LR_TLS_ERRORS(X)
#undef X
};
const char *lr_tls_strerror(int rv);

enum lr_tls_role { LR_TLS_CLIENT = 1, LR_TLS_SERVER = 2 };

struct lr_tls_ctx_options {
  const char *cert_file; /* PEM certificate (chain); required for servers */
  const char *key_file;  /* PEM private key matching cert_file */
  const char *ca_file;   /* PEM CA bundle the peer's certificate must chain to */
  bool verify_peer;      /* require and verify the peer's certificate (needs ca_file) */
};

struct lr_tls_ctx;
struct lr_tls;

/* Loads and checks the files (the key must match the certificate); err
 * gets a sentence naming the file and OpenSSL's reason. */
int lr_tls_ctx_new(const struct lr_tls_ctx_options *o, struct lr_tls_ctx **out, char *err,
                   size_t errlen);
void lr_tls_ctx_free(struct lr_tls_ctx *ctx);

/* A session; `verify_name` (may be NULL) is a host name or IP the peer's
 * certificate must carry (client role; also sent as SNI). The context must
 * outlive the session. */
int lr_tls_new(struct lr_tls_ctx *ctx, enum lr_tls_role role, const char *verify_name,
               struct lr_tls **out);
void lr_tls_free(struct lr_tls *s);

/* Ciphertext from the peer. 0 or LR_TLS_ENOMEM. */
int lr_tls_feed(struct lr_tls *s, const void *data, size_t len);
/* Advances the handshake with what was fed: 0 once established,
 * LR_TLS_EAGAIN while it needs more input (send what is pending first),
 * else an error (lr_tls_error says why; pending may hold an alert to send). */
int lr_tls_handshake(struct lr_tls *s);
bool lr_tls_established(const struct lr_tls *s);
/* Plaintext: *got bytes (0 when nothing is ready yet). 0, LR_TLS_ECLOSED
 * after the peer's close_notify, or an error. */
int lr_tls_read(struct lr_tls *s, void *buf, size_t cap, size_t *got);
/* Encrypts all of data (buffered in memory until taken). 0 or an error;
 * LR_TLS_ESTATE before the handshake is done. */
int lr_tls_write(struct lr_tls *s, const void *data, size_t len);
/* Queues a close_notify alert (to be taken and sent). */
void lr_tls_shutdown(struct lr_tls *s);
/* Ciphertext waiting to be sent, and taking up to cap bytes of it. */
size_t lr_tls_pending(const struct lr_tls *s);
size_t lr_tls_take(struct lr_tls *s, void *buf, size_t cap);

/* The last error of this session as a sentence ("" when none). */
const char *lr_tls_error(const struct lr_tls *s);
/* The peer certificate's subject ("CN=node2,O=..."), or "" before the
 * handshake / without one. */
const char *lr_tls_peer_subject(struct lr_tls *s);

#endif
