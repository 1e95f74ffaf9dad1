/* Per-stage latency of the entries this node leads (leader persist, ack to
 * commit, apply, ...): stamped as each entry passes a stage, counted in the
 * histograms node:metrics() and /metrics show. */
#include "drive/drive_int.h"

const double lr_stage_bounds_ms[LR_STAGE_BUCKETS - 1] = {0.05, 0.1, 0.2, 0.5, 1,   2,    5,   10,
                                                         20,   50,  100, 200, 500, 1000, 5000};
const char *const lr_stage_names[LR_STAGES] = {
    "leader_persist", "follower_persist", "ack_commit", "apply", "write", "snapshot"};

void lr__drive_stage(struct lr_drive *d, int stage, double ms) {
  struct lr_drive_stage *st = &d->metrics.stages[stage];
  int b = 0;
  while (b < LR_STAGE_BUCKETS - 1 && ms > lr_stage_bounds_ms[b])
    b++;
  st->buckets[b]++;
  st->count++;
  st->sum_ms += ms;
}

/* The stamps of an entry this node leads, or NULL (not ours, or overwritten
 * by an index LR__STAMPS further on). */
static struct lr__stamp *stamp_of(struct lr_drive *d, raft_index index) {
  struct lr__stamp *s = &d->stamps[index % LR__STAMPS];
  return s->index == index && s->take_us ? s : NULL;
}

/* Entries handed out by a leader's update. */
void lr__drive_stamp_taken(struct lr_drive *d, const struct raft_update *u) {
  if (d->role != RAFT_LEADER || u->n_entries == 0) return;
  uint64_t now = lr__drive_now_us(d);
  for (uint32_t i = 0; i < u->n_entries; i++) {
    struct lr__stamp *s = &d->stamps[u->entries[i].index % LR__STAMPS];
    *s = (struct lr__stamp){.index = u->entries[i].index, .take_us = now};
  }
}

/* The durable log (commit == false) or the commit index (true) reached
 * `to` from `from` (exclusive): the stage each of those entries finished. */
void lr__drive_stamp_reached(struct lr_drive *d, raft_index from, raft_index to, bool commit) {
  if (to <= from) return;
  if (to - from > LR__STAMPS) from = to - LR__STAMPS;
  uint64_t now = lr__drive_now_us(d);
  for (raft_index i = from + 1; i <= to; i++) {
    struct lr__stamp *s = stamp_of(d, i);
    if (s == NULL || (commit ? s->commit_us : s->durable_us)) continue;
    if (!commit) {
      s->durable_us = now;
      lr__drive_stage(d, LR_STAGE_LEADER_PERSIST, (double)(now - s->take_us) / 1000.0);
      continue;
    }
    s->commit_us = now;
    uint64_t since = s->durable_us ? s->durable_us : s->take_us;
    lr__drive_stage(d, LR_STAGE_ACK_COMMIT, now > since ? (double)(now - since) / 1000.0 : 0.0);
  }
}

void lr__drive_stamp_applied(struct lr_drive *d, raft_index index) {
  struct lr__stamp *s = stamp_of(d, index);
  if (s == NULL || s->commit_us == 0) return;
  uint64_t now = lr__drive_now_us(d);
  lr__drive_stage(d, LR_STAGE_APPLY,
                  now > s->commit_us ? (double)(now - s->commit_us) / 1000.0 : 0.0);
  s->take_us = 0; /* done with it */
}
