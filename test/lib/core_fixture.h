/* A deterministic in-memory cluster for the core's tests (in the manner of
 * canonical/raft's fixture): N cores, one virtual clock, a FIFO network
 * with a fixed latency and per-link cuts, storage that persists at once or
 * when the test says so, crash/restart from what was persisted, and a
 * hash-chain state machine that checks every node applies the same entries
 * in the same order. */
#ifndef LUARAFT_TEST_CORE_FIXTURE_H
#define LUARAFT_TEST_CORE_FIXTURE_H

#include "core/raft.h"

#define FX_MAX 7
#define FX_READS_MAX 1024

struct fx;
/* sees every message sent (even over a cut link); false drops it */
typedef bool (*fx_filter)(struct fx *f, const struct raft_message *m, void *arg);

struct fx_write; /* a write the host has not made durable yet */

struct fx_node {
  raft_id id;
  bool alive;
  struct raft *r;
  /* what "disk" holds */
  raft_term term;
  raft_id vote;
  struct raft_entry *log; /* entries after snap.meta.index */
  uint32_t n_log, cap_log;
  bool has_snap;
  struct raft_snapshot snap;
  /* controllable persistence */
  bool manual;
  struct fx_write *writes; /* FIFO */
  /* state machine: a hash chain over applied entries */
  raft_index applied;
  uint64_t hash;
  uint32_t n_applied_normal;
  /* observations */
  struct raft_read_state reads[FX_READS_MAX];
  uint32_t n_reads;
  struct raft_proposal_error perrs[64];
  uint32_t n_perrs;
  int role;
  raft_id leader;
  uint64_t became_leader_at;
  uint64_t stepped_down_at;
};

struct fx_qmsg;
struct fx {
  uint64_t now;
  uint32_t n;
  struct fx_node nodes[FX_MAX + 1]; /* by id, 1..n */
  struct raft_options opts;         /* template (id filled per node) */
  uint32_t latency;                 /* ms per message */
  bool cut[FX_MAX + 1][FX_MAX + 1]; /* [from][to] */
  fx_filter filter;
  void *filter_arg;
  struct fx_qmsg *head, *tail;
  uint64_t sent[FX_MAX + 1][RAFT_MSG_TYPE_MAX + 1]; /* [from][type] */
  /* the chain every node must follow: hash after applying index i */
  uint64_t *chain;
  raft_index n_chain;
  raft_term leader_of_term[256];
  /* snapshots: taken every snap_every applied entries, snap_size bytes */
  uint32_t snap_every;
  uint32_t snap_size;
};

/* n founding voters (ids 1..n) plus `extra` empty nodes (ids n+1..) that
 * boot with nothing and wait to be added. */
void fx_init(struct fx *f, uint32_t n, uint32_t extra, const struct raft_options *o);
void fx_free(struct fx *f);
struct raft *fx_r(struct fx *f, raft_id id);
void fx_drain(struct fx *f, raft_id id);
/* Advances to the next event (message or deadline); false if none. */
bool fx_step(struct fx *f);
void fx_run(struct fx *f, uint64_t ms);
/* Runs until the live leader of the highest term is known; returns it, 0 on
 * timeout. */
raft_id fx_run_until_leader(struct fx *f, uint64_t timeout_ms);
raft_id fx_leader(struct fx *f);
bool fx_run_until_applied(struct fx *f, raft_id id, raft_index index, uint64_t timeout_ms);
void fx_cut(struct fx *f, raft_id from, raft_id to, bool cut);
void fx_isolate(struct fx *f, raft_id id, bool cut);
void fx_heal(struct fx *f);
void fx_crash(struct fx *f, raft_id id);
void fx_restart(struct fx *f, raft_id id);
int fx_propose(struct fx *f, raft_id id, const char *s, raft_index *index);
/* controllable persistence */
void fx_set_manual(struct fx *f, raft_id id, bool manual);
uint32_t fx_pending_writes(struct fx *f, raft_id id);
void fx_flush(struct fx *f, raft_id id);
void fx_fail_writes(struct fx *f, raft_id id);
uint64_t fx_sent(struct fx *f, raft_id from, int type);
void fx_reset_sent(struct fx *f);
int fx_role(struct fx *f, raft_id id);
raft_term fx_term(struct fx *f, raft_id id);
/* Deep copies of messages (for tests that inject by hand). */
void fx_send(struct fx *f, const struct raft_message *m);

/* election 100 ms, heartbeat 10 ms, pre-vote and check-quorum, seed 1 */
struct raft_options fx_opts(void);
raft_index fx_commit(struct fx *f, raft_id id);
raft_index fx_last(struct fx *f, raft_id id);

/* cmocka boilerplate shared by the core tests */
#define FX_TEST(name) cmocka_unit_test(name)

#endif
