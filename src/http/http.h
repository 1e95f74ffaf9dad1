/* A small HTTP/1.1 server on libuv, parsing with http-parser (nodejs).
 *
 * Keep-alive; one request in flight per connection (reading pauses until the
 * reply is sent, so pipelined requests queue in the socket); a body limit
 * (default 1 MiB) answered with 413 from the headers (Content-Length) or as
 * soon as a chunked body passes it, without buffering the excess, and the
 * connection closed; a malformed request gets 400 and a close.
 *
 * Replies are asynchronous: the handler gets a request id and may answer
 * later with lr_http_respond(). If the connection closed meanwhile, respond
 * returns LR_HTTP_GONE and does nothing.
 */
#ifndef LUARAFT_HTTP_H
#define LUARAFT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

enum { LR_HTTP_GONE = -1 };

struct lr_http_request {
  uint64_t id;              /* pass to lr_http_respond */
  const char *method;       /* "GET", "POST", ... */
  const char *path;         /* URL path, without the query */
  const char *query;        /* after '?', "" when none */
  const char *body;
  size_t body_len;
  const char *content_type; /* or NULL */
  const char *client_id;    /* Raft-Client-Id header or NULL */
  const char *seq;          /* Raft-Seq header or NULL */
};

struct lr_http_options {
  size_t max_body;      /* default 1 MiB */
  size_t max_header;    /* bytes of request line + headers, default 16 KiB */
  uint32_t max_conns;   /* default 1024; more are accepted and closed */
};

struct lr_http_server;
/* Called on the loop thread for each complete request; every pointer in req
 * is valid only during the call. */
typedef void (*lr_http_handler)(void *data, const struct lr_http_request *req);

/* addr: "127.0.0.1:8001" (port 0 picks a free one). On error returns a libuv
 * error code and writes a sentence to err. */
int lr_http_listen(uv_loop_t *loop, const char *addr, const struct lr_http_options *o,
                   lr_http_handler handler, void *data, struct lr_http_server **out,
                   char *err, size_t errlen);
int lr_http_port(const struct lr_http_server *s);
int lr_http_respond(struct lr_http_server *s, uint64_t id, int status,
                    const char *content_type, const char *body, size_t len);
/* Closes the listener and every connection; frees the server once libuv is
 * done with the handles (run the loop to let it finish). */
void lr_http_close(struct lr_http_server *s);

struct lr_http_stats {
  uint64_t requests, bad_requests, too_large, connections;
};
void lr_http_stats(const struct lr_http_server *s, struct lr_http_stats *out);

#endif
