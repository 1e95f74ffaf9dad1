/* luaraft deterministic simulator: N Raft cores, each with in-memory durable
 * storage (writes become durable after a virtual disk latency) and a state
 * machine runner (src/sm/), one virtual clock in milliseconds, one event queue
 * (ordered by time, then insertion) and ONE seeded PRNG that drives every
 * random choice (node seeds, network drops/duplicates/delays, disk latency).
 * Same options and same calls: same run, byte for byte (see lr_sim_trace).
 *
 * Each node runs the driver of the real node (src/drive): the host protocol
 * of core/raft.h, group commit, snapshots acknowledged once durable, halts,
 * digests, waiters. The simulator is its adapter (sim_node.c): a disk whose
 * one write in flight is durable after the virtual disk latency, the
 * simulated network and the virtual clock. A crash loses the write not yet
 * durable, the held messages and the node's Lua state.
 *
 * Requests (proposals, reads, membership changes) get an id; their outcome is
 * queued as a completion that the binding drains (lr_sim_next_completion).
 * Safety invariants are checked continuously; the first violation is kept
 * with its virtual time (lr_sim_violation).
 */
#ifndef LUARAFT_SIM_SIM_H
#define LUARAFT_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/raft.h"
#include "drive/drive.h"
#include "sm/sm.h"

#define LR_SIM_NODES_MAX 32

enum { LR_SIM_TRACE_OFF = 0, LR_SIM_TRACE_EVENTS = 1, LR_SIM_TRACE_MESSAGES = 2 };

struct lr_sim_options {
  uint32_t n_nodes;
  raft_id ids[LR_SIM_NODES_MAX];
  uint64_t seed;
  struct raft_options raft;  /* id and seed are set per node */
  struct lr_sm_options sm;   /* path or chunk; id set per node */
  uint32_t snapshot_entries; /* 0: default 10000 */
  uint32_t disk_lo, disk_hi; /* virtual disk latency, ms (default 0..2) */
  uint32_t net_lo, net_hi;   /* default network delay, ms (default 1..5) */
  int trace;                 /* LR_SIM_TRACE_* (default events) */
  bool no_checks;            /* skip the invariant checks (benchmarks) */
  /* memory_max of the node ids[i] (0: sm.memory_max), to simulate a node with
   * less memory than the others */
  size_t node_memory_max[LR_SIM_NODES_MAX];
};

struct lr_sim_completion {
  uint64_t id;
  uint64_t time;    /* virtual ms */
  const char *code; /* NULL: success; else an API.md error code */
  const char *data; /* success: lr_encode bytes (may be empty: no value);
                       error: the message */
  size_t len;
  raft_index index; /* proposals/changes: the entry's index when known */
  raft_term term;
  raft_id leader; /* not_leader: the leader when known */
};

struct lr_sim;
int lr_sim_new(const struct lr_sim_options *o, struct lr_sim **out, char *err, size_t errlen);
void lr_sim_free(struct lr_sim *s);

uint64_t lr_sim_now(const struct lr_sim *s);
/* Runs every event due at or before `until`, then sets now = until.
 * -1 if a node failed beyond repair (see lr_sim_violation). */
void lr_sim_run(struct lr_sim *s, uint64_t until);
/* Runs everything due at the next instant that has something to do, if that
 * is at or before `limit`; returns false (and leaves now) if nothing is. */
bool lr_sim_step(struct lr_sim *s, uint64_t limit);

/* Requests: return the request id; the outcome arrives as a completion (maybe
 * at once, e.g. not_leader). cmd/q are lr_encode bytes. A proposal is in the
 * core's log at once but goes out with the node's next update, taken when
 * the simulator next runs or is acted on: a burst of proposals is one write
 * and one APPEND per follower, as in a real host's loop iteration. */
uint64_t lr_sim_propose(struct lr_sim *s, raft_id node, const char *cmd, size_t len,
                        const char *client, size_t client_len, uint64_t seq, uint64_t timeout_ms);
/* n proposals of the same command, exactly as n lr_sim_propose calls in a
 * row: their ids are consecutive, the first is returned (0 if n is 0). With a
 * client, proposal i (from 0) has sequence number seq + i. */
uint64_t lr_sim_propose_many(struct lr_sim *s, raft_id node, const char *cmd, size_t len,
                             uint32_t n, const char *client, size_t client_len, uint64_t seq,
                             uint64_t timeout_ms);
/* mode: LR_READ_* (drive.h) */
uint64_t lr_sim_read(struct lr_sim *s, raft_id node, int mode, const char *q, size_t len,
                     uint64_t timeout_ms);
/* kind: RAFT_ADD_VOTER / RAFT_ADD_LEARNER / RAFT_PROMOTE / RAFT_REMOVE */
/* flags: RAFT_CHANGE_FORCE or 0 (lr_drive_change) */
uint64_t lr_sim_change(struct lr_sim *s, raft_id node, int kind, raft_id target,
                       const char *address, unsigned flags, uint64_t timeout_ms);
/* Pops the oldest completion; its pointers stay valid until the next call. */
bool lr_sim_next_completion(struct lr_sim *s, struct lr_sim_completion *c);

/* Direct inputs; return 0 or a RAFT_E* code (or RAFT_EINVAL: no such node /
 * node down). */
int lr_sim_transfer(struct lr_sim *s, raft_id node, raft_id target);
int lr_sim_step_down(struct lr_sim *s, raft_id node);
int lr_sim_snapshot_now(struct lr_sim *s, raft_id node, char *err, size_t errlen);

/* Faults and topology. */
int lr_sim_crash(struct lr_sim *s, raft_id node);
int lr_sim_restart(struct lr_sim *s, raft_id node, char *err, size_t errlen);
int lr_sim_add_node(struct lr_sim *s, raft_id node, char *err, size_t errlen);
/* The next `count` disk writes of the node fail (0: the disk heals); they
 * still take the virtual disk latency. Kept across restarts (a bad disk). */
int lr_sim_fail_writes(struct lr_sim *s, raft_id node, uint32_t count);
/* group[i] = partition group of node slot i; 0 = connected to everything */
void lr_sim_partition(struct lr_sim *s, const raft_id *ids, const int *groups, uint32_t n);
void lr_sim_heal(struct lr_sim *s);
void lr_sim_net(struct lr_sim *s, double drop, double duplicate, uint32_t lo, uint32_t hi,
                bool reorder);
/* One direction a -> b; drop < 0 clears the override. */
int lr_sim_link(struct lr_sim *s, raft_id a, raft_id b, double drop, uint32_t lo, uint32_t hi);

/* Introspection. */
struct lr_sim_node_status {
  bool exists, up;
  struct raft_status raft; /* valid when up */
  raft_index applied, snapshot_index;
  uint32_t sessions;
  uint32_t incarnation;
  struct lr_sm_status sm; /* valid when up: halted, diverged, digests */
};
int lr_sim_status(struct lr_sim *s, raft_id node, struct lr_sim_node_status *st);
uint32_t lr_sim_nodes(const struct lr_sim *s, raft_id *ids); /* existing nodes */
raft_id lr_sim_leader(const struct lr_sim *s);
/* The node's SM Lua state (NULL when down). */
lua_State *lr_sim_node_lua(struct lr_sim *s, raft_id node);
const char *lr_sim_violation(const struct lr_sim *s); /* NULL: none */
/* node:metrics(): the driver's counters (the real node's), the members
 * other than this node and how many of them are running, the leader's
 * progress. RAFT_EINVAL when the node is down. Counters start again at a
 * restart, as a real node process's do. */
struct lr_sim_node_metrics {
  struct lr_drive_metrics drive;
  uint32_t peers, peers_up;
  struct raft_progress_info progress[LR_SIM_NODES_MAX];
  uint32_t n_progress;
};
int lr_sim_metrics(struct lr_sim *s, raft_id node, struct lr_sim_node_metrics *m);
const char *lr_sim_trace(const struct lr_sim *s, size_t *len);
/* Appends a line to the trace (the binding records ticket events). */
void lr_sim_trace_line(struct lr_sim *s, const char *fmt, ...);
uint64_t lr_sim_applied_total(const struct lr_sim *s); /* entries applied, all nodes */
uint64_t lr_sim_random(struct lr_sim *s);              /* the sim's PRNG, for scripts */

#endif
