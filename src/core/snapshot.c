/* Snapshots (thesis chapter 5): compaction behind a snapshot the host took,
 * sending it in chunks to a follower that is too far behind (one chunk in
 * flight, resumable from the offset the follower reports), and installing
 * one received from the leader. */
#include <string.h>

#include "raft_int.h"

bool raft__snap_meta_valid(const struct raft_snapshot_meta *m) {
  return m->index > 0 && m->term > 0 && m->config_index <= m->index &&
         m->config.n <= RAFT__CONFIG_MAX && (m->config.n == 0 || m->config.members != NULL);
}

void raft__snapshot_free(struct raft *r) {
  if (r->has_snap) {
    raft_config_free(&r->snap.meta.config);
    raft_free(r->snap_data);
  }
  memset(&r->snap, 0, sizeof r->snap);
  r->snap_data = NULL;
  r->has_snap = false;
}

/* Keeps a copy of s as the snapshot this node serves. */
static int snapshot_set(struct raft *r, const struct raft_snapshot *s, bool own) {
  struct raft_config c;
  int rv = raft_config_copy(&s->meta.config, &c);
  if (rv != 0) return rv;
  uint8_t *d = own ? (uint8_t *)s->data : raft_malloc(s->len);
  if (d == NULL && !own) {
    raft_config_free(&c);
    return RAFT_ENOMEM;
  }
  if (!own && s->len) memcpy(d, s->data, s->len);
  raft__snapshot_free(r);
  r->snap.meta = s->meta;
  r->snap.meta.config = c;
  r->snap.data = d;
  r->snap.len = s->len;
  r->snap_data = d;
  r->has_snap = true;
  return 0;
}

int raft__snapshot_set(struct raft *r, const struct raft_snapshot *s) {
  return snapshot_set(r, s, false);
}

int raft__snapshot_adopt(struct raft *r, const struct raft_snapshot *s) {
  return snapshot_set(r, s, true);
}

/* Thesis 5.1: the host snapshots its state machine at an applied index; the
 * core keeps snapshot_trailing entries behind it so slightly slow followers
 * still catch up from the log instead of a whole snapshot. */
static int taken(struct raft *r, raft_index index, const void *data, size_t len, bool own) {
  raft__begin(r, r->now);
  if (index == 0 || index > r->emitted || (len > 0 && data == NULL)) {
    return RAFT_EINVAL;
  }
  if (r->has_snap && index <= r->snap.meta.index) {
    if (own) raft_free((void *)data); /* a newer one is kept */
    return 0;
  }
  if (index <= r->log.offset) {
    return RAFT_EINVAL; /* its term is gone */
  }
  struct raft_snapshot s = {{index, raft__log_term(&r->log, index), {NULL, 0}, 0}, data, len};
  int rv = raft__config_at(r, index, &s.meta.config, &s.meta.config_index);
  if (rv != 0) return rv;
  rv = snapshot_set(r, &s, own);
  raft_config_free(&s.meta.config);
  if (rv != 0) return rv;
  raft_index upto = index > r->o.snapshot_trailing ? index - r->o.snapshot_trailing : 0;
  if (upto > r->log.offset) {
    raft__config_on_compact(r, upto);
    raft__log_compact(&r->log, upto);
  }
  raft__check(r);
  return 0;
}

int raft_snapshot_taken(struct raft *r, raft_index index, const void *data, size_t len) {
  return taken(r, index, data, len, false);
}

int raft_snapshot_taken_own(struct raft *r, raft_index index, void *data, size_t len) {
  return taken(r, index, data, len, true);
}

/* Thesis 5.3 InstallSnapshot, one chunk at a time: the next chunk goes only
 * when the previous one is acknowledged. */
void raft__send_snapshot(struct raft *r, struct raft__progress *p) {
  if (!r->has_snap) {
    return; /* UNTESTED: a compacted log always has a snapshot */
  }
  if (p->state != RAFT_PROGRESS_SNAPSHOT || p->snap_index != r->snap.meta.index) {
    p->state = RAFT_PROGRESS_SNAPSHOT;
    p->snap_index = r->snap.meta.index;
    p->snap_offset = 0;
    p->snap_inflight = false;
    raft__infl_clear(p);
  }
  if (p->snap_inflight) {
    return;
  }
  uint64_t total = r->snap.len, off = p->snap_offset;
  uint64_t len = total - off < r->o.snapshot_chunk_bytes ? total - off : r->o.snapshot_chunk_bytes;
  struct raft_message *m = raft__send(r, RAFT_MSG_SNAPSHOT, p->id, false);
  if (m == NULL) return;
  m->snap = r->snap.meta; /* config and chunk resolved in raft_update_take */
  m->offset = off;
  m->total = total;
  m->chunk_len = (uint32_t)len;
  m->done = off + len == total;
  m->commit = r->commit;
  p->snap_inflight = true;
  p->snap_sent_at = r->now;
}

void raft__recv_snapshot_resp(struct raft *r, const struct raft_message *m) {
  struct raft__progress *p = raft__progress_get(r, m->from);
  if (r->role != RAFT_LEADER || p == NULL || p->state != RAFT_PROGRESS_SNAPSHOT ||
      m->index != p->snap_index || !r->has_snap || r->snap.meta.index != p->snap_index) {
    return;
  }
  raft__progress_heard(r, p);
  p->snap_inflight = false;
  if (m->done && !m->reject && m->offset == r->snap.len) {
    if (m->index > p->match) p->match = m->index;
    raft__progress_probe(p, p->match + 1);
    raft__maybe_commit(r);
    raft__send_append(r, p, true);
    return;
  }
  p->snap_offset = m->offset <= r->snap.len ? m->offset : 0;
  raft__send_snapshot(r, p);
}

static void in_reset(struct raft *r) {
  raft_free(r->in.buf);
  raft_config_free(&r->in.meta.config);
  memset(&r->in, 0, sizeof r->in);
}

static void respond(struct raft *r, const struct raft_message *m, uint64_t offset, bool reject,
                    bool done) {
  /* the final acknowledgement waits until the snapshot is durable */
  struct raft_message *resp = raft__send(r, RAFT_MSG_SNAPSHOT_RESP, m->from, done);
  if (resp == NULL) return;
  resp->index = m->snap.index;
  resp->offset = offset;
  resp->total = m->total;
  resp->reject = reject;
  resp->done = done;
}

static int in_start(struct raft *r, const struct raft_message *m) {
  in_reset(r);
  int rv = raft_config_copy(&m->snap.config, &r->in.meta.config);
  if (rv != 0) return rv;
  r->in.meta.index = m->snap.index;
  r->in.meta.term = m->snap.term;
  r->in.meta.config_index = m->snap.config_index;
  r->in.total = m->total;
  r->in.active = true;
  return 0;
}

static int in_add(struct raft *r, const struct raft_message *m) {
  uint64_t need = r->in.have + m->chunk_len;
  if (need > r->in.cap) {
    uint64_t cap = r->in.cap ? r->in.cap : 4096;
    while (cap < need)
      cap *= 2;
    if (cap > r->in.total) cap = r->in.total;
    if (cap > SIZE_MAX) return RAFT_ENOMEM;
    uint8_t *b = raft_realloc(r->in.buf, (size_t)cap);
    if (b == NULL) return RAFT_ENOMEM;
    r->in.buf = b;
    r->in.cap = cap;
  }
  if (m->chunk_len) memcpy(r->in.buf + r->in.have, m->chunk, m->chunk_len);
  r->in.have = need;
  return 0;
}

/* Thesis 5.3 / Figure 5.3 receiver, step 6-8: "If existing log entry has
 * same index and term as snapshot's last included entry, retain log entries
 * following it"; otherwise "discard the entire log" - including a divergent
 * suffix past the snapshot (hashicorp/raft#697) - and reset the state
 * machine from the snapshot. */
static void install(struct raft *r) {
  struct raft_snapshot_meta *meta = &r->in.meta;
  struct raft_config base;
  if (raft_config_copy(&meta->config, &base) != 0) {
    return; /* UNTESTED: out of memory; the leader resends */
  }
  if (raft__log_term(&r->log, meta->index) == meta->term && meta->index > r->log.offset) {
    raft__log_compact(&r->log, meta->index);
  } else {
    raft__log_reset(&r->log, meta->index, meta->term);
    if (r->persisted > meta->index) r->persisted = meta->index;
    r->unstable_from = 0;
    raft__config_set(r, &meta->config, meta->config_index);
  }
  raft_config_free(&r->base_config);
  r->base_config = base;
  r->base_config_index = meta->config_index;
  if (r->persisted > raft__log_last(&r->log)) r->persisted = raft__log_last(&r->log);
  r->commit = meta->index > r->commit ? meta->index : r->commit;
  r->emitted = meta->index;
  r->installed.meta = *meta;
  r->installed.data = r->in.buf;
  r->installed.len = (size_t)r->in.total;
  r->installed_pending = true;
  raft__snapshot_set(r, &r->installed); /* served if this node leads later */
  memset(&r->in, 0, sizeof r->in);      /* buffer and config moved */
}

void raft__recv_snapshot(struct raft *r, const struct raft_message *m) {
  if (r->role == RAFT_LEADER) {
    r->n_malformed++;
    return;
  }
  if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
    raft__become_follower(r, m->term, m->from);
  }
  r->leader_seen = r->now;
  r->elect_start = r->now;
  if (m->snap.index <= r->commit || r->installed_pending) {
    in_reset(r);
    respond(r, m, m->total, false, true); /* already covered here */
    return;
  }
  if (r->in.active && (r->in.meta.index != m->snap.index || r->in.meta.term != m->snap.term ||
                       r->in.total != m->total)) {
    in_reset(r);
  }
  if (!r->in.active) {
    if (m->offset != 0) {
      respond(r, m, 0, true, false);
      return;
    }
    if (in_start(r, m) != 0) {
      r->n_malformed++;
      in_reset(r);
      return;
    }
  }
  if (m->offset != r->in.have) {
    respond(r, m, r->in.have, true, false); /* resume from what we hold */
    return;
  }
  if (in_add(r, m) != 0) {
    respond(r, m, r->in.have, true, false); /* UNTESTED: out of memory */
    return;
  }
  if (!m->done) {
    respond(r, m, r->in.have, false, false);
    return;
  }
  install(r);
  respond(r, m, m->total, false, true);
}
