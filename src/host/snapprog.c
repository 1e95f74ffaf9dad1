/* Snapshot transfer progress, both ways (issue: long work says how far it
 * got). Every SNAPSHOT chunk this node sends (lr__tr_send) or receives
 * (lr__node_recv) updates one record per (peer, direction): bytes so far,
 * the rate since the transfer started and the time left at that rate. The
 * records feed node:status().snapshot_transfers, /metrics and one log line
 * every LR__SNAP_LOG_MS while a transfer runs, plus one when it completes. */
#include <string.h>

#include "host/host_int.h"

#define LR__SNAP_LOG_MS 2000

static struct lr__snap_xfer *slot(struct lr_node *n, raft_id peer, bool in) {
  struct lr__snap_xfer *free_slot = NULL, *oldest = &n->xfers[0];
  for (int i = 0; i < LR__SNAP_XFERS_MAX; i++) {
    struct lr__snap_xfer *x = &n->xfers[i];
    if (x->peer == peer && x->in == in) return x;
    if (x->peer == 0 && free_slot == NULL) free_slot = x;
    if (x->last_ms < oldest->last_ms) oldest = x;
  }
  return free_slot ? free_slot : oldest; /* more peers than slots: reuse the stalest */
}

static void progress_line(struct lr_node *n, const struct lr__snap_xfer *x, uint64_t now) {
  uint64_t ms = now - x->start_ms;
  double rate = ms ? (double)(x->bytes - x->start_bytes) * 1000.0 / (double)ms : 0;
  double eta = rate > 0 ? (double)(x->total - x->bytes) / rate : 0;
  LR__LOG(n, RAFT_LOG_INFO,
          "snapshot at index %llu %s node %llu: %.0f%% (%llu of %llu bytes), %.1f MB/s, ETA %.1f s",
          (unsigned long long)x->index, x->in ? "from" : "to", (unsigned long long)x->peer,
          x->total ? 100.0 * (double)x->bytes / (double)x->total : 100.0,
          (unsigned long long)x->bytes, (unsigned long long)x->total, rate / 1e6, eta);
}

void lr__snap_progress(struct lr_node *n, const struct raft_message *m, bool in) {
  uint64_t now = lr_now_ms();
  raft_id peer = in ? m->from : m->to;
  struct lr__snap_xfer *x = slot(n, peer, in);
  uint64_t upto = m->offset + m->chunk_len;
  if (in)
    n->snap_bytes_in += m->chunk_len;
  else
    n->snap_bytes_out += m->chunk_len;
  /* a chunk of a transfer that already finished (a retransmission) is no
   * new transfer */
  if (x->peer == peer && x->in == in && x->index == m->snap.index && x->finished) return;
  if (x->peer != peer || x->in != in || x->index != m->snap.index || !x->active) {
    memset(x, 0, sizeof *x);
    x->peer = peer;
    x->in = in;
    x->index = m->snap.index;
    x->start_ms = x->last_log_ms = now;
    x->start_bytes = m->offset; /* a resumed transfer: the rate counts what moves now */
    x->active = true;
  }
  x->total = m->total;
  if (upto > x->bytes) x->bytes = upto;
  x->last_ms = now;
  if (m->done && x->bytes >= x->total) {
    uint64_t ms = now - x->start_ms;
    LR__LOG(n, RAFT_LOG_INFO,
            "snapshot at index %llu %s node %llu: %llu bytes in %.1f s (%.1f MB/s)",
            (unsigned long long)x->index, in ? "received from" : "sent to",
            (unsigned long long)peer, (unsigned long long)x->total, (double)ms / 1000.0,
            ms ? (double)(x->bytes - x->start_bytes) / 1000.0 / (double)ms : 0.0);
    x->active = false;
    x->finished = true;
  } else if (now - x->last_log_ms >= LR__SNAP_LOG_MS) {
    x->last_log_ms = now;
    progress_line(n, x, now);
  }
}

uint32_t lr_node_snapshot_transfers(const struct lr_node *n, struct lr_snapshot_transfer *out,
                                    uint32_t max) {
  uint64_t now = lr_now_ms();
  uint32_t k = 0;
  for (int i = 0; i < LR__SNAP_XFERS_MAX && k < max; i++) {
    const struct lr__snap_xfer *x = &n->xfers[i];
    if (!x->active) continue;
    uint64_t ms = now - x->start_ms;
    double rate = ms ? (double)(x->bytes - x->start_bytes) * 1000.0 / (double)ms : 0;
    out[k++] = (struct lr_snapshot_transfer){
        .peer = x->peer,
        .incoming = x->in,
        .index = x->index,
        .bytes = x->bytes,
        .total = x->total,
        .rate = rate,
        .eta_s = rate > 0 ? (double)(x->total - x->bytes) / rate : -1,
        .idle_ms = now - x->last_ms,
    };
  }
  return k;
}

void lr_node_snapshot_bytes(const struct lr_node *n, uint64_t *out, uint64_t *in) {
  *out = n->snap_bytes_out;
  *in = n->snap_bytes_in;
}
