/* Simulator internals shared by sim.c (clock, events, network, requests),
 * sim_node.c (one node: storage, the host protocol, crash/restart) and
 * sim_check.c (safety invariants). */
#ifndef LUARAFT_SIM_SIM_INT_H
#define LUARAFT_SIM_SIM_INT_H

#include "drive/drive.h"
#include "sim/sim.h"

/* A reference-counted block of bytes: the entries of one durable write, all
 * of their data in one allocation; durable log entries keep it alive. */
struct lr__sim_blk {
  uint64_t refs;                /* 8 bytes: data[] must be aligned for raft_entry */
  struct lr_store_batch *batch; /* the written batch the entries point into, or NULL */
  char data[];
};

struct lr__sim_slog {  /* one durable log entry */
  struct raft_entry e; /* e.data points into blk */
  struct lr__sim_blk *blk;
  uint64_t chain; /* hash of the log up to here (log matching) */
};

struct lr__sim_snap {             /* a durable snapshot */
  struct raft_snapshot_meta meta; /* config owned */
  char *data;
  size_t len;
  uint64_t chain;
};

enum { W_PROPOSE = 1, W_READ, W_CHANGE };
struct lr__sim_waiter {
  uint64_t id; /* 0: free slot */
  uint32_t slot, inc;
  uint8_t kind;
};

/* One simulated node: the driver (src/drive, the same as a real node's)
 * over a simulated disk whose one write in flight is durable at
 * now + disk latency, the simulated network and the virtual clock. */
struct lr__sim_node {
  struct lr_sim *sim;
  raft_id id;
  bool exists, up;
  uint32_t inc; /* incarnation: bumps at every crash */
  struct lr_drive *d;
  /* durable storage */
  raft_term term;
  raft_id vote;
  bool has_snap;
  struct lr__sim_snap snap;
  struct lr__sim_slog *log;
  size_t log_n, log_cap;
  /* the write in flight (owned by the driver's queue) */
  struct lr_store_batch *writing;
  uint32_t write_ms;
  bool write_fails;     /* the write in flight fails (lr_sim_fail_writes) */
  uint32_t fail_writes; /* how many of the next writes fail: a failing disk */
  uint64_t last_tick;
  /* volatile, seen in the driver's events */
  int role;
  raft_id leader;
  raft_term cur_term;
  bool drain_due; /* proposals wait in the core for lr__sim_flush */
};

struct lr__sim_ev {
  uint64_t time, seq;
  uint8_t type;
  uint32_t slot, inc;
  union {
    struct lr_msg_copy *msg;
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
  char *buf;      /* owns data when longer than small */
  char small[40]; /* data up to 40 bytes: no allocation */
};

struct lr__sim_link {
  bool set;
  double drop;
  uint32_t lo, hi;
};

struct lr_sim {
  /* the last message copy with entries, shared by the next ones that carry
   * the same (sim.c copy_msg); last_src: the sender's array it came from */
  struct lr_msg_copy *last_entries;
  const struct raft_entry *last_src;
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
  char *cq_last;              /* buffer of the completion handed out last */
  struct lr__sim_cmpl cq_out; /* the completion handed out last */
  /* checks */
  char violation[512];
  raft_id *leader_of_term;
  size_t lot_cap;
  struct {
    raft_term term;
    uint64_t hash;
  } * applied_map;
  size_t am_cap;
  raft_index applied_max;
  struct lr__sim_chain {
    raft_index index;
    raft_term term;
    uint64_t chain;
  } * chains;
  size_t ch_cap, ch_n;
  uint64_t applied_total;
  /* trace */
  struct lr_buf trace;
};

/* sim.c */
uint64_t lr__sim_rand(struct lr_sim *s);
uint32_t lr__sim_rand_range(struct lr_sim *s, uint32_t lo, uint32_t hi);
void lr__sim_push_event(struct lr_sim *s, const struct lr__sim_ev *ev); /* events heap */
void lr__sim_send(struct lr_sim *s, uint32_t from_slot, const struct raft_message *m,
                  struct lr_store_batch *b);
void lr__sim_blk_unref(struct lr__sim_blk *b);
int lr__sim_slot(const struct lr_sim *s, raft_id id);
void lr__sim_flush(struct lr_sim *s); /* drains nodes with proposals waiting */
struct lr__sim_waiter *lr__sim_waiter_get(struct lr_sim *s, uint64_t id);
/* Completes waiter id (if pending) and frees it. */
void lr__sim_complete(struct lr_sim *s, uint64_t id, const char *code, const char *data, size_t len,
                      raft_index index, raft_term term, raft_id leader);
void lr__sim_complete_err(struct lr_sim *s, uint64_t id, int rv, raft_id leader);
/* Completes every waiter of this node incarnation (not changes, unless
 * `changes`), in id order, so the trace does not depend on hashing. */
void lr__sim_complete_node(struct lr_sim *s, uint32_t slot, bool changes, const char *code,
                           const char *msg, size_t len);
#define lr__sim_trace(s, ...)                                                                      \
  do {                                                                                             \
    if ((s)->o.trace) lr_sim_trace_line((s), __VA_ARGS__);                                         \
  } while (0)

/* sim_node.c: the simulator's adapter of the driver, and its durable store */
int lr__sim_node_start(struct lr_sim *s, uint32_t slot, bool founding, char *err, size_t errlen);
void lr__sim_node_stop(struct lr_sim *s, uint32_t slot); /* crash */
void lr__sim_node_free_storage(struct lr__sim_node *n);
void lr__sim_node_drain(struct lr_sim *s, uint32_t slot);
void lr__sim_node_durable(struct lr_sim *s, uint32_t slot);
void lr__sim_node_tick(struct lr_sim *s, uint32_t slot);
void lr__sim_node_deliver(struct lr_sim *s, uint32_t slot, struct lr_msg_copy *msg);

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
