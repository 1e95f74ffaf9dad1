/* THE place where the host protocol of src/core/raft.h is enforced:
 *
 *   take an update -> copy what it asks to persist into a store batch ->
 *   send `msgs` at once -> write the batch (io.write: the thread pool, or
 *   the simulated disk) -> once durable: send the held `msgs_after`,
 *   raft_persisted(), restore a received snapshot, apply the committed
 *   entries, answer reads -> only then take the next update.
 *
 * Updates are taken as soon as the core has them, so a leader's appends go
 * out while its own write is in flight (thesis 10.2.1). What they ask to
 * persist while a write is in flight joins the one queued batch that has
 * not started (group commit): one transaction, one fsync, for everything
 * the core handed out meanwhile. A failed write calls
 * raft_persist_failed(), drops every queued write and held message, and
 * fails the waiting proposals with `storage`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive/drive_int.h"

const double lr_fsync_bounds_ms[LR_FSYNC_BUCKETS - 1] = {1,   2,   5,   10,   20,  50,
                                                         100, 200, 500, 1000, 2000};

/* ---- small things --------------------------------------------------------- */
void lr__drive_log(struct lr_drive *d, int level, const char *fmt, ...) {
  if (d->io.log == NULL) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  d->io.log(d->io.data, level, line);
}

uint64_t lr__drive_now(struct lr_drive *d) {
  return d->io.now(d->io.data);
}

uint64_t lr__drive_now_us(struct lr_drive *d) {
  return d->io.now_us ? d->io.now_us(d->io.data) : d->io.now(d->io.data) * 1000;
}

bool lr__drive_subscribed(const struct lr_drive *d, int type) {
  return (d->subscribed >> type) & 1u;
}

void lr__drive_event(struct lr_drive *d, const struct lr_event *ev) {
  d->io.event(d->io.data, ev);
}

void lr__drive_done(struct lr_drive *d, uint64_t req, const char *code, const char *data,
                    size_t len, raft_index index, raft_term term) {
  struct lr_event ev = {.type = LR_EV_DONE,
                        .req = req,
                        .code = code,
                        .data = data,
                        .len = len,
                        .has_data = data != NULL,
                        .index = index,
                        .term = term,
                        .leader = d->leader};
  lr__drive_event(d, &ev);
}

void lr__drive_broken(struct lr_drive *d, const char *what, const char *file, int line) {
  fprintf(stderr, "luaraft: node %llu: driver rule broken at %s:%d: %s\n",
          (unsigned long long)d->id, file, line, what);
  abort();
}

/* The rules of raft.h that the driver keeps, checked after every step. */
void lr__drive_check(struct lr_drive *d) {
  LR__DRIVE_RULE(d, lr_sm_applied_index(d->sm) <= d->durable_last || d->failed,
                 "an entry was applied beyond the durable log");
  LR__DRIVE_RULE(d, d->snap_acked <= d->snap_durable,
                 "a snapshot was acknowledged to the core before it was durable");
  LR__DRIVE_RULE(d, !d->write_busy || (d->head && d->head->writing),
                 "a write is in flight that is not the head of the queue");
}

void lr__items_free(struct lr__item *it) {
  while (it) {
    struct lr__item *next = it->next;
    if (it->batch) lr_store_batch_free(it->batch);
    for (uint32_t i = 0; i < it->n_after; i++)
      lr_msg_copy_free(it->after[i]);
    free(it->after);
    lr_store_entries_free(it->committed, it->n_committed);
    lr_snapshot_free(it->snapshot);
    free(it->reads);
    free(it->prop_errors);
    free(it);
    it = next;
  }
}

/* A failure the node cannot go on from (no memory, a state machine that
 * cannot restore): log it, fail every request, tell the binding. */
void lr__drive_fail(struct lr_drive *d, const char *why) {
  if (d->failed) return;
  d->failed = true;
  lr__drive_log(d, RAFT_LOG_ERROR, "node stopped: %s", why);
  lr__waiters_fail_all(d, "stopped", why);
  struct lr_event ev = {
      .type = LR_EV_FAIL_ALL, .code = "stopped", .data = why, .len = strlen(why), .has_data = true};
  lr__drive_event(d, &ev);
  ev.type = LR_EV_STOPPED;
  lr__drive_event(d, &ev);
}

void lr__drive_enqueue(struct lr_drive *d, struct lr__item *it) {
  if (d->tail)
    d->tail->next = it;
  else
    d->head = it;
  d->tail = it;
}

/* ---- taking updates -------------------------------------------------------- */
/* Every proposal and ReadIndex request still pending here goes to the new
 * leader (duplicates are harmless: the sm applies one copy of an envelope,
 * a read answers once); the sends are deferred to the loop, since this runs
 * while an update's pointers are in use. */
void lr_drive_leader_changed(struct lr_drive *d, raft_id old_leader, raft_id new_leader) {
  (void)old_leader;
  lr__waiters_check(d);
  if (new_leader == 0) return;
  for (size_t i = 0; i < d->n_fwd; i++)
    d->fwd[i].unsent = true;
  for (size_t i = 0; i < d->n_waiters; i++)
    if (d->waiters[i].kind == W_READ_CTX) d->waiters[i].unsent = true;
  d->fwd_due = true;
}

/* A membership change refused for a reason that ends by itself shortly
 * on a leader: CONFPENDING before its first own-term commit (this tree's
 * core), or NOTREADY (the core's membership checks, issue 10: it ends at
 * that commit or election_ms after the election). Named, not numbered, so
 * the driver works with either core. */
bool lr__drive_change_later(struct lr_drive *d, int rv) {
  if (rv == RAFT_ECONFPENDING) return lr__drive_new_leader(d);
  return rv < 0 && strcmp(raft_errname(rv), "NOTREADY") == 0 && d->role == RAFT_LEADER;
}

/* A leader that has not committed an entry of its own term yet (its
 * configuration and reads wait for that, thesis 6.4). */
bool lr__drive_new_leader(struct lr_drive *d) {
  struct raft_status st;
  raft_status(d->raft, &st);
  if (st.role != RAFT_LEADER) return false;
  const struct raft_entry *e = raft_log_entry(d->raft, st.commit);
  return st.commit == 0 || (e != NULL && e->term < st.term);
}

static void soft_state(struct lr_drive *d, const struct raft_update *u) {
  struct lr_event st = {.type = LR_EV_STATE, .role = u->role, .leader = u->leader, .term = d->term};
  lr__drive_event(d, &st);
  if (u->role != d->role) {
    lr__drive_log(d, RAFT_LOG_INFO, "role %s -> %s (term %llu)", raft_role_name(d->role),
                  raft_role_name(u->role), (unsigned long long)d->term);
    if (u->role == RAFT_CANDIDATE) d->metrics.elections++;
    if (d->role == RAFT_LEADER) /* the stamps in flight are no longer ours to time */
      memset(d->stamps, 0, sizeof d->stamps);
    d->role = u->role;
    if (lr__drive_subscribed(d, LR_EV_ROLE)) {
      struct lr_event ev = {.type = LR_EV_ROLE, .role = u->role, .term = d->term};
      lr__drive_event(d, &ev);
    }
  }
  if (u->leader != d->leader) {
    if (u->leader)
      lr__drive_log(d, RAFT_LOG_INFO, "leader is %llu (term %llu)", (unsigned long long)u->leader,
                    (unsigned long long)d->term);
    else
      lr__drive_log(d, RAFT_LOG_INFO, "no leader (term %llu)", (unsigned long long)d->term);
    raft_id old = d->leader;
    d->leader = u->leader;
    d->metrics.leader_changes++;
    if (lr__drive_subscribed(d, LR_EV_LEADER)) {
      struct lr_event ev = {.type = LR_EV_LEADER, .leader = u->leader, .term = d->term};
      lr__drive_event(d, &ev);
    }
    lr_drive_leader_changed(d, old, u->leader);
  }
}

static void log_config(struct lr_drive *d, const struct raft_config *c) {
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
  lr__drive_log(d, RAFT_LOG_INFO, "members: %s", line);
}

/* Says so when this node leaves the configuration (removed: it no longer
 * votes nor campaigns, the core sees to that) or comes (back) into it. A
 * joining node is not "removed" by the older configurations it replays. */
static void note_membership(struct lr_drive *d) {
  const struct raft_member *me = raft_config_get(&d->config, d->id);
  if (me != NULL && !d->was_member) {
    d->was_member = true;
    lr__drive_log(d, RAFT_LOG_INFO, "this node is a member of the cluster (%s)",
                  me->role == RAFT_LEARNER ? "learner" : "voter");
  } else if (me == NULL && d->was_member) {
    /* The same words as lr_drive_set_removed's (which a node learns from a
     * refusal when it never got the entry): the transport now keeps a
     * member a change drops until the change applies, so a removed node
     * usually gets the entry itself. */
    d->was_member = false;
    struct raft_status rs;
    raft_status(d->raft, &rs);
    lr__drive_log(d, RAFT_LOG_WARN,
                  "the configuration at index %llu says this node is not a member: it was "
                  "removed from the cluster and takes no part any more (no votes, no "
                  "campaigns); stop it, or add it back with add_member",
                  (unsigned long long)rs.config_index);
  }
}

/* The peers the host's transport keeps (io.config): the members of the
 * latest configuration and of the one in effect at the applied index. A
 * configuration is in effect once appended, but until it commits the
 * members it drops still take part: a leader removing itself needs its
 * followers' acknowledgements to commit that removal (and to learn that it
 * did, so that its request reports success), and those followers, whose
 * latest configuration no longer holds it, would otherwise close its
 * connection and refuse it as an unknown node. Once the change is applied
 * here, the dropped members go. */
void lr__drive_sync_peers(struct lr_drive *d) {
  if (d->io.config == NULL) return;
  const struct raft_config *a = &d->applied_config;
  uint32_t extra = 0;
  for (uint32_t i = 0; i < a->n; i++)
    if (raft_config_get(&d->config, a->members[i].id) == NULL) extra++;
  if (extra == 0) {
    d->io.config(d->io.data, &d->config);
    return;
  }
  struct raft_member *m = malloc((d->config.n + extra) * sizeof *m);
  if (m == NULL) { /* the latest alone: what this node had before this rule */
    d->io.config(d->io.data, &d->config);
    return;
  }
  struct raft_config u = {.members = m, .n = 0};
  for (uint32_t i = 0; i < d->config.n; i++)
    m[u.n++] = d->config.members[i];
  for (uint32_t i = 0; i < a->n; i++)
    if (raft_config_get(&d->config, a->members[i].id) == NULL) m[u.n++] = a->members[i];
  d->io.config(d->io.data, &u);
  free(m);
}

/* What every update gets at once, before anything is persisted. */
static void take_now(struct lr_drive *d, const struct raft_update *u) {
  if (u->hard_state) d->term = u->term;
  if (u->soft_state) soft_state(d, u);
  if (u->config_changed && u->config) {
    struct raft_config c;
    if (raft_config_copy(u->config, &c) == 0) {
      raft_config_free(&d->config);
      d->config = c;
      lr__drive_sync_peers(d);
      log_config(d, &d->config);
      note_membership(d);
    }
  }
  LR__DRIVE_RULE(d, u->commit >= d->commit || u->commit == 0, "the commit index went back");
  if (u->commit > d->commit) {
    lr__drive_stamp_reached(d, d->commit, u->commit, true);
    d->commit = u->commit;
    if (d->n_fwd > 0 || d->n_waiters > 0) d->fwd_due = true; /* a leader works: retry */
    if (lr__drive_subscribed(d, LR_EV_COMMIT)) {
      struct lr_event ev = {.type = LR_EV_COMMIT, .index = u->commit};
      lr__drive_event(d, &ev);
    }
  }
}

static void send_after(struct lr_drive *d, struct lr_msg_copy *const *after, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    d->metrics.peer_msgs_sent++;
    d->io.send(d->io.data, &after[i]->m);
  }
}

/* The part of an update that may happen only once it is durable (or, for
 * committed entries, reads and refusals, once what precedes it is). */
static void finish(struct lr_drive *d, const struct raft_snapshot *snap,
                   const struct raft_entry *committed, uint32_t n_committed,
                   const struct raft_read_state *reads, uint32_t n_reads,
                   const struct raft_proposal_error *perr, uint32_t n_perr) {
  if (snap && !d->halted) {
    char err[256];
    lr__drive_restore(d, snap, false, err, sizeof err);
  }
  if (!d->failed && !d->halted) lr__drive_apply(d, committed, n_committed);
  for (uint32_t i = 0; i < n_reads; i++)
    lr__waiters_read_state(d, &reads[i]);
  for (uint32_t i = 0; i < n_perr; i++)
    lr__fwd_refused(d, perr[i].context, perr[i].err);
}

/* An update with something to persist: keep copies of what must wait
 * (everything when `all`, else only the held messages). `merged`: what it
 * persists went into an earlier item's batch. */
static int hold(struct lr_drive *d, const struct raft_update *u, struct lr_store_batch *b, bool all,
                bool merged) {
  struct lr__item *it = calloc(1, sizeof *it);
  if (it == NULL) goto nomem;
  it->batch = b;
  it->merged = merged;
  if (b) it->seq = ++d->batch_seq;
  if (merged) it->seq = d->batch_seq; /* the open batch is the newest */
  it->ack_index = u->ack_index;
  it->ack_term = u->ack_term;
  if (u->n_msgs_after) {
    it->after = calloc(u->n_msgs_after, sizeof *it->after);
    if (it->after == NULL) goto nomem;
    for (uint32_t i = 0; i < u->n_msgs_after; i++) {
      if ((it->after[i] = lr_msg_copy(&u->msgs_after[i])) == NULL) goto nomem;
      it->n_after = i + 1;
    }
  }
  if (!all) {
    lr__drive_enqueue(d, it);
    return 0;
  }
  it->held_apply = true;
  if (lr_store_entries_copy(u->committed, u->n_committed, &it->committed) != 0) goto nomem;
  it->n_committed = u->n_committed;
  if (u->snapshot && lr_snapshot_copy(u->snapshot, &it->snapshot) != 0) goto nomem;
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
  lr__drive_enqueue(d, it);
  return 0;
nomem:
  if (it) it->batch = NULL;
  lr__items_free(it);
  if (b) lr_store_batch_free(b);
  return -1;
}

/* The last queued batch, if it has not started and u may join it. Batches
 * with a snapshot stand alone (a snapshot must come first in its batch). */
static struct lr__item *open_batch(struct lr_drive *d) {
  struct lr__item *last = NULL;
  for (struct lr__item *it = d->head; it; it = it->next)
    if (it->batch) last = it;
  if (last == NULL || last->writing || last->written || last->own_snapshot || last->snapshot)
    return NULL;
  return last;
}

/* Group commit: adds what u persists to the open batch. -> that batch, or
 * NULL when there is none to join. */
static struct lr_store_batch *join_open_batch(struct lr_drive *d, const struct raft_update *u) {
  struct lr__item *o = u->snapshot ? NULL : open_batch(d);
  if (o == NULL) return NULL;
  if (u->n_entries > 0 && lr_store_batch_entries(o->batch, u->entries, u->n_entries) != 0)
    return NULL;
  if (u->hard_state) lr_store_batch_hard_state(o->batch, u->term, u->vote);
  d->metrics.batches_merged++;
  return o->batch;
}

/* Are all of m's entries in b (same indexes, same terms at both ends: the
 * same entries of this node's log)? */
static bool batch_has(struct lr_store_batch *b, const struct raft_message *m) {
  struct lr_store_batch_view v;
  lr_store_batch_view(b, &v);
  if (m->n_entries == 0 || v.n_entries == 0) return false;
  raft_index lo = v.entries[0].index, hi = lo + v.n_entries - 1;
  const struct raft_entry *f = &m->entries[0], *l = &m->entries[m->n_entries - 1];
  return f->index >= lo && l->index <= hi && v.entries[f->index - lo].term == f->term &&
         v.entries[l->index - lo].term == l->term;
}

/* u's messages go out at once, before anything is persisted (a leader's
 * appends in parallel with its own write, thesis 10.2.1). */
static void send_msgs(struct lr_drive *d, const struct raft_update *u, struct lr_store_batch *b) {
  for (uint32_t i = 0; i < u->n_msgs; i++) {
    const struct raft_message *m = &u->msgs[i];
    d->metrics.peer_msgs_sent++;
    if (b && d->io.send_batch && batch_has(b, m))
      d->io.send_batch(d->io.data, m, b);
    else
      d->io.send(d->io.data, m);
  }
}

/* Is an update waiting whose committed entries must apply before newer ones
 * (one behind a received snapshot)? */
static bool holds_apply(const struct lr_drive *d) {
  for (const struct lr__item *it = d->head; it; it = it->next)
    if (it->held_apply) return true;
  return false;
}

static void take(struct lr_drive *d, const struct raft_update *u) {
  lr__drive_stamp_taken(d, u);
  take_now(d, u);
  struct lr_store_batch *b = NULL;
  bool persist = u->hard_state || u->n_entries > 0 || u->snapshot != NULL;
  struct lr_store_batch *joined = persist ? join_open_batch(d, u) : NULL;
  bool merged = joined != NULL;
  if (persist && !merged && lr_store_batch_prepare(u, &b) != 0) {
    lr__drive_fail(d, "cannot prepare a storage batch (out of memory)");
    return;
  }
  send_msgs(d, u, merged ? joined : b);
  if (!persist && d->head == NULL) {
    /* Nothing to persist and nothing before it: all of it may happen now. */
    for (uint32_t i = 0; i < u->n_msgs_after; i++) {
      d->metrics.peer_msgs_sent++;
      d->io.send(d->io.data, &u->msgs_after[i]);
    }
    finish(d, NULL, u->committed, u->n_committed, u->reads, u->n_reads, u->prop_errors,
           u->n_prop_errors);
  } else {
    /* Committed entries never run ahead of the durable log (raft.h step 6):
     * those of this update were durable before this batch, so they (and the
     * reads and refusals) need not wait for it. Only a received snapshot
     * makes everything after it wait: it is restored once durable, and what
     * follows it applies after it. */
    bool all = u->snapshot != NULL || holds_apply(d);
    if (!all)
      finish(d, NULL, u->committed, u->n_committed, u->reads, u->n_reads, u->prop_errors,
             u->n_prop_errors);
    if (hold(d, u, b, all, merged) != 0) lr__drive_fail(d, "cannot hold an update (out of memory)");
  }
  if (u->config_changed && u->config && lr__drive_subscribed(d, LR_EV_MEMBERS)) {
    struct lr_event ev = {.type = LR_EV_MEMBERS, .config = &d->config};
    lr__drive_event(d, &ev);
  }
}

/* ---- durability ------------------------------------------------------------ */
/* A write failed: the core forgets what was not persisted, the driver every
 * queued write and held message (raft.h step 5). The next write waits: a
 * disk that fails keeps failing for a while (full, unplugged), and retrying
 * at once only burns CPU and floods the log. The wait doubles per failure in
 * a row, up to LR__BACKOFF_MAX_MS; the log says so once per LR__FAIL_LOG_MS,
 * with a count. Nothing acknowledged is lost: what failed was never
 * acknowledged, and the leader sends it again. */
static void write_failed(struct lr_drive *d, struct lr__item *it) {
  const char *msg = NULL;
  lr_store_batch_result(it->batch, &msg, NULL, NULL);
  if (msg == NULL || msg[0] == 0) msg = raft_strerror(it->write_rv);
  uint64_t now = lr__drive_now(d);
  d->metrics.batches_failed++;
  uint64_t n = lr__backoff_failed(&d->store_fail, now, LR__BACKOFF_MIN_MS, LR__BACKOFF_MAX_MS);
  if (n > 0)
    lr__drive_log(d, RAFT_LOG_ERROR,
                  "storage: %s (%llu failed writes since the last report; the next write in "
                  "%u ms)",
                  msg, (unsigned long long)n, d->store_fail.ms);
  raft_persist_failed(d->raft, now);
  /* `it` is already off the queue (pump): what is left is every later
   * write, none of them started. */
  lr__items_free(d->head);
  d->head = d->tail = NULL;
  d->snap_pending = false;
  struct lr_event ev = {
      .type = LR_EV_FAIL_ALL, .code = "storage", .data = msg, .len = strlen(msg), .has_data = true};
  lr__drive_event(d, &ev);
  /* What is committed was durable before this write: still apply it, unless
   * it sits behind a snapshot that was not written. */
  if (it->snapshot == NULL && !it->own_snapshot)
    finish(d, NULL, it->committed, it->n_committed, it->reads, it->n_reads, it->prop_errors,
           it->n_prop_errors);
}

static void done_item(struct lr_drive *d, struct lr__item *it) {
  if (it->batch && it->written && it->write_rv != 0) {
    write_failed(d, it);
    return;
  }
  LR__DRIVE_RULE(d, it->seq <= d->durable_seq,
                 "an update finished (held messages, ack) before its write was durable");
  if (it->own_snapshot) {
    d->snap_pending = false;
    d->snap_index = it->snap_index;
    d->metrics.snapshots_taken++;
    lr__drive_snapshot_ok(d);
    LR__DRIVE_RULE(d, it->snap_index <= d->snap_durable,
                   "a snapshot acknowledged before it was durable");
    d->snap_acked = it->snap_index;
    /* the bytes move from the written batch to the core: a large state
     * is not copied again on the loop thread */
    size_t len;
    void *data = lr_store_batch_snapshot_release(it->batch, &len);
    int rv = raft_snapshot_taken_own(d->raft, it->snap_index, data, len);
    if (rv != 0) raft_free(data);
    if (rv != 0)
      lr__drive_log(d, RAFT_LOG_WARN, "snapshot at %llu refused by the core: %s",
                    (unsigned long long)it->snap_index, raft_strerror(rv));
    lr__drive_log(d, RAFT_LOG_INFO, "snapshot taken at index %llu (term %llu)",
                  (unsigned long long)it->snap_index, (unsigned long long)it->snap_term);
    if (lr__drive_subscribed(d, LR_EV_SNAPSHOT)) {
      struct lr_event ev = {.type = LR_EV_SNAPSHOT, .index = it->snap_index, .term = it->snap_term};
      lr__drive_event(d, &ev);
    }
    return;
  }
  if ((it->batch || it->merged) && it->ack_index > 0) {
    lr__drive_stamp_reached(d, d->durable_last, it->ack_index, false);
    d->durable_last = it->ack_index;
    raft_persisted(d->raft, lr__drive_now(d), it->ack_index, it->ack_term);
  }
  send_after(d, it->after, it->n_after);
  finish(d, it->snapshot, it->committed, it->n_committed, it->reads, it->n_reads, it->prop_errors,
         it->n_prop_errors);
}

/* Finishes durable items in order and starts the next write. */
static void pump(struct lr_drive *d) {
  while (d->head && !d->write_busy && !d->failed) {
    struct lr__item *it = d->head;
    if (it->batch && !it->written) {
      if (d->store_fail.retry_at > lr__drive_now(d)) return; /* backing off: lr_drive_deadline */
      it->writing = true;
      d->write_busy = true;
      if (d->io.write(d->io.data, it->batch) != 0) {
        d->write_busy = false; /* UNTESTED: */
        it->writing = false;
        lr__drive_fail(d, "cannot start a storage write");
      }
      return;
    }
    d->head = it->next;
    if (d->head == NULL) d->tail = NULL;
    it->next = NULL;
    done_item(d, it);
    lr__items_free(it);
  }
}

void lr_drive_written(struct lr_drive *d, int rv, double latency_ms) {
  struct lr__item *it = d->head;
  LR__DRIVE_RULE(d, d->write_busy && it && it->writing, "a write completed that was not started");
  d->write_busy = false;
  it->writing = false;
  it->written = true;
  it->write_rv = rv;
  if (rv == 0) {
    struct lr_store_batch_view v;
    lr_store_batch_view(it->batch, &v);
    d->durable_seq = it->seq;
    if (v.snap) d->snap_durable = v.snap->index;
    uint64_t failed = lr__backoff_ok(&d->store_fail);
    if (failed > 0)
      lr__drive_log(d, RAFT_LOG_WARN, "storage: writes succeed again after %llu failed",
                    (unsigned long long)failed);
    d->metrics.batches++;
    d->metrics.fsyncs++;
    d->metrics.entries_persisted += v.n_entries;
    d->metrics.fsync_sum_ms += latency_ms;
    int b = 0;
    while (b < LR_FSYNC_BUCKETS - 1 && latency_ms > lr_fsync_bounds_ms[b])
      b++;
    d->metrics.fsync_buckets[b]++;
  }
  lr__drive_stage(d, LR_STAGE_WRITE, latency_ms);
  if (d->role != RAFT_LEADER) lr__drive_stage(d, LR_STAGE_FOLLOWER_PERSIST, latency_ms);
  lr_drive_run(d);
}

/* ---- the loop -------------------------------------------------------------- */
/* A removed node does not tick: no (pre-)campaigns to bother the members
 * (lr_drive_recv ticks it again once a leader talks to it). */
static bool idle(const struct lr_drive *d) {
  return d->removed && d->role != RAFT_LEADER;
}

uint64_t lr_drive_deadline(const struct lr_drive *d) {
  uint64_t dl = idle(d) ? UINT64_MAX : raft_deadline(d->raft);
  if (d->store_fail.retry_at > 0 && d->head && !d->write_busy && d->store_fail.retry_at < dl)
    dl = d->store_fail.retry_at;
  return dl;
}

void lr_drive_run(struct lr_drive *d) {
  if (d->in_run) return; /* an event handler called back in: the outer loop goes on */
  d->in_run = true;
  while (!d->failed) {
    pump(d);
    lr__drive_deferred(d);
    if (d->failed || !raft_has_update(d->raft)) break;
    struct raft_update u;
    raft_update_take(d->raft, &u);
    take(d, &u);
    lr__drive_check(d);
  }
  d->in_run = false;
  if (!d->failed) lr__drive_check(d);
  if (!d->failed && d->io.arm) d->io.arm(d->io.data, lr_drive_deadline(d));
}

void lr_drive_tick(struct lr_drive *d) {
  if (d->failed) return;
  uint64_t now = lr__drive_now(d);
  if (!idle(d) && now >= raft_deadline(d->raft)) {
    if (d->n_waiters > 0) d->fwd_due = true; /* changes waiting on a new leader */
    raft_tick(d->raft, now);
    if (raft_deadline(d->raft) <= now && !d->stale_deadline_logged) {
      d->stale_deadline_logged = true;
      lr__drive_log(d, RAFT_LOG_DEBUG, "core deadline %llu still <= now %llu after a tick",
                    (unsigned long long)raft_deadline(d->raft), (unsigned long long)now);
    }
  }
  lr_drive_run(d);
}

void lr_drive_recv(struct lr_drive *d, const struct raft_message *m) {
  if (d->failed) return;
  d->metrics.peer_msgs_recv++;
  if (d->removed && (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                     m->type == RAFT_MSG_SNAPSHOT)) {
    d->removed = false;
    lr__drive_log(d, RAFT_LOG_INFO, "node %llu leads this node again: taking part again",
                  (unsigned long long)m->from);
  }
  int rv = raft_step(d->raft, lr__drive_now(d), m);
  if (rv != 0 && rv != RAFT_EMALFORMED)
    lr__drive_log(d, RAFT_LOG_DEBUG, "step %s from %llu: %s", raft_msg_name(m->type),
                  (unsigned long long)m->from, raft_strerror(rv));
  lr_drive_run(d);
}

void lr_drive_set_removed(struct lr_drive *d, raft_id by, raft_index theirs) {
  if (!d->was_member || d->removed) return;
  struct raft_status rs;
  raft_status(d->raft, &rs);
  if (theirs < rs.config_index) return; /* it has not caught up with our configuration */
  d->removed = true;
  lr__drive_log(d, RAFT_LOG_WARN,
                "node %llu (configuration index %llu) says this node is not a member: it was "
                "removed from the cluster and takes no part any more (no campaigns) unless a "
                "leader contacts it again; stop it, or add it back with add_member",
                (unsigned long long)by, (unsigned long long)theirs);
}

/* ---- life ------------------------------------------------------------------ */
int lr_drive_new(const struct lr_drive_options *o, struct lr_drive **out, char *err,
                 size_t errlen) {
  *out = NULL;
  struct lr_drive *d = calloc(1, sizeof *d);
  if (d == NULL) { /* UNTESTED: */
    raft_free_node(o->raft);
    lr_sm_free(o->sm);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  d->id = o->id;
  d->io = o->io;
  d->raft = o->raft, d->sm = o->sm; /* owned from here on */
  d->snapshot_entries = o->snapshot_entries;
  d->durable_last = o->durable_last;
  d->role = RAFT_FOLLOWER;
  lr_buf_init(&d->scratch);
  if (o->config && o->config->n > 0 && raft_config_copy(o->config, &d->config) != 0) {
    snprintf(err, errlen, "out of memory");
    lr_drive_free(d);
    return -1;
  }
  struct raft_status rs;
  raft_status(d->raft, &rs);
  d->term = rs.term;
  if (o->boot_snapshot) {
    if (lr__drive_restore(d, o->boot_snapshot, true, err, errlen) != 0) {
      lr_drive_free(d);
      return -1;
    }
  }
  *out = d;
  return 0;
}

void lr_drive_free(struct lr_drive *d) {
  if (d == NULL) return;
  lr__items_free(d->head);
  lr__waiters_free(d);
  for (size_t i = 0; i < d->n_fwd; i++)
    free(d->fwd[i].bytes);
  free(d->fwd);
  free(d->idxq);
  if (d->raft) raft_free_node(d->raft);
  if (d->sm) lr_sm_free(d->sm);
  raft_config_free(&d->applied_config);
  raft_config_free(&d->config);
  raft_config_free(&d->snap_job_config);
  lr_buf_free(&d->scratch);
  free(d);
}

void lr_drive_subscribe(struct lr_drive *d, int type, bool on) {
  if (type < 1 || type > LR_EV_TYPE_MAX) return;
  if (on)
    d->subscribed |= 1u << type;
  else
    d->subscribed &= ~(1u << type);
}

struct raft *lr_drive_raft(const struct lr_drive *d) {
  return d->raft;
}
struct lr_sm *lr_drive_sm(const struct lr_drive *d) {
  return d->sm;
}
void lr_drive_metrics(const struct lr_drive *d, struct lr_drive_metrics *m) {
  *m = d->metrics;
}
bool lr_drive_halted(const struct lr_drive *d) {
  return d->halted;
}
int lr_drive_role(const struct lr_drive *d) {
  return d->role;
}
raft_term lr_drive_term(const struct lr_drive *d) {
  return d->term;
}
raft_index lr_drive_snapshot_index(const struct lr_drive *d) {
  return d->snap_index;
}
const struct raft_config *lr_drive_config(const struct lr_drive *d) {
  return &d->config;
}
bool lr_drive_was_member(const struct lr_drive *d) {
  return d->was_member;
}
