/* Outputs: the message, read and error arrays a node fills while it handles
 * inputs, and raft_update_take, which hands them out in the order of the
 * host protocol (raft.h): hard state and entries to persist, messages that
 * may go now, messages that wait for durability, entries to apply.
 *
 * Messages that carry log entries or snapshot chunks record only an index
 * range while they wait; the pointers are resolved in raft_update_take, so a
 * compaction or truncation between creation and take can never leave a
 * dangling pointer (such a message is dropped instead: Raft tolerates lost
 * messages). */
#include <string.h>

#include "raft_int.h"

static void *grow(void *p, uint32_t *cap, uint32_t need, size_t size) {
  if (need <= *cap) {
    return p;
  }
  uint32_t c = *cap ? *cap * 2 : 16;
  while (c < need) {
    c *= 2;
  }
  void *q = raft_realloc(p, (size_t)c * size);
  if (q != NULL) {
    *cap = c;
  }
  return q;
}

struct raft_message *raft__send(struct raft *r, int type, raft_id to, bool after) {
  struct raft__msgs *q = after ? &r->after : &r->msgs;
  struct raft_message *m = grow(q->m, &q->cap, q->n + 1, sizeof *m);
  if (m == NULL) {
    return NULL; /* UNTESTED: a lost message; the protocol retries */
  }
  q->m = m;
  m = &q->m[q->n++];
  memset(m, 0, sizeof *m);
  m->type = (uint8_t)type;
  m->from = r->o.id;
  m->to = to;
  m->term = r->term;
  return m;
}

int raft__push_read(struct raft *r, uint64_t ctx, raft_index index, int err) {
  struct raft_read_state *a = grow(r->reads, &r->cap_reads, r->n_reads + 1, sizeof *a);
  if (a == NULL) {
    return RAFT_ENOMEM;
  }
  r->reads = a;
  a[r->n_reads++] = (struct raft_read_state){ctx, index, err};
  return 0;
}

int raft__push_perr(struct raft *r, uint64_t ctx, int err) {
  struct raft_proposal_error *a = grow(r->perrs, &r->cap_perrs, r->n_perrs + 1, sizeof *a);
  if (a == NULL) {
    return RAFT_ENOMEM;
  }
  r->perrs = a;
  a[r->n_perrs++] = (struct raft_proposal_error){ctx, err};
  return 0;
}

/* Called first by every input: what the previous update handed out dies. */
void raft__begin(struct raft *r, uint64_t now) {
  if (now > r->now) {
    r->now = now;
  }
  if (!r->taken) {
    return;
  }
  r->taken = false;
  r->msgs.n = 0;
  r->after.n = 0;
  r->n_reads = 0;
  r->n_perrs = 0;
  for (uint32_t i = 0; i < r->n_bufs; i++) {
    raft_free(r->bufs[i]);
  }
  r->n_bufs = 0;
  if (r->installed_out) {
    raft_config_free(&r->installed.meta.config);
    raft_free((void *)r->installed.data);
    memset(&r->installed, 0, sizeof r->installed);
    r->installed_out = false;
  }
}

static bool resolve(struct raft *r, struct raft_message *m) {
  if (m->type == RAFT_MSG_APPEND) {
    const struct raft__log *l = &r->log;
    raft_index last = m->index + m->n_entries;
    if (m->index < l->offset || last > raft__log_last(l) ||
        raft__log_term(l, m->index) != m->log_term) {
      return false;
    }
    if (m->n_entries > 0) {
      m->entries = raft__log_get(l, m->index + 1);
      if (raft__log_term(l, last) > m->term) {
        return false;
      }
    }
  } else if (m->type == RAFT_MSG_SNAPSHOT) {
    if (!r->has_snap || r->snap.meta.index != m->snap.index || r->snap.meta.term != m->snap.term) {
      return false;
    }
    m->snap.config = r->snap.meta.config;
    m->chunk = m->chunk_len ? r->snap.data + m->offset : NULL;
  }
  return true;
}

static void resolve_all(struct raft *r, struct raft__msgs *q) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < q->n; i++) {
    if (resolve(r, &q->m[i])) {
      q->m[k++] = q->m[i];
    }
  }
  q->n = k;
}

static void flush(struct raft *r) {
  if (r->role == RAFT_LEADER) {
    if (r->bcast_pending) {
      raft__bcast_append(r);
    }
    if (r->hb_pending) {
      raft__bcast_heartbeat(r);
    }
  }
  r->bcast_pending = false;
  r->hb_pending = false;
}

static raft_index emit_to(const struct raft *r) {
  return r->commit < r->persisted ? r->commit : r->persisted;
}

bool raft_has_update(const struct raft *r) {
  bool out = !r->taken && (r->msgs.n > 0 || r->after.n > 0 || r->n_reads > 0 || r->n_perrs > 0);
  return out || r->hs_dirty || r->unstable_from != 0 || r->installed_pending || r->soft_dirty ||
         r->conf_dirty || emit_to(r) > r->emitted ||
         (r->role == RAFT_LEADER && (r->bcast_pending || r->hb_pending));
}

static void take_log(struct raft *r, struct raft_update *u) {
  raft_index last = raft__log_last(&r->log);
  if (r->unstable_from != 0 && r->unstable_from <= r->log.offset) {
    r->unstable_from = r->log.offset + 1; /* covered by an installed snapshot */
  }
  if (r->unstable_from != 0 && r->unstable_from <= last) {
    u->entries = raft__log_get(&r->log, r->unstable_from);
    u->n_entries = (uint32_t)(last - r->unstable_from + 1);
  }
  r->unstable_from = 0;
  if (r->installed_pending) {
    u->snapshot = &r->installed;
    r->installed_pending = false;
    r->installed_out = true;
  }
  if (u->hard_state || u->n_entries > 0 || u->snapshot != NULL) {
    u->ack_index = last;
    u->ack_term = raft__log_last_term(&r->log);
  }
  raft_index to = emit_to(r);
  if (to > r->emitted) {
    RAFT_ASSERT(r->emitted >= r->log.offset);
    u->committed = raft__log_get(&r->log, r->emitted + 1);
    u->n_committed = (uint32_t)(to - r->emitted);
    r->emitted = to;
  }
}

void raft_update_take(struct raft *r, struct raft_update *u) {
  raft__begin(r, r->now);
  flush(r);
  memset(u, 0, sizeof *u);
  if (r->hs_dirty) {
    u->hard_state = true;
    u->term = r->term;
    u->vote = r->vote;
    r->hs_dirty = false;
  }
  take_log(r, u);
  resolve_all(r, &r->msgs);
  resolve_all(r, &r->after);
  u->msgs = r->msgs.m;
  u->n_msgs = r->msgs.n;
  u->msgs_after = r->after.m;
  u->n_msgs_after = r->after.n;
  u->reads = r->reads;
  u->n_reads = r->n_reads;
  u->prop_errors = r->perrs;
  u->n_prop_errors = r->n_perrs;
  u->soft_state = r->soft_dirty;
  u->role = r->role;
  u->leader = r->leader;
  r->soft_dirty = false;
  u->config_changed = r->conf_dirty;
  u->config = &r->config;
  r->conf_dirty = false;
  u->commit = r->commit;
  r->taken = true;
  raft__check(r);
}
