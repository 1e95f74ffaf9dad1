/* One simulated node: its durable storage and the host protocol of
 * core/raft.h, enforced here and only here:
 *
 *   take the update -> copy every message out of it at once
 *   -> `msgs` go to the network now
 *   -> hard state, entries and snapshot become one pending write that is
 *      durable after the virtual disk latency; the update's `msgs_after` wait
 *      on it (with nothing to write they wait on the last pending write, or
 *      go now if there is none)
 *   -> at durability: storage changes, the held messages go out, then
 *      raft_persisted(last index, last term of that write); a received
 *      snapshot is restored into a fresh state machine at that point
 *   -> `committed` entries are applied as the update brings them (the core
 *      never lets them run ahead of the durable log).
 *
 * A crash throws away the pending writes and their held messages, the core
 * and the Lua state; a restart boots the core from what is durable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

static void snap_free(struct lr__sim_snap *sn) {
  raft_config_free(&sn->meta.config);
  raft_free(sn->data);
  memset(sn, 0, sizeof *sn);
}

static void write_free(struct lr__sim_write *w) {
  lr__sim_blk_unref(w->blk);
  if (w->has_snap) snap_free(&w->snap);
  for (uint32_t i = 0; i < w->n_after; i++) lr__sim_msg_free(w->after[i]);
  raft_free(w->after);
  raft_free(w);
}

/* Drops durable log entries with index >= from. */
static void log_truncate(struct lr__sim_node *n, raft_index from) {
  while (n->log_n > 0 && n->log[n->log_n - 1].e.index >= from) {
    n->log_n--;
    lr__sim_blk_unref(n->log[n->log_n].blk);
  }
}

/* Drops durable log entries with index <= upto. */
static void log_compact(struct lr__sim_node *n, raft_index upto) {
  size_t k = 0;
  while (k < n->log_n && n->log[k].e.index <= upto) lr__sim_blk_unref(n->log[k++].blk);
  memmove(n->log, n->log + k, (n->log_n - k) * sizeof *n->log);
  n->log_n -= k;
}

static struct lr__sim_slog *log_at(struct lr__sim_node *n, raft_index index) {
  if (n->log_n == 0 || index < n->log[0].e.index) return NULL;
  size_t k = (size_t)(index - n->log[0].e.index);
  return k < n->log_n ? &n->log[k] : NULL;
}

static int log_append(struct lr_sim *s, uint32_t slot, const struct raft_entry *e,
                      struct lr__sim_blk *blk) {
  struct lr__sim_node *n = &s->nodes[slot];
  if (n->log_n == n->log_cap) {
    size_t cap = n->log_cap ? n->log_cap * 2 : 256;
    struct lr__sim_slog *l = raft_realloc(n->log, cap * sizeof *l);
    if (l == NULL) return -1; /* UNTESTED */
    n->log = l;
    n->log_cap = cap;
  }
  uint64_t prev;
  if (n->log_n > 0)
    prev = n->log[n->log_n - 1].e.index + 1 == e->index ? n->log[n->log_n - 1].chain : 0;
  else if (n->has_snap)
    prev = n->snap.meta.index + 1 == e->index ? n->snap.chain : 0;
  else
    prev = e->index == 1 ? 1 : 0;
  if (prev == 0 && !s->o.no_checks)
    lr__sim_violation(s, "n%llu: log gap: entry %llu does not follow the durable log",
                  (unsigned long long)n->id, (unsigned long long)e->index);
  struct lr__sim_slog *l = &n->log[n->log_n++];
  l->e = *e;
  l->blk = blk;
  blk->refs++;
  l->chain = s->o.no_checks ? 1 : lr__sim_check_persist(s, slot, prev, e);
  return 0;
}

void lr__sim_node_free_storage(struct lr__sim_node *n) {
  log_truncate(n, 0);
  raft_free(n->log);
  n->log = NULL;
  n->log_n = n->log_cap = 0;
  if (n->has_snap) snap_free(&n->snap);
  n->has_snap = false;
}

int lr__sim_idxq_push(struct lr__sim_node *n, raft_index index, raft_term term, uint64_t id) {
  if (n->idxq_head + n->idxq_n == n->idxq_cap) {
    if (n->idxq_head > 0) {
      memmove(n->idxq, n->idxq + n->idxq_head, n->idxq_n * sizeof *n->idxq);
      n->idxq_head = 0;
    } else {
      size_t cap = n->idxq_cap ? n->idxq_cap * 2 : 64;
      struct lr__sim_idx *q = raft_realloc(n->idxq, cap * sizeof *q);
      if (q == NULL) return -1; /* UNTESTED */
      n->idxq = q;
      n->idxq_cap = cap;
    }
  }
  n->idxq[n->idxq_head + n->idxq_n++] = (struct lr__sim_idx){index, term, id};
  return 0;
}

int lr__sim_reads_push(struct lr__sim_node *n, uint64_t id) {
  if (n->reads_n == n->reads_cap) {
    size_t cap = n->reads_cap ? n->reads_cap * 2 : 16;
    uint64_t *r = raft_realloc(n->reads, cap * sizeof *r);
    if (r == NULL) return -1; /* UNTESTED */
    n->reads = r;
    n->reads_cap = cap;
  }
  n->reads[n->reads_n++] = id;
  return 0;
}

/* ---- applying ------------------------------------------------------------ */
void lr__sim_node_query(struct lr_sim *s, uint32_t slot, uint64_t id) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct lr__sim_waiter *w = lr__sim_waiter_get(s, id);
  if (w == NULL || w->kind != W_READ) return;
  if (w->consistency == LR_SIM_BARRIER) {
    lr__sim_complete(s, id, NULL, NULL, 0, w->index, 0, 0);
    return;
  }
  struct lr_sm_result res;
  lr_sm_query(n->sm, w->q, w->qlen, &res);
  lr__sim_complete(s, id, res.status == LR_SM_OK ? NULL : lr_sm_code(res.status), res.data,
               res.len, w->index, 0, 0);
}

static void serve_reads(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  raft_index applied = lr_sm_applied_index(n->sm);
  size_t k = 0;
  for (size_t i = 0; i < n->reads_n; i++) {
    struct lr__sim_waiter *w = lr__sim_waiter_get(s, n->reads[i]);
    if (w == NULL) continue;
    if (w->index <= applied)
      lr__sim_node_query(s, slot, n->reads[i]);
    else
      n->reads[k++] = n->reads[i];
  }
  n->reads_n = k;
}

/* Waiters that expect an entry at an index this node now applied: a change
 * completes when its entry applies; a proposal whose index got another entry
 * was dropped (its own entry completes it first through the envelope). */
static void settle_index(struct lr_sim *s, struct lr__sim_node *n, const struct raft_entry *e) {
  while (n->idxq_n > 0 && n->idxq[n->idxq_head].index <= e->index) {
    struct lr__sim_idx x = n->idxq[n->idxq_head];
    n->idxq_head++;
    n->idxq_n--;
    struct lr__sim_waiter *w = lr__sim_waiter_get(s, x.id);
    if (w == NULL) continue;
    if (x.index == e->index && x.term == e->term && w->kind == W_CHANGE)
      lr__sim_complete(s, x.id, NULL, NULL, 0, e->index, e->term, 0);
    else if (x.index == e->index)
      lr__sim_complete(s, x.id, "dropped", "the entry was replaced by another leader's", 41,
                   e->index, e->term, 0);
    /* x.index < e->index: this node skipped it (snapshot); leave it to time out */
  }
  if (n->idxq_n == 0) n->idxq_head = 0;
}

static void apply_entry(struct lr_sim *s, uint32_t slot, const struct raft_entry *e) {
  struct lr__sim_node *n = &s->nodes[slot];
  if (lr_sm_halted(n->sm)) return; /* a halted node applies nothing more */
  raft_index applied = lr_sm_applied_index(n->sm);
  if (e->index != applied + 1) {
    lr__sim_violation(s, "n%llu: committed entry %llu does not follow applied index %llu",
                  (unsigned long long)n->id, (unsigned long long)e->index,
                  (unsigned long long)applied);
    if (e->index <= applied) return;
  }
  if (!s->o.no_checks) lr__sim_check_applied(s, slot, e);
  if (e->type == RAFT_ENTRY_CONFIG) {
    struct raft_config c;
    if (raft_config_decode(e->data, e->len, &c) == 0) {
      raft_config_free(&n->applied_cfg);
      n->applied_cfg = c;
      n->applied_cfg_index = e->index;
    }
  }
  struct lr_sm_result res;
  if (lr_sm_apply(n->sm, e, &res) != 0)
    lr__sim_violation(s, "n%llu: state machine runner out of memory", (unsigned long long)n->id);
  if (res.status == LR_SM_HALTED) return; /* not applied; drain reacts */
  s->applied_total++;
  if ((res.status <= LR_SM_BAD_REQUEST || res.status == LR_SM_TOO_LARGE) && res.env.origin == n->id) {
    struct lr__sim_waiter *w = lr__sim_waiter_get(s, res.env.req);
    if (w != NULL && w->kind == W_PROPOSE && w->slot == slot && w->inc == n->inc)
      lr__sim_complete(s, res.env.req, res.status == LR_SM_OK ? NULL : lr_sm_code(res.status),
                   res.data, res.len, e->index, e->term, 0);
  }
  if (n->idxq_n > 0) settle_index(s, n, e);
  if (n->reads_n > 0) serve_reads(s, slot);
  if (e->index - n->last_snap_index >= s->o.snapshot_entries && lr_sm_can_snapshot(n->sm))
    n->want_snapshot = true;
}

/* ---- updates ------------------------------------------------------------- */
static struct lr__sim_write *make_write(struct lr_sim *s, struct lr__sim_node *n,
                                    const struct raft_update *u) {
  struct lr__sim_write *w = raft_malloc(sizeof *w);
  if (w == NULL) abort(); /* UNTESTED */
  memset(w, 0, sizeof *w);
  w->hard = u->hard_state;
  w->term = u->term;
  w->vote = u->vote;
  if (u->n_entries > 0) {
    size_t size = sizeof(struct lr__sim_blk) + (size_t)u->n_entries * sizeof(struct raft_entry);
    for (uint32_t i = 0; i < u->n_entries; i++) size += u->entries[i].len;
    w->blk = raft_malloc(size);
    if (w->blk == NULL) abort(); /* UNTESTED */
    w->blk->refs = 1;
    w->entries = (struct raft_entry *)w->blk->data;
    char *p = w->blk->data + (size_t)u->n_entries * sizeof(struct raft_entry);
    for (uint32_t i = 0; i < u->n_entries; i++) {
      w->entries[i] = u->entries[i];
      w->entries[i].data = (uint8_t *)p;
      if (u->entries[i].len) memcpy(p, u->entries[i].data, u->entries[i].len);
      p += u->entries[i].len;
    }
    w->n_entries = u->n_entries;
  }
  if (u->snapshot != NULL) {
    w->has_snap = true;
    w->snap.meta = u->snapshot->meta;
    memset(&w->snap.meta.config, 0, sizeof w->snap.meta.config);
    if (raft_config_copy(&u->snapshot->meta.config, &w->snap.meta.config) != 0) abort();
    w->snap.len = u->snapshot->len;
    w->snap.data = raft_malloc(w->snap.len ? w->snap.len : 1);
    if (w->snap.data == NULL) abort(); /* UNTESTED */
    if (w->snap.len) memcpy(w->snap.data, u->snapshot->data, w->snap.len);
  }
  uint64_t t = s->now + lr__sim_rand_range(s, s->o.disk_lo, s->o.disk_hi);
  if (t < n->last_durable_at) t = n->last_durable_at; /* writes finish in order */
  n->last_durable_at = t;
  w->durable_at = t;
  if (n->wq_tail) n->wq_tail->next = w; else n->wq = w;
  n->wq_tail = w;
  struct lr__sim_ev ev = {.time = t, .type = EV_DISK, .slot = (uint32_t)(n - s->nodes), .inc = n->inc};
  lr__sim_push_event(s, &ev);
  return w;
}

static void hold_after(struct lr__sim_write *w, const struct raft_update *u) {
  uint32_t k = w->n_after + u->n_msgs_after;
  struct lr__sim_msg **a = raft_realloc(w->after, k * sizeof *a);
  if (a == NULL) abort(); /* UNTESTED */
  w->after = a;
  for (uint32_t i = 0; i < u->n_msgs_after; i++) {
    a[w->n_after] = lr__sim_msg_copy(&u->msgs_after[i]);
    if (a[w->n_after] != NULL) w->n_after++; /* UNTESTED: else lost */
  }
}

static void trace_config(struct lr_sim *s, struct lr__sim_node *n, const struct raft_config *c) {
  char line[400];
  size_t off = 0;
  for (uint32_t i = 0; c && i < c->n && off < sizeof line - 32; i++)
    off += (size_t)snprintf(line + off, sizeof line - off, " %llu%s",
                            (unsigned long long)c->members[i].id,
                            c->members[i].role == RAFT_LEARNER ? "L" : "");
  line[off] = 0;
  lr_sim_trace_line(s, "n%llu config%s", (unsigned long long)n->id, line);
}

static void soft_state(struct lr_sim *s, uint32_t slot, const struct raft_update *u) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct raft_status st;
  raft_status(n->r, &st);
  bool became_leader = u->role == RAFT_LEADER && (n->role != RAFT_LEADER || n->cur_term != st.term);
  if (s->o.trace && (u->role != n->role || u->leader != n->leader || st.term != n->cur_term))
    lr_sim_trace_line(s, "n%llu %s term %llu leader %llu", (unsigned long long)n->id,
                      raft_role_name(u->role), (unsigned long long)st.term,
                      (unsigned long long)u->leader);
  n->role = u->role;
  n->leader = u->leader;
  n->cur_term = st.term;
  if (became_leader && !s->o.no_checks) lr__sim_check_leader(s, slot, st.term);
}

static void restore_snapshot(struct lr_sim *s, uint32_t slot, const struct raft_snapshot *sn);

/* Sends `msgs`. A leader's APPEND usually carries entries of the write this
 * update made (they point into the same range of the core's log): it shares
 * that write's block instead of copying the entries. */
static void send_msgs(struct lr_sim *s, uint32_t slot, const struct raft_update *u,
                      const struct lr__sim_write *w) {
  const struct raft_entry *lo = u->entries, *hi = u->entries + u->n_entries;
  for (uint32_t i = 0; i < u->n_msgs; i++) {
    const struct raft_message *m = &u->msgs[i];
    if (w != NULL && w->blk != NULL && m->type == RAFT_MSG_APPEND && m->n_entries > 0 &&
        m->entries >= lo && m->entries + m->n_entries <= hi)
      lr__sim_send_shared(s, slot, m, w->entries + (m->entries - lo), w->blk);
    else
      lr__sim_send(s, slot, m);
  }
}

static void handle_update(struct lr_sim *s, uint32_t slot, const struct raft_update *u) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct lr__sim_write *w = NULL;
  if (u->soft_state) soft_state(s, slot, u);
  else if (u->hard_state) n->cur_term = u->term;
  if (u->hard_state || u->n_entries > 0 || u->snapshot != NULL) {
    w = make_write(s, n, u);
    if (u->n_msgs_after) hold_after(w, u);
  } else if (u->n_msgs_after > 0) {
    if (n->wq_tail != NULL) {
      hold_after(n->wq_tail, u);
    } else {
      for (uint32_t i = 0; i < u->n_msgs_after; i++) lr__sim_send(s, slot, &u->msgs_after[i]);
    }
  }
  send_msgs(s, slot, u, w);
  if (u->commit < n->commit && !s->o.no_checks && u->commit != 0)
    lr__sim_violation(s, "n%llu: commit index went back from %llu to %llu",
                  (unsigned long long)n->id, (unsigned long long)n->commit,
                  (unsigned long long)u->commit);
  if (u->commit > n->commit) n->commit = u->commit;
  if (u->snapshot != NULL) restore_snapshot(s, slot, u->snapshot);
  for (uint32_t i = 0; i < u->n_committed; i++) apply_entry(s, slot, &u->committed[i]);
  for (uint32_t i = 0; i < u->n_reads; i++) {
    const struct raft_read_state *rs = &u->reads[i];
    struct lr__sim_waiter *w = lr__sim_waiter_get(s, rs->ctx);
    if (w == NULL || w->kind != W_READ || w->slot != slot || w->inc != n->inc) continue;
    if (rs->err != 0) {
      lr__sim_complete_err(s, rs->ctx, rs->err, n->leader);
      continue;
    }
    w->index = rs->index;
    if (lr_sm_applied_index(n->sm) >= rs->index)
      lr__sim_node_query(s, slot, rs->ctx);
    else
      lr__sim_reads_push(n, rs->ctx);
  }
  for (uint32_t i = 0; i < u->n_prop_errors; i++) {
    struct lr__sim_waiter *w = lr__sim_waiter_get(s, u->prop_errors[i].context);
    if (w != NULL && w->slot == slot && w->inc == n->inc)
      lr__sim_complete_err(s, u->prop_errors[i].context, u->prop_errors[i].err, n->leader);
  }
  if (u->config_changed && s->o.trace) trace_config(s, n, u->config);
}

static int take_snapshot(struct lr_sim *s, uint32_t slot, char *err, size_t errlen) {
  struct lr__sim_node *n = &s->nodes[slot];
  n->want_snapshot = false;
  raft_index index = lr_sm_applied_index(n->sm);
  if (index <= n->last_snap_index) return 0;
  s->snapbuf.len = 0;
  n->last_snap_index = index; /* also on failure: do not retry every entry */
  if (lr_sm_snapshot(n->sm, &s->snapbuf, err, errlen) != 0) {
    lr__sim_trace(s, "n%llu snapshot failed: %s", (unsigned long long)n->id, err);
    return -1;
  }
  struct lr__sim_slog *at = log_at(n, index);
  struct lr__sim_snap sn = {0};
  sn.meta.index = index;
  sn.meta.term = lr_sm_applied_term(n->sm);
  sn.meta.config_index = n->applied_cfg_index;
  if (raft_config_copy(&n->applied_cfg, &sn.meta.config) != 0) abort(); /* UNTESTED */
  sn.len = s->snapbuf.len;
  sn.data = raft_malloc(sn.len ? sn.len : 1);
  if (sn.data == NULL) abort(); /* UNTESTED */
  memcpy(sn.data, s->snapbuf.data, sn.len);
  sn.chain = at ? at->chain : (n->has_snap && n->snap.meta.index == index ? n->snap.chain : 0);
  int rv = raft_snapshot_taken(n->r, index, s->snapbuf.data, s->snapbuf.len);
  if (rv != 0) {
    snprintf(err, errlen, "snapshot at %llu refused: %s", (unsigned long long)index,
             raft_strerror(rv));
    lr__sim_trace(s, "n%llu %s", (unsigned long long)n->id, err);
    snap_free(&sn);
    return -1;
  }
  if (n->has_snap) snap_free(&n->snap);
  n->snap = sn;
  n->has_snap = true;
  log_compact(n, index);
  lr__sim_trace(s, "n%llu snapshot taken at %llu", (unsigned long long)n->id,
            (unsigned long long)index);
  return 0;
}

int lr_sim_snapshot_now(struct lr_sim *s, raft_id node, char *err, size_t errlen) {
  lr__sim_flush(s);
  int slot = lr__sim_slot(s, node);
  if (slot < 0 || !s->nodes[slot].up) {
    snprintf(err, errlen, "node %llu is not running", (unsigned long long)node);
    return -1;
  }
  if (!lr_sm_can_snapshot(s->nodes[slot].sm)) {
    snprintf(err, errlen, "the state machine has no snapshot/restore functions");
    return -1;
  }
  int rc = take_snapshot(s, (uint32_t)slot, err, errlen);
  lr__sim_node_drain(s, (uint32_t)slot);
  return rc;
}

/* Proposes this node's digest of the last checkpoint, as a host does: the
 * normal propose path (forwarded to the leader), no waiter. */
static void propose_digest(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  s->envbuf.len = 0;
  if (lr_sm_digest_envelope(n->sm, &s->envbuf) != 0) return;
  raft_index index = 0;
  raft_term term = 0;
  int rv = raft_propose(n->r, s->now, s->envbuf.data, s->envbuf.len, 0, &index, &term);
  if (rv < 0)
    lr__sim_trace(s, "n%llu digest not proposed: %s", (unsigned long long)n->id,
                  raft_strerror(rv));
}

/* The runner halted (memory_max or divergence): requests waiting on this
 * node can no longer complete (they need its apply), so they end with
 * `stopped`; a leader hands leadership on. The node stays in the cluster
 * (it votes and stores the log) until an operator replaces it. */
static void on_halt(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct lr_sm_status st;
  n->halt_handled = true;
  lr_sm_status(n->sm, &st);
  uint64_t *ids = NULL;
  size_t k = 0;
  if (s->w_n > 0) {
    ids = raft_malloc(s->w_n * sizeof *ids);
    if (ids == NULL) abort(); /* UNTESTED */
    for (size_t i = 0; i < s->w_cap; i++)
      if (s->waiters[i].id && s->waiters[i].slot == slot && s->waiters[i].inc == n->inc &&
          s->waiters[i].kind != W_CHANGE)
        ids[k++] = s->waiters[i].id;
  }
  for (size_t i = 1; i < k; i++) /* id order: the trace must not depend on hashing */
    for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
      uint64_t t = ids[j];
      ids[j] = ids[j - 1];
      ids[j - 1] = t;
    }
  for (size_t i = 0; i < k; i++)
    lr__sim_complete(s, ids[i], "stopped", st.reason, strlen(st.reason), 0, 0, 0);
  raft_free(ids);
  n->reads_n = 0;
  if (n->role == RAFT_LEADER) raft_transfer(n->r, s->now, 0);
}

void lr__sim_node_drain(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  n->drain_due = false;
  while (n->up) {
    if (raft_has_update(n->r)) {
      struct raft_update u;
      raft_update_take(n->r, &u);
      handle_update(s, slot, &u);
    } else if (!n->halt_handled && lr_sm_halted(n->sm)) {
      on_halt(s, slot);
    } else if (lr_sm_digest_due(n->sm)) {
      propose_digest(s, slot);
    } else if (n->want_snapshot) {
      char err[256];
      take_snapshot(s, slot, err, sizeof err);
    } else {
      break;
    }
  }
}

void lr__sim_node_tick(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  n->last_tick = s->now;
  raft_tick(n->r, s->now);
  lr__sim_node_drain(s, slot);
}

void lr__sim_node_deliver(struct lr_sim *s, uint32_t slot, struct lr__sim_msg *msg) {
  raft_step(s->nodes[slot].r, s->now, &msg->m);
  lr__sim_node_drain(s, slot);
}

/* A received snapshot: the state machine restores it at once, when the update
 * brings it, because the committed entries the core hands out next follow it
 * (the Lua state is volatile anyway: a crash before the write is durable
 * loses it either way). */
static void restore_snapshot(struct lr_sim *s, uint32_t slot, const struct raft_snapshot *sn) {
  struct lr__sim_node *n = &s->nodes[slot];
  char err[256];
  if (lr_sm_halted(n->sm)) return; /* halted for good: nothing to restore into */
  if (lr_sm_restore(n->sm, sn->data, sn->len, err, sizeof err) != 0) {
    if (lr_sm_halted(n->sm)) return; /* memory_max: the node halts, not a safety issue */
    lr__sim_violation(s, "n%llu: %s", (unsigned long long)n->id, err);
  } else if (lr_sm_applied_index(n->sm) != sn->meta.index) {
    lr__sim_violation(s, "n%llu: snapshot blob index %llu != snapshot index %llu",
                      (unsigned long long)n->id,
                      (unsigned long long)lr_sm_applied_index(n->sm),
                      (unsigned long long)sn->meta.index);
  }
  lr_sm_set_applied(n->sm, sn->meta.index, sn->meta.term);
  lr_sm_set_config(n->sm, &sn->meta.config);
  raft_config_free(&n->applied_cfg);
  raft_config_copy(&sn->meta.config, &n->applied_cfg);
  n->applied_cfg_index = sn->meta.config_index;
  n->last_snap_index = sn->meta.index;
  lr__sim_trace(s, "n%llu snapshot installed at %llu", (unsigned long long)n->id,
                (unsigned long long)sn->meta.index);
}

/* A received snapshot is durable: store it and keep the log suffix only if
 * it continues the snapshot (thesis fig. 5.3 / hashicorp/raft#697). */
static void store_snapshot(struct lr_sim *s, uint32_t slot, struct lr__sim_write *w) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct lr__sim_slog *at = log_at(n, w->snap.meta.index);
  if (at != NULL && at->e.term == w->snap.meta.term)
    log_compact(n, w->snap.meta.index);
  else
    log_truncate(n, 0);
  if (n->has_snap) snap_free(&n->snap);
  n->snap = w->snap;
  n->snap.chain = s->o.no_checks ? 1 : lr__sim_check_chain_of(s, w->snap.meta.index, w->snap.meta.term);
  n->has_snap = true;
  memset(&w->snap, 0, sizeof w->snap);
  w->has_snap = false;
}

void lr__sim_node_durable(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct lr__sim_write *w = n->wq;
  if (w == NULL) return;
  n->wq = w->next;
  if (n->wq == NULL) n->wq_tail = NULL;
  if (w->hard) {
    n->term = w->term;
    n->vote = w->vote;
  }
  raft_index last = 0;
  raft_term last_term = 0;
  if (w->has_snap) {
    last = w->snap.meta.index;
    last_term = w->snap.meta.term;
    store_snapshot(s, slot, w);
  }
  if (w->n_entries > 0) {
    raft_index snap_index = n->has_snap ? n->snap.meta.index : 0;
    log_truncate(n, w->entries[0].index);
    for (uint32_t i = 0; i < w->n_entries; i++)
      if (w->entries[i].index > snap_index) log_append(s, slot, &w->entries[i], w->blk);
    last = w->entries[w->n_entries - 1].index;
    last_term = w->entries[w->n_entries - 1].term;
  }
  for (uint32_t i = 0; i < w->n_after; i++) {
    lr__sim_send_copy(s, slot, w->after[i]);
    w->after[i] = NULL;
  }
  w->n_after = 0;
  write_free(w);
  if (last > 0) raft_persisted(n->r, s->now, last, last_term);
  lr__sim_node_drain(s, slot);
}

/* ---- life ---------------------------------------------------------------- */
/* The runner's loud lines (halts, digest trouble) go to the trace. */
static void sm_log(void *ud, int level, const char *msg) {
  struct lr__sim_node *n = ud;
  (void)level;
  if (n->sim->o.trace) lr_sim_trace_line(n->sim, "n%llu %s", (unsigned long long)n->id, msg);
}

static int bootstrap(struct lr_sim *s, uint32_t slot, char *err, size_t errlen) {
  struct raft_config c = {0};
  struct raft_member m[LR_SIM_NODES_MAX];
  for (uint32_t i = 0; i < s->o.n_nodes; i++)
    m[i] = (struct raft_member){s->o.ids[i], RAFT_VOTER, ""};
  c.members = m;
  c.n = s->o.n_nodes;
  struct raft_entry e;
  int rv = raft_bootstrap_entry(&c, &e);
  if (rv != 0) {
    snprintf(err, errlen, "bootstrap: %s", raft_strerror(rv));
    return -1;
  }
  struct lr__sim_blk *b = raft_malloc(sizeof *b + e.len);
  if (b == NULL) abort(); /* UNTESTED */
  b->refs = 1;
  memcpy(b->data, e.data, e.len);
  struct raft_entry copy = e;
  copy.data = (uint8_t *)b->data;
  log_append(s, slot, &copy, b);
  lr__sim_blk_unref(b);
  raft_entry_free_data(&e);
  return 0;
}

int lr__sim_node_start(struct lr_sim *s, uint32_t slot, bool founding, char *err,
                   size_t errlen) {
  struct lr__sim_node *n = &s->nodes[slot];
  if (founding && bootstrap(s, slot, err, errlen) != 0) return -1;
  struct raft_snapshot snap;
  struct raft_boot boot = {.term = n->term, .vote = n->vote};
  if (n->has_snap) {
    snap.meta = n->snap.meta;
    snap.data = (const uint8_t *)n->snap.data;
    snap.len = n->snap.len;
    boot.snapshot = &snap;
  }
  struct raft_entry *entries = NULL;
  if (n->log_n > 0) {
    entries = raft_malloc(n->log_n * sizeof *entries);
    if (entries == NULL) abort(); /* UNTESTED */
    for (size_t i = 0; i < n->log_n; i++) entries[i] = n->log[i].e;
  }
  boot.entries = entries;
  boot.n_entries = (uint32_t)n->log_n;
  struct raft_options ro = s->o.raft;
  ro.id = n->id;
  ro.seed = lr__sim_rand(s);
  int rv = raft_new(&ro, &boot, s->now, &n->r);
  raft_free(entries);
  if (rv != 0) {
    snprintf(err, errlen, "node %llu: %s", (unsigned long long)n->id, raft_strerror(rv));
    return -1;
  }
  struct lr_sm_options so = s->o.sm;
  so.id = n->id;
  if (slot < LR_SIM_NODES_MAX && s->o.node_memory_max[slot] != 0)
    so.memory_max = s->o.node_memory_max[slot];
  so.log = sm_log;
  so.log_ud = n;
  n->sim = s;
  n->halt_handled = false;
  if (lr_sm_new(&so, &n->sm, err, errlen) != 0) {
    raft_free_node(n->r);
    n->r = NULL;
    return -1;
  }
  memset(&n->applied_cfg, 0, sizeof n->applied_cfg);
  n->applied_cfg_index = 0;
  n->last_snap_index = 0;
  if (n->has_snap) {
    if (lr_sm_restore(n->sm, n->snap.data, n->snap.len, err, errlen) != 0) {
      lr_sm_free(n->sm);
      raft_free_node(n->r);
      n->sm = NULL;
      n->r = NULL;
      return -1;
    }
    lr_sm_set_applied(n->sm, n->snap.meta.index, n->snap.meta.term);
    lr_sm_set_config(n->sm, &n->snap.meta.config);
    raft_config_copy(&n->snap.meta.config, &n->applied_cfg);
    n->applied_cfg_index = n->snap.meta.config_index;
    n->last_snap_index = n->snap.meta.index;
  }
  n->up = true;
  n->role = RAFT_FOLLOWER;
  n->leader = 0;
  n->cur_term = n->term;
  n->commit = 0;
  n->want_snapshot = false;
  lr__sim_node_drain(s, slot);
  return 0;
}

void lr__sim_node_stop(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  /* Every request waiting on this incarnation ends with `stopped`. */
  uint64_t *ids = NULL;
  size_t k = 0;
  if (s->w_n > 0) {
    ids = raft_malloc(s->w_n * sizeof *ids);
    if (ids == NULL) abort(); /* UNTESTED */
    for (size_t i = 0; i < s->w_cap; i++)
      if (s->waiters[i].id && s->waiters[i].slot == slot && s->waiters[i].inc == n->inc)
        ids[k++] = s->waiters[i].id;
  }
  /* in id order, so the trace does not depend on the hash layout */
  for (size_t i = 1; i < k; i++)
    for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
      uint64_t t = ids[j];
      ids[j] = ids[j - 1];
      ids[j - 1] = t;
    }
  for (size_t i = 0; i < k; i++) lr__sim_complete(s, ids[i], "stopped", "the node stopped", 16, 0, 0, 0);
  raft_free(ids);
  while (n->wq != NULL) {
    struct lr__sim_write *w = n->wq;
    n->wq = w->next;
    write_free(w);
  }
  n->wq_tail = NULL;
  n->last_durable_at = 0;
  raft_free_node(n->r);
  lr_sm_free(n->sm);
  n->r = NULL;
  n->sm = NULL;
  raft_free(n->idxq);
  raft_free(n->reads);
  n->idxq = NULL;
  n->reads = NULL;
  n->idxq_head = n->idxq_n = n->idxq_cap = n->reads_n = n->reads_cap = 0;
  raft_config_free(&n->applied_cfg);
  n->up = false;
  n->inc++;
  n->role = 0;
  n->leader = 0;
}
