/* Internals of the luaraft core, shared between the src/core sources only.
 *
 * Naming: `raft_` is public (raft.h), `raft__` is internal and cross-file,
 * statics are short and plain.
 *
 * The node's invariants, checked after every input by raft__check():
 *   - term never decreases; one vote per term;
 *   - emitted <= commit <= last index, commit never decreases;
 *   - a leader never truncates its own log.
 * Messages from the network are never asserted on: raft__msg_valid() filters
 * them first, and what is malformed is counted in r->n_malformed.
 */
#ifndef LUARAFT_CORE_RAFT_INT_H
#define LUARAFT_CORE_RAFT_INT_H

#include "raft.h"

/* Core assertions stay on in every build (STYLE.md): not <assert.h>, which
 * NDEBUG would silence. */
void raft__assert_fail(const char *expr, const char *file, int line);
#define RAFT_ASSERT(c) ((c) ? (void)0 : raft__assert_fail(#c, __FILE__, __LINE__))

#define RAFT__ROUNDS 16         /* heartbeat send times remembered for leases */
#define RAFT__CONFIG_MAX 4096   /* members in one configuration */
#define RAFT__ENTRIES_MAX 65536 /* entries in one APPEND we accept */

/* ---- log.c: the in-memory log, an array of entries after `offset` ------- */
/* Entry data lives in chunks, bump-allocated in log order, so an entry costs
 * no allocation of its own. Each entry's data is preceded by a pointer to its
 * chunk; a chunk counts its live entries and is freed when the last one is
 * compacted or truncated away. */
struct raft__chunk {
  size_t refs;      /* live entries with data here */
  size_t cap, used; /* bytes of data[] */
  uint8_t data[];
};
#define RAFT__CHUNK_BYTES (64 * 1024)

struct raft__log {
  struct raft_entry *e; /* e[start .. start+n) hold indexes offset+1 .. */
  size_t start, n, cap;
  raft_index offset;         /* last index covered by a snapshot (or 0) */
  raft_term offset_term;     /* its term */
  struct raft__chunk *chunk; /* where the next entry's data goes (or NULL) */
};
void raft__log_init(struct raft__log *l, raft_index offset, raft_term term);
void raft__log_free(struct raft__log *l);
raft_index raft__log_last(const struct raft__log *l);
raft_term raft__log_last_term(const struct raft__log *l);
/* Term of the entry at i; 0 when unknown (compacted away or past the end). */
raft_term raft__log_term(const struct raft__log *l, raft_index i);
struct raft_entry *raft__log_get(const struct raft__log *l, raft_index i);
/* Appends a copy of e (data copied) at last+1; RAFT_ENOMEM leaves l as is. */
int raft__log_append(struct raft__log *l, raft_term term, uint8_t type, const void *data,
                     uint32_t len);
void raft__log_truncate(struct raft__log *l, raft_index from);
void raft__log_compact(struct raft__log *l, raft_index upto);
void raft__log_reset(struct raft__log *l, raft_index offset, raft_term term);

/* ---- progress.c: what the leader knows of each member ------------------- */
struct raft__inflights {
  raft_index *buf; /* last index of each APPEND in flight, oldest first */
  uint32_t start, n, cap;
};
struct raft__progress {
  raft_id id;
  uint8_t role;
  raft_index match, next;
  int state;       /* RAFT_PROGRESS_* */
  bool probe_sent; /* probe: one APPEND out, wait for an answer */
  struct raft__inflights infl;
  raft_index commit_sent;
  uint64_t last_resp;   /* time of the last message from it (check quorum) */
  uint64_t lease_time;  /* send time of the newest heartbeat it answered */
  uint64_t acked_round; /* newest ReadIndex round it answered */
  raft_index hb_match;  /* match at the previous heartbeat (stall detection) */
  raft_index snap_index;
  uint64_t snap_offset; /* bytes the follower has acknowledged */
  bool snap_inflight;
  uint64_t snap_sent_at;
  int vote;   /* election: 0 unknown, 1 granted, 2 rejected */
  bool heard; /* answered since this node leads (reachability) */
  /* A node removed by an entry this leader appended: role 0, kept until the
   * removal committed and the node answered a heartbeat that carried that
   * commit (leave_round), or it went silent for election_ms. */
  raft_index leave_index;
  uint64_t leave_round;
};
int raft__progress_rebuild(struct raft *r);
struct raft__progress *raft__progress_get(struct raft *r, raft_id id);
void raft__progress_reset(struct raft *r); /* a new leader's view */
void raft__progress_probe(struct raft__progress *p, raft_index next);
void raft__progress_replicate(struct raft__progress *p);
bool raft__infl_full(const struct raft *r, const struct raft__progress *p);
int raft__infl_add(struct raft__progress *p, raft_index last, uint32_t max);
void raft__infl_free_to(struct raft__progress *p, raft_index index);
void raft__infl_clear(struct raft__progress *p);
uint32_t raft__voters(const struct raft *r);
uint32_t raft__quorum(const struct raft *r);
bool raft__is_voter(const struct raft *r, raft_id id);
/* Reachability for the membership checks: 1 heard from within election_ms
 * (or p is this node), 0 not, -1 not known yet (not heard from since this
 * node became leader, less than election_ms ago). */
int raft__reach(const struct raft *r, const struct raft__progress *p);
void raft__progress_heard(struct raft *r, struct raft__progress *p);
int raft__progress_add_leaving(struct raft *r, const struct raft_config *prev,
                               raft_index leave_index);
void raft__progress_release(struct raft *r, bool all);

/* ---- a read waiting on the leader --------------------------------------- */
struct raft__read {
  uint64_t ctx;
  raft_id from; /* 0: local; else a follower that forwarded it */
  raft_index index;
  uint64_t round; /* 0: waits for the first commit of this term */
};

/* ---- a growable array of messages --------------------------------------- */
struct raft__msgs {
  struct raft_message *m;
  uint32_t n, cap;
};

struct raft {
  struct raft_options o;
  uint64_t now;
  uint64_t rng;
  int role;
  raft_term term;
  raft_id vote;
  raft_id leader;

  struct raft__log log;
  raft_index persisted; /* durable prefix of the log (raft_persisted) */
  raft_index commit;
  raft_index emitted;       /* committed entries handed to the host */
  raft_index unstable_from; /* first index to write; 0: nothing */
  bool hs_dirty, soft_dirty, conf_dirty;

  /* configuration in effect (the newest CONFIG entry, applied on append),
   * and the one at the log's offset, for reverting on truncation */
  struct raft_config config;
  raft_index config_index;
  struct raft_config base_config;
  raft_index base_config_index;
  struct raft__progress *prs;
  uint32_t n_prs;

  /* timers (ms) */
  uint64_t elect_start, elect_timeout; /* follower/candidate deadline */
  uint64_t leader_seen;                /* last message from the leader */
  uint64_t hb_due;                     /* leader: next heartbeat */

  /* leader */
  raft_index term_start; /* index of this term's NOOP */
  uint64_t leader_since; /* when this node became leader */
  uint64_t uncommitted;  /* bytes of NORMAL entries past commit */
  raft_id transfer_to;
  uint64_t transfer_deadline;
  bool bcast_pending, hb_pending;
  uint64_t round;
  uint64_t round_time[RAFT__ROUNDS];
  struct raft__read *rq;
  uint32_t n_rq, cap_rq;

  /* the newest snapshot this node can serve */
  bool has_snap;
  struct raft_snapshot snap;
  uint8_t *snap_data;

  /* a snapshot being received in chunks */
  struct {
    bool active;
    struct raft_snapshot_meta meta;
    uint8_t *buf;
    uint64_t total, have, cap;
  } in;
  /* a received snapshot handed to the host in the current update */
  bool installed_pending, installed_out;
  struct raft_snapshot installed;

  /* outputs, reused between updates */
  bool taken; /* the arrays below were handed out: clear on next input */
  struct raft__msgs msgs, after;
  struct raft_read_state *reads;
  uint32_t n_reads, cap_reads;
  struct raft_proposal_error *perrs;
  uint32_t n_perrs, cap_perrs;
  uint8_t **bufs; /* data of forwarded proposals, freed with the update */
  uint32_t n_bufs, cap_bufs;
  raft_index out_emit_to;

  uint64_t n_malformed;
  /* invariant bookkeeping */
  raft_term chk_term;
  raft_id chk_vote;
  raft_index chk_commit;
};

/* raft.c */
void raft__begin(struct raft *r, uint64_t now);
void raft__check(struct raft *r);
uint64_t raft__random(struct raft *r);
struct raft_message *raft__send(struct raft *r, int type, raft_id to, bool after);
int raft__push_read(struct raft *r, uint64_t ctx, raft_index index, int err);
int raft__push_perr(struct raft *r, uint64_t ctx, int err);
bool raft__msg_valid(const struct raft *r, const struct raft_message *m);
void raft__set_term(struct raft *r, raft_term term);
void raft__set_vote(struct raft *r, raft_id vote);
void raft__set_leader(struct raft *r, raft_id leader);
void raft__mark_unstable(struct raft *r, raft_index from);
int raft__propose_entry(struct raft *r, const void *data, size_t len);

/* election.c */
void raft__reset_election_timer(struct raft *r);
void raft__become_follower(struct raft *r, raft_term term, raft_id leader);
void raft__become_leader(struct raft *r);
void raft__campaign(struct raft *r, bool transfer);
void raft__start_election(struct raft *r); /* pre-vote or vote */
bool raft__in_lease(const struct raft *r);
void raft__recv_vote(struct raft *r, const struct raft_message *m);
void raft__recv_vote_resp(struct raft *r, const struct raft_message *m);
void raft__election_tick(struct raft *r);

/* replication.c */
int raft__append_local(struct raft *r, uint8_t type, const void *data, uint32_t len);
void raft__send_append(struct raft *r, struct raft__progress *p, bool empty_ok);
void raft__bcast_append(struct raft *r);
void raft__bcast_heartbeat(struct raft *r);
void raft__maybe_commit(struct raft *r);
void raft__recv_append(struct raft *r, const struct raft_message *m);
void raft__recv_append_resp(struct raft *r, const struct raft_message *m);
void raft__recv_heartbeat(struct raft *r, const struct raft_message *m);
void raft__recv_heartbeat_resp(struct raft *r, const struct raft_message *m);
void raft__recv_propose(struct raft *r, const struct raft_message *m);
void raft__recv_propose_resp(struct raft *r, const struct raft_message *m);
void raft__leader_tick(struct raft *r);
bool raft__check_quorum_lost(struct raft *r);
uint64_t raft__quorum_time(const struct raft *r, bool lease);
uint64_t raft__quorum_round(const struct raft *r);

/* read.c */
bool raft__committed_own_term(const struct raft *r);
void raft__reads_on_commit(struct raft *r);
void raft__reads_on_ack(struct raft *r);
void raft__reads_fail(struct raft *r, int err);
void raft__recv_read_index(struct raft *r, const struct raft_message *m);
void raft__recv_read_index_resp(struct raft *r, const struct raft_message *m);

/* transfer (election.c) */
void raft__transfer_check(struct raft *r, struct raft__progress *p);
void raft__transfer_abort(struct raft *r);
void raft__recv_timeout_now(struct raft *r, const struct raft_message *m);

/* membership.c */
int raft__config_apply_entry(struct raft *r, const struct raft_entry *e);
void raft__config_on_truncate(struct raft *r, raft_index from);
void raft__config_on_compact(struct raft *r, raft_index upto);
int raft__config_at(const struct raft *r, raft_index index, struct raft_config *out,
                    raft_index *config_index);
void raft__config_on_commit(struct raft *r);
int raft__config_set(struct raft *r, const struct raft_config *c, raft_index index);

/* snapshot.c */
void raft__send_snapshot(struct raft *r, struct raft__progress *p);
void raft__recv_snapshot(struct raft *r, const struct raft_message *m);
void raft__recv_snapshot_resp(struct raft *r, const struct raft_message *m);
int raft__snapshot_set(struct raft *r, const struct raft_snapshot *s);
/* raft__snapshot_set keeping s->data itself (raft_malloc'd): no copy */
int raft__snapshot_adopt(struct raft *r, const struct raft_snapshot *s);
void raft__snapshot_free(struct raft *r);
bool raft__snap_meta_valid(const struct raft_snapshot_meta *m);

#endif
