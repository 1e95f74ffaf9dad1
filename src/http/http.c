/* HTTP/1.1 server: libuv sockets, http-parser for the protocol, optional TLS
 * (see http.h).
 *
 * Connections live in a fixed table: max_conns slots for requests plus
 * REJECT_SLOTS where a connection that found no room waits for its 503 to
 * be written. A request id is the slot index plus a generation counter, so a
 * reply to a connection that has since closed (or moved on to its next
 * request) is recognised and refused rather than written to the wrong client.
 *
 * A connection's life: READING (a request arrives; `started` once a byte of
 * it did) -> WAITING (the handler has it) -> READING again (keep-alive) or
 * DONE (a last reply is being written) -> LINGER (our side shut down; what
 * the client still sends is dropped) -> closed. One timer per connection
 * enforces the phase's timeout.
 */
#include "http/http_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <http_parser.h>

#include "tls/tls.h"

struct write_req {
  uv_write_t req;
  struct conn *c;
  char buf[];
};

static const char *reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 307:
    return "Temporary Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Payload Too Large";
  case 415:
    return "Unsupported Media Type";
  case 421:
    return "Misdirected Request";
  case 422:
    return "Unprocessable Entity";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return "Status";
  }
}

static void maybe_free_server(struct lr_http_server *s) {
  if (s->closing && s->open_handles == 0) {
    free(s->conns);
    free(s);
  }
}

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles > 0) return;
  struct lr_http_server *s = c->srv;
  free(c->url);
  free(c->body);
  free(c->leftover);
  lr_tls_free(c->tls);
  free(c);
  s->open_handles--;
  maybe_free_server(s);
}

/* Closes at once (pending writes are cancelled). The slot is free from now
 * on: the memory goes when libuv is done with both handles. */
static void conn_close(struct conn *c) {
  if (c->state == CONN_CLOSING) return;
  struct lr_http_server *s = c->srv;
  c->state = CONN_CLOSING;
  c->gen = ++s->gen_seq; /* invalidates the id of any request still being served */
  if (c->slot < s->nslots && s->conns[c->slot] == c) {
    s->conns[c->slot] = NULL;
    s->open--;
  }
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer(uv_timer_t *t);

void lr__http_arm(struct conn *c, enum timer_kind kind, uint32_t ms) {
  c->timer_kind = kind;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

void lr__http_disarm(struct conn *c) {
  c->timer_kind = T_NONE;
  uv_timer_stop(&c->timer);
}

void lr__http_reset_request(struct conn *c) {
  c->started = false;
  c->header_bytes = 0;
  c->url_len = 0;
  c->body_len = 0;
  c->field_len = 0;
  c->field_long = false;
  c->in_value = false;
  c->cur = H_OTHER;
  c->too_big = false;
  c->dup = c->long_hdr = H_OTHER;
  memset(c->seen, 0, sizeof c->seen);
  memset(c->value_len, 0, sizeof c->value_len);
}

static void after_writes(struct conn *c);

static void on_written(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct conn *c = w->c;
  free(w);
  c->writes--;
  if (c->state == CONN_CLOSING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->writes == 0 && c->state == CONN_DONE) after_writes(c);
}

/* A write request with room for n bytes, or NULL (the connection closed). */
static struct write_req *write_req_new(struct conn *c, size_t n) {
  struct write_req *w = malloc(sizeof *w + n);
  if (w == NULL) conn_close(c);
  return w;
}

/* Writes the first n bytes of w's buffer; on failure frees w and closes. */
static int write_req_send(struct conn *c, struct write_req *w, size_t n) {
  w->c = c;
  uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
  int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rv < 0) {
    free(w);
    conn_close(c);
    return rv;
  }
  c->writes++;
  return 0;
}

/* Queues n bytes on the socket as they are. */
static int put_raw(struct conn *c, const char *p, size_t n) {
  struct write_req *w = write_req_new(c, n);
  if (w == NULL) return UV_ENOMEM;
  memcpy(w->buf, p, n);
  return write_req_send(c, w, n);
}

/* Sends what the TLS session has waiting (handshake records, alerts,
 * encrypted replies) in one write. */
static int flush_tls(struct conn *c) {
  size_t n = lr_tls_pending(c->tls);
  if (n == 0) return 0;
  struct write_req *w = write_req_new(c, n);
  if (w == NULL) return UV_ENOMEM;
  return write_req_send(c, w, lr_tls_take(c->tls, w->buf, n));
}

/* Plaintext out: as is, or through the TLS session. */
int lr__http_put(struct conn *c, const char *p, size_t n) {
  if (c->tls == NULL) return put_raw(c, p, n);
  if (lr_tls_write(c->tls, p, n) != 0) {
    c->srv->stats.tls_failures++;
    conn_close(c);
    return UV_EPROTO;
  }
  return flush_tls(c);
}

static int send_reply(struct conn *c, int status, const char *ctype, const char *headers,
                      const char *body, size_t len, bool close_after) {
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
                   reason(status), ctype ? ctype : "application/json", len, headers ? headers : "",
                   close_after ? "Connection: close\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof head) return UV_EINVAL;
  /* one write for head and body: a small reply goes out in one segment */
  char *all = malloc((size_t)n + len);
  if (all == NULL) {
    conn_close(c);
    return UV_ENOMEM;
  }
  memcpy(all, head, (size_t)n);
  if (len) memcpy(all + n, body, len);
  int rv = lr__http_put(c, all, (size_t)n + len);
  free(all);
  return rv;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct conn *c = h->data;
  buf->base = c->srv->readbuf;
  buf->len = sizeof c->srv->readbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void start_reading(struct conn *c) {
  if (c->reading || c->peer_eof || c->state == CONN_CLOSING) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
    conn_close(c);
    return;
  }
  c->reading = true;
}

static void stop_reading(struct conn *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
}

/* The last reply is queued: close once it is written. */
static void finish(struct conn *c) {
  if (c->state == CONN_CLOSING) return;
  c->state = CONN_DONE;
  c->gen = ++c->srv->gen_seq;
  if (c->writes == 0) {
    after_writes(c);
    return;
  }
  lr__http_arm(c, T_SEND, c->srv->o.send_timeout_ms);
  /* keep reading (and dropping) so a client still sending its body does not
   * block before it reads our reply */
  start_reading(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->data;
  free(req);
  if (status < 0 && c->state != CONN_CLOSING) conn_close(c);
}

/* Everything is written. A client that already shut its side is done;
 * otherwise shut ours and drop what it still sends for a bounded time
 * (lingering close), so that its unread bytes do not make our kernel reset
 * the connection before it read the reply. */
static void after_writes(struct conn *c) {
  if (c->peer_eof) {
    conn_close(c);
    return;
  }
  if (c->tls) {
    lr_tls_shutdown(c->tls);
    if (flush_tls(c) < 0) return;
  }
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req == NULL) {
    conn_close(c);
    return;
  }
  req->data = c;
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
    free(req);
    conn_close(c);
    return;
  }
  c->shut = true;
  c->state = CONN_LINGER;
  lr__http_arm(c, T_LINGER, c->srv->o.linger_ms);
  start_reading(c);
}

/* Refuses the request in progress and closes the connection after the reply
 * (lingering); the rest of the body is dropped, never buffered. */
static void refuse_h(struct conn *c, int status, const char *code, const char *message,
                     const char *headers) {
  if (c->state == CONN_CLOSING || c->state == CONN_DONE || c->state == CONN_LINGER) return;
  char body[320];
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, message);
  if (n < 0 || (size_t)n >= sizeof body) n = (int)strlen(body);
  c->gen = ++c->srv->gen_seq;
  if (send_reply(c, status, "application/json", headers, body, (size_t)n, true) < 0) return;
  finish(c);
}

void lr__http_refuse(struct conn *c, int status, const char *code, const char *message) {
  refuse_h(c, status, code, message, NULL);
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  struct lr_http_server *s = c->srv;
  enum timer_kind k = c->timer_kind;
  c->timer_kind = T_NONE;
  if (c->state == CONN_CLOSING) return;
  switch (k) {
  case T_HEADER:
  case T_BODY:
    s->stats.timeouts++;
    if (c->started && c->state == CONN_READING) {
      lr__http_refuse(c, 408, "timeout",
                      k == T_HEADER ? "the request headers did not arrive in time"
                                    : "the request body did not arrive in time");
      return;
    }
    conn_close(c); /* nothing arrived (or a TLS handshake never finished) */
    return;
  case T_IDLE:
  case T_SEND:
  case T_LINGER:
    if (k != T_LINGER) s->stats.timeouts++;
    conn_close(c);
    return;
  case T_NONE:
    return;
  }
}

/* Feeds request bytes to the parser; stops at a complete request (keeping
 * what is left for after the reply) or at an error. */
static void feed(struct conn *c, const char *data, size_t len) {
  bool was_started = c->started;
  size_t done = http_parser_execute(&c->parser, &lr__http_settings, data, len);
  if (c->state != CONN_READING && c->state != CONN_WAITING) return; /* refused or closed */
  if (!was_started && c->started && c->timer_kind == T_IDLE)
    lr__http_arm(c, T_HEADER, c->srv->o.header_timeout_ms); /* a keep-alive request began */
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_PAUSED) {
    http_parser_pause(&c->parser, 0);
    if (done < len) {
      char *rest = malloc(len - done);
      if (rest == NULL) {
        conn_close(c);
        return;
      }
      memcpy(rest, data + done, len - done);
      c->leftover = rest;
      c->leftover_len = len - done;
    }
    lr__http_dispatch(c);
    return;
  }
  if (e != HPE_OK) {
    c->srv->stats.bad_requests++;
    lr__http_refuse(c, 400, "bad_request", http_errno_description(e));
  }
}

static void hold(struct conn *c, const char *data, size_t len) {
  char *nb = realloc(c->leftover, c->leftover_len + len);
  if (nb == NULL) {
    conn_close(c);
    return;
  }
  memcpy(nb + c->leftover_len, data, len);
  c->leftover = nb;
  c->leftover_len += len;
  if (c->leftover_len > PIPELINE_MAX) stop_reading(c);
}

/* Plaintext from the client, by state. */
static void deliver(struct conn *c, const char *data, size_t len) {
  c->last_active = uv_now(c->srv->loop);
  switch (c->state) {
  case CONN_READING:
    feed(c, data, len);
    break;
  case CONN_WAITING:
    hold(c, data, len);
    break;
  case CONN_DONE:
  case CONN_LINGER: /* dropped, within bounds */
    c->lingered += len;
    if (c->lingered > c->srv->o.linger_bytes) conn_close(c);
    break;
  default:
    break;
  }
}

/* The client shut down its side (EOF or TLS close_notify). */
static void on_eof(struct conn *c) {
  c->peer_eof = true;
  stop_reading(c);
  switch (c->state) {
  case CONN_WAITING: /* its request is being served: answer it, then close */
    c->keep_alive = false;
    break;
  case CONN_DONE:
    if (c->writes == 0) conn_close(c);
    break;
  default: /* nothing to answer (an incomplete request gets no reply), or lingering */
    conn_close(c);
    break;
  }
}

static void on_tls_bytes(struct conn *c, const char *data, size_t len) {
  struct lr_http_server *s = c->srv;
  if (lr_tls_feed(c->tls, data, len) != 0) {
    conn_close(c);
    return;
  }
  if (!lr_tls_established(c->tls)) {
    int rv = lr_tls_handshake(c->tls);
    if (rv != 0 && rv != RAFT_ETLSAGAIN) {
      s->stats.tls_failures++;
      /* send the alert, then close without lingering */
      c->peer_eof = true;
      c->state = CONN_DONE;
      if (flush_tls(c) == 0 && c->writes == 0) conn_close(c);
      return;
    }
    if (flush_tls(c) < 0) return;
    if (rv == RAFT_ETLSAGAIN) return;
  }
  char plain[16384];
  for (;;) {
    size_t got = 0;
    int rv = lr_tls_read(c->tls, plain, sizeof plain, &got);
    if (rv == RAFT_ETLSCLOSED) {
      on_eof(c);
      return;
    }
    if (rv != 0) {
      s->stats.tls_failures++;
      conn_close(c);
      return;
    }
    if (got == 0) break;
    deliver(c, plain, got);
    if (c->state == CONN_CLOSING) return;
  }
  if (c->state != CONN_CLOSING) flush_tls(c); /* session tickets, key updates */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = stream->data;
  if (nread < 0) {
    if (c->state == CONN_CLOSING) return;
    if (nread == UV_EOF)
      on_eof(c);
    else
      conn_close(c);
    return;
  }
  if (nread > 0 && c->state != CONN_CLOSING) {
    if (c->tls)
      on_tls_bytes(c, buf->base, (size_t)nread);
    else
      deliver(c, buf->base, (size_t)nread);
  }
}

/* Ready for the next request on this connection. */
static void resume(struct conn *c) {
  lr__http_reset_request(c);
  c->state = CONN_READING;
  lr__http_arm(c, T_IDLE, c->srv->o.idle_timeout_ms);
  if (c->leftover) {
    char *data = c->leftover;
    size_t len = c->leftover_len;
    c->leftover = NULL;
    c->leftover_len = 0;
    feed(c, data, len);
    free(data);
    if (c->state != CONN_READING) return; /* another complete request, or refused */
  }
  if (c->peer_eof) {                              /* nothing more will come */
    if (c->started) c->srv->stats.bad_requests++; /* an incomplete pipelined request */
    finish(c);
    return;
  }
  start_reading(c);
}

int lr_http_respond_h(struct lr_http_server *s, uint64_t id, int status, const char *ctype,
                      const char *headers, const char *body, size_t len) {
  uint32_t slot = (uint32_t)(id & 0xffffffffu), gen = (uint32_t)(id >> 32);
  if (s->closing || slot >= s->nslots) return LR_HTTP_GONE;
  struct conn *c = s->conns[slot];
  if (c == NULL || c->gen != gen || c->state != CONN_WAITING) return LR_HTTP_GONE;
  c->gen = ++c->srv->gen_seq;
  bool close_after = !c->keep_alive;
  int rv = send_reply(c, status, ctype, headers, body, len, close_after);
  if (rv < 0) {
    conn_close(c); /* nothing else would ever answer it */
    return rv;
  }
  if (close_after)
    finish(c);
  else
    resume(c);
  return 0;
}

int lr_http_respond(struct lr_http_server *s, uint64_t id, int status, const char *ctype,
                    const char *body, size_t len) {
  return lr_http_respond_h(s, id, status, ctype, NULL, body, len);
}

static void on_listener_closed(uv_handle_t *h);

/* The longest-idle connection that has no request in progress, or NULL. */
static struct conn *idlest(struct lr_http_server *s) {
  struct conn *best = NULL;
  for (uint32_t i = 0; i < s->o.max_conns; i++) {
    struct conn *c = s->conns[i];
    if (c && c->state == CONN_READING && !c->started && c->writes == 0 && c->leftover == NULL &&
        (best == NULL || c->last_active < best->last_active))
      best = c;
  }
  return best;
}

static uint32_t free_slot(struct lr_http_server *s, uint32_t from, uint32_t to) {
  for (uint32_t i = from; i < to; i++)
    if (s->conns[i] == NULL) return i;
  return to;
}

static void on_connection(uv_stream_t *server, int status) {
  struct lr_http_server *s = server->data;
  if (status < 0 || s->closing) return;
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) return; /* UNTESTED: OOM (libuv keeps the connection queued) */
  if (uv_tcp_init(s->loop, &c->tcp) < 0) {
    free(c);
    return;
  }
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles = 2;
  c->srv = s;
  s->open_handles++;
  c->state = CONN_READING;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    c->slot = UINT32_MAX;
    conn_close(c);
    return;
  }
  uint32_t slot = free_slot(s, 0, s->o.max_conns);
  bool reject = false;
  if (slot == s->o.max_conns) {
    struct conn *old = idlest(s);
    if (old) {
      s->stats.evicted++;
      slot = old->slot;
      conn_close(old); /* frees the slot now */
    } else {
      reject = true;
      slot = free_slot(s, s->o.max_conns, s->nslots);
      if (slot == s->nslots) { /* even the reject slots are busy: just close */
        s->stats.rejected++;
        c->slot = UINT32_MAX;
        conn_close(c);
        return;
      }
    }
  }
  s->conns[slot] = c;
  s->open++;
  c->slot = slot;
  /* Generations come from one server-wide counter, not from 1: a
   * connection that reuses a slot must not accept the late reply to a
   * request of the connection that had the slot before it (that reply went
   * to the wrong client: a set answered with an incr's result). */
  c->gen = ++s->gen_seq;
  c->last_active = uv_now(s->loop);
  s->stats.connections++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  if (s->o.tls && lr_tls_new(s->o.tls, LR_TLS_SERVER, NULL, &c->tls) != 0) {
    conn_close(c);
    return;
  }
  if (reject) {
    s->stats.rejected++;
    if (c->tls) { /* a 503 cannot be said before a handshake: just close */
      conn_close(c);
      return;
    }
    c->started = true;
    refuse_h(c, 503, "busy", "too many connections; try again later", "Retry-After: 1\r\n");
    return;
  }
  lr__http_reset_request(c);
  lr__http_arm(c, T_HEADER,
               s->o.header_timeout_ms); /* a fresh connection: first request (or handshake) */
  start_reading(c);
}

static int parse_addr(const char *addr, struct sockaddr_in *sa, char *err, size_t errlen) {
  char host[64];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
    snprintf(err, errlen, "bad HTTP address '%s' (want HOST:PORT)", addr);
    return UV_EINVAL;
  }
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535 || end == colon + 1) {
    snprintf(err, errlen, "bad port in HTTP address '%s'", addr);
    return UV_EINVAL;
  }
  int rv = uv_ip4_addr(host, (int)port, sa);
  if (rv < 0) snprintf(err, errlen, "bad IPv4 host in HTTP address '%s'", addr);
  return rv;
}

/* max_conns within what RLIMIT_NOFILE leaves after the reserve (each
 * connection is one descriptor; the reject slots count too). */
static uint32_t fd_cap(const struct lr_http_options *o) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return UINT32_MAX;
  rlim_t room =
      rl.rlim_cur > o->fd_reserve + REJECT_SLOTS ? rl.rlim_cur - o->fd_reserve - REJECT_SLOTS : 0;
  if (room < 8) room = 8; /* a node with almost no descriptors still answers someone */
  return room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
}

int lr_http_listen(uv_loop_t *loop, const char *addr, const struct lr_http_options *o,
                   lr_http_handler handler, void *data, struct lr_http_server **out, char *err,
                   size_t errlen) {
  struct sockaddr_in sa;
  int rv = parse_addr(addr, &sa, err, errlen);
  if (rv < 0) return rv;
  struct lr_http_server *s = calloc(1, sizeof *s);
  if (s == NULL) return UV_ENOMEM;
  s->o = o ? *o : (struct lr_http_options){0};
  if (s->o.max_body == 0) s->o.max_body = 1u << 20;
  if (s->o.max_header == 0) s->o.max_header = 16u << 10;
  if (s->o.max_conns == 0) s->o.max_conns = 1024;
  if (s->o.fd_reserve == 0) s->o.fd_reserve = 256;
  if (s->o.header_timeout_ms == 0) s->o.header_timeout_ms = 20000;
  if (s->o.body_timeout_ms == 0) s->o.body_timeout_ms = 60000;
  if (s->o.idle_timeout_ms == 0) s->o.idle_timeout_ms = 75000;
  if (s->o.send_timeout_ms == 0) s->o.send_timeout_ms = 60000;
  if (s->o.linger_ms == 0) s->o.linger_ms = 5000;
  if (s->o.linger_bytes == 0) s->o.linger_bytes = 8u << 20;
  uint32_t cap = fd_cap(&s->o);
  if (s->o.max_conns > cap) s->o.max_conns = cap;
  s->nslots = s->o.max_conns + REJECT_SLOTS;
  s->conns = calloc(s->nslots, sizeof *s->conns);
  if (s->conns == NULL) {
    free(s);
    return UV_ENOMEM;
  }
  s->loop = loop;
  s->handler = handler;
  s->data = data;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->open_handles = 1;
  rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
  if (rv < 0) {
    snprintf(err, errlen, "cannot listen for HTTP on %s: %s", addr, uv_strerror(rv));
    s->closing = true; /* freed by the close callback once the loop runs */
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    return rv;
  }
  *out = s;
  return 0;
}

int lr_http_port(const struct lr_http_server *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) < 0) return -1;
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void on_listener_closed(uv_handle_t *h) {
  struct lr_http_server *s = h->data;
  s->open_handles--;
  maybe_free_server(s);
}

void lr_http_close(struct lr_http_server *s) {
  if (s->closing) return;
  s->closing = true;
  for (uint32_t i = 0; i < s->nslots; i++)
    if (s->conns[i]) conn_close(s->conns[i]);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void lr_http_stats(const struct lr_http_server *s, struct lr_http_stats *out) {
  *out = s->stats;
  out->open = s->open;
  out->max_conns = s->o.max_conns;
}
