/* luaraft host: one Raft node on a libuv loop, with SQLite (or memory)
 * storage, the TCP transport and a Lua state machine (src/sm).
 *
 * The node is the libuv adapter of the driver (src/drive/drive.h), which
 * holds the host protocol of raft.h for the real node and the simulator
 * alike: the node gives it a disk (batch writes on the thread pool), a net
 * (src/net over TCP), a clock (uv timers) and an event queue.
 *
 * Requests carry an id chosen by the caller (the Lua binding). Their outcome
 * arrives later as an LR_EV_DONE event with the same id, always from a loop
 * callback, never from inside the call that started the request.
 */
#ifndef LUARAFT_HOST_H
#define LUARAFT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/raft.h"
#include "drive/drive.h"
#include "store/store.h"

struct lr_sm_options;

/* ---- clocks --------------------------------------------------------------- */
uint64_t lr_now_ms(void);  /* monotonic, for the core */
uint64_t lr_wall_ms(void); /* wall clock, for meta.time */

/* ---- logging (levels: RAFT_LOG_* in core/raft.h) ------------------------------ */
int lr_log_level_parse(const char *name); /* -1 if unknown */
const char *lr_log_level_name(int level);
/* One line on stderr: "2026-01-02T03:04:05.678Z INFO  [1] message". */
void lr_log(int threshold, raft_id id, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- a node ------------------------------------------------------------- */
#define LR_NODE_PEERS_MAX 64
#define LR_NODE_WAITERS_MAX 100000 /* requests waiting at once */

struct lr_node_options {
  uv_loop_t *loop; /* every handle of the node goes on it */
  raft_id id;
  struct raft_config peers; /* initial configuration; its addresses too */
  bool join;                /* start empty and wait to be added */
  const char *listen;       /* peer address to listen on; NULL: peers[id] */
  enum lr_store_kind storage;
  const char *data_dir;
  uint32_t election_ms, heartbeat_ms;
  bool pre_vote, check_quorum;
  uint64_t snapshot_entries; /* 0: never snapshot automatically */
  const char *secret;        /* NULL: no peer authentication */
  size_t secret_len;
  /* The cluster's identity: NULL makes a random id at bootstrap (a joining
   * node learns it from the first peer that contacts it); a name derives
   * the id from it (BLAKE2b), the same on every node given that name. */
  const char *cluster_name;
  /* Peer TLS (net.h): PEM files; all three or none. */
  const char *tls_cert, *tls_key, *tls_ca;
  bool allow_faults;
  int log_level;
  /* the state machine: a script path or a dumped factory function */
  const char *sm_path;
  const char *sm_chunk;
  size_t sm_chunk_len;
  /* or, when not NULL, the runner's options as a whole (src/sm/sm.h: the
   * in-state table mode, the determinism guards); id and log are the node's */
  const struct lr_sm_options *sm;
};

/* events: struct lr_event and LR_EV_* are the driver's (drive.h) */
typedef void (*lr_event_cb)(void *data, const struct lr_event *ev);

struct lr_node;
/* Validates options, creates the state machine and opens the store (in that
 * order: a bad script is refused before the data dir is touched), starts the
 * transport and the timer. -1 with a sentence in err. */
int lr_node_start(const struct lr_node_options *o, lr_event_cb cb, void *cbdata,
                  struct lr_node **out, char *err, size_t errlen);
/* Stops and frees the node once libuv is done with its handles and any
 * write in flight; no event is delivered after this returns. */
void lr_node_stop(struct lr_node *n);
/* Which events are delivered (DONE, FAIL_ALL and STOPPED always are). */
void lr_node_subscribe(struct lr_node *n, int type, bool on);

/* Requests: 0, or a RAFT_E* code (see raft_errcode) and no event follows.
 * wait: LR_WAIT_*, mode: LR_READ_* (drive.h). */
int lr_node_propose(struct lr_node *n, uint64_t req, const char *cmd, size_t len,
                    const char *client, size_t client_len, uint64_t seq, int wait);
int lr_node_read(struct lr_node *n, uint64_t req, int mode, const char *q, size_t len);
int lr_node_change(struct lr_node *n, uint64_t req, int kind, raft_id id, const char *address,
                   unsigned flags);
int lr_node_transfer(struct lr_node *n, uint64_t req, raft_id to);
int lr_node_step_down(struct lr_node *n);
/* The caller stopped waiting for req (its timeout): not sent again. */
void lr_node_forget(struct lr_node *n, uint64_t req);
/* Takes a snapshot now (0), or -1 with err ("the state machine has no
 * snapshot()", "nothing applied since the last snapshot"). */
int lr_node_snapshot(struct lr_node *n, char *err, size_t errlen);
/* Transport faults for tests (--allow-faults): drop all traffic to and from
 * these peers (count 0 heals); -1 if faults are not allowed. */
int lr_node_faults(struct lr_node *n, const raft_id *ids, size_t count);
/* Tests (--allow-faults): the next `count` storage writes fail (EIO). */
int lr_node_fail_writes(struct lr_node *n, int count);

struct lr_node_metrics {
  struct lr_drive_metrics drive; /* the driver's counters (drive.h) */
  /* from the transport */
  uint64_t net_bad_frames, net_handshake_failures, net_frames_dropped;
  uint32_t peers, peers_up;
};
void lr_node_metrics(const struct lr_node *n, struct lr_node_metrics *m);
void lr_node_status(const struct lr_node *n, struct raft_status *s);
raft_index lr_node_applied(const struct lr_node *n);
/* Leader only: progress of each member; returns how many were filled. */
uint32_t lr_node_progress(const struct lr_node *n, struct raft_progress_info *out, uint32_t max);
/* Is the peer connection up (as far as the transport knows)? */
bool lr_node_peer_up(const struct lr_node *n, raft_id id);
const char *lr_node_address(const struct lr_node *n, raft_id id);
raft_id lr_node_id(const struct lr_node *n);
/* The cluster id (0 while a joining node has not learned it yet). */
uint64_t lr_node_cluster_id(const struct lr_node *n);
/* The id a cluster name stands for (never 0). */
uint64_t lr_cluster_id_of_name(const char *name);
/* Snapshot transfers in progress, both ways: bytes so far of total, the rate
 * since the transfer (or its resumption) started, the time left at that rate
 * (eta_s < 0: unknown), and how long since the last chunk. */
struct lr_snapshot_transfer {
  raft_id peer;
  bool incoming;
  raft_index index;
  uint64_t bytes, total;
  double rate, eta_s; /* bytes/s, seconds */
  uint64_t idle_ms;
};
uint32_t lr_node_snapshot_transfers(const struct lr_node *n, struct lr_snapshot_transfer *out,
                                    uint32_t max);
/* Snapshot bytes sent and received since start (counters for /metrics). */
void lr_node_snapshot_bytes(const struct lr_node *n, uint64_t *out, uint64_t *in);
/* The state machine's health (sm.h): halted, digests, memory. */
struct lr_sm_status;
bool lr_node_sm_status(const struct lr_node *n, struct lr_sm_status *st);
int lr_node_log_level(const struct lr_node *n);

#endif
