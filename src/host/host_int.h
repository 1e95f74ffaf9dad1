/* Internals of the node host, the libuv adapter of the driver (src/drive):
 *   node.c      lifecycle, the driver's io (thread-pool writes, uv timer),
 *               requests, status
 *   events.c    the event queue delivered to the binding
 *   transport.c the adapter to src/net
 *   loop.c      clocks and the log line format
 */
#ifndef LUARAFT_HOST_INT_H
#define LUARAFT_HOST_INT_H

#include "codec/codec.h"
#include "host/host.h"
#include "sm/sm.h"

struct lr__event_q {
  struct lr_event *ev;
  char **bufs; /* owned copies of ev[i].data */
  size_t n, cap;
};

/* One snapshot transfer (snapprog.c), per peer and direction. */
#define LR__SNAP_XFERS_MAX 8
struct lr__snap_xfer {
  raft_id peer; /* 0: a free slot */
  bool in, active, finished;
  raft_index index;
  uint64_t total, bytes, start_bytes;
  uint64_t start_ms, last_ms, last_log_ms;
};

struct lr_node {
  uv_loop_t *loop;
  raft_id id;
  int log_level;
  bool allow_faults;
  struct lr_drive *drive; /* the protocol: everything between core and world */
  struct lr_store *store;
  uint64_t cluster_id; /* 0: not known yet (joining) */
  void *net;           /* the transport (transport.c) */
  uv_timer_t timer;
  uv_timer_t flush; /* delivers events queued during a call from Lua */
  int handles_open;
  bool stopping;
  int in_callback; /* > 0 inside a loop callback: events flush at its end */
  lr_event_cb cb;
  void *cbdata;
  /* the one write in flight (the driver starts the next after it) */
  uv_work_t work;
  struct lr_store_batch *writing;
  uint64_t write_start_ns;
  bool work_busy;
  /* the snapshot a forked child is making (io_snapshot): its pid, the pipe
   * its bytes come through, and what has come so far */
  int snap_pid;
  uv_pipe_t snap_pipe;
  char *snap_buf; /* raft_malloc'd: handed to the driver as it is */
  size_t snap_len, snap_cap;
  uint64_t snap_fork_ns, snap_start_ns; /* for the log */
  /* the store's idle work (checkpoint) on the thread pool, between batches */
  bool idle_busy;
  uv_work_t idle_work;
  raft_index snap_in_index; /* a snapshot being received (for the log) */
  uint64_t snap_in_last_ms, snap_in_resume_logged;
  struct lr__snap_xfer xfers[LR__SNAP_XFERS_MAX];
  uint64_t snap_bytes_out, snap_bytes_in;
  struct lr__event_q events;
};

/* events.c */
void lr__event_push(struct lr_node *n, const struct lr_event *ev);
void lr__events_flush(struct lr_node *n);
void lr__events_free(struct lr_node *n);
void lr__events_flush_cb(uv_timer_t *t);
void lr__callback_enter(struct lr_node *n);
void lr__callback_leave(struct lr_node *n);

/* snapprog.c: a SNAPSHOT chunk sent (in false) or received */
void lr__snap_progress(struct lr_node *n, const struct raft_message *m, bool in);

/* transport.c */
int lr__tr_open(struct lr_node *n, const struct lr_node_options *o, char *err, size_t errlen);
void lr__tr_send(struct lr_node *n, const struct raft_message *m);
void lr__tr_config(struct lr_node *n, const struct raft_config *c);
bool lr__tr_peer_up(const struct lr_node *n, raft_id id);
int lr__tr_faults(struct lr_node *n, const raft_id *ids, size_t count);
struct lr_net_stats;
void lr__tr_stats(const struct lr_node *n, struct lr_net_stats *out);
void lr__tr_close(struct lr_node *n); /* calls lr__node_handle_closed when done */
void lr__node_recv(struct lr_node *n, const struct raft_message *m);
void lr__node_handle_closed(struct lr_node *n);

#define LR__LOG(n, level, ...) lr_log((n)->log_level, (n)->id, level, __VA_ARGS__)

/* snapfork.c: io.snapshot of a real node (fork; 1 = the bytes follow
 * through lr_drive_snapshot_made), and dropping a child at stop */
int lr__node_io_snapshot(void *data, struct lr_sm *sm, struct lr_buf *out, char *err,
                         size_t errlen);
void lr__node_snapshot_abandon(struct lr_node *n);

#endif
