/* HTTP/1.1 server: libuv sockets, http-parser for the protocol (see http.h).
 *
 * Connections live in a fixed table of max_conns slots; a request id is the
 * slot index plus a generation counter, so a reply to a connection that has
 * since closed (or moved on to its next request) is recognised and refused
 * rather than written to the wrong client.
 */
#include "http/http.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#define HEADER_VALUE_MAX 256

enum conn_state { CONN_FREE = 0, CONN_READING, CONN_WAITING, CONN_CLOSING };
enum hdr { HDR_NONE, HDR_CONTENT_TYPE, HDR_CLIENT_ID, HDR_SEQ };

struct conn {
  uv_tcp_t tcp;
  struct lr_http_server *srv;
  http_parser parser;
  enum conn_state state;
  uint32_t slot, gen;
  size_t header_bytes;
  bool keep_alive;
  bool reply_and_close; /* a 413/400 is on its way: close after it */
  char *url;
  size_t url_len;
  char *body;
  size_t body_len, body_cap;
  enum hdr cur_hdr;
  bool in_value;
  char values[3][HEADER_VALUE_MAX]; /* content type, client id, seq */
  size_t value_len[3];
  char *leftover; /* bytes read past a complete request, parsed after the reply */
  size_t leftover_len;
  bool reading;   /* uv_read_start is in effect */
};

struct lr_http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct lr_http_options o;
  lr_http_handler handler;
  void *data;
  struct conn **conns; /* max_conns slots */
  uint32_t open_handles;
  bool closing;
  struct lr_http_stats stats;
  uint32_t gen_seq; /* generations are unique server-wide, not per connection */
};

struct write_req {
  uv_write_t req;
  struct conn *c;
  bool close_after;
  char buf[];
};

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 307: return "Temporary Redirect";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Payload Too Large";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Entity";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

static void maybe_free_server(struct lr_http_server *s) {
  if (s->closing && s->open_handles == 0) {
    free(s->conns);
    free(s);
  }
}

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct lr_http_server *s = c->srv;
  s->conns[c->slot] = NULL;
  free(c->url);
  free(c->body);
  free(c->leftover);
  free(c);
  s->open_handles--;
  maybe_free_server(s);
}

static void conn_close(struct conn *c) {
  if (c->state == CONN_CLOSING) return;
  c->state = CONN_CLOSING;
  c->gen = ++c->srv->gen_seq; /* invalidates the id of any request still being served */
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void reset_request(struct conn *c) {
  c->header_bytes = 0;
  c->url_len = 0;
  c->body_len = 0;
  c->cur_hdr = HDR_NONE;
  c->in_value = false;
  memset(c->value_len, 0, sizeof c->value_len);
}

static void on_written(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct conn *c = w->c;
  bool close_after = w->close_after;
  free(w);
  if (c->state == CONN_CLOSING) return;
  if (status < 0 || close_after) {
    conn_close(c);
    return;
  }
}

static int send_raw(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                    bool close_after) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                   reason(status), ctype ? ctype : "application/json", len,
                   close_after ? "Connection: close\r\n" : "");
  struct write_req *w = malloc(sizeof *w + (size_t)n + len);
  if (w == NULL) {
    conn_close(c);
    return UV_ENOMEM;
  }
  memcpy(w->buf, head, (size_t)n);
  if (len) memcpy(w->buf + n, body, len);
  w->c = c;
  w->close_after = close_after;
  uv_buf_t b = uv_buf_init(w->buf, (unsigned)((size_t)n + len));
  int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rv < 0) {
    free(w);
    conn_close(c);
  }
  return rv;
}

/* Refuses the request in progress and closes the connection after the reply:
 * the rest of the body is never read, let alone buffered. */
static void refuse(struct conn *c, int status, const char *code, const char *message) {
  char body[256];
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}", code, message);
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  c->reply_and_close = true;
  c->state = CONN_WAITING;
  c->gen = ++c->srv->gen_seq;
  send_raw(c, status, "application/json", body, (size_t)n, true);
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t ncap = *cap ? *cap : 256;
    while (ncap < *len + n + 1) ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (nb == NULL) return -1;
    *buf = nb;
    *cap = ncap;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}

static struct conn *conn_of(http_parser *p) {
  return p->data;
}

static int header_budget(struct conn *c, size_t n) {
  c->header_bytes += n;
  if (c->header_bytes > c->srv->o.max_header) {
    refuse(c, 400, "bad_request", "request headers too large");
    return -1;
  }
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  if (header_budget(c, n)) return -1;
  size_t cap = c->url_len ? c->url_len + 1 : 0; /* url grows rarely: exact */
  if (append(&c->url, &c->url_len, &cap, at, n)) return -1;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  if (header_budget(c, n)) return -1;
  /* Fields arrive whole in practice; a split field name is matched on its
   * first fragment only, which is enough for the three headers we read. */
  if (c->in_value || c->cur_hdr == HDR_NONE) {
    c->in_value = false;
    if (n == 12 && strncasecmp(at, "content-type", n) == 0) c->cur_hdr = HDR_CONTENT_TYPE;
    else if (n == 14 && strncasecmp(at, "raft-client-id", n) == 0) c->cur_hdr = HDR_CLIENT_ID;
    else if (n == 8 && strncasecmp(at, "raft-seq", n) == 0) c->cur_hdr = HDR_SEQ;
    else c->cur_hdr = HDR_NONE;
  }
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  if (header_budget(c, n)) return -1;
  c->in_value = true;
  if (c->cur_hdr == HDR_NONE) return 0;
  int i = (int)c->cur_hdr - 1;
  if (c->value_len[i] + n >= HEADER_VALUE_MAX) {
    refuse(c, 400, "bad_request", "header value too long");
    return -1;
  }
  memcpy(c->values[i] + c->value_len[i], at, n);
  c->value_len[i] += n;
  c->values[i][c->value_len[i]] = '\0';
  return 0;
}

static int on_headers_complete(http_parser *p) {
  struct conn *c = conn_of(p);
  c->cur_hdr = HDR_NONE;
  if (p->content_length != ULLONG_MAX && p->content_length > c->srv->o.max_body) {
    c->srv->stats.too_large++;
    refuse(c, 413, "too_large", "request body larger than the limit");
    return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  if (c->body_len + n > c->srv->o.max_body) {
    c->srv->stats.too_large++;
    refuse(c, 413, "too_large", "request body larger than the limit");
    return -1;
  }
  if (append(&c->body, &c->body_len, &c->body_cap, at, n)) return -1;
  return 0;
}

static void dispatch(struct conn *c) {
  struct lr_http_server *s = c->srv;
  char *url = c->url ? c->url : "/";
  char *q = strchr(url, '?');
  const char *query = "";
  if (q) {
    *q = '\0';
    query = q + 1;
  }
  struct lr_http_request req = {
      .id = ((uint64_t)c->gen << 32) | c->slot,
      .method = http_method_str(c->parser.method),
      .path = url,
      .query = query,
      .body = c->body ? c->body : "",
      .body_len = c->body_len,
      .content_type = c->value_len[0] ? c->values[0] : NULL,
      .client_id = c->value_len[1] ? c->values[1] : NULL,
      .seq = c->value_len[2] ? c->values[2] : NULL,
  };
  s->stats.requests++;
  s->handler(s->data, &req);
}

static int on_message_complete(http_parser *p) {
  struct conn *c = conn_of(p);
  c->keep_alive = http_should_keep_alive(p);
  c->state = CONN_WAITING;
  http_parser_pause(p, 1); /* one request at a time: the rest waits */
  return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

/* Feeds bytes to the parser; stops at a complete request (keeping what is
 * left for after the reply) or at an error. */
static void feed(struct conn *c, const char *data, size_t len) {
  size_t done = http_parser_execute(&c->parser, &settings, data, len);
  if (c->state == CONN_CLOSING || c->reply_and_close) return;
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
    dispatch(c);
    return;
  }
  if (e != HPE_OK) {
    c->srv->stats.bad_requests++;
    refuse(c, 400, "bad_request", http_errno_description(e));
  }
}

/* While a request is being served we keep reading, so a client that goes
 * away is noticed (its request id becomes GONE), but only buffer up to
 * PIPELINE_MAX bytes of what follows; past that reading pauses. */
#define PIPELINE_MAX (64u << 10)

static void hold(struct conn *c, const char *data, size_t len) {
  char *nb = realloc(c->leftover, c->leftover_len + len);
  if (nb == NULL) {
    conn_close(c);
    return;
  }
  memcpy(nb + c->leftover_len, data, len);
  c->leftover = nb;
  c->leftover_len += len;
  if (c->leftover_len > PIPELINE_MAX) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = stream->data;
  if (nread < 0) {
    free(buf->base);
    conn_close(c);
    return;
  }
  if (nread > 0) {
    if (c->state == CONN_READING) feed(c, buf->base, (size_t)nread);
    else if (c->state == CONN_WAITING && !c->reply_and_close) hold(c, buf->base, (size_t)nread);
  }
  free(buf->base);
}

static void resume(struct conn *c) {
  reset_request(c);
  c->state = CONN_READING;
  if (c->leftover) {
    char *data = c->leftover;
    size_t len = c->leftover_len;
    c->leftover = NULL;
    c->leftover_len = 0;
    feed(c, data, len);
    free(data);
    if (c->state != CONN_READING) return; /* another complete request */
  }
  if (c->reading) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
    conn_close(c);
    return;
  }
  c->reading = true;
}

int lr_http_respond(struct lr_http_server *s, uint64_t id, int status, const char *ctype,
                    const char *body, size_t len) {
  uint32_t slot = (uint32_t)(id & 0xffffffffu), gen = (uint32_t)(id >> 32);
  if (s->closing || slot >= s->o.max_conns) return LR_HTTP_GONE;
  struct conn *c = s->conns[slot];
  if (c == NULL || c->gen != gen || c->state != CONN_WAITING) return LR_HTTP_GONE;
  c->gen = ++c->srv->gen_seq;
  bool close_after = !c->keep_alive;
  int rv = send_raw(c, status, ctype, body, len, close_after);
  if (rv < 0) return rv;
  if (!close_after) resume(c);
  return 0;
}

static void on_rejected_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct lr_http_server *s = c->srv;
  free(c);
  s->open_handles--;
  maybe_free_server(s);
}

static void on_listener_closed(uv_handle_t *h);

static void on_connection(uv_stream_t *server, int status) {
  struct lr_http_server *s = server->data;
  if (status < 0) return;
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  if (uv_tcp_init(s->loop, &c->tcp) < 0) {
    free(c);
    return;
  }
  c->tcp.data = c;
  c->srv = s;
  s->open_handles++;
  uint32_t slot = s->o.max_conns;
  for (uint32_t i = 0; i < s->o.max_conns; i++)
    if (s->conns[i] == NULL) {
      slot = i;
      break;
    }
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || slot == s->o.max_conns) {
    c->state = CONN_CLOSING; /* not in the table: closed at once */
    uv_close((uv_handle_t *)&c->tcp, on_rejected_closed);
    return;
  }
  s->conns[slot] = c;
  c->slot = slot;
  /* Generations come from one server-wide counter, not from 1: a
   * connection that reuses a slot must not accept the late reply to a
   * request of the connection that had the slot before it (that reply went
   * to the wrong client: a set answered with an incr's result). */
  c->gen = ++s->gen_seq;
  s->stats.connections++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  resume(c);
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
  s->conns = calloc(s->o.max_conns, sizeof *s->conns);
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
  for (uint32_t i = 0; i < s->o.max_conns; i++)
    if (s->conns[i]) conn_close(s->conns[i]);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void lr_http_stats(const struct lr_http_server *s, struct lr_http_stats *out) {
  *out = s->stats;
}
