/* The peer handshake (net.h): HELLO and AUTH both ways, with the HMAC
 * challenge-response when the cluster has a secret, the cluster id, version
 * and address checks, and refusals logged once per peer and reason. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"

/* ---- handshake ------------------------------------------------------------------------ */
/* The dialer's advertised address is covered too: a listener adds an
 * unknown (authenticated) dialer as a peer at that address. */
void lr__net_mac(const struct lr_net *n, const struct conn *c, char side, raft_id dialer,
                 raft_id listener, const char *dialer_addr, uint8_t out[LR_WIRE_MAC]) {
  crypto_auth_hmacsha256_state st;
  uint8_t ids[24];
  for (int i = 0; i < 8; i++) {
    ids[i] = (uint8_t)(dialer >> (8 * i));
    ids[8 + i] = (uint8_t)(listener >> (8 * i));
    ids[16 + i] = (uint8_t)(c->cluster >> (8 * i));
  }
  char label[10] = "luaraft-";
  label[8] = side;
  crypto_auth_hmacsha256_init(&st, n->key, sizeof n->key);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, 9);
  crypto_auth_hmacsha256_update(&st, c->nonce_c, LR_WIRE_NONCE);
  crypto_auth_hmacsha256_update(&st, c->nonce_s, LR_WIRE_NONCE);
  crypto_auth_hmacsha256_update(&st, ids, sizeof ids);
  uint8_t alen = (uint8_t)strlen(dialer_addr); /* at most 255 */
  crypto_auth_hmacsha256_update(&st, &alen, 1);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)dialer_addr, alen);
  crypto_auth_hmacsha256_final(&st, out);
}

/* Who is on the other end, for repetition: the node id once known, else
 * the remote IP (without the port, which changes with every dial). */
uint64_t lr__net_who_hash(const struct conn *c, raft_id id) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  if (id != 0) {
    h ^= id;
    return h * 1099511628211ull;
  }
  const char *colon = strrchr(c->addr, ':');
  size_t len = colon ? (size_t)(colon - c->addr) : strlen(c->addr);
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)c->addr[i]) * 1099511628211ull;
  return h;
}

/* True when (who, reason) was logged at warn level within the last
 * QUIET_REMIND_MS; records it otherwise (with the repeats since, in
 * *repeats). Keyed by the peer and the reason's text, not cleared by a
 * successful handshake: two nodes of different clusters may share an id. */
bool lr__net_quiet(struct lr_net *n, uint64_t who, const char *reason, uint64_t *repeats) {
  uint64_t h = 1469598103934665603ull, now = uv_now(n->loop);
  for (const char *p = reason; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h |= 1; /* 0 marks a free slot */
  *repeats = 0;
  for (uint32_t i = 0; i < QUIET_MAX; i++)
    if (n->quiet[i].reason == h && n->quiet[i].who == who) {
      if (now - n->quiet[i].logged_ms < QUIET_REMIND_MS) {
        n->quiet[i].repeats++;
        return true;
      }
      *repeats = n->quiet[i].repeats;
      n->quiet[i].repeats = 0;
      n->quiet[i].logged_ms = now;
      return false;
    }
  uint32_t slot = n->quiet_next++ % QUIET_MAX;
  n->quiet[slot].who = who;
  n->quiet[slot].reason = h;
  n->quiet[slot].logged_ms = now;
  n->quiet[slot].repeats = 0;
  return false;
}

/* The suffix of a warn line about a refusal. */
const char *lr__net_quiet_note(uint64_t repeats, char *buf, size_t len) {
  if (repeats == 0) return " (repeats of this are logged at debug level)";
  snprintf(buf, len, " (again: %llu times since the last warning; repeats at debug level)",
           (unsigned long long)repeats);
  return buf;
}

/* Logs (once per who and reason, then at debug level), counts, and refuses
 * (listener side, with `refuse` sent as the reason) or closes. */
void lr__net_handshake_failed(struct conn *c, const char *refuse, const char *fmt, ...) {
  struct lr_net *n = c->net;
  char line[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  n->st.handshake_failures++;
  /* the line names the ephemeral port of an inbound connection: key on the
   * reason's text after the address instead */
  const char *reason = refuse != NULL ? refuse : line;
  if (c->addr[0] != '\0' && strstr(line, c->addr) != NULL && refuse == NULL)
    reason = strstr(line, c->addr) + strlen(c->addr);
  raft_id who = c->outbound && c->peer ? c->peer->id : c->remote;
  uint64_t repeats;
  char note[96];
  bool repeat = lr__net_quiet(n, lr__net_who_hash(c, who), reason, &repeats);
  lr__net_logf(n, repeat ? RAFT_LOG_DEBUG : RAFT_LOG_WARN, "%s%s", line,
               repeat ? "" : lr__net_quiet_note(repeats, note, sizeof note));
  if (refuse != NULL && !c->outbound) {
    struct lr_wire_buf b = {0};
    if (lr_wire_refuse_encode(refuse, &b) == 0) {
      c->state = C_REFUSING;
      uv_timer_stop(&c->timer);
      uv_read_stop((uv_stream_t *)&c->tcp);
      lr__net_write_raw(c, &b, true);
      return;
    }
    lr_wire_buf_free(&b);
  }
  lr__net_conn_close(c);
}

void lr__net_on_handshake_timeout(uv_timer_t *t) {
  struct conn *c = t->data;
  lr__net_handshake_failed(c, NULL, "handshake with %s timed out", c->addr);
}

/* Checks the fields every HELLO must have right; NULL when fine. A cluster
 * mismatch is written into buf, naming both ids. */
static const char *hello_problem(const struct lr_net *n, const struct lr_wire_hello *h, char *buf,
                                 size_t buflen) {
  if (h->magic != LR_WIRE_MAGIC) return "not a luaraft peer (bad magic)";
  if (h->proto != LR_WIRE_PROTO) return "unsupported protocol version";
  bool learning = n->o.cluster_id == 0 && n->o.learn_cluster && h->cluster_id != 0;
  if (h->cluster_id == 0 && n->o.cluster_id != 0) {
    snprintf(buf, buflen,
             "node %llu has no cluster id yet (a joining node learns cluster %016llx when a "
             "member that added it contacts it)",
             (unsigned long long)h->from, (unsigned long long)n->o.cluster_id);
    return buf;
  }
  if (h->cluster_id != n->o.cluster_id && !learning) {
    snprintf(buf, buflen,
             "cluster id mismatch: node %llu is in cluster %016llx, node %llu in cluster %016llx",
             (unsigned long long)n->o.id, (unsigned long long)n->o.cluster_id,
             (unsigned long long)h->from, (unsigned long long)h->cluster_id);
    return buf;
  }
  if ((h->flags & LR_WIRE_HELLO_AUTH) && !n->auth)
    return "the peer uses a secret and this node has none";
  if (!(h->flags & LR_WIRE_HELLO_AUTH) && n->auth)
    return "the peer has no secret and this node requires one";
  return NULL;
}

void lr__net_conn_up(struct conn *c) {
  struct lr_net *n = c->net;
  if (c->cluster != n->o.cluster_id) {
    if (n->o.cluster_id != 0) { /* learned from another connection meanwhile */
      lr__net_handshake_failed(c, NULL,
                               "closing %s (node %llu): cluster id mismatch: this node is in "
                               "cluster %016llx, it in cluster %016llx",
                               c->addr, (unsigned long long)c->remote,
                               (unsigned long long)n->o.cluster_id, (unsigned long long)c->cluster);
      return;
    }
    if (n->o.cb.cluster != NULL && !n->o.cb.cluster(n->o.data, c->cluster, c->remote)) {
      lr__net_handshake_failed(
          c, NULL, "closing %s (node %llu): could not record cluster id %016llx", c->addr,
          (unsigned long long)c->remote, (unsigned long long)c->cluster);
      return;
    }
    n->o.cluster_id = c->cluster;
    lr__net_logf(n, RAFT_LOG_INFO, "learned cluster id %016llx from node %llu",
                 (unsigned long long)c->cluster, (unsigned long long)c->remote);
  }
  c->state = C_UP;
  uv_timer_stop(&c->timer);
  if (c->outbound) {
    struct peer *p = c->peer;
    n->st.connects++;
    n->st.peers_up++;
    p->up = true;
    p->backoff = n->o.backoff_min_ms;
    lr__net_logf(n, RAFT_LOG_INFO, "peer %llu (%s) is up", (unsigned long long)p->id, p->address);
    if (n->o.cb.peer) n->o.cb.peer(n->o.data, p->id, true);
    if (c->peer != NULL) /* the callback may have removed it */
      lr__net_peer_flush(c->peer);
  } else {
    n->st.accepts++;
    lr__net_logf(n, RAFT_LOG_INFO, "peer %llu connected from %s", (unsigned long long)c->remote,
                 c->addr);
    if (c->learn && lr__net_peer_find(n, c->remote) == NULL) {
      /* A node we did not know (one joining with --join, added by the
       * leader before our configuration says so): answer it at the address
       * it advertised. The next configuration change syncs peers again. */
      c->learn = false;
      if (lr_net_peer_set(n, c->remote, c->advertised) == 0) {
        n->st.peers_learned++;
        lr__net_logf(n, RAFT_LOG_INFO,
                     "node %llu is not a known peer: added it at its advertised "
                     "address %s",
                     (unsigned long long)c->remote, c->advertised);
      }
    }
  }
}

/* A hello (either direction) from this node to `to`, with our nonce and
 * the cluster this connection is for; the caller adds the MAC. */
static void hello_fill(struct conn *c, struct lr_wire_hello *h, raft_id to,
                       const uint8_t nonce[LR_WIRE_NONCE]) {
  struct lr_net *n = c->net;
  memset(h, 0, sizeof *h);
  h->magic = LR_WIRE_MAGIC;
  h->proto = LR_WIRE_PROTO;
  h->flags = n->auth ? LR_WIRE_HELLO_AUTH : 0;
  h->cluster_id = c->cluster;
  h->from = n->o.id;
  h->to = to;
  memcpy(h->nonce, nonce, LR_WIRE_NONCE);
  snprintf(h->addr, sizeof h->addr, "%s", n->self_addr);
}

/* Encodes and queues a hello; an encoding failure closes the connection.
 * -> 0, or -1 when the connection was closed. */
static int hello_send(struct conn *c, const struct lr_wire_hello *h) {
  struct lr_wire_buf b = {0};
  if (lr_wire_hello_encode(h, &b) != 0) {
    lr_wire_buf_free(&b);
    lr__net_conn_close(c);
    return -1;
  }
  lr__net_write_raw(c, &b, false);
  return 0;
}

/* Listener side: the dialer's HELLO. */
void lr__net_on_hello_in(struct conn *c, const uint8_t *p, size_t len) {
  struct lr_net *n = c->net;
  struct lr_wire_hello h, r;
  if (lr_wire_hello_decode(p, len, &h) != 0) {
    n->st.bad_frames++;
    lr__net_handshake_failed(c, "malformed hello", "refused %s: malformed hello", c->addr);
    return;
  }
  char mismatch[LR_WIRE_REASON_MAX + 1];
  const char *why = hello_problem(n, &h, mismatch, sizeof mismatch);
  c->remote = h.from; /* for the log's repetition key; checked below */
  if (why == NULL && h.to != n->o.id) why = "wrong node id (the address belongs to another node)";
  if (why == NULL && h.from == n->o.id) why = "the dialer has this node's id";
  struct sockaddr_storage sa;
  bool unknown = why == NULL && lr__net_peer_find(n, h.from) == NULL;
  if (unknown && (h.addr[0] == '\0' || lr__net_parse_addr(h.addr, &sa) != 0))
    why = "unknown node id (and no address to answer it at)";
  char learn_why[LR_WIRE_REASON_MAX + 1] = "unknown node id";
  if (why == NULL && unknown && n->o.cb.learn != NULL &&
      !n->o.cb.learn(n->o.data, h.from, learn_why, sizeof learn_why))
    why = learn_why;
  if (why != NULL) {
    lr__net_handshake_failed(c, why, "refused %s (node %llu): %s", c->addr,
                             (unsigned long long)h.from, why);
    return;
  }
  c->remote = h.from;
  c->learn = unknown;
  c->cluster = n->o.cluster_id != 0 ? n->o.cluster_id : h.cluster_id;
  snprintf(c->advertised, sizeof c->advertised, "%s", h.addr);
  memcpy(c->nonce_c, h.nonce, LR_WIRE_NONCE);
  randombytes_buf(c->nonce_s, LR_WIRE_NONCE);
  hello_fill(c, &r, h.from, c->nonce_s);
  if (n->auth) lr__net_mac(n, c, 's', h.from, n->o.id, c->advertised, r.mac);
  if (hello_send(c, &r) != 0) return;
  if (c->closing) return;
  if (n->auth)
    c->state = C_AWAIT_AUTH;
  else
    lr__net_conn_up(c);
}

/* Listener side: the dialer's proof. */
void lr__net_on_auth_in(struct conn *c, const uint8_t *p, size_t len) {
  struct lr_net *n = c->net;
  uint8_t got[LR_WIRE_MAC], want[LR_WIRE_MAC];
  if (lr_wire_auth_decode(p, len, got) != 0) {
    n->st.bad_frames++;
    lr__net_handshake_failed(c, "malformed auth", "refused %s (node %llu): malformed auth", c->addr,
                             (unsigned long long)c->remote);
    return;
  }
  lr__net_mac(n, c, 'c', c->remote, n->o.id, c->advertised, want);
  if (crypto_verify_32(got, want) != 0) {
    lr__net_handshake_failed(c, "authentication failed",
                             "refused %s (node %llu): authentication failed"
                             " (wrong secret?)",
                             c->addr, (unsigned long long)c->remote);
    return;
  }
  lr__net_conn_up(c);
}

/* Dialer side: the listener's HELLO or REFUSE. */
void lr__net_on_hello_out(struct conn *c, uint8_t type, const uint8_t *p, size_t len) {
  struct lr_net *n = c->net;
  struct peer *pe = c->peer;
  raft_id pid = pe ? pe->id : 0;
  if (type == LR_WIRE_REFUSE) {
    char reason[LR_WIRE_REASON_MAX + 1] = "?";
    lr_wire_refuse_decode(p, len, reason);
    lr__net_handshake_failed(c, NULL, "peer %llu (%s) refused us: %s", (unsigned long long)pid,
                             c->addr, reason);
    if (n->o.cb.refused != NULL && pid != 0) n->o.cb.refused(n->o.data, pid, reason);
    return;
  }
  struct lr_wire_hello h;
  if (type != LR_WIRE_HELLO || lr_wire_hello_decode(p, len, &h) != 0) {
    n->st.bad_frames++;
    lr__net_handshake_failed(c, NULL, "peer %llu (%s) sent a malformed hello",
                             (unsigned long long)pid, c->addr);
    return;
  }
  char mismatch[LR_WIRE_REASON_MAX + 1];
  const char *why = hello_problem(n, &h, mismatch, sizeof mismatch);
  if (why == NULL && (h.from != pid || h.to != n->o.id))
    why = "the address answers as another node";
  if (why != NULL) {
    lr__net_handshake_failed(c, NULL, "peer %llu (%s): %s (it says node %llu)",
                             (unsigned long long)pid, c->addr, why, (unsigned long long)h.from);
    return;
  }
  c->remote = pid;
  if (c->cluster == 0) c->cluster = h.cluster_id; /* a learning node's first peer */
  memcpy(c->nonce_s, h.nonce, LR_WIRE_NONCE);
  if (n->auth) {
    uint8_t want[LR_WIRE_MAC], mine[LR_WIRE_MAC];
    lr__net_mac(n, c, 's', n->o.id, pid, n->self_addr, want);
    if (crypto_verify_32(h.mac, want) != 0) {
      lr__net_handshake_failed(c, NULL, "peer %llu (%s) failed authentication (wrong secret?)",
                               (unsigned long long)pid, c->addr);
      return;
    }
    lr__net_mac(n, c, 'c', n->o.id, pid, n->self_addr, mine);
    struct lr_wire_buf b = {0};
    if (lr_wire_auth_encode(mine, &b) != 0) {
      lr_wire_buf_free(&b);
      lr__net_conn_close(c);
      return;
    }
    lr__net_write_raw(c, &b, false);
    if (c->closing) return;
  }
  lr__net_conn_up(c);
}

/* Dialer: the first luaraft frame. */
void lr__net_send_hello(struct conn *c) {
  struct lr_net *n = c->net;
  struct lr_wire_hello h;
  c->cluster = n->o.cluster_id;
  randombytes_buf(c->nonce_c, LR_WIRE_NONCE);
  hello_fill(c, &h, c->peer->id, c->nonce_c);
  c->state = C_HELLO_SENT;
  hello_send(c, &h);
}
