/* Snapshots this node takes: made at once or through io.snapshot (the
 * real node forks), queued as their own batch, acknowledged to the core
 * once durable; and the back-off of a snapshot() that keeps failing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive/drive_int.h"

/* ---- snapshots this node takes -------------------------------------------- */
/* The state machine's snapshot at the applied index, written as its own
 * batch; the core hears of it (raft_snapshot_taken) once it is durable, so a
 * crash before that loses nothing: the log behind it is still on disk.
 *
 * The bytes come from io.snapshot: at once (the simulator), or later from a
 * copy-on-write view of the state (the real node forks), the loop serving
 * meanwhile; lr_drive_snapshot_made() then queues the batch exactly as the
 * synchronous path does. What the snapshot covers (index, term, config) is
 * fixed here, when the view is taken, not when the bytes arrive. */
static void snapshot_queue(struct lr_drive *d, const char *data, size_t len, bool take) {
  struct lr__item *it = calloc(1, sizeof *it);
  struct raft_snapshot snap = {0};
  snap.meta.index = d->snap_job_index;
  snap.meta.term = d->snap_job_term;
  snap.meta.config = d->snap_job_config;
  snap.meta.config_index = d->snap_job_config_index;
  snap.data = (const uint8_t *)data;
  snap.len = len;
  /* One copy (into the batch): raft_snapshot_taken reads it from there
   * once durable. A 100 MB state is copied on the loop thread, so each copy
   * counts. */
  if (it == NULL || lr_store_batch_new(&it->batch) != 0 ||
      (take ? lr_store_batch_snapshot_take(it->batch, &snap)
            : lr_store_batch_snapshot(it->batch, &snap)) != 0) {
    if (take) raft_free((void *)data);
    lr__items_free(it);
    d->snap_pending = false;
    lr__drive_log(d, RAFT_LOG_WARN, "snapshot at %llu not written: out of memory",
                  (unsigned long long)snap.meta.index);
    return;
  }
  it->own_snapshot = true;
  it->seq = ++d->batch_seq;
  it->snap_index = snap.meta.index;
  it->snap_term = snap.meta.term;
  lr__drive_enqueue(d, it);
}

int lr__drive_take_snapshot(struct lr_drive *d, bool now, char *err, size_t errlen) {
  d->snap_tried = lr_sm_applied_index(d->sm); /* also on failure: no retry every entry */
  struct raft_config c;
  if (raft_config_copy(d->applied_config.n ? &d->applied_config : &d->config, &c) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  raft_config_free(&d->snap_job_config);
  d->snap_job_config = c;
  d->snap_job_index = lr_sm_applied_index(d->sm);
  d->snap_job_term = lr_sm_applied_term(d->sm);
  d->snap_job_config_index = d->applied_config_index;
  d->snap_job_restored = d->metrics.snapshots_restored;
  d->snap_job_start = lr__drive_now(d);
  struct lr_buf buf;
  lr_buf_init(&buf);
  int rv = d->io.snapshot && !now ? d->io.snapshot(d->io.data, d->sm, &buf, err, errlen)
                                  : lr_sm_snapshot(d->sm, &buf, err, errlen);
  if (rv < 0) {
    lr_buf_free(&buf);
    return -1;
  }
  d->snap_pending = true;
  if (rv == 1) {
    d->snap_making = true; /* lr_drive_snapshot_made follows */
    lr_buf_free(&buf);
    return 0;
  }
  lr__drive_stage(d, LR_STAGE_SNAPSHOT, 0.0);
  snapshot_queue(d, buf.data, buf.len, false);
  lr_buf_free(&buf);
  return 0;
}

/* Is a received snapshot queued (to be restored once durable)? Ours, older,
 * must not be written after it. */
static bool received_queued(const struct lr_drive *d) {
  for (const struct lr__item *it = d->head; it; it = it->next)
    if (it->snapshot && !it->own_snapshot) return true;
  return false;
}

void lr_drive_snapshot_made(struct lr_drive *d, int rv, void *data, size_t len, const char *err) {
  LR__DRIVE_RULE(d, d->snap_making, "a snapshot was made that was not started");
  d->snap_making = false;
  lr__drive_stage(d, LR_STAGE_SNAPSHOT, (double)(lr__drive_now(d) - d->snap_job_start));
  if (d->failed || rv != 0 || d->metrics.snapshots_restored != d->snap_job_restored ||
      received_queued(d) || d->snap_job_index <= d->snap_index) {
    raft_free(data); /* not written: NULL, or ours to free */
    data = NULL;
  }
  if (d->failed) {
    d->snap_pending = false;
    return;
  }
  if (rv != 0) {
    d->snap_pending = false;
    lr__drive_snapshot_failed(d, d->snap_job_index, err ? err : "unknown error");
  } else if (d->metrics.snapshots_restored != d->snap_job_restored || received_queued(d) ||
             d->snap_job_index <= d->snap_index) {
    /* The state was replaced by a newer snapshot from the leader meanwhile. */
    d->snap_pending = false;
    lr__drive_log(d, RAFT_LOG_INFO, "snapshot at %llu dropped: a newer one was received meanwhile",
                  (unsigned long long)d->snap_job_index);
  } else {
    snapshot_queue(d, data, len, true);
  }
  lr_drive_run(d);
}

int lr_drive_snapshot(struct lr_drive *d, char *err, size_t errlen) {
  if (d->failed) {
    snprintf(err, errlen, "the node is stopped");
    return -1;
  }
  if (!lr_sm_can_snapshot(d->sm)) {
    snprintf(err, errlen, "the state machine has no snapshot() and restore()");
    return -1;
  }
  if (d->snap_pending) {
    snprintf(err, errlen, "a snapshot is already being written");
    return -1;
  }
  if (lr_sm_applied_index(d->sm) <= d->snap_index) {
    snprintf(err, errlen, "nothing applied since the last snapshot");
    return -1;
  }
  /* Asked for: made now, so that a snapshot() that fails is the caller's
   * answer (the HTTP API's 500 snapshot_failed); automatic ones are made
   * through io.snapshot (apply.c). */
  if (lr__drive_take_snapshot(d, true, err, errlen) != 0) return -1;
  lr_drive_run(d);
  return 0;
}

/* ---- snapshot failures --------------------------------------------------------- */
/* A state machine whose snapshot() raises raises again on the next entry:
 * trying at every applied entry floods the log and burns the loop (issue 11
 * saw 182 warnings for 70 writes). The next automatic try waits, doubling per
 * failure in a row; the log says so once per LR__FAIL_LOG_MS with a count. */
void lr__drive_snapshot_failed(struct lr_drive *d, raft_index index, const char *err) {
  uint64_t n = lr__backoff_failed(&d->snap_fail, lr__drive_now(d), LR__SNAP_BACKOFF_MIN_MS,
                                  LR__SNAP_BACKOFF_MAX_MS);
  if (n > 0)
    lr__drive_log(d, RAFT_LOG_WARN,
                  "snapshot failed: %s (applied index %llu; %llu failed since the last report; "
                  "the next try in %u ms)",
                  err, (unsigned long long)index, (unsigned long long)n, d->snap_fail.ms);
}

void lr__drive_snapshot_ok(struct lr_drive *d) {
  uint64_t n = lr__backoff_ok(&d->snap_fail);
  if (n > 0)
    lr__drive_log(d, RAFT_LOG_WARN, "snapshots succeed again after %llu failed",
                  (unsigned long long)n);
}
