/* Log replication (thesis 3.5, 10.2): batching, pipelining, fast
 * backtracking, commitment, heartbeats and check-quorum (thesis 6.2). */
#include <string.h>

#include "raft_int.h"

#define SMALL 32

int raft__append_local(struct raft *r, uint8_t type, const void *data, uint32_t len) {
  int rv = raft__log_append(&r->log, r->term, type, data, len);
  if (rv != 0) {
    return rv;
  }
  raft_index i = raft__log_last(&r->log);
  raft__mark_unstable(r, i);
  if (type == RAFT_ENTRY_NORMAL) {
    r->uncommitted += len;
  }
  r->bcast_pending = true;
  return 0;
}

/* Sends one APPEND to p from p->next: as many entries as fit in
 * max_append_bytes (at least one). In replicate state `next` moves on at
 * once and the message takes a slot of the in-flight window (thesis 10.2.1
 * pipelining); in probe state one message waits for its answer. Returns
 * whether entries were sent. */
static bool send_one(struct raft *r, struct raft__progress *p, bool empty_ok) {
  if (p->id == r->o.id || p->state == RAFT_PROGRESS_SNAPSHOT ||
      (p->state == RAFT_PROGRESS_PROBE && p->probe_sent) ||
      (p->state == RAFT_PROGRESS_REPLICATE && raft__infl_full(r, p))) {
    return false;
  }
  raft_index prev = p->next - 1;
  raft_index last = raft__log_last(&r->log);
  if (prev < r->log.offset || prev > last) {
    if (prev < r->log.offset) {
      raft__send_snapshot(r, p); /* the entries it needs are compacted */
    }
    return false;
  }
  uint32_t n = 0;
  uint64_t bytes = 0;
  for (raft_index i = p->next; i <= last && n < RAFT__ENTRIES_MAX; i++) {
    uint32_t len = raft__log_get(&r->log, i)->len;
    if (n > 0 && bytes + len > r->o.max_append_bytes) {
      break;
    }
    bytes += len;
    n++;
  }
  /* a probe goes out even empty: its answer tells where the follower is */
  bool probe = p->state == RAFT_PROGRESS_PROBE;
  if (n == 0 && !probe && !(empty_ok && p->commit_sent < r->commit)) {
    return false;
  }
  if (n > 0 && p->state == RAFT_PROGRESS_REPLICATE &&
      raft__infl_add(p, prev + n, r->o.max_inflight_msgs) != 0) {
    return false; /* UNTESTED: out of memory, retried on the next heartbeat */
  }
  struct raft_message *m = raft__send(r, RAFT_MSG_APPEND, p->id, false);
  if (m == NULL) {
    return false;
  }
  m->index = prev;
  m->log_term = raft__log_term(&r->log, prev);
  m->commit = r->commit;
  m->n_entries = n; /* entries are resolved in raft_update_take */
  p->commit_sent = r->commit;
  if (n > 0 && !probe) {
    p->next = prev + n + 1;
  } else if (probe) {
    p->probe_sent = true;
  }
  return n > 0 || probe;
}

void raft__send_append(struct raft *r, struct raft__progress *p, bool empty_ok) {
  bool any = false;
  while (send_one(r, p, false)) {
    any = true;
    if (p->state != RAFT_PROGRESS_REPLICATE) {
      break;
    }
  }
  if (!any && empty_ok) {
    send_one(r, p, true); /* carries only the commit index */
  }
}

void raft__bcast_append(struct raft *r) {
  for (uint32_t i = 0; i < r->n_prs; i++) {
    raft__send_append(r, &r->prs[i], true);
  }
}

/* Thesis 3.4 heartbeats; each broadcast is a ReadIndex round (thesis 6.4)
 * whose send time bounds the lease it can grant (thesis 6.4.1). */
void raft__bcast_heartbeat(struct raft *r) {
  r->round++;
  r->round_time[r->round % RAFT__ROUNDS] = r->now;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    struct raft__progress *p = &r->prs[i];
    if (p->id == r->o.id) {
      continue;
    }
    struct raft_message *m = raft__send(r, RAFT_MSG_HEARTBEAT, p->id, false);
    if (m == NULL) continue;
    m->commit = r->commit < p->match ? r->commit : p->match;
    m->context = r->round;
    /* a removed node told that its removal committed: the round whose
     * answer releases its record */
    if (p->leave_index != 0 && p->leave_round == 0 && m->commit >= p->leave_index) {
      p->leave_round = r->round;
    }
  }
  r->hb_due = r->now + r->o.heartbeat_ms;
}

static void sort_desc(uint64_t *a, uint32_t n) {
  for (uint32_t i = 1; i < n; i++) {
    uint64_t v = a[i];
    uint32_t j = i;
    while (j > 0 && a[j - 1] < v) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = v;
  }
}

/* The value that a quorum of voters has reached: the q-th largest. `self`
 * is what this node contributes when it is a voter. */
static uint64_t quorum_value(const struct raft *r, int what, uint64_t self) {
  uint64_t small[SMALL], *v = small;
  uint32_t n = 0, q = raft__quorum(r);
  if (r->n_prs > SMALL) {
    v = raft_malloc(r->n_prs * sizeof *v);
    if (v == NULL) return 0; /* UNTESTED: treated as "no quorum" */
  }
  for (uint32_t i = 0; i < r->n_prs; i++) {
    const struct raft__progress *p = &r->prs[i];
    if (p->role != RAFT_VOTER) continue;
    uint64_t x = what == 0   ? p->match
                 : what == 1 ? p->last_resp
                 : what == 2 ? p->lease_time
                             : p->acked_round;
    v[n++] = p->id == r->o.id ? self : x;
  }
  uint64_t out = 0;
  if (n >= q && q > 0) {
    sort_desc(v, n);
    out = v[q - 1];
  }
  if (v != small) raft_free(v);
  return out;
}

uint64_t raft__quorum_time(const struct raft *r, bool lease) {
  return quorum_value(r, lease ? 2 : 1, r->now);
}

uint64_t raft__quorum_round(const struct raft *r) {
  return quorum_value(r, 3, UINT64_MAX);
}

static void advance_commit(struct raft *r, raft_index to) {
  for (raft_index i = r->commit + 1; i <= to; i++) {
    const struct raft_entry *e = raft__log_get(&r->log, i);
    if (e != NULL && e->type == RAFT_ENTRY_NORMAL && e->term == r->term) {
      r->uncommitted = r->uncommitted > e->len ? r->uncommitted - e->len : 0;
    }
  }
  r->commit = to;
  r->bcast_pending = true;
  raft__reads_on_commit(r);
  raft__config_on_commit(r);
}

/* Thesis 3.6.2: "Raft never commits log entries from previous terms by
 * counting replicas. Only log entries from the leader's current term are
 * committed by counting replicas". The leader counts itself only up to what
 * its own disk holds (thesis 10.2.1). */
void raft__maybe_commit(struct raft *r) {
  if (r->role != RAFT_LEADER) {
    return;
  }
  raft_index idx = quorum_value(r, 0, r->persisted);
  if (idx > r->commit && raft__log_term(&r->log, idx) == r->term) {
    advance_commit(r, idx);
  }
}

static void reject_append(struct raft *r, const struct raft_message *m) {
  struct raft_message *resp = raft__send(r, RAFT_MSG_APPEND_RESP, m->from, false);
  if (resp == NULL) return;
  resp->reject = true;
  resp->index = m->index;
  raft_index last = raft__log_last(&r->log);
  raft_index i = m->index < last ? m->index : last;
  /* etcd findConflictByTerm: skip every entry of a term above the
   * leader's, they can't match. */
  while (i > r->log.offset && raft__log_term(&r->log, i) > m->log_term) {
    i--;
  }
  resp->hint_index = i;
  resp->hint_term = raft__log_term(&r->log, i);
}

static void truncate_suffix(struct raft *r, raft_index from) {
  RAFT_ASSERT(r->role != RAFT_LEADER); /* a leader never truncates its log */
  RAFT_ASSERT(from > r->commit);
  raft__log_truncate(&r->log, from);
  raft__config_on_truncate(r, from);
  if (r->persisted >= from) r->persisted = from - 1;
  raft__mark_unstable(r, from);
}

/* Appends what m carries after the first entry we do not have; returns the
 * index of the last entry now matching the leader's log, 0 on failure. */
static raft_index append_entries(struct raft *r, const struct raft_message *m) {
  uint32_t k = 0;
  for (; k < m->n_entries; k++) {
    const struct raft_entry *e = &m->entries[k];
    raft_term t = raft__log_term(&r->log, e->index);
    if (t == e->term) continue;
    if (e->index <= r->commit) {
      r->n_malformed++; /* contradicts a committed entry */
      return 0;
    }
    if (t != 0) truncate_suffix(r, e->index);
    break;
  }
  for (; k < m->n_entries; k++) {
    const struct raft_entry *e = &m->entries[k];
    if (raft__log_append(&r->log, e->term, e->type, e->data, e->len) != 0) {
      return 0; /* UNTESTED: out of memory; the leader will retry */
    }
    raft__mark_unstable(r, e->index);
    if (e->type == RAFT_ENTRY_CONFIG) {
      raft__config_apply_entry(r, raft__log_get(&r->log, e->index));
    }
  }
  return m->index + m->n_entries;
}

static void heard_from_leader(struct raft *r, const struct raft_message *m) {
  if (r->role == RAFT_LEADER) {
    return; /* two leaders in a term: impossible unless the message lies */
  }
  if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
    raft__become_follower(r, m->term, m->from);
  }
  r->leader_seen = r->now;
  r->elect_start = r->now;
}

/* Thesis 3.5 / Figure 3.1 AppendEntries receiver: reject when the log has
 * no entry at prevLogIndex with prevLogTerm; delete a conflicting entry and
 * all that follow it; append new entries; commit = min(leaderCommit, index
 * of last new entry). The acknowledgement waits for durability. */
void raft__recv_append(struct raft *r, const struct raft_message *m) {
  if (r->role == RAFT_LEADER) {
    r->n_malformed++;
    return;
  }
  heard_from_leader(r, m);
  raft_index matched;
  if (m->index < r->commit) {
    matched = r->commit; /* already committed here; tell where we are */
  } else if (raft__log_term(&r->log, m->index) != m->log_term) {
    reject_append(r, m);
    return;
  } else {
    matched = append_entries(r, m);
    if (matched == 0) return;
    raft_index c = m->commit < matched ? m->commit : matched;
    if (c > r->commit) r->commit = c;
  }
  struct raft_message *resp = raft__send(r, RAFT_MSG_APPEND_RESP, m->from, true);
  if (resp != NULL) resp->index = matched;
}

/* Fast backtracking (thesis 5.3 note, etcd): from the follower's hint, the
 * last index whose term is at most the hint's term. When that search runs
 * into the snapshot (the leader's first retained index still has a newer
 * term than the follower holds there), no retained entry can match: the
 * answer is the snapshot index itself, so the next send is the snapshot
 * (its prev is compacted). Answering offset + 1 instead made the leader
 * probe the same index forever (soak seed 516192). */
static raft_index next_from_hint(const struct raft *r, const struct raft_message *m) {
  raft_index last = raft__log_last(&r->log);
  raft_index i = m->hint_index < m->index ? m->hint_index : m->index;
  if (i > last) i = last;
  if (m->hint_term > 0) {
    while (i > r->log.offset && raft__log_term(&r->log, i) > m->hint_term) {
      i--;
    }
    if (i == r->log.offset && i > 0 && raft__log_term(&r->log, i) > m->hint_term) {
      return i;
    }
  }
  return i + 1;
}

void raft__recv_append_resp(struct raft *r, const struct raft_message *m) {
  struct raft__progress *p = raft__progress_get(r, m->from);
  if (r->role != RAFT_LEADER || p == NULL || p->id == r->o.id) {
    return;
  }
  raft__progress_heard(r, p);
  if (m->reject) {
    if (m->index <= p->match || (p->state == RAFT_PROGRESS_PROBE && m->index + 1 != p->next) ||
        p->state == RAFT_PROGRESS_SNAPSHOT) {
      return; /* stale */
    }
    raft__progress_probe(p, next_from_hint(r, m));
    raft__send_append(r, p, false);
    return;
  }
  if (m->index > raft__log_last(&r->log)) {
    r->n_malformed++;
    return;
  }
  if (m->index > p->match) p->match = m->index;
  if (p->next <= p->match) p->next = p->match + 1;
  raft__infl_free_to(p, m->index);
  if (p->state == RAFT_PROGRESS_PROBE) {
    raft__progress_replicate(p);
  } else if (p->state == RAFT_PROGRESS_SNAPSHOT && p->match >= p->snap_index) {
    raft__progress_probe(p, p->match + 1);
  }
  raft__maybe_commit(r);
  if (r->role != RAFT_LEADER) return;
  raft__transfer_check(r, p);
  raft__send_append(r, p, false);
}

void raft__recv_heartbeat(struct raft *r, const struct raft_message *m) {
  if (r->role == RAFT_LEADER) {
    r->n_malformed++;
    return;
  }
  heard_from_leader(r, m);
  raft_index last = raft__log_last(&r->log);
  raft_index c = m->commit < last ? m->commit : last;
  if (c > r->commit) r->commit = c;
  struct raft_message *resp = raft__send(r, RAFT_MSG_HEARTBEAT_RESP, m->from, r->hs_dirty);
  if (resp != NULL) resp->context = m->context;
}

void raft__recv_heartbeat_resp(struct raft *r, const struct raft_message *m) {
  struct raft__progress *p = raft__progress_get(r, m->from);
  if (r->role != RAFT_LEADER || p == NULL || p->id == r->o.id) {
    return;
  }
  raft__progress_heard(r, p);
  if (m->context > r->round) {
    r->n_malformed++;
    return;
  }
  if (m->context > p->acked_round) {
    p->acked_round = m->context;
    if (r->round - m->context < RAFT__ROUNDS) {
      uint64_t t = r->round_time[m->context % RAFT__ROUNDS];
      if (t > p->lease_time) p->lease_time = t;
    }
  }
  raft_index last = raft__log_last(&r->log);
  if (p->state == RAFT_PROGRESS_PROBE) {
    p->probe_sent = false;
  } else if (p->state == RAFT_PROGRESS_REPLICATE && p->match < last && p->match == p->hb_match) {
    /* no progress for a whole heartbeat: an APPEND or its answer was lost */
    raft__progress_probe(p, p->match + 1);
  }
  p->hb_match = p->match;
  if (p->match < last) {
    raft__send_append(r, p, false);
  }
  raft__reads_on_ack(r);
  raft__progress_release(r, false);
}

static void refuse(struct raft *r, const struct raft_message *m, int err) {
  struct raft_message *resp = raft__send(r, RAFT_MSG_PROPOSE_RESP, m->from, false);
  if (resp == NULL) return;
  resp->term = 0;
  resp->reject = true;
  resp->context = m->context;
  resp->hint_index = (raft_index)(-err);
}

/* How far back a refusing node looks for an earlier copy of a proposal. */
#define RAFT__DUP_SCAN_MAX 4096

/* True if the log already holds an entry with exactly these bytes. A
 * network may deliver a PROPOSE twice; when this node appended the first
 * copy (as leader) and refuses the second (no longer leader, or busy), a
 * refusal would tell the proposer "not applied" about an entry that may well
 * commit. Proposals carry a unique (origin, request) envelope, so equal
 * bytes mean the same proposal. */
static bool holds_copy(const struct raft *r, const struct raft_entry *e) {
  raft_index last = raft__log_last(&r->log);
  raft_index stop = last > RAFT__DUP_SCAN_MAX ? last - RAFT__DUP_SCAN_MAX : 0;
  for (raft_index i = last; i > stop; i--) {
    const struct raft_entry *x = raft__log_get(&r->log, i);
    if (x == NULL) break; /* compacted */
    if (x->type == RAFT_ENTRY_NORMAL && x->len == e->len &&
        (e->len == 0 || memcmp(x->data, e->data, e->len) == 0)) {
      return true;
    }
  }
  return false;
}

void raft__recv_propose(struct raft *r, const struct raft_message *m) {
  const struct raft_entry *e = &m->entries[0];
  int rv = r->role == RAFT_LEADER ? raft__propose_entry(r, e->data, e->len) : RAFT_ENOTLEADER;
  /* A duplicate of a proposal this node appended: stay silent, the log
   * decides its outcome and the proposer learns it by applying. */
  if (rv != 0 && !holds_copy(r, e)) {
    refuse(r, m, rv);
  }
}

void raft__recv_propose_resp(struct raft *r, const struct raft_message *m) {
  if (!m->reject || m->hint_index == 0 || m->hint_index > 64) {
    r->n_malformed++;
    return;
  }
  raft__push_perr(r, m->context, -(int)m->hint_index);
}

/* Thesis 6.2: "a leader steps down if an election timeout elapses without
 * a successful round of heartbeats to a majority of its cluster". */
bool raft__check_quorum_lost(struct raft *r) {
  return r->o.check_quorum && r->now - raft__quorum_time(r, false) >= r->o.election_ms;
}

void raft__leader_tick(struct raft *r) {
  if (raft__check_quorum_lost(r)) {
    raft__become_follower(r, r->term, 0);
    return;
  }
  if (r->transfer_to != 0 && r->now >= r->transfer_deadline) {
    raft__transfer_abort(r);
  }
  if (r->now >= r->hb_due) {
    raft__bcast_heartbeat(r);
    for (uint32_t i = 0; i < r->n_prs; i++) {
      struct raft__progress *p = &r->prs[i];
      if (p->state == RAFT_PROGRESS_SNAPSHOT && p->snap_inflight &&
          r->now - p->snap_sent_at >= 2 * (uint64_t)r->o.heartbeat_ms) {
        p->snap_inflight = false; /* chunk or answer lost: send again */
        raft__send_snapshot(r, p);
      }
    }
    raft__progress_release(r, false);
  }
}
