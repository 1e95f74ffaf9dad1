/* luaraft driver: THE one implementation of the host protocol of
 * src/core/raft.h, under the real node (src/host, libuv) and the simulator
 * (src/sim) alike.
 *
 * It owns everything between the core and the outside world:
 *   - taking updates: `msgs` go out at once (a leader's appends travel in
 *     parallel with its own write, thesis 10.2.1); hard state, entries and
 *     received snapshots become store batches (src/store's batch API);
 *   - group commit: what updates persist while a write is in flight joins
 *     the one queued batch that has not started (one write, one fsync);
 *   - once a batch is durable: the held `msgs_after`, raft_persisted(), a
 *     received snapshot restored, committed entries applied (src/sm), reads
 *     answered; a failed write calls raft_persist_failed() and drops every
 *     queued write and held message;
 *   - snapshots this node takes: made through io.snapshot (the real node
 *     forks: the loop serves on while a child serialises the state), written
 *     as their own batch, and only once that batch is durable does the core
 *     hear of it (raft_snapshot_taken);
 *   - per-stage latency histograms (metrics.stages);
 *   - waiters for proposals, membership changes, commits, reads and
 *     transfers; halts of the state machine (leadership handed on, deferred
 *     out of apply); digest checkpoints; removed-node behaviour (a removed
 *     node does not tick); metrics.
 *
 * The world comes in through struct lr_drive_io: the disk (start one batch
 * write; its completion comes back later through lr_drive_written), the net
 * (send one message), the clock (now, arm the next deadline) and events
 * for the binding. Only one batch write is in flight at a time.
 *
 * The driver checks its own rules after every step, in release builds too
 * (nothing applied beyond the durable log, no msgs_after before their write
 * is durable, a snapshot acknowledged only once durable): a broken rule is a
 * bug in luaraft, and aborts with a message, as the core's assertions do.
 *
 * Leader changes (issue 10): a proposal or ReadIndex request that is not
 * in a log this node sees (forwarded, or made while no leader was known)
 * stays with the driver until it is answered, and goes to each new leader
 * this node learns of (lr_drive_leader_changed); see struct lr__fwd.
 *
 * Snapshots this node takes automatically are made through io.snapshot
 * (the libuv adapter forks a child, the simulator makes them at once) and
 * come back through lr_drive_snapshot_made(); per-stage latencies are kept
 * in the metrics (issue 12).
 */
#ifndef LUARAFT_DRIVE_H
#define LUARAFT_DRIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/raft.h"
#include "store/store.h"

struct lr_sm;
struct lr_buf;

/* ---- events for the binding ---------------------------------------------- */
enum lr_event_type {
  LR_EV_DONE = 1, /* a request finished: req, code (NULL: ok), data */
  LR_EV_FAIL_ALL, /* every proposal waiting fails with `code` */
  LR_EV_ROLE,     /* role (raft_role_name), term */
  LR_EV_LEADER,   /* leader, term */
  LR_EV_COMMIT,   /* index */
  LR_EV_APPLY,    /* index, term */
  LR_EV_MEMBERS,  /* index: the configuration changed; config */
  LR_EV_SNAPSHOT, /* index, term; restored: received from the leader */
  LR_EV_STOPPED,  /* the node is gone (fatal error or stop) */
  LR_EV_STATE     /* role, leader, term: every soft state the core reports */
};
#define LR_EV_TYPE_MAX LR_EV_STATE

struct lr_event {
  int type;
  uint64_t req;
  const char *code; /* API.md error code, NULL on success */
  const char *data; /* result bytes (lr_encode) or error message */
  size_t len;
  bool has_data;
  raft_index index;
  raft_term term;
  int role;
  raft_id leader;
  bool restored;                    /* LR_EV_SNAPSHOT */
  const struct raft_config *config; /* LR_EV_MEMBERS, valid during the call */
};

/* ---- metrics -------------------------------------------------------------- */
/* Per-stage latency (issue 12), histograms in ms. Per entry this node
 * proposed or replicated as leader: leader_persist (handed out by the core
 * -> its batch durable here, the wait behind a write in flight included),
 * ack_commit (durable here -> committed: the followers' persist and acks),
 * apply (committed -> applied). Per batch: write (every batch write),
 * follower_persist (a batch written while not leader). Per snapshot this
 * node takes: snapshot (started -> bytes ready; 0 when made synchronously). */
enum {
  LR_STAGE_LEADER_PERSIST = 0,
  LR_STAGE_FOLLOWER_PERSIST,
  LR_STAGE_ACK_COMMIT,
  LR_STAGE_APPLY,
  LR_STAGE_WRITE,
  LR_STAGE_SNAPSHOT,
  LR_STAGES
};
extern const char *const lr_stage_names[LR_STAGES];
#define LR_STAGE_BUCKETS 16
extern const double lr_stage_bounds_ms[LR_STAGE_BUCKETS - 1];
struct lr_drive_stage {
  uint64_t count;
  double sum_ms;
  uint64_t buckets[LR_STAGE_BUCKETS]; /* <= lr_stage_bounds_ms[i], the last +Inf */
};

#define LR_FSYNC_BUCKETS 12
extern const double lr_fsync_bounds_ms[LR_FSYNC_BUCKETS - 1];
struct lr_drive_metrics {
  uint64_t proposals, proposals_failed, elections, leader_changes;
  uint64_t applied_entries, snapshots_taken, snapshots_restored;
  uint64_t batches, batches_failed, batches_merged;
  uint64_t fsyncs;                          /* batch writes that reached the disk (= fsyncs) */
  uint64_t entries_persisted;               /* log entries those writes made durable */
  uint64_t fsync_buckets[LR_FSYNC_BUCKETS]; /* <=1,2,5,...,2000 ms, +Inf */
  double fsync_sum_ms;
  uint64_t peer_msgs_sent, peer_msgs_recv;
  struct lr_drive_stage stages[LR_STAGES];
};

/* ---- the world ------------------------------------------------------------ */
struct lr_drive_io {
  void *data;
  uint64_t (*now)(void *data);    /* monotonic ms, for the core */
  uint64_t (*wall)(void *data);   /* ms written into envelopes (meta.time) */
  uint64_t (*now_us)(void *data); /* optional, monotonic us for the stage metrics */
  /* Starts writing b; exactly one lr_drive_written() follows (later, never
   * from inside this call). -1: the write cannot start (the node fails). */
  int (*write)(void *data, struct lr_store_batch *b);
  void (*send)(void *data, const struct raft_message *m);
  /* optional: send m, whose entries are all in b (the batch this update
   * persists them in, copies of the same entries): an adapter that keeps
   * messages (the simulator's network) may hold b (lr_store_batch_hold) and
   * point into it instead of copying the entries once more. */
  void (*send_batch)(void *data, const struct raft_message *m, struct lr_store_batch *b);
  void (*event)(void *data, const struct lr_event *ev);
  void (*log)(void *data, int level, const char *line);
  /* optional */
  void (*arm)(void *data, uint64_t deadline);               /* next lr_drive_tick */
  void (*config)(void *data, const struct raft_config *c);  /* members' addresses */
  void (*applying)(void *data, const struct raft_entry *e); /* checks (simulator) */
  /* The source of the snapshots this node takes (issue 12). 0: taken now,
   * the bytes in `out` (the simulator: virtual time stands still); 1:
   * started, lr_drive_snapshot_made() follows later, never from inside this
   * call (the real node: a forked child serialises a copy-on-write view of
   * the state while the loop keeps serving); -1: failed, err set. NULL: the
   * driver calls lr_sm_snapshot() itself. */
  int (*snapshot)(void *data, struct lr_sm *sm, struct lr_buf *out, char *err, size_t errlen);
};

struct lr_drive_options {
  raft_id id;
  struct raft *raft;                         /* owned by the driver from here on */
  struct lr_sm *sm;                          /* owned by the driver from here on */
  const struct raft_config *config;          /* members known at start (may be empty) */
  const struct raft_snapshot *boot_snapshot; /* durable snapshot: restored now */
  raft_index durable_last;                   /* last index of the durable log at start */
  uint64_t snapshot_entries;                 /* applied entries between snapshots; 0: never */
  struct lr_drive_io io;
};

struct lr_drive;
int lr_drive_new(const struct lr_drive_options *o, struct lr_drive **out, char *err, size_t errlen);
/* Frees the driver, its core and its runner. A write in flight is the
 * caller's to finish or drop (the batch belongs to the driver's queue and is
 * freed here: call this only when no write is running, or after it ended). */
void lr_drive_free(struct lr_drive *d);
/* Which events beyond DONE, FAIL_ALL, STOPPED and STATE are delivered. */
void lr_drive_subscribe(struct lr_drive *d, int type, bool on);

/* THE loop: takes every update the core has and moves the write pipeline.
 * Requests below only enter the core; call this to let them out (a caller
 * may gather a burst of proposals into one update). */
void lr_drive_run(struct lr_drive *d);
/* The write started by io.write finished: rv 0 (durable) or LR_STORE_E*. */
void lr_drive_written(struct lr_drive *d, int rv, double latency_ms);
void lr_drive_tick(struct lr_drive *d);
void lr_drive_recv(struct lr_drive *d, const struct raft_message *m);
/* When lr_drive_tick is next due (a removed node is not ticked). */
uint64_t lr_drive_deadline(const struct lr_drive *d);
/* Removed-node behaviour: a member with a configuration at least as new as
 * ours says we are not in it; we stop ticking until a leader talks to us. */
void lr_drive_set_removed(struct lr_drive *d, raft_id by, raft_index their_config_index);

/* Requests: 0, or a RAFT_E* code (see raft_errcode) and no event follows. */
enum { LR_WAIT_APPLY = 0, LR_WAIT_COMMIT };
int lr_drive_propose(struct lr_drive *d, uint64_t req, const char *cmd, size_t len,
                     const char *client, size_t client_len, uint64_t seq, int wait);
enum { LR_READ_LINEARIZABLE = 0, LR_READ_LEASE, LR_READ_STALE, LR_READ_BARRIER };
int lr_drive_read(struct lr_drive *d, uint64_t req, int mode, const char *q, size_t len);
/* flags: RAFT_CHANGE_FORCE skips the core's caught-up and reachable-quorum
 * checks (raft_change_ex); the waiter that retries it keeps them. */
int lr_drive_change(struct lr_drive *d, uint64_t req, int kind, raft_id id, const char *address,
                    unsigned flags);
int lr_drive_transfer(struct lr_drive *d, uint64_t req, raft_id to);
int lr_drive_step_down(struct lr_drive *d);
/* Takes a snapshot now, on this thread (0: queued for writing), or -1 with
 * err. The automatic ones (snapshot_entries) go through io.snapshot. */
int lr_drive_snapshot(struct lr_drive *d, char *err, size_t errlen);
/* The snapshot io.snapshot started is made: rv 0 and its bytes, or -1 and
 * why. The driver takes `data` (from raft_malloc; NULL with rv -1): a large
 * snapshot is not copied on the loop thread. It is queued as its own batch,
 * as a synchronous one is; dropped if the state was replaced meanwhile (a
 * snapshot received). */
void lr_drive_snapshot_made(struct lr_drive *d, int rv, void *data, size_t len, const char *err);
/* The binding gave up on req (its timeout): the driver stops sending it
 * again and forgets its waiter; no event follows. */
void lr_drive_forget(struct lr_drive *d, uint64_t req);
/* Fails every waiting request of this node with `code` (a crash, a stop). */
void lr_drive_fail_all(struct lr_drive *d, const char *code, const char *msg);

/* Introspection. */
struct raft *lr_drive_raft(const struct lr_drive *d);
struct lr_sm *lr_drive_sm(const struct lr_drive *d);
void lr_drive_metrics(const struct lr_drive *d, struct lr_drive_metrics *m);
bool lr_drive_halted(const struct lr_drive *d);
int lr_drive_role(const struct lr_drive *d);
raft_term lr_drive_term(const struct lr_drive *d);
raft_index lr_drive_snapshot_index(const struct lr_drive *d); /* durable */
const struct raft_config *lr_drive_config(const struct lr_drive *d);
bool lr_drive_was_member(const struct lr_drive *d);

/* Called by the driver when the known leader changes: re-checks the
 * waiters, and (deferred to the loop, out of the update being taken) sends
 * the pending proposals and ReadIndex requests to the new leader. */
void lr_drive_leader_changed(struct lr_drive *d, raft_id old_leader, raft_id new_leader);

/* ---- deep copies (the one copy of a message in luaraft) ------------------- */
/* One allocation holding the message, its entries, their data and the
 * snapshot chunk; the snapshot config is copied beside it. */
struct lr_msg_copy {
  struct raft_message m;
  struct lr_msg_copy *shares;   /* whose entries m.entries points into, or NULL */
  struct lr_store_batch *batch; /* whose bytes the entries point into, or NULL */
  uint32_t refs;                /* this copy, and copies sharing its entries */
  uint32_t has_config;
  char tail[];
};
struct lr_msg_copy *lr_msg_copy(const struct raft_message *m);
/* A copy of m whose entries are those of `with` (a copy of a message that
 * carries the same entries: the same first index and term, count and last
 * term, which by log matching are the same entries), copied once for both. */
struct lr_msg_copy *lr_msg_copy_sharing(const struct raft_message *m, struct lr_msg_copy *with);
/* A copy of m (entries all in b, see io.send_batch) whose entries' bytes
 * are b's: b is held until the copy is freed. */
struct lr_msg_copy *lr_msg_copy_in_batch(const struct raft_message *m, struct lr_store_batch *b);
/* Drops a reference: the copy is freed with its last sharer. */
void lr_msg_copy_free(struct lr_msg_copy *c);
/* Do a and b carry the same entries (log matching: same first index and
 * term, count and last term)? */
bool lr_msg_same_entries(const struct raft_message *a, const struct raft_message *b);
int lr_snapshot_copy(const struct raft_snapshot *src, struct raft_snapshot **out);
void lr_snapshot_free(struct raft_snapshot *s);

#endif
