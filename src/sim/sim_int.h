/* Simulator internals shared by sim.c (clock, events, network, requests),
 * sim_node.c (one node: storage, the host protocol, crash/restart) and
 * sim_check.c (safety invariants). */
#ifndef LUARAFT_SIM_SIM_INT_H
#define LUARAFT_SIM_SIM_INT_H

#include "sim/sim.h"

/* A reference-counted block of bytes: a message or a write with all of its
 * entries' data in one allocation; durable log entries keep their write's
 * block alive. */
struct lr__sim_blk {
  uint64_t refs; /* 8 bytes: data[] must be aligned for raft_entry */
  char data[];
};

/* A copied message, in one allocation (entries and data follow it), or, for
 * an APPEND whose entries its node is writing in the same update, a header
 * that shares the write's block (the block is never changed once made). */
struct lr__sim_msg {
  struct raft_message m;
  struct lr__sim_blk *blk; /* shared entries (or NULL: they are in tail[]) */
  uint64_t has_config; /* m.snap.config was copied (8 bytes: tail[] alignment) */
  char tail[];
};

struct lr__sim_slog { /* one durable log entry */
  struct raft_entry e;     /* e.data points into blk */
  struct lr__sim_blk *blk;
  uint64_t chain;          /* hash of the log up to here (log matching) */
};

struct lr__sim_snap { /* a durable snapshot */
  struct raft_snapshot_meta meta; /* config owned */
  char *data;
  size_t len;
  uint64_t chain;
};

struct lr__sim_write { /* one update's persistence, pending until durable */
  struct lr__sim_write *next;
  uint64_t durable_at;
  bool hard;
  raft_term term;
  raft_id vote;
  struct raft_entry *entries; /* in blk */
  uint32_t n_entries;
  struct lr__sim_blk *blk;
  bool has_snap;
  struct lr__sim_snap snap;
  struct lr__sim_msg **after;
  uint32_t n_after;
};

enum { W_PROPOSE = 1, W_READ, W_CHANGE };
struct lr__sim_waiter {
  uint64_t id; /* 0: free slot */
  uint32_t slot, inc;
  uint8_t kind;
  uint8_t consistency;
  raft_index index; /* read: read index (0: not yet); change: entry index */
  raft_term term;
  char *q; /* read: the query bytes */
  size_t qlen;
};

struct lr__sim_idx { /* an entry this node's waiter expects at an index */
  raft_index index;
  raft_term term;
  uint64_t id;
};

struct lr__sim_node {
  struct lr_sim *sim; /* for the runner's log callback */
  raft_id id;
  bool exists, up;
  uint32_t inc; /* incarnation: bumps at every crash */
  struct raft *r;
  struct lr_sm *sm;
  /* durable storage */
  raft_term term;
  raft_id vote;
  bool has_snap;
  struct lr__sim_snap snap;
  struct lr__sim_slog *log;
  size_t log_n, log_cap;
  /* pending writes, oldest first */
  struct lr__sim_write *wq, *wq_tail;
  uint64_t last_durable_at;
  uint64_t last_tick;
  /* volatile, seen in updates */
  int role;
  raft_id leader;
  raft_term cur_term;
  raft_index commit;
  raft_index last_snap_index; /* of the last snapshot taken or restored */
  struct raft_config applied_cfg;
  raft_index applied_cfg_index;
  bool want_snapshot;
  bool halt_handled; /* the runner halted and the node reacted */
  bool drain_due;    /* proposals wait in the core for lr__sim_flush */
  /* waiters */
  struct lr__sim_idx *idxq;
  size_t idxq_head, idxq_n, idxq_cap;
  uint64_t *reads; /* read waiters with a read index, waiting to apply */
  size_t reads_n, reads_cap;
};

struct lr__sim_ev {
  uint64_t time, seq;
  uint8_t type;
  uint32_t slot, inc;
  union {
    struct lr__sim_msg *msg;
    uint64_t id;
  } u;
};
enum { EV_MSG = 1, EV_DISK, EV_TIMEOUT };

struct lr__sim_heap {
  struct lr__sim_ev *a;
  size_t n, cap;
};

struct lr__sim_cmpl {
  struct lr_sim_completion c;
  char *buf;       /* owns data when longer than small */
  char small[40];  /* data up to 40 bytes: no allocation */
};

struct lr__sim_link {
  bool set;
  double drop;
  uint32_t lo, hi;
};

struct lr_sim {
  struct lr_sim_options o;
  char *sm_path, *sm_chunk, *sm_chunkname;
  uint64_t now, seq;
  uint64_t rng[4];
  struct lr__sim_node nodes[LR_SIM_NODES_MAX];
  uint32_t n_slots;
  /* events: messages and disk writes in one heap, request timeouts in a
   * second one (most requests finish long before their timeout; that heap
   * drops finished ones when they pile up); both ordered by (time, seq) with
   * one seq counter, so together they are one total order */
  struct lr__sim_heap events, timeouts;
  /* network */
  double drop, dup;
  uint32_t lo, hi;
  bool reorder;
  int group[LR_SIM_NODES_MAX];
  struct lr__sim_link link[LR_SIM_NODES_MAX][LR_SIM_NODES_MAX];
  uint64_t last_deliver[LR_SIM_NODES_MAX][LR_SIM_NODES_MAX];
  bool drain_due; /* some node has drain_due set */
  /* requests */
  uint64_t next_id;
  struct lr__sim_waiter *waiters; /* open addressing by id */
  size_t w_cap, w_n;
  struct lr__sim_cmpl *cq;
  size_t cq_head, cq_n, cq_cap;
  char *cq_last; /* buffer of the completion handed out last */
  struct lr__sim_cmpl cq_out; /* the completion handed out last */
  struct lr_buf envbuf;
  struct lr_buf snapbuf;
  /* checks */
  char violation[512];
  raft_id *leader_of_term;
  size_t lot_cap;
  struct { raft_term term; uint64_t hash; } *applied_map;
  size_t am_cap;
  raft_index applied_max;
  struct lr__sim_chain { raft_index index; raft_term term; uint64_t chain; } *chains;
  size_t ch_cap, ch_n;
  uint64_t applied_total;
  /* trace */
  struct lr_buf trace;
};

/* sim.c */
uint64_t lr__sim_rand(struct lr_sim *s);
uint32_t lr__sim_rand_range(struct lr_sim *s, uint32_t lo, uint32_t hi);
void lr__sim_push_event(struct lr_sim *s, const struct lr__sim_ev *ev); /* events heap */
void lr__sim_send(struct lr_sim *s, uint32_t from_slot, const struct raft_message *m);
/* Sends m, whose entries are w_entries[k..] of a pending write: shares blk. */
void lr__sim_send_shared(struct lr_sim *s, uint32_t from_slot, const struct raft_message *m,
                         struct raft_entry *entries, struct lr__sim_blk *blk);
void lr__sim_send_copy(struct lr_sim *s, uint32_t from_slot, struct lr__sim_msg *msg);
struct lr__sim_msg *lr__sim_msg_copy(const struct raft_message *m);
void lr__sim_msg_free(struct lr__sim_msg *msg);
void lr__sim_blk_unref(struct lr__sim_blk *b);
int lr__sim_slot(const struct lr_sim *s, raft_id id);
void lr__sim_flush(struct lr_sim *s); /* drains nodes with proposals waiting */
struct lr__sim_waiter *lr__sim_waiter_get(struct lr_sim *s, uint64_t id);
/* Completes waiter id (if pending) and frees it. */
void lr__sim_complete(struct lr_sim *s, uint64_t id, const char *code, const char *data,
                  size_t len, raft_index index, raft_term term, raft_id leader);
void lr__sim_complete_err(struct lr_sim *s, uint64_t id, int rv, raft_id leader);
#define lr__sim_trace(s, ...)                                                      \
  do {                                                                         \
    if ((s)->o.trace) lr_sim_trace_line((s), __VA_ARGS__);                     \
  } while (0)

/* sim_node.c */
int lr__sim_node_start(struct lr_sim *s, uint32_t slot, bool founding, char *err,
                   size_t errlen);
void lr__sim_node_stop(struct lr_sim *s, uint32_t slot); /* crash */
void lr__sim_node_free_storage(struct lr__sim_node *n);
void lr__sim_node_drain(struct lr_sim *s, uint32_t slot);
void lr__sim_node_durable(struct lr_sim *s, uint32_t slot);
void lr__sim_node_tick(struct lr_sim *s, uint32_t slot);
void lr__sim_node_deliver(struct lr_sim *s, uint32_t slot, struct lr__sim_msg *msg);
void lr__sim_node_query(struct lr_sim *s, uint32_t slot, uint64_t id);
int lr__sim_idxq_push(struct lr__sim_node *n, raft_index index, raft_term term, uint64_t id);
int lr__sim_reads_push(struct lr__sim_node *n, uint64_t id);

/* sim_check.c */
void lr__sim_violation(struct lr_sim *s, const char *fmt, ...);
uint64_t lr__sim_hash(const void *p, size_t n);
void lr__sim_check_leader(struct lr_sim *s, uint32_t slot, raft_term term);
void lr__sim_check_applied(struct lr_sim *s, uint32_t slot, const struct raft_entry *e);
uint64_t lr__sim_check_persist(struct lr_sim *s, uint32_t slot, uint64_t prev_chain,
                           const struct raft_entry *e);
uint64_t lr__sim_check_chain_of(struct lr_sim *s, raft_index index, raft_term term);
void lr__sim_check_free(struct lr_sim *s);

#endif
