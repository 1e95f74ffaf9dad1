/* A small HTTP/1.1 server on libuv, parsing with http-parser (nodejs),
 * optionally over TLS (src/tls).
 *
 * Keep-alive; one request in flight per connection (reading pauses until the
 * reply is sent, so pipelined requests queue in the socket); a body limit
 * (default 1 MiB) answered with 413 from the headers (Content-Length) or as
 * soon as a chunked body passes it, without buffering the excess; a malformed
 * request gets 400. Error replies (400, 408, 413, 503) are followed by a
 * bounded lingering close: the server shuts its side, then reads and drops
 * what the client still sends (at most linger_ms and linger_bytes) so the
 * reply is not destroyed by a reset while the client is still writing.
 *
 * Hardening, with nginx's defaults as the anchor (docs/http.md):
 *   - header_timeout: the request line and headers must arrive within it,
 *     counted from the request's first byte (a fresh connection: from the
 *     accept); else 408 (or a silent close if nothing arrived).
 *   - body_timeout: the whole body must arrive within it; else 408.
 *   - idle_timeout: a keep-alive connection with no request is closed.
 *   - send_timeout: a reply the client does not read within it is dropped
 *     with the connection.
 *   - max_conns: when every slot is taken the longest-idle connection (no
 *     request in progress) is closed to make room; if every connection is in
 *     the middle of a request the newcomer gets 503 and is closed. max_conns
 *     is clamped to what RLIMIT_NOFILE leaves after fd_reserve descriptors
 *     for peers, storage and the loop, so HTTP never takes the fds the node
 *     needs.
 *   - Raft-Client-Id, Raft-Seq, Content-Type and Expect are read whole across
 *     parser callbacks (a name or value split between TCP segments is
 *     joined); any of them twice is 400.
 *   - a client that half-closes (shuts down its write side) after its request
 *     still gets the reply; the connection closes after it.
 *   - Expect: 100-continue is answered with 100 Continue when the declared
 *     body fits, 413 when it does not.
 *
 * Replies are asynchronous: the handler gets a request id and may answer
 * later with lr_http_respond(). If the connection closed meanwhile, respond
 * returns LR_HTTP_GONE and does nothing.
 */
#ifndef LUARAFT_HTTP_H
#define LUARAFT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

enum { LR_HTTP_GONE = -1 };

struct lr_http_request {
  uint64_t id;        /* pass to lr_http_respond */
  const char *method; /* "GET", "POST", ... */
  const char *path;   /* URL path, without the query */
  const char *query;  /* after '?', "" when none */
  const char *body;
  size_t body_len;
  const char *content_type;  /* or NULL */
  const char *client_id;     /* Raft-Client-Id header or NULL */
  const char *seq;           /* Raft-Seq header or NULL */
  const char *authorization; /* Authorization header or NULL */
  const char *peer_cert;     /* TLS client certificate subject, or NULL */
};

struct lr_tls_ctx;

struct lr_http_options {
  size_t max_body;            /* default 1 MiB */
  size_t max_header;          /* bytes of request line + headers, default 16 KiB */
  uint32_t max_conns;         /* default 1024, clamped by RLIMIT_NOFILE - fd_reserve */
  uint32_t fd_reserve;        /* descriptors left for the rest of the process, default 256 */
  uint32_t header_timeout_ms; /* default 20000 */
  uint32_t body_timeout_ms;   /* default 60000 */
  uint32_t idle_timeout_ms;   /* keep-alive, default 75000 */
  uint32_t send_timeout_ms;   /* default 60000 */
  uint32_t linger_ms;         /* lingering close, default 5000 */
  size_t linger_bytes;        /* dropped at most during it, default 8 MiB */
  struct lr_tls_ctx *tls;     /* serve HTTPS with this context (the caller keeps
                                 it alive until the server is freed), or NULL */
};

struct lr_http_server;
/* Called on the loop thread for each complete request; every pointer in req
 * is valid only during the call. */
typedef void (*lr_http_handler)(void *data, const struct lr_http_request *req);

/* addr: "127.0.0.1:8001" (port 0 picks a free one). On error returns a libuv
 * error code and writes a sentence to err. */
int lr_http_listen(uv_loop_t *loop, const char *addr, const struct lr_http_options *o,
                   lr_http_handler handler, void *data, struct lr_http_server **out, char *err,
                   size_t errlen);
int lr_http_port(const struct lr_http_server *s);
int lr_http_respond(struct lr_http_server *s, uint64_t id, int status, const char *content_type,
                    const char *body, size_t len);
/* Same, with extra header lines (each "Name: value\r\n", may be NULL). */
int lr_http_respond_h(struct lr_http_server *s, uint64_t id, int status, const char *content_type,
                      const char *headers, const char *body, size_t len);
/* Closes the listener and every connection; frees the server once libuv is
 * done with the handles (run the loop to let it finish). */
void lr_http_close(struct lr_http_server *s);

struct lr_http_stats {
  uint64_t requests, bad_requests, too_large, connections;
  uint64_t timeouts;        /* 408s and silent header/idle/send timeouts */
  uint64_t rejected;        /* connections refused with 503 (every slot busy) */
  uint64_t evicted;         /* idle connections closed to make room */
  uint64_t tls_failures;    /* TLS handshakes or records that failed */
  uint32_t open, max_conns; /* connections now; the effective limit */
};
void lr_http_stats(const struct lr_http_server *s, struct lr_http_stats *out);

#endif
