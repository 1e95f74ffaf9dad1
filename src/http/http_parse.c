/* Reading a request: http-parser's callbacks collect the URL, the headers
 * we use (a name or value may come in pieces, across reads) and the body,
 * and refuse what is too large, duplicated or malformed once the headers are
 * complete, so the answer never depends on where TCP split the request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

const char *const lr__http_hdr_names[H_COUNT] = {"Content-Type", "Raft-Client-Id", "Raft-Seq",
                                                 "Authorization", "Expect"};

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t ncap = *cap ? *cap : 64;
    while (ncap < *len + n + 1)
      ncap *= 2;
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

/* Counts request line and header bytes; past max_header nothing more is
 * stored and the request is refused when its headers are complete
 * (http-parser's own limit, 80 KiB, ends a request that never completes). */
static void header_budget(struct conn *c, size_t n) {
  c->header_bytes += n;
  if (c->header_bytes > c->srv->o.max_header) c->too_big = true;
}

static int on_message_begin(http_parser *p) {
  struct conn *c = conn_of(p);
  lr__http_reset_request(c);
  c->started = true;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  header_budget(c, n);
  if (c->too_big) return 0;
  if (append(&c->url, &c->url_len, &c->url_cap, at, n)) return -1;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  header_budget(c, n);
  if (c->in_value) { /* a new header starts */
    c->in_value = false;
    c->field_len = 0;
    c->field_long = false;
  }
  if (c->field_len + n >= FIELD_MAX) {
    c->field_long = true; /* none of ours is that long */
  } else {
    memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
  }
  return 0;
}

/* The name is complete (its value starts): which of ours is it? */
static int classify(struct conn *c) {
  if (c->field_long) return H_OTHER;
  for (int i = 0; i < H_COUNT; i++)
    if (strlen(lr__http_hdr_names[i]) == c->field_len &&
        strncasecmp(c->field, lr__http_hdr_names[i], c->field_len) == 0)
      return i;
  return H_OTHER;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  header_budget(c, n);
  if (!c->in_value) {
    c->in_value = true;
    c->cur = classify(c);
    if (c->cur != H_OTHER) {
      if (c->seen[c->cur]) { /* refused at on_headers_complete */
        if (c->dup == H_OTHER) c->dup = c->cur;
        c->cur = H_OTHER;
      } else {
        c->seen[c->cur] = true;
      }
    }
  }
  if (c->cur == H_OTHER) return 0;
  int i = c->cur;
  if (c->value_len[i] + n >= HEADER_VALUE_MAX) {
    if (c->long_hdr == H_OTHER) c->long_hdr = i;
    c->cur = H_OTHER;
    return 0;
  }
  memcpy(c->values[i] + c->value_len[i], at, n);
  c->value_len[i] += n;
  c->values[i][c->value_len[i]] = '\0';
  return 0;
}

static int on_headers_complete(http_parser *p) {
  struct conn *c = conn_of(p);
  struct lr_http_server *s = c->srv;
  if (c->too_big || c->dup != H_OTHER || c->long_hdr != H_OTHER) {
    char msg[64];
    if (c->too_big)
      snprintf(msg, sizeof msg, "request headers too large");
    else if (c->dup != H_OTHER)
      snprintf(msg, sizeof msg, "duplicate %s header", lr__http_hdr_names[c->dup]);
    else
      snprintf(msg, sizeof msg, "%s header value too long", lr__http_hdr_names[c->long_hdr]);
    s->stats.bad_requests++;
    lr__http_refuse(c, 400, "bad_request", msg);
    return -1;
  }
  bool chunked = (p->flags & F_CHUNKED) != 0;
  if (p->content_length != ULLONG_MAX && p->content_length > s->o.max_body) {
    s->stats.too_large++;
    lr__http_refuse(c, 413, "too_large", "request body larger than the limit");
    return -1;
  }
  bool body = chunked || (p->content_length != ULLONG_MAX && p->content_length > 0);
  if (body) {
    lr__http_arm(c, T_BODY, s->o.body_timeout_ms);
    if (c->seen[H_EXPECT] && strcasecmp(c->values[H_EXPECT], "100-continue") == 0 &&
        p->http_major == 1 && p->http_minor >= 1) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      if (lr__http_put(c, cont, sizeof cont - 1) < 0) return -1;
    }
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = conn_of(p);
  if (c->body_len + n > c->srv->o.max_body) {
    c->srv->stats.too_large++;
    lr__http_refuse(c, 413, "too_large", "request body larger than the limit");
    return -1;
  }
  if (append(&c->body, &c->body_len, &c->body_cap, at, n)) return -1;
  return 0;
}

void lr__http_dispatch(struct conn *c) {
  struct lr_http_server *s = c->srv;
  char *url = c->url && c->url_len ? c->url : "/";
  char *q = strchr(url, '?');
  const char *query = "";
  if (q) {
    *q = '\0';
    query = q + 1;
  }
  const char *subject = c->tls ? lr_tls_peer_subject(c->tls) : "";
  struct lr_http_request req = {
      .id = ((uint64_t)c->gen << 32) | c->slot,
      .method = http_method_str(c->parser.method),
      .path = url,
      .query = query,
      .body = c->body ? c->body : "",
      .body_len = c->body_len,
      .content_type = c->seen[H_CONTENT_TYPE] ? c->values[H_CONTENT_TYPE] : NULL,
      .client_id = c->seen[H_CLIENT_ID] ? c->values[H_CLIENT_ID] : NULL,
      .seq = c->seen[H_SEQ] ? c->values[H_SEQ] : NULL,
      .authorization = c->seen[H_AUTHORIZATION] ? c->values[H_AUTHORIZATION] : NULL,
      .peer_cert = subject[0] ? subject : NULL,
  };
  s->stats.requests++;
  s->handler(s->data, &req);
}

static int on_message_complete(http_parser *p) {
  struct conn *c = conn_of(p);
  /* an upgrade (or CONNECT) is not served: the connection ends after the reply */
  c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
  c->state = CONN_WAITING;
  lr__http_disarm(c);
  http_parser_pause(p, 1); /* one request at a time: the rest waits */
  return 0;
}

const http_parser_settings lr__http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
