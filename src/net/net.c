/* The TCP transport (net.h): listener, peers with their outbound
 * connections and backoff, inbound connections and framing. The handshake
 * is net_handshake.c, writes net_send.c. */
#include <assert.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"

__attribute__((format(printf, 3, 4))) void lr__net_logf(struct lr_net *n, int level,
                                                        const char *fmt, ...) {
  if (n->o.cb.log == NULL) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  n->o.cb.log(n->o.data, level, line);
}

uint64_t lr__net_rng_next(struct lr_net *n) {
  return raft_splitmix64(&n->rng);
}

bool lr__net_faulted(const struct lr_net *n, raft_id id) {
  for (size_t i = 0; i < n->n_faults; i++)
    if (n->faults[i] == id) return true;
  return false;
}

struct peer *lr__net_peer_find(const struct lr_net *n, raft_id id) {
  for (struct peer *p = n->peers; p != NULL; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

void lr__net_maybe_finish(struct lr_net *n) {
  if (!n->closing || n->handles > 0) return;
  void (*cb)(void *) = n->close_cb;
  void *data = n->close_data;
  lr_wire_scratch_free(&n->scratch);
  sodium_memzero(n->key, sizeof n->key);
  lr_tls_ctx_free(n->tls);
  raft_free(n);
  if (cb != NULL) cb(data);
}

/* "IP:PORT" or "[IPv6]:PORT" ("localhost" means 127.0.0.1). */
int lr__net_parse_addr(const char *s, struct sockaddr_storage *sa) {
  char host[LR_NET_ADDRESS_MAX + 1];
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s || strlen(s) > LR_NET_ADDRESS_MAX) return RAFT_EADDRESS;
  size_t hl = (size_t)(colon - s);
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535) return RAFT_EADDRESS;
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  memset(sa, 0, sizeof *sa);
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)sa) == 0 ? 0 : RAFT_EADDRESS;
  }
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0 ? 0 : RAFT_EADDRESS;
}

/* ---- connections ------------------------------------------------------------------------- */
static void on_conn_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct lr_net *n = c->net;
  n->handles--;
  if (--c->handles == 0) {
    lr_tls_free(c->tls);
    raft_free(c->cbuf);
    raft_free(c->buf);
    raft_free(c);
  }
  lr__net_maybe_finish(n);
}

static void on_retry(uv_timer_t *t) {
  lr__net_peer_connect(t->data);
}

void lr__net_peer_schedule(struct peer *p) {
  struct lr_net *n = p->net;
  if (n->closing) return;
  uint32_t b = p->backoff;
  uint64_t delay = b / 2 + lr__net_rng_next(n) % (b / 2 + 1);
  p->backoff = b * 2 > n->o.backoff_max_ms ? n->o.backoff_max_ms : b * 2;
  uv_timer_start(&p->retry, on_retry, delay, 0);
}

void lr__net_conn_close(struct conn *c) {
  if (c->closing) return;
  struct lr_net *n = c->net;
  c->closing = true;
  struct peer *p = c->peer;
  if (p != NULL) {
    c->peer = NULL;
    p->conn = NULL;
    if (p->up) {
      p->up = false;
      n->st.peers_up--;
      lr__net_logf(n, RAFT_LOG_INFO, "peer %llu (%s) is down", (unsigned long long)p->id,
                   p->address);
      if (n->o.cb.peer) n->o.cb.peer(n->o.data, p->id, false);
    }
    lr__net_peer_schedule(p);
  }
  if (!c->outbound) {
    for (struct conn **pp = &n->inbound; *pp != NULL; pp = &(*pp)->next)
      if (*pp == c) {
        *pp = c->next;
        break;
      }
  }
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static int conn_new(struct lr_net *n, bool outbound, struct conn **out) {
  struct conn *c = raft_malloc(sizeof *c);
  if (c == NULL) return RAFT_ENOMEM;
  memset(c, 0, sizeof *c);
  c->net = n;
  c->outbound = outbound;
  uv_tcp_init(n->loop, &c->tcp);
  uv_timer_init(n->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  n->handles += 2;
  *out = c;
  return 0;
}

static void on_raft_frame(struct conn *c, const uint8_t *p, size_t len) {
  struct lr_net *n = c->net;
  struct raft_message m;
  int rv = lr_wire_decode(p, len, &m, &n->scratch);
  if (rv == 0 && m.from != c->remote) rv = RAFT_EMALFORMED;
  if (rv != 0) {
    n->st.bad_frames++;
    lr__net_logf(n, RAFT_LOG_WARN, "closing %s (node %llu): bad frame: %s", c->addr,
                 (unsigned long long)c->remote, raft_strerror(rv));
    lr__net_conn_close(c);
    return;
  }
  n->st.frames_received++;
  if (lr__net_faulted(n, m.from)) {
    n->st.frames_dropped_fault++;
    return;
  }
  if (n->o.cb.message) n->o.cb.message(n->o.data, &m);
}

static void on_frame(struct conn *c, uint8_t type, const uint8_t *p, size_t len) {
  switch (c->state) {
  case C_UP:
    on_raft_frame(c, p, len);
    return;
  case C_AWAIT_HELLO:
    lr__net_on_hello_in(c, p, len);
    return;
  case C_AWAIT_AUTH:
    lr__net_on_auth_in(c, p, len);
    return;
  case C_HELLO_SENT:
    lr__net_on_hello_out(c, type, p, len);
    return;
  default:
    return;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct conn *c = h->data;
  if (c->tls != NULL) { /* ciphertext: a fixed buffer, fed to the session at once */
    if (c->cbuf == NULL) c->cbuf = raft_malloc(READ_CHUNK);
    *buf = c->cbuf ? uv_buf_init((char *)c->cbuf, READ_CHUNK) : uv_buf_init(NULL, 0);
    return;
  }
  size_t want = READ_CHUNK;
  if (c->len >= LR_WIRE_HEADER_SIZE) {
    /* A frame header is in: make room for the whole frame (its length was
     * checked against frame_max in on_read). */
    size_t need = LR_WIRE_HEADER_SIZE +
                  (size_t)(c->buf[0] | c->buf[1] << 8 | c->buf[2] << 16 | (size_t)c->buf[3] << 24);
    if (need > c->len && need - c->len > want) want = need - c->len;
  }
  if (c->cap - c->len < want) {
    size_t cap = c->len + want;
    uint8_t *p = raft_realloc(c->buf, cap);
    if (p == NULL) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    c->buf = p;
    c->cap = cap;
  }
  *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* A TLS session failed: log once per who and reason, send the alert the
 * session made (if any), then close. */
void lr__net_tls_failed(struct conn *c, const char *what) {
  struct lr_net *n = c->net;
  n->st.tls_failures++;
  raft_id who = c->outbound && c->peer ? c->peer->id : c->remote;
  char line[400];
  if (c->outbound)
    snprintf(line, sizeof line, "TLS %s with peer %llu (%s) failed: %s", what,
             (unsigned long long)who, c->addr, lr_tls_error(c->tls));
  else
    snprintf(line, sizeof line, "TLS %s with %s failed: %s", what, c->addr, lr_tls_error(c->tls));
  uint64_t repeats;
  char note[96];
  bool repeat = lr__net_quiet(n, lr__net_who_hash(c, who), lr_tls_error(c->tls), &repeats);
  if (c->state != C_UP) n->st.handshake_failures++;
  lr__net_logf(n, repeat ? RAFT_LOG_DEBUG : RAFT_LOG_WARN, "%s%s", line,
               repeat ? "" : lr__net_quiet_note(repeats, note, sizeof note));
  c->state = C_REFUSING;
  uv_timer_stop(&c->timer);
  uv_read_stop((uv_stream_t *)&c->tcp);
  lr__net_tls_flush(c, true);
}

/* TLS: ciphertext in; handshake; plaintext appended to c->buf. */
static void tls_read(struct conn *c, const uint8_t *data, size_t len) {
  if (lr_tls_feed(c->tls, data, len) != 0) {
    lr__net_conn_close(c);
    return;
  }
  if (!lr_tls_established(c->tls)) {
    int rv = lr_tls_handshake(c->tls);
    if (rv == RAFT_ETLSAGAIN) {
      lr__net_tls_flush(c, false);
      return;
    }
    if (rv != 0) {
      lr__net_tls_failed(c, "handshake");
      return;
    }
    lr__net_tls_flush(c, false);
    if (c->closing) return;
    if (c->outbound) {
      lr__net_send_hello(c);
      if (c->closing) return;
    } else {
      c->state = C_AWAIT_HELLO;
    }
  }
  for (;;) {
    if (c->cap - c->len < READ_CHUNK / 4) {
      size_t cap = c->cap ? c->cap * 2 : READ_CHUNK;
      uint8_t *p = raft_realloc(c->buf, cap);
      if (p == NULL) {
        lr__net_conn_close(c); /* UNTESTED */
        return;
      }
      c->buf = p;
      c->cap = cap;
    }
    size_t got = 0;
    int rv = lr_tls_read(c->tls, c->buf + c->len, c->cap - c->len, &got);
    if (rv == RAFT_ETLSCLOSED) {
      lr__net_conn_close(c);
      return;
    }
    if (rv != 0) {
      lr__net_tls_failed(c, c->state == C_UP ? "session" : "handshake");
      return;
    }
    if (got == 0) break;
    c->len += got;
    /* frames as they complete, so a peer cannot make us buffer more than
     * one frame of plaintext (lr__net_process() enforces the frame limit) */
    lr__net_process(c);
    if (c->closing || c->state == C_REFUSING) return;
  }
  lr__net_tls_flush(c, false); /* e.g. a key update the peer asked for */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  struct lr_net *n = c->net;
  if (nread == 0 || c->closing) return;
  if (nread < 0) {
    if (c->state != C_UP && c->state != C_REFUSING && nread == UV_EOF && c->outbound) {
      lr__net_handshake_failed(c, NULL, "peer %llu (%s) closed the connection during the handshake",
                               (unsigned long long)(c->peer ? c->peer->id : 0), c->addr);
      return;
    } else if (nread != UV_EOF) {
      lr__net_logf(n, RAFT_LOG_INFO, "connection %s: %s", c->addr, uv_strerror((int)nread));
    }
    lr__net_conn_close(c);
    return;
  }
  n->st.bytes_received += (uint64_t)nread;
  if (c->tls != NULL) {
    tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
    return;
  }
  c->len += (size_t)nread;
  lr__net_process(c);
}

/* Handles the complete frames in c->buf. */
void lr__net_process(struct conn *c) {
  struct lr_net *n = c->net;
  size_t off = 0;
  while (!c->closing && c->state != C_REFUSING && c->len - off >= LR_WIRE_HEADER_SIZE) {
    struct lr_wire_header h;
    size_t max = c->state == C_UP ? n->o.frame_max : HANDSHAKE_BODY_MAX;
    int rv = lr_wire_header_read(c->buf + off, max, &h);
    if (rv != 0) {
      n->st.bad_frames++;
      if (c->state == C_UP)
        lr__net_logf(n, RAFT_LOG_WARN, "closing %s (node %llu): bad frame: %s", c->addr,
                     (unsigned long long)c->remote, raft_strerror(rv));
      else
        lr__net_handshake_failed(c, NULL, "closing %s: not a luaraft peer (%s)", c->addr,
                                 raft_strerror(rv));
      lr__net_conn_close(c);
      return;
    }
    size_t total = LR_WIRE_HEADER_SIZE + (size_t)h.len;
    if (c->len - off < total) break;
    on_frame(c, h.type, c->buf + off, total);
    off += total;
  }
  if (c->closing) return;
  memmove(c->buf, c->buf + off, c->len - off);
  c->len -= off;
  if (c->cap > 4 * READ_CHUNK && c->len < READ_CHUNK) {
    /* Give back the room a big frame needed. */
    uint8_t *p = raft_realloc(c->buf, READ_CHUNK);
    if (p != NULL) {
      c->buf = p;
      c->cap = READ_CHUNK;
    }
  }
}

void lr__net_conn_start(struct conn *c) {
  struct lr_net *n = c->net;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 10);
  uv_timer_start(&c->timer, lr__net_on_handshake_timeout, n->o.handshake_ms, 0);
  if (n->tls != NULL) {
    if (lr_tls_new(n->tls, c->outbound ? LR_TLS_CLIENT : LR_TLS_SERVER, NULL, &c->tls) != 0) {
      lr__net_conn_close(c); /* UNTESTED: out of memory */
      return;
    }
    c->state = C_TLS;
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) lr__net_conn_close(c);
}

/* ---- outbound --------------------------------------------------------------------------- */
static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  struct lr_net *n = c->net;
  if (c->closing) return;
  if (status < 0) {
    lr__net_logf(n, RAFT_LOG_DEBUG, "connecting to peer %llu (%s): %s",
                 (unsigned long long)(c->peer ? c->peer->id : 0), c->addr, uv_strerror(status));
    lr__net_conn_close(c);
    return;
  }
  lr__net_conn_start(c);
  if (c->closing) return;
  if (c->tls != NULL) { /* the HELLO goes once the TLS handshake is done */
    if (lr_tls_handshake(c->tls) == RAFT_ETLSAGAIN)
      lr__net_tls_flush(c, false);
    else
      lr__net_tls_failed(c, "handshake");
    return;
  }
  lr__net_send_hello(c);
}

void lr__net_peer_connect(struct peer *p) {
  struct lr_net *n = p->net;
  if (n->closing || p->conn != NULL) return;
  struct sockaddr_storage sa;
  if (lr__net_parse_addr(p->address, &sa) != 0) {
    lr__net_logf(n, RAFT_LOG_ERROR, "peer %llu: bad address \"%s\" (want IP:PORT)",
                 (unsigned long long)p->id, p->address);
    lr__net_peer_schedule(p);
    return;
  }
  struct conn *c;
  if (conn_new(n, true, &c) != 0) {
    lr__net_peer_schedule(p); /* UNTESTED */
    return;
  }
  c->peer = p;
  c->state = C_CONNECTING;
  snprintf(c->addr, sizeof c->addr, "%s", p->address);
  p->conn = c;
  c->connect.data = c;
  int rv = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&sa, on_connect);
  if (rv != 0) {
    lr__net_logf(n, RAFT_LOG_DEBUG, "connecting to peer %llu (%s): %s", (unsigned long long)p->id,
                 p->address, uv_strerror(rv));
    lr__net_conn_close(c);
  }
}

static void on_retry_closed(uv_handle_t *h) {
  struct peer *p = h->data;
  struct lr_net *n = p->net;
  n->handles--;
  raft_free(p);
  lr__net_maybe_finish(n);
}

int lr_net_peer_set(struct lr_net *n, raft_id id, const char *address) {
  if (n->closing || id == 0 || address == NULL || strlen(address) > LR_NET_ADDRESS_MAX)
    return RAFT_EINVAL;
  if (id == n->o.id) return 0;
  struct sockaddr_storage sa;
  if (lr__net_parse_addr(address, &sa) != 0) return RAFT_EADDRESS;
  struct peer *p = lr__net_peer_find(n, id);
  if (p != NULL) {
    if (strcmp(p->address, address) == 0) return 0;
    lr__net_logf(n, RAFT_LOG_INFO, "peer %llu moves from %s to %s", (unsigned long long)id,
                 p->address, address);
    snprintf(p->address, sizeof p->address, "%s", address);
    if (p->conn != NULL) lr__net_conn_close(p->conn);
    p->backoff = n->o.backoff_min_ms;
    uv_timer_stop(&p->retry);
    lr__net_peer_connect(p);
    return 0;
  }
  p = raft_malloc(sizeof *p);
  if (p == NULL) return RAFT_ENOMEM;
  memset(p, 0, sizeof *p);
  p->net = n;
  p->id = id;
  snprintf(p->address, sizeof p->address, "%s", address);
  p->backoff = n->o.backoff_min_ms;
  uv_timer_init(n->loop, &p->retry);
  p->retry.data = p;
  n->handles++;
  p->next = n->peers;
  n->peers = p;
  n->st.peers++;
  lr__net_peer_connect(p);
  return 0;
}

int lr_net_peer_remove(struct lr_net *n, raft_id id) {
  struct peer **pp = &n->peers;
  while (*pp != NULL && (*pp)->id != id)
    pp = &(*pp)->next;
  struct peer *p = *pp;
  if (p == NULL) return RAFT_ENOPEER;
  *pp = p->next;
  n->st.peers--;
  if (p->conn != NULL) {
    struct conn *c = p->conn;
    if (p->up) {
      p->up = false;
      n->st.peers_up--;
    }
    c->peer = NULL;
    p->conn = NULL;
    lr__net_conn_close(c);
  }
  for (struct conn *c = n->inbound, *next; c != NULL; c = next) {
    next = c->next;
    if (c->remote == id) lr__net_conn_close(c);
  }
  lr__net_queue_free(p);
  uv_timer_stop(&p->retry);
  uv_close((uv_handle_t *)&p->retry, on_retry_closed);
  return 0;
}

int lr_net_peers_sync(struct lr_net *n, const struct raft_config *c) {
  for (struct peer *p = n->peers, *next; p != NULL; p = next) {
    next = p->next;
    if (raft_config_get(c, p->id) == NULL) lr_net_peer_remove(n, p->id);
  }
  int first = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    int rv = lr_net_peer_set(n, c->members[i].id, c->members[i].address);
    if (rv != 0 && first == 0) first = rv;
  }
  return first;
}

bool lr_net_peer_up(const struct lr_net *n, raft_id id) {
  const struct peer *p = lr__net_peer_find(n, id);
  return p != NULL && p->up;
}

/* ---- inbound ------------------------------------------------------------------------------ */
static void on_connection(uv_stream_t *server, int status) {
  struct lr_net *n = server->data;
  if (status < 0 || n->closing) return;
  struct conn *c;
  if (conn_new(n, false, &c) != 0) return; /* UNTESTED: the connection waits in the backlog */
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    lr__net_conn_close(c);
    return;
  }
  struct sockaddr_storage sa;
  int len = sizeof sa;
  char ip[64] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
    if (sa.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
  }
  snprintf(c->addr, sizeof c->addr, "%s:%d", ip, port);
  c->state = C_AWAIT_HELLO; /* C_TLS first with TLS (conn_start) */
  c->next = n->inbound;
  n->inbound = c;
  lr__net_conn_start(c);
}

/* ---- start / close ------------------------------------------------------------------------- */
int lr_net_start(const struct lr_net_options *o, struct lr_net **out, char *err, size_t errlen) {
  *out = NULL;
  if (o->loop == NULL || o->id == 0 || o->listen == NULL) {
    snprintf(err, errlen, "transport: loop, id and listen address are required");
    return RAFT_EINVAL;
  }
  /* A peer that closes while we write to it (a refusal, a TLS alert) must
   * not kill the process: writes then fail with EPIPE instead. Only when
   * nobody chose a disposition (luaraft's main ignores it already; raft.so
   * inside another program may not). */
  struct sigaction pipe;
  if (sigaction(SIGPIPE, NULL, &pipe) == 0 && pipe.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) {
    snprintf(err, errlen, "transport: libsodium failed to initialize"); /* UNTESTED */
    return RAFT_EINVAL;
  }
  struct sockaddr_storage sa;
  if (lr__net_parse_addr(o->listen, &sa) != 0) {
    snprintf(err, errlen, "transport: bad listen address \"%s\" (want IP:PORT)", o->listen);
    return RAFT_EADDRESS;
  }
  struct lr_net *n = raft_malloc(sizeof *n);
  if (n == NULL) return RAFT_ENOMEM;
  memset(n, 0, sizeof *n);
  n->loop = o->loop;
  n->o = *o;
  n->o.listen = NULL;
  n->o.secret = NULL;
  n->o.advertise = NULL;
  if (!n->o.backoff_min_ms) n->o.backoff_min_ms = LR_NET_BACKOFF_MIN_DEFAULT;
  if (!n->o.backoff_max_ms) n->o.backoff_max_ms = LR_NET_BACKOFF_MAX_DEFAULT;
  if (n->o.backoff_max_ms < n->o.backoff_min_ms) n->o.backoff_max_ms = n->o.backoff_min_ms;
  if (!n->o.handshake_ms) n->o.handshake_ms = LR_NET_HANDSHAKE_MS_DEFAULT;
  if (!n->o.frame_max) n->o.frame_max = LR_WIRE_FRAME_MAX_DEFAULT;
  if (!n->o.queue_bytes_max) n->o.queue_bytes_max = LR_NET_QUEUE_BYTES_DEFAULT;
  if (!n->o.queue_frames_max) n->o.queue_frames_max = LR_NET_QUEUE_FRAMES_DEFAULT;
  n->rng = o->seed;
  if (o->tls_cert != NULL || o->tls_key != NULL || o->tls_ca != NULL) {
    if (o->tls_cert == NULL || o->tls_key == NULL || o->tls_ca == NULL) {
      snprintf(err, errlen, "transport: TLS needs a certificate, its key and the CA");
      raft_free(n);
      return RAFT_EINVAL;
    }
    struct lr_tls_ctx_options to = {o->tls_cert, o->tls_key, o->tls_ca, true};
    if (lr_tls_ctx_new(&to, &n->tls, err, errlen) != 0) {
      raft_free(n);
      return RAFT_EINVAL;
    }
  }
  n->o.tls_cert = n->o.tls_key = n->o.tls_ca = NULL;
  if (o->secret != NULL && o->secret_len > 0) {
    n->auth = true;
    crypto_generichash(n->key, sizeof n->key, o->secret, o->secret_len, NULL, 0);
  }
  uv_tcp_init(n->loop, &n->listener);
  n->listener.data = n;
  n->handles = 1;
  int rv = uv_tcp_bind(&n->listener, (struct sockaddr *)&sa, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&n->listener, 128, on_connection);
  if (rv != 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", o->listen, uv_strerror(rv));
    lr_net_close(n, NULL, NULL);
    return RAFT_ELISTEN;
  }
  struct sockaddr_storage name;
  int len = sizeof name;
  uv_tcp_getsockname(&n->listener, (struct sockaddr *)&name, &len);
  n->port = ntohs(name.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&name)->sin6_port
                                             : ((struct sockaddr_in *)&name)->sin_port);
  if (o->advertise != NULL) {
    snprintf(n->self_addr, sizeof n->self_addr, "%s", o->advertise);
  } else { /* the listen address, with the port it got */
    const char *colon = strrchr(o->listen, ':');
    snprintf(n->self_addr, sizeof n->self_addr, "%.*s:%d", (int)(colon - o->listen), o->listen,
             n->port);
  }
  *out = n;
  return 0;
}

int lr_net_port(const struct lr_net *n) {
  return n->port;
}

static void on_listener_closed(uv_handle_t *h) {
  struct lr_net *n = h->data;
  n->handles--;
  lr__net_maybe_finish(n);
}

void lr_net_close(struct lr_net *n, void (*cb)(void *data), void *data) {
  if (n->closing) return;
  n->closing = true;
  n->close_cb = cb;
  n->close_data = data;
  n->handles++; /* held until everything below is started */
  uv_close((uv_handle_t *)&n->listener, on_listener_closed);
  while (n->peers != NULL)
    lr_net_peer_remove(n, n->peers->id);
  while (n->inbound != NULL)
    lr__net_conn_close(n->inbound);
  n->handles--;
  lr__net_maybe_finish(n);
}

int lr_net_set_faults(struct lr_net *n, const raft_id *ids, size_t count) {
  if (!n->o.allow_faults) return RAFT_ENOFAULTS;
  if (count > LR_NET_FAULTS_MAX) return RAFT_EINVAL;
  for (size_t i = 0; i < count; i++)
    n->faults[i] = ids[i];
  n->n_faults = count;
  /* A partition also breaks the connections it cuts, like a real one: what
   * was in flight on them is lost, and they are dialled again (and carry
   * nothing) until healed. */
  for (size_t i = 0; i < count; i++) {
    struct peer *p = lr__net_peer_find(n, ids[i]);
    if (p != NULL && p->conn != NULL) lr__net_conn_close(p->conn);
    for (struct conn *c = n->inbound, *next; c != NULL; c = next) {
      next = c->next;
      if (c->remote == ids[i]) lr__net_conn_close(c);
    }
  }
  return 0;
}

void lr_net_stats(const struct lr_net *n, struct lr_net_stats *out) {
  *out = n->st;
}

uint64_t lr_net_cluster_id(const struct lr_net *n) {
  return n->o.cluster_id;
}
