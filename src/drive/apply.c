/* Applying committed entries (src/sm), restoring snapshots, halts of the
 * state machine and digest checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive/drive_int.h"

static void track_config(struct lr_drive *d, const struct raft_entry *e) {
  struct raft_config c;
  if (raft_config_decode(e->data, e->len, &c) != 0) return;
  raft_config_free(&d->applied_config);
  d->applied_config = c;
  d->applied_config_index = e->index;
  lr__drive_sync_peers(d); /* members the change dropped go now */
}

/* A digest checkpoint goes through the normal propose path, without a
 * waiter: a lost one only skips that checkpoint (sm.h, DIGESTS). Proposing
 * here only queues it in the core; the loop takes the update later. */
static void propose_digest(struct lr_drive *d) {
  struct lr_buf b;
  lr_buf_init(&b);
  if (lr_sm_digest_envelope(d->sm, &b) == 0) {
    raft_index index;
    raft_term term;
    int rv = raft_propose(d->raft, lr__drive_now(d), b.data, b.len, 0, &index, &term);
    if (rv < 0)
      lr__drive_log(d, RAFT_LOG_DEBUG, "digest checkpoint not proposed: %s", raft_strerror(rv));
  }
  lr_buf_free(&b);
}

/* The state machine halted (memory over its limit, or its digest diverged
 * from the majority's): apply nothing more, fail what waits here, hand
 * leadership on (deferred: applying walks entries the core owns, whose
 * pointers die at the next raft_* call). The core keeps running: it can
 * still vote and replicate. */
void lr__drive_halted(struct lr_drive *d) {
  if (d->halted) return;
  d->halted = true;
  struct lr_sm_status st;
  lr_sm_status(d->sm, &st);
  lr__drive_log(d, RAFT_LOG_ERROR,
                "state machine halted: %s; this node applies and serves nothing more (stop it, "
                "delete its data directory and start it again to recover from a replica)",
                st.reason);
  lr__waiters_fail_all(d, "stopped", st.reason);
  struct lr_event ev = {.type = LR_EV_FAIL_ALL,
                        .code = "stopped",
                        .data = st.reason,
                        .len = strlen(st.reason),
                        .has_data = true};
  lr__drive_event(d, &ev);
  d->halt_transfer = d->role == RAFT_LEADER;
}

/* raft_* calls that applying wants but cannot make while it walks entries
 * the core owns. */
void lr__drive_deferred(struct lr_drive *d) {
  if (d->fwd_due) {
    d->fwd_due = false;
    lr__fwd_resend(d);
  }
  if (d->halt_transfer) {
    d->halt_transfer = false;
    raft_transfer(d->raft, lr__drive_now(d), 0);
  }
  if (d->digest_due && !d->halted) {
    d->digest_due = false;
    propose_digest(d);
  }
}

void lr__drive_apply(struct lr_drive *d, const struct raft_entry *e, uint32_t count) {
  for (uint32_t i = 0; i < count && !d->failed; i++) {
    raft_index applied = lr_sm_applied_index(d->sm);
    if (e[i].index <= applied) continue; /* covered by a restored snapshot */
    if (e[i].index != applied + 1) {
      lr__drive_log(d, RAFT_LOG_ERROR, "entry %llu committed after applied index %llu",
                    (unsigned long long)e[i].index, (unsigned long long)applied);
      lr__drive_fail(d, "committed entries skip an index");
      return;
    }
    LR__DRIVE_RULE(d, e[i].index <= d->durable_last, "a committed entry is beyond the durable log");
    if (d->io.applying) d->io.applying(d->io.data, &e[i]);
    if (e[i].type == RAFT_ENTRY_CONFIG) track_config(d, &e[i]);
    struct lr_sm_result res;
    if (lr_sm_apply(d->sm, &e[i], &res) != 0) {
      lr__drive_fail(d, "the state machine runner failed (out of memory)");
      return;
    }
    if (res.status == LR_SM_HALTED) {
      lr__drive_halted(d);
      return;
    }
    d->metrics.applied_entries++;
    if (res.status != LR_SM_NONE && res.status != LR_SM_SKIPPED && res.env.origin == d->id &&
        res.env.req != 0) {
      const char *code = res.status == LR_SM_OK ? NULL : lr_sm_code(res.status);
      if (d->n_fwd > 0) lr__fwd_done(d, res.env.req);
      lr__drive_done(d, res.env.req, code, res.data, res.len, e[i].index, e[i].term);
    }
    if (d->idxq_n > 0) lr__idx_settle(d, &e[i]);
    lr__drive_stamp_applied(d, e[i].index);
    if (lr__drive_subscribed(d, LR_EV_APPLY)) {
      struct lr_event ev = {.type = LR_EV_APPLY, .index = e[i].index, .term = e[i].term};
      lr__drive_event(d, &ev);
    }
    if (lr_sm_digest_due(d->sm)) d->digest_due = true;
  }
  if (d->n_waiters > 0) lr__waiters_check(d);
  raft_index applied = lr_sm_applied_index(d->sm);
  if (d->snapshot_entries > 0 && !d->snap_pending && !d->failed && !d->halted &&
      applied > d->snap_tried && applied >= d->snap_index + d->snapshot_entries &&
      lr_sm_can_snapshot(d->sm) && lr__drive_now(d) >= d->snap_fail.retry_at) {
    char err[256];
    if (lr__drive_take_snapshot(d, false, err, sizeof err) != 0)
      lr__drive_snapshot_failed(d, applied, err);
  }
}

/* A snapshot into the state machine: a received one once it is durable, or
 * the stored one at start (boot: a failure is the caller's, the node does
 * not start). */
int lr__drive_restore(struct lr_drive *d, const struct raft_snapshot *s, bool boot, char *err,
                      size_t errlen) {
  if (lr_sm_restore(d->sm, s->data, s->len, err, errlen) != 0) {
    if (boot) return -1;
    if (lr_sm_halted(d->sm)) { /* memory_max: the node halts, nothing is lost */
      lr__drive_halted(d);
      return -1;
    }
    lr__drive_fail(d, err);
    return -1;
  }
  if (lr_sm_applied_index(d->sm) != s->meta.index) {
    snprintf(err, errlen, "snapshot data at index %llu does not match its index %llu",
             (unsigned long long)lr_sm_applied_index(d->sm), (unsigned long long)s->meta.index);
    if (!boot) lr__drive_fail(d, err);
    return -1;
  }
  lr_sm_set_applied(d->sm, s->meta.index, s->meta.term);
  struct raft_config c;
  if (raft_config_copy(&s->meta.config, &c) == 0) {
    raft_config_free(&d->applied_config);
    d->applied_config = c;
    d->applied_config_index = s->meta.config_index;
    if (!boot) lr__drive_sync_peers(d);
  }
  lr_sm_set_config(d->sm, &s->meta.config);
  d->snap_index = s->meta.index;
  if (boot) d->snap_durable = d->snap_acked = s->meta.index; /* the core booted with it */
  if (boot) {
    lr__drive_log(d, RAFT_LOG_INFO, "restored snapshot at index %llu",
                  (unsigned long long)s->meta.index);
    return 0;
  }
  d->metrics.snapshots_restored++;
  lr__drive_log(d, RAFT_LOG_INFO, "restored snapshot at index %llu (term %llu) from the leader",
                (unsigned long long)s->meta.index, (unsigned long long)s->meta.term);
  if (lr__drive_subscribed(d, LR_EV_SNAPSHOT)) {
    struct lr_event ev = {
        .type = LR_EV_SNAPSHOT, .index = s->meta.index, .term = s->meta.term, .restored = true};
    lr__drive_event(d, &ev);
  }
  return 0;
}
