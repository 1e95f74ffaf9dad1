/* luaraft core: a pure, deterministic Raft state machine.
 *
 * No I/O, no clock, no randomness it was not given, no libuv/SQLite/Lua
 * headers. Time comes in as `now` (milliseconds, monotonic, chosen by the
 * host), randomness from `raft_options.seed`.
 *
 * How a host drives it (the one ordering rule of luaraft; the host enforces it
 * in exactly one place):
 *
 *   1. feed inputs:   raft_step(), raft_tick() when now >= raft_deadline(),
 *                     raft_propose(), raft_read_index(), raft_transfer(),
 *                     raft_change(), raft_snapshot_taken()
 *   2. take output:   raft_update_take() fills a struct raft_update. Every
 *                     pointer in it stays valid only until the next raft_*
 *                     call on that node: copy or serialize what you keep.
 *   3. persist:       hard state (term, vote), then `entries` (which first
 *                     truncate the log from entries[0].index), or `snapshot`.
 *                     One transaction per update, in update order.
 *   4. send:          `msgs` may be sent at once (the leader's own appends go
 *                     out in parallel with its disk write, thesis 10.2.1).
 *                     `msgs_after` only once step 3 of THIS update is durable
 *                     (votes, append acks, candidate requests depend on it).
 *   5. ack:           raft_persisted(last index, last term) once durable, or
 *                     raft_persist_failed() if the write failed (a leader
 *                     steps down; unpersisted entries are dropped and will be
 *                     re-replicated; the host drops every queued write and
 *                     every held `msgs_after`).
 *   6. apply:         `committed` entries, in order. They never run ahead of
 *                     the node's durable log. NOOP and CONFIG entries are
 *                     applied as no-ops by the state machine layer.
 *
 * Entries proposed by the host are opaque bytes to the core: client sessions,
 * leader time stamps and request ids live in an envelope the layer above the
 * core writes (src/sm/).
 */
#ifndef LUARAFT_CORE_RAFT_H
#define LUARAFT_CORE_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id; /* node id; 0 means "none" */
typedef uint64_t raft_term;
typedef uint64_t raft_index;

/* Errors: the one code space of luaraft, as libuv's UV_ERRNO_MAP. Every
 * layer (core, store, net, sm, http, the binding) returns these negative
 * codes; one table yields the enum, the names, the API.md error code a client
 * sees and the message. It lives here because the core is the one layer every
 * other includes and it may include nothing itself. */
#define RAFT_ERRORS(X)                                                                             \
  /* the core */                                                                                   \
  X(NOMEM, -1, "storage", "out of memory")                                                         \
  X(NOTLEADER, -2, "not_leader", "this node is not the leader")                                    \
  X(TOOLARGE, -3, "too_large", "entry larger than max_entry_bytes")                                \
  X(BUSY, -4, "busy", "too many uncommitted bytes; retry later")                                   \
  X(TRANSFER, -5, "busy", "leadership transfer in progress")                                       \
  X(CONFPENDING, -6, "busy", "a membership change is already in progress")                         \
  X(BADCONF, -7, "bad_request", "invalid membership change")                                       \
  X(INVAL, -8, "bad_request", "invalid argument")                                                  \
  X(MALFORMED, -9, "bad_request", "malformed data")                                                \
  X(NOQUORUM, -10, "not_leader", "leadership could not be confirmed")                              \
  X(STORAGE, -11, "storage", "storage write failed")                                               \
  X(NOLEASE, -12, "not_leader", "no valid leader lease (needs check_quorum)")                      \
  X(DROPPED, -13, "dropped", "request dropped")                                                    \
  /* membership changes (raft_change_ex); raft_change_ex's `why` has the detail */                 \
  X(NOTREADY, -14, "busy",                                                                         \
    "the new leader has not committed an entry of its term (or heard from every member) yet; "     \
    "retry shortly")                                                                               \
  X(NOTCAUGHTUP, -15, "busy",                                                                      \
    "the learner is not caught up with the leader (or not heard from); retry when it is")          \
  X(UNSAFE, -16, "bad_request",                                                                    \
    "the change would leave fewer reachable voters than a quorum (force to override)")             \
  /* storage (src/store) */                                                                        \
  X(FULL, -20, "storage", "disk full")                                                             \
  X(CORRUPT, -21, "storage", "the database is corrupted")                                          \
  X(FOREIGN, -22, "storage", "the database belongs to another node or cluster")                    \
  X(FORMAT, -23, "storage", "unsupported database format")                                         \
  X(OPEN, -24, "storage", "cannot open the database")                                              \
  /* the peer wire format and transport (src/net) */                                               \
  X(SHORT, -30, "bad_request", "truncated frame")                                                  \
  X(VERSION, -31, "bad_request", "unsupported frame version")                                      \
  X(TOOBIG, -32, "too_large", "frame larger than the maximum frame size")                          \
  X(CHECKSUM, -33, "bad_request", "frame checksum mismatch")                                       \
  X(TYPE, -34, "bad_request", "unknown frame type")                                                \
  X(ADDRESS, -40, "bad_request", "bad address (want IP:PORT or [IPv6]:PORT)")                      \
  X(LISTEN, -41, "unavailable", "cannot listen")                                                   \
  X(NOPEER, -42, "bad_request", "unknown peer")                                                    \
  X(QUEUEFULL, -43, "dropped", "message dropped (send queue full)")                                \
  X(FAULT, -44, "dropped", "message dropped by fault injection")                                   \
  X(NOFAULTS, -45, "bad_request", "fault injection not enabled (allow_faults)")                    \
  /* TLS sessions (src/tls) */                                                                     \
  X(TLSCONFIG, -60, "bad_request", "bad TLS configuration (certificate, key or CA file)")          \
  X(TLSAGAIN, -61, "unavailable", "more data needed")                                              \
  X(TLSHANDSHAKE, -62, "unavailable", "TLS handshake failed")                                      \
  X(TLSVERIFY, -63, "unavailable", "the peer's certificate did not verify")                        \
  X(TLSPROTOCOL, -64, "bad_request", "TLS protocol error")                                         \
  X(TLSCLOSED, -65, "unavailable", "the peer closed the TLS session")                              \
  X(TLSSTATE, -66, "bad_request", "the TLS session is not established")

enum {
  RAFT_OK = 0,
#define X(name, code, api, msg) RAFT_E##name = code,
  RAFT_ERRORS(X)
#undef X
};
const char *raft_strerror(int rv); /* human message */
const char *raft_errname(int rv);  /* the table's name: "NOTLEADER", "FULL", ... */
const char *raft_errcode(int rv);  /* API.md code: "busy", "not_leader", ... */

/* Log levels, one enum for every layer (the core logs nothing itself; its
 * users do, in one line format: src/drive, src/net, src/sm, the binding). */
enum { RAFT_LOG_ERROR = 0, RAFT_LOG_WARN, RAFT_LOG_INFO, RAFT_LOG_DEBUG };

/* The project's one small PRNG step (splitmix64): advances *state and
 * returns the next value. The core's own randomness comes from it, seeded by
 * raft_options.seed. */
uint64_t raft_splitmix64(uint64_t *state);

/* Allocation goes through one hook so tests can make it fail. */
struct raft_heap {
  void *(*malloc)(void *data, size_t n);
  void *(*realloc)(void *data, void *p, size_t n);
  void (*free)(void *data, void *p);
  void *data;
};
void raft_heap_set(const struct raft_heap *heap); /* NULL restores libc */
void *raft_malloc(size_t n);
void *raft_realloc(void *p, size_t n);
void raft_free(void *p);

/* ---- configuration -------------------------------------------------------- */
enum { RAFT_VOTER = 1, RAFT_LEARNER = 2 };
struct raft_member {
  raft_id id;
  uint8_t role;  /* RAFT_VOTER | RAFT_LEARNER */
  char *address; /* NUL-terminated, opaque to the core, may be "" */
};
struct raft_config {
  struct raft_member *members;
  uint32_t n;
};
/* Config entries carry a whole configuration, encoded by these two.
 * decode is strict (returns RAFT_EMALFORMED, never crashes) since the bytes
 * may come from the network or a corrupted file. */
int raft_config_encode(const struct raft_config *c, uint8_t **out, size_t *len);
int raft_config_decode(const uint8_t *p, size_t len, struct raft_config *out);
int raft_config_copy(const struct raft_config *src, struct raft_config *dst);
void raft_config_free(struct raft_config *c);
const struct raft_member *raft_config_get(const struct raft_config *c, raft_id id);

/* ---- log ----------------------------------------------------------------- */
enum { RAFT_ENTRY_NORMAL = 1, RAFT_ENTRY_NOOP = 2, RAFT_ENTRY_CONFIG = 3 };
struct raft_entry {
  raft_term term;
  raft_index index;
  uint8_t type;
  uint32_t len;
  uint8_t *data;
};

struct raft_snapshot_meta {
  raft_index index; /* last index the snapshot covers */
  raft_term term;   /* term of that entry */
  struct raft_config config;
  raft_index config_index;
};
struct raft_snapshot {
  struct raft_snapshot_meta meta;
  const uint8_t *data; /* the state machine's snapshot() bytes */
  size_t len;
};

/* ---- messages ------------------------------------------------------------ */
enum raft_msg_type {
  RAFT_MSG_APPEND = 1,     /* index/log_term: prev entry; entries; commit */
  RAFT_MSG_APPEND_RESP,    /* !reject: index = last index now matching;
                              reject: index = rejected prev index,
                              hint_index/hint_term: conflict hint (fast
                              backtracking, thesis 5.3 / etcd findConflict) */
  RAFT_MSG_VOTE,           /* index/log_term: candidate's last entry;
                              context = 1 when sent because of TimeoutNow */
  RAFT_MSG_VOTE_RESP,      /* reject */
  RAFT_MSG_PRE_VOTE,       /* term = candidate's term + 1, not yet adopted */
  RAFT_MSG_PRE_VOTE_RESP,  /* reject */
  RAFT_MSG_HEARTBEAT,      /* commit; context = ReadIndex round (0: none) */
  RAFT_MSG_HEARTBEAT_RESP, /* context echoed */
  RAFT_MSG_SNAPSHOT,       /* snap meta, offset, total, chunk, done */
  RAFT_MSG_SNAPSHOT_RESP,  /* index = snapshot index, offset = bytes held;
                              reject: restart from offset */
  RAFT_MSG_TIMEOUT_NOW,    /* leadership transfer: campaign now */
  RAFT_MSG_PROPOSE,        /* follower -> leader: entries to append;
                              context = host request id */
  RAFT_MSG_PROPOSE_RESP,   /* leader -> follower, only on failure:
                              context, reject, hint_index = error code.
                              Never sent by a node whose log holds a copy
                              of that proposal (a PROPOSE delivered twice):
                              a refusal means the entry was not appended */
  RAFT_MSG_READ_INDEX,     /* follower -> leader; context */
  RAFT_MSG_READ_INDEX_RESP /* index = read index; reject + hint_index =
                              error code on failure; context */
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_READ_INDEX_RESP
const char *raft_msg_name(int type);

struct raft_message {
  uint8_t type;
  raft_id from, to;
  raft_term term;
  raft_term log_term;
  raft_index index;
  raft_index commit;
  bool reject;
  raft_index hint_index;
  raft_term hint_term;
  uint64_t context;
  uint32_t n_entries;
  struct raft_entry *entries;
  /* RAFT_MSG_SNAPSHOT / _RESP */
  struct raft_snapshot_meta snap;
  uint64_t offset; /* of this chunk within the snapshot data */
  uint64_t total;  /* total snapshot bytes */
  uint32_t chunk_len;
  const uint8_t *chunk;
  bool done; /* last chunk */
};

/* ---- a node -------------------------------------------------------------- */
struct raft_options {
  raft_id id;
  uint32_t election_ms;  /* election timeout is random in [t, 2t) */
  uint32_t heartbeat_ms; /* must be < election_ms */
  bool pre_vote;
  bool check_quorum;              /* also enables lease reads */
  uint64_t seed;                  /* the only source of randomness */
  uint32_t max_entry_bytes;       /* default 1 MiB; RAFT_ETOOLARGE past it */
  uint32_t max_append_bytes;      /* per APPEND message, default 1 MiB */
  uint32_t max_inflight_msgs;     /* per follower pipeline window, default 64 */
  uint64_t max_uncommitted_bytes; /* default 64 MiB; RAFT_EBUSY past it */
  uint32_t snapshot_chunk_bytes;  /* default 256 KiB */
  uint32_t snapshot_trailing;     /* entries kept behind a snapshot, default 100 */
  uint32_t transfer_timeout_ms;   /* default election_ms */
  /* Added: a learner is caught up enough to be promoted when the leader
   * heard from it within election_ms and its match index is at most this
   * many entries behind the leader's last index (see raft_change_ex).
   * Default 1000. */
  uint32_t max_promote_lag;
};
/* Fills zero fields with defaults and checks the rest; writes a sentence a user
 * understands to err ("election_ms must be greater than heartbeat_ms"). */
int raft_options_check(struct raft_options *o, char *err, size_t errlen);

/* What the host loaded from its storage at start (all zero for a new node). */
struct raft_boot {
  raft_term term;
  raft_id vote;
  const struct raft_snapshot *snapshot; /* NULL: none */
  const struct raft_entry *entries;     /* the log after the snapshot, in order */
  uint32_t n_entries;
};

struct raft;
/* A brand-new node of a brand-new cluster: the host persists the entry that
 * raft_bootstrap_entry() makes (index 1, term 1, the initial configuration)
 * and boots with it; every founding node makes the same entry. A joining node
 * (`--join`) boots empty and waits to be added. */
int raft_bootstrap_entry(const struct raft_config *c, struct raft_entry *out);
void raft_entry_free_data(struct raft_entry *e);

int raft_new(const struct raft_options *o, const struct raft_boot *boot, uint64_t now,
             struct raft **out);
void raft_free_node(struct raft *r);

/* inputs */
int raft_step(struct raft *r, uint64_t now, const struct raft_message *m);
int raft_tick(struct raft *r, uint64_t now);
uint64_t raft_deadline(const struct raft *r); /* next time raft_tick is due */

/* Leader: appends one NORMAL entry (copied) and returns its index/term.
 * Follower with a known leader: forwards it as RAFT_MSG_PROPOSE with
 * `context` and returns 1 (index/term unknown until applied). Otherwise
 * RAFT_ENOTLEADER, RAFT_ETOOLARGE, RAFT_EBUSY, RAFT_ETRANSFER. */
int raft_propose(struct raft *r, uint64_t now, const void *data, size_t len, uint64_t context,
                 raft_index *index, raft_term *term);
/* ReadIndex (thesis 6.4): the answer arrives as a raft_read_state with the
 * same ctx in a later update. A new leader answers only after it committed an
 * entry of its own term. Followers forward to the leader. */
int raft_read_index(struct raft *r, uint64_t now, uint64_t ctx);
/* Lease read (thesis 6.4.1): only a leader with check_quorum whose quorum
 * answered within election_ms; assumes bounded clock drift. */
int raft_lease_read(struct raft *r, uint64_t now, raft_index *index);
int raft_transfer(struct raft *r, uint64_t now, raft_id target); /* 0: best */
int raft_step_down(struct raft *r, uint64_t now);
/* ---- membership changes (thesis 4.1-4.3; etcd's strict reconfig check) ----
 *
 * One server at a time. The leader appends a CONFIG entry and returns its
 * index; the change is done when that index commits (the host waits for it,
 * as for a proposal). The new configuration is in effect on each node as soon
 * as the entry is in its log (thesis 4.1).
 *
 * Refusals, in the order they are checked:
 *   RAFT_ENOTLEADER    this node is not the leader.
 *   RAFT_ETRANSFER     a leadership transfer is in progress.
 *   RAFT_EBADCONF      id 0.
 *   RAFT_ENOTREADY     the leader has not yet committed an entry of its
 *                      current term (thesis 4.1 footnote: the raft-dev fix of
 *                      single-server changes). See the contract below.
 *   RAFT_ECONFPENDING  the previous change is not committed yet.
 *   RAFT_EBADCONF      the change makes no sense: adding a member that
 *                      exists, promoting a non-learner, removing a non-member
 *                      or the last voter, an address already used by another
 *                      member.
 *   RAFT_EADDRESS      address longer than RAFT_ADDRESS_MAX bytes or holding
 *                      a control character. The core sees addresses as
 *                      opaque text ("" allowed): host:port syntax and port
 *                      range are the host's to check before calling.
 *   unless RAFT_CHANGE_FORCE:
 *   RAFT_ENOTCAUGHTUP  RAFT_PROMOTE of a learner that is not caught up: the
 *                      leader has not heard from it within election_ms, or
 *                      its match index is more than max_promote_lag entries
 *                      behind the leader's last index, or it needs a snapshot
 *                      (etcd: isLearnerReady).
 *   RAFT_EUNSAFE       after the change fewer voters of the new configuration
 *                      would be reachable than its quorum. Reachable: the
 *                      leader itself and the voters it heard from within
 *                      election_ms; a voter being added (not a member yet) is
 *                      unreachable (etcd: IsReadyToAddVotingMember,
 *                      IsReadyToRemoveVotingMember). Changes of learners only
 *                      (add, remove) are never refused for this.
 *   RAFT_ENOTREADY     instead of one of the two above, when the verdict
 *                      depends on members this new leader has not heard from
 *                      yet (it has led for less than election_ms).
 * `why` (may be NULL) receives one sentence with the details of a refusal
 * ("learner 4 is not caught up: match 10 of 2000 (at most 1000 behind), last
 * heard 350 ms ago (at most 300)"); "" on success.
 *
 * RAFT_ENOTREADY contract: returned only while this node leads and either
 * has not committed an entry of its current term (ends at that commit, about
 * one round trip after the election) or has led for less than election_ms
 * without hearing from a member the check depends on (ends election_ms after
 * the election at the latest). It never means "another change is pending".
 * The host may retry after the next commit (raft_update.commit grows) or
 * heartbeat_ms later, within the request's timeout; once the node no longer
 * leads, the retry gets RAFT_ENOTLEADER.
 *
 * Removal: the leader keeps replicating to the removed node (APPEND and
 * heartbeats, never counting it for commit or votes) until the removal has
 * committed and that node answered a heartbeat carrying that commit index, or
 * it has not answered for election_ms: the node learns it was removed
 * (raft_status.is_member false once the entry is in its log).
 * A leader that removes itself leads until the removal commits (thesis
 * 4.2.2), counting only the new configuration. At that commit it sends the
 * commit index to every member, sends TIMEOUT_NOW to a reachable voter whose
 * log is complete (thesis 3.10) and steps down, so the others apply the
 * removal and elect a leader at once. Its own host gets the entry in
 * `committed` as usual (once its own write of it is durable, which may be in
 * a later update, after the soft state already says follower): completing
 * the request when that index is applied with the term it was appended in
 * is how "remove of the leader reports success" is done.
 */
enum { RAFT_ADD_VOTER = 1, RAFT_ADD_LEARNER, RAFT_PROMOTE, RAFT_REMOVE };
enum { RAFT_CHANGE_FORCE = 1 }; /* skip the ENOTCAUGHTUP and EUNSAFE checks */
#define RAFT_ADDRESS_MAX 255
int raft_change_ex(struct raft *r, uint64_t now, int kind, raft_id id, const char *address,
                   unsigned flags, raft_index *index, char *why, size_t whylen);
/* raft_change_ex(..., 0, index, NULL, 0): the checked form */
int raft_change(struct raft *r, uint64_t now, int kind, raft_id id, const char *address,
                raft_index *index);
/* raft_change_ex(..., RAFT_CHANGE_FORCE, index, NULL, 0) */
int raft_change_force(struct raft *r, uint64_t now, int kind, raft_id id, const char *address,
                      raft_index *index);
/* The host took a snapshot of the state machine at applied index `index`
 * (data copied); the core compacts its log behind it (keeping
 * snapshot_trailing entries) and serves it to followers that are behind. */
int raft_snapshot_taken(struct raft *r, raft_index index, const void *data, size_t len);
/* raft_snapshot_taken without the copy: `data` (from raft_malloc) becomes
 * the core's, on success and when the core already has a newer snapshot (it
 * frees it then); on an error the caller keeps it. A 100 MB state is not
 * copied again on the host's loop thread. */
int raft_snapshot_taken_own(struct raft *r, raft_index index, void *data, size_t len);

/* acknowledgements */
void raft_persisted(struct raft *r, uint64_t now, raft_index index, raft_term term);
void raft_persist_failed(struct raft *r, uint64_t now);

/* output */
enum { RAFT_FOLLOWER = 1, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };
struct raft_read_state {
  uint64_t ctx;
  raft_index index; /* apply up to here, then serve the read */
  int err;          /* 0 or RAFT_E* (leadership lost, no leader, ...) */
};
struct raft_proposal_error {
  uint64_t context;
  int err;
};
struct raft_update {
  bool hard_state; /* term/vote changed: persist them */
  raft_term term;
  raft_id vote;
  struct raft_entry *entries; /* persist; truncate the log from entries[0].index */
  uint32_t n_entries;
  const struct raft_snapshot *snapshot; /* received: persist, then restore */
  struct raft_message *msgs;            /* may be sent now */
  uint32_t n_msgs;
  struct raft_message *msgs_after; /* only after this update is durable */
  uint32_t n_msgs_after;
  struct raft_entry *committed; /* apply in order */
  uint32_t n_committed;
  struct raft_read_state *reads;
  uint32_t n_reads;
  struct raft_proposal_error *prop_errors; /* forwarded proposals refused */
  uint32_t n_prop_errors;
  bool soft_state; /* role or leader changed */
  int role;
  raft_id leader;
  bool config_changed; /* `config` is the configuration in effect now */
  const struct raft_config *config;
  raft_index commit;
  /* Added: call raft_persisted(ack_index, ack_term) once this update's
   * writes are durable (both 0 when it has nothing to persist). */
  raft_index ack_index;
  raft_term ack_term;
};
bool raft_has_update(const struct raft *r);
void raft_update_take(struct raft *r, struct raft_update *u);

/* introspection */
enum { RAFT_PROGRESS_PROBE = 1, RAFT_PROGRESS_REPLICATE, RAFT_PROGRESS_SNAPSHOT };
struct raft_progress_info {
  raft_id id;
  raft_index match, next;
  int state;
  bool active;
  /* Added: */
  uint8_t role;   /* RAFT_VOTER, RAFT_LEARNER, or 0: removed by an entry the
                     leader still replicates to it (see raft_change_ex) */
  bool reachable; /* heard from within election_ms since this node leads
                     (the rule of RAFT_EUNSAFE); always true for itself */
};
struct raft_status {
  raft_id id;
  int role;
  raft_term term;
  raft_id vote;
  raft_id leader;
  raft_index commit, last_index, last_persisted, snapshot_index;
  raft_term last_term;
  bool transferring;
  const struct raft_config *config;
  raft_index config_index;
  bool is_learner, is_member;
  /* Added: */
  raft_index applied;   /* committed entries handed out so far */
  uint64_t n_malformed; /* network messages ignored as malformed */
};
void raft_status(const struct raft *r, struct raft_status *s);
/* Fills up to n entries of progress (leader only); returns how many. */
uint32_t raft_progress(const struct raft *r, struct raft_progress_info *out, uint32_t n);
/* Entry at index if still in the in-memory log, else NULL. */
const struct raft_entry *raft_log_entry(const struct raft *r, raft_index index);
const char *raft_role_name(int role);

#endif
