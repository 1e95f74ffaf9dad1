/* Internals of the driver, shared by its files:
 *   drive.c    the update loop: take, batches, durability, snapshots, rules
 *   apply.c    applying committed entries, halts, digests, restores
 *   waiters.c  requests waiting for an index, a read state or a leader
 *   requests.c the entry points (propose, read, change, tick, recv, ...)
 *   msgcopy.c  deep copies of what outlives an update
 */
#ifndef LUARAFT_DRIVE_INT_H
#define LUARAFT_DRIVE_INT_H

#include "codec/codec.h"
#include "drive/drive.h"
#include "sm/sm.h"

/* One raft_update waiting for its batch to be durable before the rest of
 * it (held messages, ack, apply) may happen. FIFO in update order. */
struct lr__item {
  struct lr__item *next;
  struct lr_store_batch *batch; /* NULL: nothing to persist, or merged */
  bool merged;                  /* persisted by an earlier item's batch */
  uint64_t seq;                 /* of its batch (a merged item: of the batch it joined) */
  bool writing, written;
  int write_rv;
  raft_index ack_index; /* raft_persisted(ack_index, ack_term) once durable */
  raft_term ack_term;
  bool held_apply;   /* committed entries, reads, refusals wait here too */
  bool own_snapshot; /* a snapshot this node took: raft_snapshot_taken after */
  raft_index snap_index;
  raft_term snap_term;
  struct lr_msg_copy **after;
  uint32_t n_after;
  struct raft_entry *committed;
  uint32_t n_committed;
  struct raft_snapshot *snapshot; /* received: restore once durable (own: NULL, in batch) */
  struct raft_read_state *reads;
  uint32_t n_reads;
  struct raft_proposal_error *prop_errors;
  uint32_t n_prop_errors;
};

enum { W_READ_CTX = 1, W_READ_AT, W_TRANSFER, W_COMMIT, W_CHANGE };
struct lr__waiter {
  int kind;
  uint64_t req;
  bool unsent;     /* W_READ_CTX: not (or no longer) with any leader: ask the next one */
  int change_kind; /* W_CHANGE: a membership change waiting for the leader's first
                      own-term commit (raft_change said CONFPENDING before it) */
  raft_id change_id;
  char *change_addr;
  unsigned change_flags; /* RAFT_CHANGE_FORCE */
  raft_index index;      /* W_READ_AT, W_COMMIT: wait applied/commit >= */
  raft_id target;        /* W_TRANSFER */
  bool barrier;          /* reads: no query, just ok */
  char *q;               /* reads: the query bytes */
  size_t qlen;
};

/* An entry this node expects at an index (a proposal the leader appended,
 * a membership change): it completes, or is dropped when another entry
 * takes that index. FIFO: indexes only grow within a term. */
struct lr__idx {
  raft_index index;
  raft_term term;
  uint64_t req;
  bool change; /* completes on apply (a proposal completes by its envelope) */
};

#define LR__STAMPS 4096

/* A proposal of this node that is not (yet) in a log this node can see:
 * forwarded to a leader, or waiting for one. It stays here until its
 * envelope applies (lr__fwd_done) or the binding forgets it (timeout), so
 * that a leader change sends it again (issue 10: the sm's per-origin
 * request-id window applies one copy at most). `ctx` is the PROPOSE
 * context of its latest send: a refusal of an older send says nothing
 * about the latest. A refusal is taken as "not applied" only for a
 * proposal sent once and refused as too_large; a not_leader, busy or
 * transfer refusal is never an answer: the network may deliver another
 * copy of that PROPOSE to the same node once it can append it (seen in the
 * simulator: a candidate refused, won, and appended the late duplicate), so
 * the proposal goes again at the next commit or leader change, and the
 * binding's timeout says its outcome is unknown. */
struct lr__fwd {
  uint64_t req, ctx;
  char *bytes;
  size_t len;
  int wait;
  uint32_t sends;
  bool unsent; /* to be sent to the next leader known */
};

/* A failing operation that keeps failing (a full disk, a snapshot() that
 * raises) is retried after a wait that doubles per failure in a row, and
 * logged once per LR__FAIL_LOG_MS with a count, never once per try. */
struct lr__backoff {
  uint32_t ms;       /* the current wait; 0 after a success */
  uint64_t retry_at; /* not before this time */
  uint64_t log_at;   /* the next failure logged not before this time */
  uint64_t unlogged, in_row;
};

struct lr_drive {
  raft_id id;
  struct lr_drive_io io;
  struct raft *raft;
  struct lr_sm *sm;
  uint64_t snapshot_entries;
  uint32_t subscribed; /* bit per event type */
  bool failed;
  bool halted;                    /* the state machine halted: apply nothing more */
  bool digest_due, halt_transfer; /* raft_* calls deferred out of apply */
  bool in_run;
  bool stale_deadline_logged;
  /* the write pipeline */
  struct lr__item *head, *tail;
  bool write_busy;
  uint64_t batch_seq;      /* batches made so far */
  uint64_t durable_seq;    /* the last batch that became durable */
  raft_index snap_durable; /* the last snapshot a durable batch held */
  /* storage failures (issue 11): the next write waits retry_at, the wait
   * doubles per failure up to LR__BACKOFF_MAX_MS; failures are logged once
   * per LR__FAIL_LOG_MS with a count */
  struct lr__backoff store_fail;
  /* what the node last saw */
  int role;
  raft_id leader;
  raft_term term;
  raft_index commit;
  raft_index durable_last; /* last index of the durable log */
  raft_index snap_index;   /* last snapshot durable (taken or restored) */
  raft_index snap_tried;   /* last applied index a snapshot was tried at */
  /* an automatic snapshot whose snapshot() failed waits before the next try:
   * LR__SNAP_BACKOFF_MIN_MS doubling per failure in a row up to
   * LR__SNAP_BACKOFF_MAX_MS, logged once per LR__FAIL_LOG_MS with a count */
  struct lr__backoff snap_fail;
  raft_index snap_acked; /* last raft_snapshot_taken */
  bool snap_pending;     /* one of our snapshots is being made or written */
  bool snap_making;      /* io.snapshot started one: lr_drive_snapshot_made */
  raft_index snap_job_index, snap_job_config_index; /* what is being made */
  raft_term snap_job_term;
  struct raft_config snap_job_config;
  uint64_t snap_job_restored;        /* metrics.snapshots_restored when it started */
  uint64_t snap_job_start;           /* lr__drive_now when it started */
  struct raft_config applied_config; /* in effect at the applied index */
  raft_index applied_config_index;
  struct raft_config config; /* latest (for peer addresses) */
  bool was_member;           /* a configuration with this node in it was seen */
  bool removed;              /* a member with a newer configuration refused us */
  /* requests */
  struct lr__waiter *waiters;
  size_t n_waiters, cap_waiters;
  struct lr__fwd *fwd;
  size_t n_fwd, cap_fwd;
  uint64_t fwd_ctx; /* PROPOSE contexts handed out */
  bool fwd_due;     /* resend what waits for a leader (deferred out of take) */
  struct lr__idx *idxq;
  size_t idxq_head, idxq_n, idxq_cap;
  struct lr_buf scratch;
  struct lr_drive_metrics metrics;
  /* per-entry times for the stage metrics, by index modulo LR__STAMPS */
  struct lr__stamp {
    raft_index index;
    uint64_t take_us, durable_us, commit_us;
  } stamps[LR__STAMPS];
};

#define LR__WAITERS_MAX 100000 /* requests waiting at once */
#define LR__BACKOFF_MIN_MS 10
#define LR__BACKOFF_MAX_MS 2000
#define LR__FAIL_LOG_MS 5000
#define LR__SNAP_BACKOFF_MIN_MS 100
#define LR__SNAP_BACKOFF_MAX_MS 5000

/* A failure at `now`: the wait doubles (min, then up to max). -> how many
 * failures to report now (0: stay quiet until LR__FAIL_LOG_MS has passed). */
static inline uint64_t lr__backoff_failed(struct lr__backoff *b, uint64_t now, uint32_t min,
                                          uint32_t max) {
  b->unlogged++;
  b->in_row++;
  b->ms = b->ms ? b->ms * 2 : min;
  if (b->ms > max) b->ms = max;
  b->retry_at = now + b->ms;
  if (now < b->log_at) return 0;
  uint64_t n = b->unlogged;
  b->unlogged = 0;
  b->log_at = now + LR__FAIL_LOG_MS;
  return n;
}

/* A success. -> how many failures in a row it ends (0: none). */
static inline uint64_t lr__backoff_ok(struct lr__backoff *b) {
  uint64_t n = b->in_row;
  b->in_row = b->unlogged = 0;
  b->ms = 0;
  b->retry_at = 0;
  return n;
}

/* drive.c */
/* An automatic snapshot failed (snapshot() raised, or the child did): back
 * off; lr__drive_snapshot_ok() once one is durable again. */
void lr__drive_snapshot_failed(struct lr_drive *d, raft_index index, const char *err);
void lr__drive_snapshot_ok(struct lr_drive *d);
void lr__drive_log(struct lr_drive *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lr__drive_event(struct lr_drive *d, const struct lr_event *ev);
void lr__drive_done(struct lr_drive *d, uint64_t req, const char *code, const char *data,
                    size_t len, raft_index index, raft_term term);
bool lr__drive_new_leader(struct lr_drive *d);
bool lr__drive_change_later(struct lr_drive *d, int rv);
bool lr__drive_subscribed(const struct lr_drive *d, int type);
void lr__drive_fail(struct lr_drive *d, const char *why);
int lr__drive_take_snapshot(struct lr_drive *d, bool now, char *err, size_t errlen);
/* Appends an item to the write queue. */
void lr__drive_enqueue(struct lr_drive *d, struct lr__item *it);
void lr__items_free(struct lr__item *it);
uint64_t lr__drive_now(struct lr_drive *d);
uint64_t lr__drive_now_us(struct lr_drive *d);
void lr__drive_stage(struct lr_drive *d, int stage, double ms);
void lr__drive_stamp_applied(struct lr_drive *d, raft_index index);
/* Entries handed out by a leader's update; the durable log (commit false)
 * or the commit index (true) reached `to` from `from` (exclusive). */
void lr__drive_stamp_taken(struct lr_drive *d, const struct raft_update *u);
void lr__drive_stamp_reached(struct lr_drive *d, raft_index from, raft_index to, bool commit);

/* apply.c */
void lr__drive_apply(struct lr_drive *d, const struct raft_entry *e, uint32_t count);
int lr__drive_restore(struct lr_drive *d, const struct raft_snapshot *s, bool boot, char *err,
                      size_t errlen);
void lr__drive_halted(struct lr_drive *d);
void lr__drive_sync_peers(struct lr_drive *d);
void lr__drive_deferred(struct lr_drive *d);

/* waiters.c */
int lr__waiter_add(struct lr_drive *d, const struct lr__waiter *w);
void lr__waiters_check(struct lr_drive *d);
void lr__waiters_read_state(struct lr_drive *d, const struct raft_read_state *rs);
void lr__waiters_fail_all(struct lr_drive *d, const char *code, const char *msg);
void lr__waiters_free(struct lr_drive *d);
void lr__drive_query(struct lr_drive *d, uint64_t req, const char *q, size_t len, bool barrier,
                     raft_index index);
int lr__fwd_add(struct lr_drive *d, const struct lr__fwd *f);
void lr__fwd_done(struct lr_drive *d, uint64_t req);
void lr__fwd_refused(struct lr_drive *d, uint64_t ctx, int err);
void lr__fwd_resend(struct lr_drive *d);
bool lr__fwd_has(const struct lr_drive *d, uint64_t req);
int lr__fwd_send(struct lr_drive *d, struct lr__fwd *f);
int lr__idx_push(struct lr_drive *d, raft_index index, raft_term term, uint64_t req, bool change);
void lr__idx_settle(struct lr_drive *d, const struct raft_entry *e);

/* Rules the driver holds itself to: checked after every step, release
 * builds too. */
#define LR__DRIVE_RULE(d, cond, what)                                                              \
  do {                                                                                             \
    if (!(cond)) lr__drive_broken((d), (what), __FILE__, __LINE__);                                \
  } while (0)
void lr__drive_broken(struct lr_drive *d, const char *what, const char *file, int line)
    __attribute__((noreturn));
void lr__drive_check(struct lr_drive *d);

#endif
