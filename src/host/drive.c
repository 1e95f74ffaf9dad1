/* THE place where the host protocol of src/core/raft.h is enforced:
 *
 *   take an update -> copy what it asks to persist into a store batch ->
 *   send `msgs` at once -> write the batch (COMMIT + fsync) on the thread
 *   pool -> once durable: send the held `msgs_after`, raft_persisted(),
 *   restore a received snapshot, apply the committed entries, answer reads
 *   -> only then take the next update.
 *
 * Updates are taken as soon as the core has them, so a leader's appends go
 * out while its own write is in flight (thesis 10.2.1). What they ask to
 * persist while a write is in flight joins the one queued batch that has
 * not started (group commit): one transaction, one fsync, for everything
 * the core handed out meanwhile. A failed write calls
 * raft_persist_failed(), drops every queued write and held message, and
 * fails the waiting proposals with `storage`.
 */
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"

const double lr_fsync_bounds_ms[11] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000};

static void on_timer(uv_timer_t *t);

void lr__items_free(struct lr__item *it) {
  while (it) {
    struct lr__item *next = it->next;
    if (it->batch) lr_store_batch_free(it->batch);
    lr__msgs_free(it->msgs_after, it->n_msgs_after);
    lr__entries_free(it->committed, it->n_committed);
    lr__snapshot_free(it->snapshot);
    free(it->reads);
    free(it->prop_errors);
    free(it);
    it = next;
  }
}

static bool subscribed(const struct lr_node *n, int type) {
  return (n->subscribed >> type) & 1u;
}

/* A failure the node cannot go on from (no memory, a state machine that
 * cannot restore): log it, fail every request, tell the binding. */
void lr__node_fail(struct lr_node *n, const char *why) {
  if (n->failed) return;
  n->failed = true;
  LR__LOG(n, LR_LOG_ERROR, "node stopped: %s", why);
  lr__waiters_fail_all(n, "stopped", why);
  struct lr_event ev = {
      .type = LR_EV_FAIL_ALL, .code = "stopped", .data = why, .len = strlen(why), .has_data = true};
  lr__event_push(n, &ev);
  ev.type = LR_EV_STOPPED;
  lr__event_push(n, &ev);
}

static void track_config(struct lr_node *n, const struct raft_entry *e) {
  struct raft_config c;
  if (raft_config_decode(e->data, e->len, &c) != 0) return;
  raft_config_free(&n->applied_config);
  n->applied_config = c;
  n->applied_config_index = e->index;
}

/* A digest checkpoint goes through the normal propose path, without a
 * waiter: a lost one only skips that checkpoint (sm.h, DIGESTS). Proposing
 * here only queues it in the core; drive takes the update later. */
static void propose_digest(struct lr_node *n) {
  struct lr_buf b;
  lr_buf_init(&b);
  if (lr_sm_digest_envelope(n->sm, &b) == 0) {
    raft_index index;
    raft_term term;
    int rv = raft_propose(n->raft, lr_now_ms(), b.data, b.len, 0, &index, &term);
    if (rv < 0) LR__LOG(n, LR_LOG_DEBUG, "digest checkpoint not proposed: %s", raft_strerror(rv));
  }
  lr_buf_free(&b);
}

/* The state machine halted (memory over its limit, or its digest diverged
 * from the majority's): apply nothing more, fail what waits here, hand
 * leadership on. The core keeps running: it can still vote and replicate. */
void lr__node_halted(struct lr_node *n) {
  if (n->halted) return;
  n->halted = true;
  struct lr_sm_status st;
  lr_sm_status(n->sm, &st);
  LR__LOG(n, LR_LOG_ERROR,
          "state machine halted: %s; this node applies and serves nothing more (stop it, "
          "delete its data directory and start it again to recover from a replica)",
          st.reason);
  lr__waiters_fail_all(n, "stopped", st.reason);
  struct lr_event ev = {.type = LR_EV_FAIL_ALL,
                        .code = "stopped",
                        .data = st.reason,
                        .len = strlen(st.reason),
                        .has_data = true};
  lr__event_push(n, &ev);
  n->halt_transfer = n->role == RAFT_LEADER;
}

/* raft_* calls that applying wants but cannot make while it walks entries
 * the core owns (their pointers die at the next raft_* call). */
static void deferred(struct lr_node *n) {
  if (n->halt_transfer) {
    n->halt_transfer = false;
    raft_transfer(n->raft, lr_now_ms(), 0);
  }
  if (n->digest_due && !n->halted) {
    n->digest_due = false;
    propose_digest(n);
  }
}

void lr__node_apply_committed(struct lr_node *n, const struct raft_entry *e, uint32_t count) {
  for (uint32_t i = 0; i < count && !n->failed; i++) {
    raft_index applied = lr_sm_applied_index(n->sm);
    if (e[i].index <= applied) continue; /* covered by a restored snapshot */
    if (e[i].index != applied + 1) {
      LR__LOG(n, LR_LOG_ERROR, "entry %llu committed after applied index %llu",
              (unsigned long long)e[i].index, (unsigned long long)applied);
      lr__node_fail(n, "committed entries skip an index");
      return;
    }
    if (e[i].type == RAFT_ENTRY_CONFIG) track_config(n, &e[i]);
    struct lr_sm_result res;
    if (lr_sm_apply(n->sm, &e[i], &res) != 0) {
      lr__node_fail(n, "the state machine runner failed (out of memory)");
      return;
    }
    if (res.status == LR_SM_HALTED) {
      lr__node_halted(n);
      return;
    }
    n->metrics.applied_entries++;
    if (res.status != LR_SM_NONE && res.status != LR_SM_SKIPPED && res.env.origin == n->id &&
        res.env.req != 0) {
      const char *code = res.status == LR_SM_OK ? NULL : lr_sm_code(res.status);
      lr__event_done(n, res.env.req, code, res.data, res.len, e[i].index, e[i].term);
    }
    if (subscribed(n, LR_EV_APPLY)) {
      struct lr_event ev = {.type = LR_EV_APPLY, .index = e[i].index, .term = e[i].term};
      lr__event_push(n, &ev);
    }
    if (lr_sm_digest_due(n->sm)) n->digest_due = true;
  }
  lr__waiters_check(n);
  raft_index applied = lr_sm_applied_index(n->sm);
  if (n->snapshot_entries > 0 && !n->snap_pending && lr_sm_can_snapshot(n->sm) &&
      applied >= n->snap_index + n->snapshot_entries) {
    char err[256];
    if (lr__node_take_snapshot(n, err, sizeof err) != 0)
      LR__LOG(n, LR_LOG_WARN, "snapshot at %llu failed: %s", (unsigned long long)applied, err);
  }
}

static void enqueue(struct lr_node *n, struct lr__item *it) {
  if (n->tail)
    n->tail->next = it;
  else
    n->head = it;
  n->tail = it;
}

/* The state machine's snapshot at the applied index, written as its own
 * batch; the core hears of it (raft_snapshot_taken) once it is durable. */
int lr__node_take_snapshot(struct lr_node *n, char *err, size_t errlen) {
  struct lr_buf buf;
  lr_buf_init(&buf);
  if (lr_sm_snapshot(n->sm, &buf, err, errlen) != 0) return -1;
  struct lr__item *it = calloc(1, sizeof *it);
  struct raft_snapshot snap = {0};
  snap.meta.index = lr_sm_applied_index(n->sm);
  snap.meta.term = lr_sm_applied_term(n->sm);
  snap.meta.config = n->applied_config.n ? n->applied_config : n->config;
  snap.meta.config_index = n->applied_config_index;
  snap.data = (const uint8_t *)buf.data;
  snap.len = buf.len;
  if (it == NULL || lr_store_batch_new(&it->batch) != 0 ||
      lr_store_batch_snapshot(it->batch, &snap) != 0 ||
      lr__snapshot_copy(&snap, &it->snapshot) != 0) {
    lr_buf_free(&buf);
    lr__items_free(it);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  lr_buf_free(&buf);
  it->own_snapshot = true;
  it->snap_index = snap.meta.index;
  it->snap_term = snap.meta.term;
  n->snap_pending = true;
  enqueue(n, it);
  return 0;
}

static void log_soft_state(struct lr_node *n, const struct raft_update *u) {
  if (u->role != n->role) {
    LR__LOG(n, LR_LOG_INFO, "role %s -> %s (term %llu)", raft_role_name(n->role),
            raft_role_name(u->role), (unsigned long long)n->term);
    if (u->role == RAFT_CANDIDATE) n->metrics.elections++;
    n->role = u->role;
    if (subscribed(n, LR_EV_ROLE)) {
      struct lr_event ev = {.type = LR_EV_ROLE, .role = u->role, .term = n->term};
      lr__event_push(n, &ev);
    }
  }
  if (u->leader != n->leader) {
    if (u->leader)
      LR__LOG(n, LR_LOG_INFO, "leader is %llu (term %llu)", (unsigned long long)u->leader,
              (unsigned long long)n->term);
    else
      LR__LOG(n, LR_LOG_INFO, "no leader (term %llu)", (unsigned long long)n->term);
    n->leader = u->leader;
    n->metrics.leader_changes++;
    if (subscribed(n, LR_EV_LEADER)) {
      struct lr_event ev = {.type = LR_EV_LEADER, .leader = u->leader, .term = n->term};
      lr__event_push(n, &ev);
    }
    lr__waiters_check(n);
  }
}

static void log_config(struct lr_node *n, const struct raft_config *c) {
  char line[768];
  size_t off = 0;
  line[0] = 0;
  for (uint32_t i = 0; i < c->n && off < sizeof line - 1; i++) {
    int w = snprintf(line + off, sizeof line - off, "%s%llu=%s%s", i ? " " : "",
                     (unsigned long long)c->members[i].id, c->members[i].address,
                     c->members[i].role == RAFT_LEARNER ? "(learner)" : "");
    if (w < 0) break;
    off += (size_t)w;
  }
  LR__LOG(n, LR_LOG_INFO, "members: %s", line);
}

/* Says so when this node leaves the configuration (removed: it no longer
 * votes nor campaigns, the core sees to that) or comes (back) into it. A
 * joining node is not "removed" by the older configurations it replays. */
static void note_membership(struct lr_node *n) {
  const struct raft_member *me = raft_config_get(&n->config, n->id);
  if (me != NULL && !n->was_member) {
    n->was_member = true;
    LR__LOG(n, LR_LOG_INFO, "this node is a member of the cluster (%s)",
            me->role == RAFT_LEARNER ? "learner" : "voter");
  } else if (me == NULL && n->was_member) {
    n->was_member = false;
    LR__LOG(n, LR_LOG_WARN,
            "this node was removed from the cluster: it no longer takes part (no votes, no "
            "campaigns, no replication); stop it, or add it back with add_member");
  }
}

/* What every update gets at once, before anything is persisted. */
static void take_now(struct lr_node *n, const struct raft_update *u) {
  if (u->hard_state) n->term = u->term;
  if (u->soft_state) log_soft_state(n, u);
  if (u->config_changed && u->config) {
    struct raft_config c;
    if (raft_config_copy(u->config, &c) == 0) {
      raft_config_free(&n->config);
      n->config = c;
      lr__tr_config(n, &n->config);
      log_config(n, &n->config);
      note_membership(n);
      if (subscribed(n, LR_EV_MEMBERS)) {
        struct lr_event ev = {.type = LR_EV_MEMBERS};
        lr__event_push(n, &ev);
      }
    }
  }
  for (uint32_t i = 0; i < u->n_msgs; i++)
    lr__tr_send(n, &u->msgs[i]);
  if (u->commit > n->commit) {
    n->commit = u->commit;
    if (subscribed(n, LR_EV_COMMIT)) {
      struct lr_event ev = {.type = LR_EV_COMMIT, .index = u->commit};
      lr__event_push(n, &ev);
    }
  }
}

static void restore(struct lr_node *n, const struct raft_snapshot *s) {
  char err[256];
  if (lr_sm_restore(n->sm, s->data, s->len, err, sizeof err) != 0) {
    lr__node_fail(n, err);
    return;
  }
  struct raft_config c;
  if (raft_config_copy(&s->meta.config, &c) == 0) {
    raft_config_free(&n->applied_config);
    n->applied_config = c;
    n->applied_config_index = s->meta.config_index;
  }
  lr_sm_set_config(n->sm, &s->meta.config);
  n->snap_index = s->meta.index;
  n->metrics.snapshots_restored++;
  LR__LOG(n, LR_LOG_INFO, "restored snapshot at index %llu (term %llu) from the leader",
          (unsigned long long)s->meta.index, (unsigned long long)s->meta.term);
  if (subscribed(n, LR_EV_SNAPSHOT)) {
    struct lr_event ev = {.type = LR_EV_SNAPSHOT, .index = s->meta.index, .term = s->meta.term};
    lr__event_push(n, &ev);
  }
}

/* The part of an update that may happen only once it is durable. */
static void finish(struct lr_node *n, const struct raft_message *after, uint32_t n_after,
                   const struct raft_snapshot *snap, const struct raft_entry *committed,
                   uint32_t n_committed, const struct raft_read_state *reads, uint32_t n_reads,
                   const struct raft_proposal_error *perr, uint32_t n_perr) {
  for (uint32_t i = 0; i < n_after; i++)
    lr__tr_send(n, &after[i]);
  if (snap && !n->halted) restore(n, snap);
  if (!n->failed && !n->halted) lr__node_apply_committed(n, committed, n_committed);
  for (uint32_t i = 0; i < n_reads; i++)
    lr__waiters_read_state(n, &reads[i]);
  for (uint32_t i = 0; i < n_perr; i++) {
    const char *msg = raft_strerror(perr[i].err);
    n->metrics.proposals_failed++;
    lr__event_done(n, perr[i].context, raft_errcode(perr[i].err), msg, strlen(msg), 0, 0);
  }
}

/* An update with something to persist: keep copies of what must wait
 * (everything when `all`, else only the held messages). `merged`: what it
 * persists went into an earlier item's batch. */
static int hold(struct lr_node *n, const struct raft_update *u, struct lr_store_batch *b,
                bool all, bool merged) {
  struct lr__item *it = calloc(1, sizeof *it);
  if (it == NULL) goto nomem;
  it->batch = b;
  it->merged = merged;
  it->ack_index = u->ack_index;
  it->ack_term = u->ack_term;
  if (lr__msgs_copy(u->msgs_after, u->n_msgs_after, &it->msgs_after) != 0) goto nomem;
  it->n_msgs_after = u->n_msgs_after;
  if (!all) {
    enqueue(n, it);
    return 0;
  }
  if (lr__entries_copy(u->committed, u->n_committed, &it->committed) != 0) goto nomem;
  it->n_committed = u->n_committed;
  if (u->snapshot && lr__snapshot_copy(u->snapshot, &it->snapshot) != 0) goto nomem;
  if (u->n_reads) {
    if ((it->reads = malloc(u->n_reads * sizeof *it->reads)) == NULL) goto nomem;
    memcpy(it->reads, u->reads, u->n_reads * sizeof *it->reads);
    it->n_reads = u->n_reads;
  }
  if (u->n_prop_errors) {
    it->prop_errors = malloc(u->n_prop_errors * sizeof *it->prop_errors);
    if (it->prop_errors == NULL) goto nomem;
    memcpy(it->prop_errors, u->prop_errors, u->n_prop_errors * sizeof *it->prop_errors);
    it->n_prop_errors = u->n_prop_errors;
  }
  enqueue(n, it);
  return 0;
nomem:
  if (it) it->batch = NULL;
  lr__items_free(it);
  lr_store_batch_free(b);
  return -1;
}

/* The last queued batch, if it has not started and u may join it. Batches
 * with a snapshot stand alone (a snapshot must come first in its batch). */
static struct lr__item *open_batch(struct lr_node *n) {
  struct lr__item *last = NULL;
  for (struct lr__item *it = n->head; it; it = it->next)
    if (it->batch) last = it;
  if (last == NULL || last->writing || last->written || last->own_snapshot || last->snapshot)
    return NULL;
  return last;
}

/* Group commit: adds what u persists to the open batch. Entries that would
 * truncate below that batch's first entry make a batch of their own. */
static bool join_open_batch(struct lr_node *n, const struct raft_update *u) {
  struct lr__item *o = u->snapshot ? NULL : open_batch(n);
  if (o == NULL) return false;
  if (u->n_entries > 0 && lr_store_batch_entries(o->batch, u->entries, u->n_entries) != 0)
    return false;
  if (u->hard_state) lr_store_batch_hard_state(o->batch, u->term, u->vote);
  n->metrics.batches_merged++;
  return true;
}

static void take(struct lr_node *n, const struct raft_update *u) {
  take_now(n, u);
  struct lr_store_batch *b = NULL;
  bool persist = u->hard_state || u->n_entries > 0 || u->snapshot != NULL;
  bool merged = persist && join_open_batch(n, u);
  if (persist && !merged && lr_store_batch_prepare(u, &b) != 0) {
    lr__node_fail(n, "cannot prepare a storage batch (out of memory)");
    return;
  }
  if (!persist && n->head == NULL) {
    /* Nothing to persist and nothing before it: all of it may happen now. */
    finish(n, u->msgs_after, u->n_msgs_after, NULL, u->committed, u->n_committed, u->reads,
           u->n_reads, u->prop_errors, u->n_prop_errors);
    return;
  }
  /* Committed entries never run ahead of the durable log (raft.h step 6):
   * those of this update were durable before this batch, so they (and the
   * reads and refusals) need not wait for it. Only a received snapshot
   * makes everything after it wait: it is restored once durable. */
  bool all = u->snapshot != NULL;
  if (!all)
    finish(n, NULL, 0, NULL, u->committed, u->n_committed, u->reads, u->n_reads, u->prop_errors,
           u->n_prop_errors);
  if (hold(n, u, b, all, merged) != 0) lr__node_fail(n, "cannot hold an update (out of memory)");
}

static void work_cb(uv_work_t *w) {
  struct lr_node *n = w->data;
  lr_store_batch_write(n->store, n->head->batch);
}

static void free_if_done(struct lr_node *n);

static void after_work_cb(uv_work_t *w, int status) {
  struct lr_node *n = w->data;
  struct lr__item *it = n->head;
  n->work_busy = false;
  it->writing = false;
  it->written = true;
  it->write_rv = status == 0 ? lr_store_batch_result(it->batch, NULL, NULL, NULL) : -1;
  double ms = (double)(uv_hrtime() - it->write_start_ns) / 1e6;
  n->metrics.batches++;
  n->metrics.fsync_sum_ms += ms;
  int b = 0;
  while (b < 11 && ms > lr_fsync_bounds_ms[b])
    b++;
  n->metrics.fsync_buckets[b]++;
  if (n->stopping) {
    free_if_done(n);
    return;
  }
  lr__callback_enter(n);
  lr__node_drive(n);
  lr__callback_leave(n);
}

/* A write failed: the core forgets what was not persisted, the host every
 * queued write and held message (raft.h step 5). */
static void write_failed(struct lr_node *n, struct lr__item *it) {
  const char *msg = "storage write failed";
  lr_store_batch_result(it->batch, &msg, NULL, NULL);
  n->metrics.batches_failed++;
  LR__LOG(n, LR_LOG_ERROR, "storage: %s", msg);
  raft_persist_failed(n->raft, lr_now_ms());
  /* `it` is already off the queue (pump): what is left is every later
   * write, none of them started. */
  lr__items_free(n->head);
  n->head = n->tail = NULL;
  n->snap_pending = false;
  struct lr_event ev = {
      .type = LR_EV_FAIL_ALL, .code = "storage", .data = msg, .len = strlen(msg), .has_data = true};
  lr__event_push(n, &ev);
  /* What is committed was durable before this write: still apply it, unless
   * it sits behind a snapshot that was not written. */
  if (it->snapshot == NULL && !it->own_snapshot)
    finish(n, NULL, 0, NULL, it->committed, it->n_committed, it->reads, it->n_reads,
           it->prop_errors, it->n_prop_errors);
}

static void done_item(struct lr_node *n, struct lr__item *it) {
  if (it->write_rv != 0) {
    write_failed(n, it);
    return;
  }
  if (it->own_snapshot) {
    n->snap_pending = false;
    n->snap_index = it->snap_index;
    n->metrics.snapshots_taken++;
    raft_snapshot_taken(n->raft, it->snap_index, it->snapshot->data, it->snapshot->len);
    LR__LOG(n, LR_LOG_INFO, "snapshot taken at index %llu (term %llu)",
            (unsigned long long)it->snap_index, (unsigned long long)it->snap_term);
    if (subscribed(n, LR_EV_SNAPSHOT)) {
      struct lr_event ev = {.type = LR_EV_SNAPSHOT, .index = it->snap_index, .term = it->snap_term};
      lr__event_push(n, &ev);
    }
    return;
  }
  if (it->batch || it->merged) raft_persisted(n->raft, lr_now_ms(), it->ack_index, it->ack_term);
  finish(n, it->msgs_after, it->n_msgs_after, it->snapshot, it->committed, it->n_committed,
         it->reads, it->n_reads, it->prop_errors, it->n_prop_errors);
}

/* Finishes durable items in order and starts the next write. */
static void pump(struct lr_node *n) {
  while (n->head && !n->work_busy && !n->failed) {
    struct lr__item *it = n->head;
    if (it->batch && !it->written) {
      it->writing = true;
      it->write_start_ns = uv_hrtime();
      n->work.data = n;
      n->work_busy = true;
      if (uv_queue_work(n->loop, &n->work, work_cb, after_work_cb) != 0) {
        n->work_busy = false; /* UNTESTED: */
        lr__node_fail(n, "cannot queue a storage write");
      }
      return;
    }
    n->head = it->next;
    if (n->head == NULL) n->tail = NULL;
    it->next = NULL;
    done_item(n, it);
    lr__items_free(it);
  }
}

/* At least 1 ms: libuv 1.44 runs a timer re-armed with 0 ms from its own
 * callback again in the same iteration, so a deadline the core leaves in
 * the past would spin the loop forever. */
static void arm_timer(struct lr_node *n) {
  uint64_t dl = raft_deadline(n->raft), now = lr_now_ms();
  uint64_t wait = dl > now ? dl - now : 1;
  if (n->removed && n->role != RAFT_LEADER) wait = 1000; /* not ticking: see on_timer */
  if (wait > 3600000) wait = 3600000;
  uv_timer_start(&n->timer, on_timer, wait, 0);
}

void lr__node_drive(struct lr_node *n) {
  while (!n->failed && !n->stopping) {
    pump(n);
    deferred(n);
    if (n->failed || !raft_has_update(n->raft)) break;
    struct raft_update u;
    raft_update_take(n->raft, &u);
    take(n, &u);
  }
  if (!n->failed && !n->stopping) arm_timer(n);
  if (n->failed) uv_timer_stop(&n->timer);
}

static void on_timer(uv_timer_t *t) {
  struct lr_node *n = t->data;
  lr__callback_enter(n);
  uint64_t now = lr_now_ms();
  /* A removed node does not tick: no (pre-)campaigns to bother the members
   * (lr__node_recv ticks it again once a leader talks to it). */
  bool idle = n->removed && n->role != RAFT_LEADER;
  if (!idle && now >= raft_deadline(n->raft)) {
    raft_tick(n->raft, now);
    if (raft_deadline(n->raft) <= now && !n->stale_deadline_logged) {
      n->stale_deadline_logged = true;
      LR__LOG(n, LR_LOG_DEBUG, "core deadline %llu still <= now %llu after a tick",
              (unsigned long long)raft_deadline(n->raft), (unsigned long long)now);
    }
  }
  lr__node_drive(n);
  lr__callback_leave(n);
}

/* Stopping: libuv cannot cancel a write that started, so the node is freed
 * by whichever finishes last, the close callbacks or the write. */
void lr__node_free(struct lr_node *n);
static void free_if_done(struct lr_node *n) {
  if (n->handles_open == 0 && !n->work_busy) lr__node_free(n);
}

void lr__node_handle_closed(struct lr_node *n) {
  n->handles_open--;
  free_if_done(n);
}
