/* luaraft state machine runner: runs the user's Lua state machine (API.md
 * section 3) for one node, in that node's own lua_State (a script or a
 * factory, sandboxed) or in the caller's (a table: the in-state mode, below,
 * without the sandbox), and owns the parts of
 * the replicated state that live next to it (client sessions, applied index).
 *
 * Shared by the simulator (src/sim/) and the real node host; it includes no
 * libuv, SQLite, socket or simulator headers. Everything here is
 * single-threaded: one runner belongs to one node and one thread.
 *
 * How a host uses it:
 *
 *   1. lr_sm_new() once per node incarnation (and never reuse a runner after a
 *      crash: a restart makes a new one, so no Lua state survives a restart).
 *   2. Proposing: wrap the command in an envelope (lr_env_encode) and hand
 *      the bytes to raft_propose(). The envelope carries the origin node id
 *      and a request id (so the origin completes its waiter when it applies
 *      the entry), optionally a client id + sequence number (exactly-once
 *      sessions), the proposer's clock, and the command (lr_encode bytes).
 *   3. Applying: every entry of raft_update.committed goes to lr_sm_apply(),
 *      in order. NOOP and CONFIG entries only advance the applied index.
 *      The result says what to hand the waiter (if this node is env.origin).
 *   4. Reading: lr_sm_query() once applied >= the read index.
 *   5. Snapshots: lr_sm_snapshot() -> bytes for raft_snapshot_taken(); a
 *      received snapshot goes to lr_sm_restore(), which builds a fresh Lua
 *      state, loads the script again and calls restore() there.
 *
 * Request ids: a proposer's req ids must increase for all time at that
 * origin node id (across restarts too: e.g. start from the wall clock in
 * microseconds). A forwarded proposal can reach the leader twice (a duplicated
 * or retransmitted message); the runner keeps, per origin, the last req and a
 * 64-wide window below it in the replicated state and skips a copy it has
 * seen (LR_SM_SKIPPED) or one older than the window. So a proposal whose req
 * is overtaken by 64 newer ones from the same origin is skipped: its waiter
 * times out (an unknown outcome, never a wrong one). req 0: no filtering.
 *
 * meta.time (API.md "the leader's wall clock") is the PROPOSING node's clock
 * at propose time, written into the envelope by the proposer. A proposal a
 * follower forwards is appended by the leader's core byte for byte, so the
 * stamp travels with the entry and is the same on every replica, which is the
 * property that matters for determinism. With clocks in sync this is the
 * leader's clock to within the forwarding delay.
 *
 * Results are encoded values (lr_encode bytes) so they can be shipped to any
 * process; errors are deterministic: an error raised by apply() becomes
 * LR_SM_APPLY_ERROR with "file:line: message" (no traceback, no addresses
 * added by the runner) and every replica moves on the same way.
 */
#ifndef LUARAFT_SM_SM_H
#define LUARAFT_SM_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "core/raft.h"

/* ---- the envelope --------------------------------------------------------
 * Binary, little-endian, versioned, decoded strictly (exact lengths, no
 * unknown flags, no trailing bytes):
 *   u8 version (1) | u8 flags (bit 0: has session, bit 1: digest) |
 *   u64 origin | u64 req | u64 time_ms | [u16 client_len | client bytes |
 *   u64 seq] | u32 cmd_len | cmd bytes
 * A digest envelope (kind LR_ENV_DIGEST, made by lr_sm_digest_envelope) is
 * the runner's own: its cmd is u64 index | the digest bytes, and apply()
 * never sees it.
 */
#define LR_ENV_VERSION 1
#define LR_ENV_CLIENT_MAX 256 /* bytes of a client id */
#define LR_ENV_HEADER_MAX (2 + 8 * 3 + 2 + LR_ENV_CLIENT_MAX + 8 + 4)

struct lr_env {
  uint64_t origin;    /* node id of the proposer (0: none) */
  uint64_t req;       /* request id, unique at the origin (0: none) */
  uint64_t time_ms;   /* proposer's clock at propose time: meta.time */
  const char *client; /* NULL/0: no session */
  size_t client_len;
  uint64_t seq;    /* > 0 with a client */
  const char *cmd; /* lr_encode bytes of the command */
  size_t cmd_len;
  uint8_t kind; /* LR_ENV_COMMAND (0) or LR_ENV_DIGEST */
};
enum { LR_ENV_COMMAND = 0, LR_ENV_DIGEST = 1 };
/* Appends the envelope to out. -1: no memory or client id too long. */
int lr_env_encode(const struct lr_env *e, struct lr_buf *out);
/* Writes just the header; append e->cmd_len bytes of command after it. Lets a
 * proposer encode the command straight after the header (no copy). */
int lr_env_encode_header(const struct lr_env *e, struct lr_buf *out);
/* Strict decode; the pointers in e point into p. 0 or -1 (malformed). */
int lr_env_decode(const void *p, size_t n, struct lr_env *e);

/* ---- the runner ---------------------------------------------------------- */
#define LR_SM_SESSIONS_DEFAULT 10000
#define LR_SM_SESSIONS_MAX 10000000

/* Determinism guards (README "Deterministic state machines"). */
#define LR_SM_BUDGET_DEFAULT 100000000ull /* instructions per call */
#define LR_SM_BUDGET_OFF UINT64_MAX
#define LR_SM_MEMORY_DEFAULT ((size_t)1 << 30) /* bytes of one node's Lua state */
#define LR_SM_MEMORY_OFF SIZE_MAX
#define LR_SM_DIGEST_ENTRIES_DEFAULT 1000
#define LR_SM_DIGEST_OFF UINT32_MAX
#define LR_SM_DIGEST_MAX 64 /* longer digest() strings are hashed */
/* Results (encoded bytes) of apply/query over this are dropped (status
 * LR_SM_TOO_LARGE): one huge result would otherwise be copied into the
 * session table and then decoded, JSON-encoded and written by the host on
 * the loop thread, stalling it for seconds (issue 11: 64 MB cost 3.4 s and
 * the leadership). Set it the same on every node: the session table keeps
 * what it decides. */
#define LR_SM_RESULT_DEFAULT ((size_t)1 << 20)
#define LR_SM_RESULT_OFF SIZE_MAX

struct lr_sm_options {
  uint64_t id;       /* node id, for messages and digest reports */
  const char *path;  /* a script path, or: */
  const char *chunk; /* a dumped factory function (lua_dump bytes), or: */
  size_t chunk_len;
  const char *chunkname; /* for chunk, e.g. "=state_machine" */
  lua_State *thread;     /* the IN-STATE mode (below): a thread of the
                            caller's Lua state, made for this runner alone,
                            whose stack holds just the state machine table */
  uint32_t max_sessions; /* 0: LR_SM_SESSIONS_DEFAULT */
  /* --- determinism guards; zero means the default --- */
  uint64_t apply_budget;   /* Lua instructions per apply/query/digest call; an
                              apply over it is apply_error "instruction budget
                              exceeded" on every replica. 0: default;
                              LR_SM_BUDGET_OFF: no budget (no hook) */
  size_t memory_max;       /* bytes the node's Lua state may use; over it the
                              runner halts (not deterministic: see
                              lr_sm_halted). 0: default; LR_SM_MEMORY_OFF */
  uint32_t digest_entries; /* checkpoint interval for digest(). 0: default;
                              LR_SM_DIGEST_OFF: never */
  size_t max_result_bytes; /* bound on an encoded result (above). 0: default;
                              LR_SM_RESULT_OFF: none */
  /* Loud lines (halts, divergence, digest errors). NULL: stderr. */
  void (*log)(void *ud, int level, const char *msg);
  void *log_ud;
};

enum {
  LR_SM_OK = 0,          /* data: lr_encode bytes of apply's/query's result */
  LR_SM_APPLY_ERROR = 1, /* data: the error message */
  LR_SM_BAD_REQUEST = 2, /* data: message (stale seq, malformed envelope or
                            command, query without query(), query error) */
  LR_SM_NONE = 3,        /* NOOP/CONFIG entry: nothing to hand back */
  LR_SM_SKIPPED = 4,     /* a second copy of an envelope (same origin and
                            req) that the network duplicated on its way to
                            the leader: not applied, complete no waiter */
  LR_SM_HALTED = 5,      /* the runner is halted (lr_sm_halted): nothing was
                            applied or read; data: the reason. Code
                            "stopped" */
  LR_SM_TOO_LARGE = 6    /* the result was over max_result_bytes and was
                            dropped; an apply DID happen (the entry is
                            applied, the state changed). data: a message.
                            Code "too_large" */
};
/* The codes of API.md for the statuses above. */
const char *lr_sm_code(int status);

struct lr_sm_result {
  int status;
  const char *data; /* valid until the next call on this runner */
  size_t len;
  struct lr_env env; /* apply: the entry's envelope (zeroed for NOOP/CONFIG
                        and malformed ones); pointers valid as data */
  bool duplicate;    /* apply: answered from the session table */
};

/* ---- the in-state mode (a table) -----------------------------------------
 * raft.node { state_machine = TABLE }: the embedder's own table, whose
 * functions close over the embedder's locals, runs in the embedder's Lua
 * state. The caller (src/lua/lnode.c) makes a thread with lua_newthread,
 * anchors it (a registry reference held by the node object), puts the table
 * on it and passes it as options.thread. The runner keeps its fixed stack
 * slots (handler, table, apply, meta, ...) on that thread and makes every
 * call there, in protected mode; it never touches the thread again after
 * lr_sm_free, which therefore may run after the caller's state is closed,
 * and it never closes the state. The caller drops its reference only when
 * the runner makes no more calls (the node stopped) and never during one
 * (lr_sm_in_call). What holds and what does not in this mode:
 *   - the same envelope, sessions, result encoding, apply_error messages
 *     ("file:line: message"), digests and snapshot blob as a script;
 *   - the instruction budget: the count hook goes on the runner's thread
 *     before each apply/query/digest call and comes off after it; a
 *     coroutine created during the call inherits it and drops it the first
 *     time it fires outside a call; the embedder's other code never runs
 *     limited;
 *   - NO sandbox: the embedder's globals cannot be replaced, so pairs order,
 *     math.random, os.time, io are the embedder's (determinism is the
 *     embedder's job; pass a path or a factory function for the sandbox).
 *     An `unsafe` key is ignored; status().guards is 0;
 *   - NO memory limit (memory_max does not apply; memory_used is 0): the
 *     memory is the embedder's state's;
 *   - restore(data) is called on the same table: it cannot start from a fresh
 *     state, so restore must REPLACE the whole state, never merge into it. If
 *     restore raises, the table is in an unknown state: the runner halts.
 * The state machine's functions must not call node methods or drive the loop
 * (raft.run*); the binding refuses node methods while lr_sm_in_call(). */

struct lr_sm;
/* True while any in-state runner of L's Lua state is inside a call into its
 * table (so bindings can refuse re-entry). */
bool lr_sm_in_call(lua_State *L);

/* Creates the node's Lua state, loads the script or factory (with `raft` as a
 * global and in package.preload) and checks it returns a table with an apply
 * function. -1 with a sentence in err. */
int lr_sm_new(const struct lr_sm_options *o, struct lr_sm **out, char *err, size_t errlen);
void lr_sm_free(struct lr_sm *sm);

/* Applies one committed entry (index must be applied_index + 1). Returns 0, or
 * -1 if the runner could not work at all (no memory): the host must stop the
 * node. Everything a script does (errors, bad results) is a status in res.
 * When the runner was halted before this call, or ran out of memory_max in
 * apply(), res.status is LR_SM_HALTED and the applied index does not move. A
 * DIGEST entry gives LR_SM_NONE, or LR_SM_HALTED when it showed that this
 * replica diverged (the entry counts as applied). digest() itself runs after
 * the entry applied and may halt the runner (memory) with res holding the
 * entry's real result: so after EVERY call check lr_sm_halted() and stop
 * applying once it is true.
 *
 * apply(cmd, meta): meta = {index, term, time} is one table reused for every
 * call: read it during the call, do not keep it. */
int lr_sm_apply(struct lr_sm *sm, const struct raft_entry *e, struct lr_sm_result *res);
/* Read-only query; q is lr_encode bytes. Fills res (OK or BAD_REQUEST). */
int lr_sm_query(struct lr_sm *sm, const void *q, size_t qlen, struct lr_sm_result *res);

/* True when the script has both snapshot() and restore(). */
bool lr_sm_can_snapshot(const struct lr_sm *sm);
/* Appends one versioned blob (applied index/term, sessions, the script's
 * snapshot() string) to out. -1 with err set if snapshot() failed or did not
 * return a string; nothing is appended then. */
int lr_sm_snapshot(struct lr_sm *sm, struct lr_buf *out, char *err, size_t errlen);
/* Replaces the whole state with a blob from lr_sm_snapshot(): a fresh Lua
 * state, the script loaded again, restore(data) called there. On error
 * (malformed blob, restore() raised) the runner keeps its old state and -1 is
 * returned with err. In-state mode: restore(data) on the same table; if it
 * raises, the runner halts (the table's state is unknown) and -1. */
int lr_sm_restore(struct lr_sm *sm, const void *p, size_t n, char *err, size_t errlen);

raft_index lr_sm_applied_index(const struct lr_sm *sm);
raft_term lr_sm_applied_term(const struct lr_sm *sm);
/* Sets the applied index/term without applying (a host that restores from a
 * snapshot blob gets them from the blob; this is for a node with nothing). */
void lr_sm_set_applied(struct lr_sm *sm, raft_index index, raft_term term);
uint32_t lr_sm_session_count(const struct lr_sm *sm);
/* The node's Lua state (for hooks such as event callbacks; do not close). */
lua_State *lr_sm_lua(struct lr_sm *sm);

/* ---- determinism: halts, digests, status ----------------------------------
 * HALTED. The runner halts, for good, when (a) the Lua state went over
 * memory_max (not deterministic: other replicas may not), or (b) this
 * replica's digest differs from the one a majority of voters reported
 * (diverged). A halted runner applies and answers nothing (LR_SM_HALTED,
 * code "stopped"); the reason went to the log callback once. The host then:
 *   - stops feeding committed entries to lr_sm_apply (keeping the Raft core
 *     running is fine: its log stays correct, it can vote and replicate);
 *   - fails reads and proposals at this node with code "stopped" and
 *     lr_sm_status().reason (proposals at a halted node would never
 *     complete: their result comes from the local apply);
 *   - if it is the leader, hands leadership on: raft_transfer(r, now, 0);
 *   - shows lr_sm_status() in node:status() and /metrics.
 * Recovery is the operator's: stop the node, delete its data directory,
 * start it again so it catches up from a healthy replica's snapshot.
 *
 * DIGESTS. With digest() in the state machine table, after every apply the
 * host checks lr_sm_digest_due(); when true it builds the envelope with
 * lr_sm_digest_envelope() and proposes it through its normal propose path
 * (raft_propose with context 0, forwarded to the leader by the core; no
 * waiter; a failed or lost proposal only skips that checkpoint for this
 * node). The runner learns the voter count from the CONFIG entries it
 * applies; after restoring a snapshot (lr_sm_restore, at boot or when one is
 * installed) the host calls lr_sm_set_config() with the snapshot's config. */
bool lr_sm_halted(const struct lr_sm *sm);
bool lr_sm_digest_due(const struct lr_sm *sm);
/* Appends the DIGEST envelope of the last checkpoint to out and clears
 * "due". -1: nothing due or no memory. */
int lr_sm_digest_envelope(struct lr_sm *sm, struct lr_buf *out);
/* The configuration applied so far (for the voter count of digests). */
void lr_sm_set_config(struct lr_sm *sm, const struct raft_config *c);

struct lr_sm_status {
  bool halted;
  const char *reason;   /* halted: a sentence; "" otherwise */
  bool memory_exceeded; /* halted by memory_max */
  bool diverged;        /* halted by a digest mismatch: */
  raft_index diverged_index;
  const char *mine, *majority; /* the two digests (bytes, see lengths) */
  size_t mine_len, majority_len;
  uint64_t digests_taken;         /* checkpoints this node computed */
  uint64_t digests_matched;       /* ... that a majority confirmed */
  uint64_t digest_mismatches;     /* ... that a majority contradicted (metric) */
  uint64_t budget_exceeded;       /* calls stopped by the instruction budget */
  size_t memory_used, memory_max; /* bytes of the Lua state */
  int guards;                     /* sandbox guards on (bits; 0: all lifted) */
};
/* Pointers valid until the next call on this runner. */
void lr_sm_status(const struct lr_sm *sm, struct lr_sm_status *st);

#endif
