/* One simulated node: the simulator's adapter of the driver (src/drive, the
 * same code that runs a real node) and its durable storage.
 *
 *   disk   one batch write in flight, durable at now + the virtual disk
 *          latency; at that point it is applied to the durable storage below
 *          (with the log-matching and log-gap checks) and the driver hears
 *          of it (lr_drive_written). A crash drops what is not yet durable.
 *   net    the simulated network (sim.c): drops, duplicates, delays
 *   clock  the virtual clock; the node is ticked at lr_drive_deadline()
 *   events completions of the simulator's requests, trace lines, safety
 *          checks (one leader per term, leader completeness)
 *
 * A restart boots a fresh core, runner and driver from what is durable.
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

/* ---- durable storage -------------------------------------------------------- */
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
  while (k < n->log_n && n->log[k].e.index <= upto)
    lr__sim_blk_unref(n->log[k++].blk);
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

/* A snapshot is durable (one this node took, or one received): keep the log
 * suffix only if it continues the snapshot (thesis fig. 5.3 /
 * hashicorp/raft#697), as the real stores do. */
static void store_snapshot(struct lr_sim *s, uint32_t slot, const struct lr_store_batch_view *v) {
  struct lr__sim_node *n = &s->nodes[slot];
  const struct raft_snapshot_meta *m = v->snap;
  struct lr__sim_snap sn = {0};
  sn.meta = *m;
  memset(&sn.meta.config, 0, sizeof sn.meta.config);
  if (raft_config_copy(&m->config, &sn.meta.config) != 0) abort(); /* UNTESTED */
  sn.len = v->snap_len;
  sn.data = raft_malloc(sn.len ? sn.len : 1);
  if (sn.data == NULL) abort(); /* UNTESTED */
  if (sn.len) memcpy(sn.data, v->snap_data, sn.len);
  struct lr__sim_slog *at = log_at(n, m->index);
  if (at != NULL && at->e.term == m->term) {
    sn.chain = at->chain;
    log_compact(n, m->index);
  } else {
    if (n->has_snap && n->snap.meta.index == m->index && n->snap.meta.term == m->term)
      sn.chain = n->snap.chain;
    else
      sn.chain = s->o.no_checks ? 1 : lr__sim_check_chain_of(s, m->index, m->term);
    log_truncate(n, 0);
  }
  if (n->has_snap) snap_free(&n->snap);
  n->snap = sn;
  n->has_snap = true;
}

/* The write in flight is durable: what it holds goes to storage, then the
 * driver goes on (held messages, raft_persisted, apply). */
void lr__sim_node_durable(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  struct lr_store_batch *b = n->writing;
  if (b == NULL) return;
  n->writing = NULL;
  if (n->write_fails) { /* nothing of it reaches the disk */
    lr__sim_trace(s, "n%llu write failed", (unsigned long long)n->id);
    lr_drive_written(n->d, RAFT_ESTORAGE, (double)n->write_ms);
    return;
  }
  struct lr_store_batch_view v;
  lr_store_batch_view(b, &v);
  if (v.has_hard) {
    n->term = v.term;
    n->vote = v.vote;
  }
  if (v.snap) store_snapshot(s, slot, &v);
  if (v.n_entries > 0) {
    /* the durable log keeps the batch itself (its entries and bytes), as a
     * disk keeps what was written: no copy */
    struct lr__sim_blk *blk = raft_malloc(sizeof *blk);
    if (blk == NULL) abort(); /* UNTESTED */
    blk->refs = 1;
    blk->batch = b;
    lr_store_batch_hold(b);
    raft_index snap_index = n->has_snap ? n->snap.meta.index : 0;
    log_truncate(n, v.entries[0].index);
    for (uint32_t i = 0; i < v.n_entries; i++)
      if (v.entries[i].index > snap_index) log_append(s, slot, &v.entries[i], blk);
    lr__sim_blk_unref(blk);
  }
  lr_drive_written(n->d, 0, (double)n->write_ms);
}

/* ---- the driver's io -------------------------------------------------------- */
static uint64_t io_now(void *data) {
  struct lr__sim_node *n = data;
  return n->sim->now;
}

static int io_write(void *data, struct lr_store_batch *b) {
  struct lr__sim_node *n = data;
  struct lr_sim *s = n->sim;
  n->writing = b;
  n->write_ms = lr__sim_rand_range(s, s->o.disk_lo, s->o.disk_hi);
  n->write_fails = n->fail_writes > 0;
  if (n->write_fails) n->fail_writes--;
  struct lr__sim_ev ev = {.time = s->now + n->write_ms,
                          .type = EV_DISK,
                          .slot = (uint32_t)(n - s->nodes),
                          .inc = n->inc};
  lr__sim_push_event(s, &ev);
  return 0;
}

/* Snapshots are made at once: virtual time stands still while snapshot()
 * runs, as it did before the real node took them in a forked child. */
static int io_snapshot(void *data, struct lr_sm *sm, struct lr_buf *out, char *err, size_t errlen) {
  (void)data;
  return lr_sm_snapshot(sm, out, err, errlen);
}

static void io_send(void *data, const struct raft_message *m) {
  struct lr__sim_node *n = data;
  lr__sim_send(n->sim, (uint32_t)(n - n->sim->nodes), m, NULL);
}

/* In flight, the message points into the batch that persists its entries,
 * as a real node's send buffer holds them once. */
static void io_send_batch(void *data, const struct raft_message *m, struct lr_store_batch *b) {
  struct lr__sim_node *n = data;
  lr__sim_send(n->sim, (uint32_t)(n - n->sim->nodes), m, b);
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

static void soft_state(struct lr_sim *s, struct lr__sim_node *n, const struct lr_event *ev) {
  uint32_t slot = (uint32_t)(n - s->nodes);
  struct raft_status st;
  raft_status(lr_drive_raft(n->d), &st);
  bool became_leader =
      ev->role == RAFT_LEADER && (n->role != RAFT_LEADER || n->cur_term != st.term);
  if (s->o.trace && (ev->role != n->role || ev->leader != n->leader || st.term != n->cur_term))
    lr_sim_trace_line(s, "n%llu %s term %llu leader %llu", (unsigned long long)n->id,
                      raft_role_name(ev->role), (unsigned long long)st.term,
                      (unsigned long long)ev->leader);
  n->role = ev->role;
  n->leader = ev->leader;
  n->cur_term = st.term;
  if (became_leader && !s->o.no_checks) lr__sim_check_leader(s, slot, st.term);
}

static void io_event(void *data, const struct lr_event *ev) {
  struct lr__sim_node *n = data;
  struct lr_sim *s = n->sim;
  uint32_t slot = (uint32_t)(n - s->nodes);
  switch (ev->type) {
  case LR_EV_DONE:
    lr__sim_complete(s, ev->req, ev->code, ev->data, ev->len, ev->index, ev->term,
                     ev->code ? ev->leader : 0);
    break;
  case LR_EV_FAIL_ALL:
    lr__sim_complete_node(s, slot, false, ev->code, ev->data, ev->len);
    break;
  case LR_EV_STOPPED:
    lr__sim_violation(s, "n%llu: node failed: %.*s", (unsigned long long)n->id, (int)ev->len,
                      ev->data);
    break;
  case LR_EV_STATE:
    soft_state(s, n, ev);
    break;
  case LR_EV_MEMBERS:
    if (s->o.trace) trace_config(s, n, ev->config);
    break;
  case LR_EV_SNAPSHOT:
    lr__sim_trace(s, "n%llu snapshot %s at %llu", (unsigned long long)n->id,
                  ev->restored ? "installed" : "taken", (unsigned long long)ev->index);
    break;
  default:
    break;
  }
}

/* The driver's loud lines (a snapshot that failed, a halt) go to the trace. */
static void io_log(void *data, int level, const char *line) {
  struct lr__sim_node *n = data;
  if (level <= RAFT_LOG_WARN && n->sim->o.trace)
    lr_sim_trace_line(n->sim, "n%llu %s", (unsigned long long)n->id, line);
}

static void io_applying(void *data, const struct raft_entry *e) {
  struct lr__sim_node *n = data;
  struct lr_sim *s = n->sim;
  if (!s->o.no_checks) lr__sim_check_applied(s, (uint32_t)(n - s->nodes), e);
  s->applied_total++;
}

/* ---- life -------------------------------------------------------------------- */
void lr__sim_node_drain(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  n->drain_due = false;
  if (n->up) lr_drive_run(n->d);
}

void lr__sim_node_tick(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  n->last_tick = s->now;
  lr_drive_tick(n->d);
}

void lr__sim_node_deliver(struct lr_sim *s, uint32_t slot, struct lr_msg_copy *msg) {
  lr_drive_recv(s->nodes[slot].d, &msg->m);
}

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
  b->batch = NULL;
  memcpy(b->data, e.data, e.len);
  struct raft_entry copy = e;
  copy.data = (uint8_t *)b->data;
  log_append(s, slot, &copy, b);
  lr__sim_blk_unref(b);
  raft_entry_free_data(&e);
  return 0;
}

int lr__sim_node_start(struct lr_sim *s, uint32_t slot, bool founding, char *err, size_t errlen) {
  struct lr__sim_node *n = &s->nodes[slot];
  n->sim = s;
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
    for (size_t i = 0; i < n->log_n; i++)
      entries[i] = n->log[i].e;
  }
  boot.entries = entries;
  boot.n_entries = (uint32_t)n->log_n;
  struct raft_options ro = s->o.raft;
  ro.id = n->id;
  ro.seed = lr__sim_rand(s);
  struct raft *r = NULL;
  int rv = raft_new(&ro, &boot, s->now, &r);
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
  struct lr_sm *sm = NULL;
  if (lr_sm_new(&so, &sm, err, errlen) != 0) {
    raft_free_node(r);
    return -1;
  }
  raft_index last = n->log_n > 0  ? n->log[n->log_n - 1].e.index
                    : n->has_snap ? n->snap.meta.index
                                  : 0;
  struct lr_drive_options o = {.id = n->id, .raft = r, .sm = sm, .boot_snapshot = boot.snapshot};
  o.durable_last = last, o.snapshot_entries = s->o.snapshot_entries;
  /* disk, net, clock, events: the simulated world (meta.time is virtual) */
  o.io = (struct lr_drive_io){
      .data = n, .write = io_write, .send = io_send, .send_batch = io_send_batch};
  o.io.now = io_now, o.io.wall = io_now;
  o.io.event = io_event, o.io.log = io_log, o.io.applying = io_applying;
  o.io.snapshot = io_snapshot;
  if (lr_drive_new(&o, &n->d, err, errlen) != 0) return -1;
  lr_drive_subscribe(n->d, LR_EV_MEMBERS, true);
  lr_drive_subscribe(n->d, LR_EV_SNAPSHOT, true);
  n->up = true;
  n->role = RAFT_FOLLOWER;
  n->leader = 0;
  n->cur_term = n->term;
  n->writing = NULL;
  lr__sim_node_drain(s, slot);
  return 0;
}

void lr__sim_node_stop(struct lr_sim *s, uint32_t slot) {
  struct lr__sim_node *n = &s->nodes[slot];
  /* Every request waiting on this incarnation ends with `stopped`. */
  lr__sim_complete_node(s, slot, true, "stopped", "the node stopped", 16);
  lr_drive_free(n->d); /* with the write in flight: it never becomes durable */
  n->d = NULL;
  n->writing = NULL;
  n->up = false;
  n->inc++;
  n->role = 0;
  n->leader = 0;
}
