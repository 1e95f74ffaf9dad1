/* Writing to peers: frames queue per peer while it is down or busy, go out
 * in one uv_write of many buffers (through TLS when on), and a peer whose
 * queue is full drops the newest (Raft retransmits). */
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"

/* ---- writing ------------------------------------------------------------------------------ */
static void on_write(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  struct conn *c = w->c;
  struct lr_net *n = c->net;
  if (w->frames != NULL) {
    c->writing = false;
    c->inflight_bytes -= w->bytes;
    c->inflight_frames -= w->n;
    if (status == 0) {
      n->st.frames_sent += w->n;
      n->st.bytes_sent += w->bytes;
    }
    for (struct frame *f = w->frames, *next; f != NULL; f = next) {
      next = f->next;
      raft_free(f->data);
      raft_free(f);
    }
  } else if (status == 0) {
    n->st.bytes_sent += w->bytes;
  }
  raft_free(w->raw);
  raft_free(w->cipher);
  bool close_after = w->close_after;
  raft_free(w);
  if (status < 0 || close_after) {
    if (status < 0 && status != UV_ECANCELED && !c->closing)
      lr__net_logf(n, RAFT_LOG_INFO, "write to %s failed: %s", c->addr, uv_strerror(status));
    lr__net_conn_close(c);
    return;
  }
  if (c->peer != NULL) lr__net_peer_flush(c->peer);
}

/* Writes w's buffers: as they are, or through the TLS session (encrypted
 * into one buffer that w then owns). Order on the stream is kept because
 * ciphertext is taken and written at once, every time. */
static int conn_write(struct conn *c, struct wreq *w, uv_buf_t *bufs, unsigned nbufs) {
  if (c->tls != NULL) {
    for (unsigned i = 0; i < nbufs; i++)
      if (lr_tls_write(c->tls, bufs[i].base, bufs[i].len) != 0) return -1;
    size_t len = lr_tls_pending(c->tls);
    w->cipher = raft_malloc(len ? len : 1);
    if (w->cipher == NULL) return -1;
    len = lr_tls_take(c->tls, w->cipher, len);
    w->bufs[0] = uv_buf_init((char *)w->cipher, (unsigned)len);
    bufs = w->bufs;
    nbufs = 1;
  }
  return uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write);
}

/* TLS: sends what the session has pending (handshake flights, alerts). */
void lr__net_tls_flush(struct conn *c, bool close_after) {
  size_t len = c->tls ? lr_tls_pending(c->tls) : 0;
  if (len == 0) {
    if (close_after) lr__net_conn_close(c);
    return;
  }
  struct wreq *w = raft_malloc(sizeof *w + sizeof(uv_buf_t));
  uint8_t *cipher = raft_malloc(len);
  if (w == NULL || cipher == NULL) {
    raft_free(w);
    raft_free(cipher);
    lr__net_conn_close(c);
    return;
  }
  memset(w, 0, sizeof *w);
  w->c = c;
  w->cipher = cipher;
  len = lr_tls_take(c->tls, cipher, len);
  w->bytes = len;
  w->close_after = close_after;
  w->bufs[0] = uv_buf_init((char *)cipher, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, 1, on_write) != 0) {
    raft_free(w->cipher);
    raft_free(w);
    lr__net_conn_close(c);
  }
}

/* Writes a handshake frame (owned buffer). */
void lr__net_write_raw(struct conn *c, struct lr_wire_buf *b, bool close_after) {
  struct wreq *w = raft_malloc(sizeof *w + sizeof(uv_buf_t));
  if (w == NULL) {
    lr_wire_buf_free(b);
    lr__net_conn_close(c);
    return;
  }
  memset(w, 0, sizeof *w);
  w->c = c;
  w->raw = b->data;
  w->bytes = b->len;
  w->close_after = close_after;
  w->bufs[0] = uv_buf_init((char *)b->data, (unsigned)b->len);
  b->data = NULL;
  b->len = b->cap = 0;
  if (conn_write(c, w, w->bufs, 1) != 0) {
    raft_free(w->raw);
    raft_free(w->cipher);
    raft_free(w);
    lr__net_conn_close(c);
  }
}

void lr__net_peer_flush(struct peer *p) {
  struct conn *c = p->conn;
  if (c == NULL || c->state != C_UP || c->writing || p->head == NULL) return;
  uint32_t k = p->n_frames > 256 ? 256 : p->n_frames; /* one write, up to 256 frames */
  /* with TLS, one more slot: the ciphertext buffer goes in bufs[0] after
   * the plaintext is encrypted, so the plaintext slots start at 1 */
  unsigned base = c->tls != NULL ? 1 : 0;
  struct wreq *w = raft_malloc(sizeof *w + sizeof(uv_buf_t) * (k + base));
  if (w == NULL) return; /* UNTESTED: retried at the next send */
  memset(w, 0, sizeof *w);
  w->c = c;
  struct frame *f = p->head, *last = NULL;
  for (uint32_t i = 0; i < k; i++, last = f, f = f->next) {
    w->bufs[base + i] = uv_buf_init((char *)f->data, (unsigned)f->len);
    w->bytes += f->len;
  }
  w->frames = p->head;
  w->n = k;
  last->next = NULL;
  p->head = f;
  if (f == NULL) p->tail = NULL;
  p->n_frames -= k;
  p->bytes -= w->bytes;
  c->inflight_bytes += w->bytes;
  c->inflight_frames += k;
  c->writing = true;
  int rv = conn_write(c, w, w->bufs + base, k);
  if (rv != 0) {
    /* UNTESTED: libuv refused the write; the frames are lost (Raft resends). */
    c->writing = false;
    c->inflight_bytes -= w->bytes;
    c->inflight_frames -= k;
    for (struct frame *g = w->frames, *next; g != NULL; g = next) {
      next = g->next;
      raft_free(g->data);
      raft_free(g);
    }
    raft_free(w->cipher);
    raft_free(w);
    lr__net_conn_close(c);
  }
}

void lr__net_queue_free(struct peer *p) {
  for (struct frame *f = p->head, *next; f != NULL; f = next) {
    next = f->next;
    raft_free(f->data);
    raft_free(f);
  }
  p->head = p->tail = NULL;
  p->n_frames = 0;
  p->bytes = 0;
}

int lr_net_send(struct lr_net *n, const struct raft_message *m) {
  if (n->closing) return RAFT_EINVAL;
  if (lr__net_faulted(n, m->to)) {
    n->st.frames_dropped_fault++;
    return RAFT_EFAULT;
  }
  struct peer *p = lr__net_peer_find(n, m->to);
  if (p == NULL) {
    n->st.frames_dropped++;
    return RAFT_ENOPEER;
  }
  struct lr_wire_buf b = {0};
  int rv = lr_wire_encode(m, &b);
  if (rv != 0) {
    lr_wire_buf_free(&b);
    n->st.frames_dropped++;
    return rv == RAFT_ENOMEM ? RAFT_ENOMEM : RAFT_EINVAL;
  }
  if (b.len - LR_WIRE_HEADER_SIZE > n->o.frame_max) {
    lr__net_logf(n, RAFT_LOG_WARN, "dropped a %s to peer %llu: %zu bytes exceed frame_max %u",
                 raft_msg_name(m->type), (unsigned long long)m->to, b.len, n->o.frame_max);
    lr_wire_buf_free(&b);
    n->st.frames_dropped++;
    return RAFT_ETOOBIG;
  }
  uint64_t inflight = p->conn ? p->conn->inflight_bytes : 0;
  uint32_t inflight_n = p->conn ? p->conn->inflight_frames : 0;
  if (p->bytes + inflight + b.len > n->o.queue_bytes_max ||
      p->n_frames + inflight_n + 1 > n->o.queue_frames_max) {
    lr_wire_buf_free(&b);
    n->st.frames_dropped++;
    return RAFT_EQUEUEFULL;
  }
  struct frame *f = raft_malloc(sizeof *f);
  if (f == NULL) {
    lr_wire_buf_free(&b);
    n->st.frames_dropped++;
    return RAFT_ENOMEM;
  }
  f->next = NULL;
  f->data = b.data;
  f->len = b.len;
  if (p->tail)
    p->tail->next = f;
  else
    p->head = f;
  p->tail = f;
  p->n_frames++;
  p->bytes += f->len;
  lr__net_peer_flush(p);
  return 0;
}
