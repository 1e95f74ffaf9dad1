/* Internals of the node host, shared by its files:
 *   node.c      lifecycle, requests, status
 *   drive.c     THE place that drains raft updates (persist/send/ack/apply)
 *   waiters.c   requests waiting for an index, a read state or a leader
 *   events.c    the event queue delivered to the binding
 *   msgcopy.c   deep copies of messages held until their batch is durable
 *   transport.c the adapter to src/net
 */
#ifndef LUARAFT_HOST_INT_H
#define LUARAFT_HOST_INT_H

#include "codec/codec.h"
#include "host/host.h"
#include "sm/sm.h"

/* One raft_update waiting for its batch to be durable before the rest of
 * it (held messages, ack, apply) may happen. FIFO in update order. */
struct lr__item {
  struct lr__item *next;
  struct lr_store_batch *batch; /* NULL: nothing to persist, or merged */
  bool merged;                  /* persisted by an earlier item's batch */
  bool writing, written;
  int write_rv;
  uint64_t write_start_ns;
  raft_index ack_index; /* raft_persisted(ack_index, ack_term) once durable */
  raft_term ack_term;
  bool own_snapshot; /* a snapshot this node took: raft_snapshot_taken after */
  raft_index snap_index;
  raft_term snap_term;
  struct raft_message *msgs_after;
  uint32_t n_msgs_after;
  struct raft_entry *committed;
  uint32_t n_committed;
  struct raft_snapshot *snapshot; /* received: restore once durable */
  struct raft_read_state *reads;
  uint32_t n_reads;
  struct raft_proposal_error *prop_errors;
  uint32_t n_prop_errors;
  bool soft_state;
  int role;
  raft_id leader;
  raft_term term;
  bool config_changed;
  raft_index commit;
};

enum { W_INDEX = 1, W_READ_CTX, W_READ_AT, W_TRANSFER, W_COMMIT };
struct lr__waiter {
  int kind;
  uint64_t req;
  raft_index index; /* W_INDEX, W_READ_AT, W_COMMIT: wait applied/commit >= */
  raft_id target;   /* W_TRANSFER */
  bool barrier;     /* reads: no query, just ok */
  char *q;          /* reads: the query bytes */
  size_t qlen;
};

struct lr__event_q {
  struct lr_event *ev;
  char **bufs; /* owned copies of ev[i].data */
  size_t n, cap;
};

struct lr_node {
  uv_loop_t *loop;
  raft_id id;
  int log_level;
  uint64_t snapshot_entries;
  bool allow_faults;
  struct raft *raft;
  struct lr_store *store;
  struct lr_sm *sm;
  void *net; /* the transport (transport.c) */
  uv_timer_t timer;
  uv_timer_t flush; /* delivers events queued during a call from Lua */
  int handles_open;
  bool stopping, failed;
  bool stale_deadline_logged;
  bool halted;                    /* the state machine halted (sm.h): apply nothing more */
  bool digest_due, halt_transfer; /* raft_* calls deferred out of apply */
  int in_callback;                /* > 0 inside a loop callback: events flush at its end */
  lr_event_cb cb;
  void *cbdata;
  uint32_t subscribed; /* bit per event type */
  /* the write pipeline */
  struct lr__item *head, *tail;
  uv_work_t work;
  bool work_busy;
  /* what the node last saw, for events and logs */
  int role;
  raft_id leader;
  raft_term term;
  raft_index commit;
  raft_index snap_index;             /* last snapshot taken or restored */
  bool snap_pending;                 /* one of our snapshots is being written */
  struct raft_config applied_config; /* in effect at the applied index */
  raft_index applied_config_index;
  struct raft_config config; /* latest (for peer addresses) */
  uint64_t cluster_id;       /* 0: not known yet (joining) */
  bool was_member;           /* a configuration with this node in it was seen */
  bool removed;              /* a member with a newer configuration refused us */
  raft_index snap_in_index;  /* a snapshot being received (for the log) */
  uint64_t snap_in_last_ms, snap_in_resume_logged;
  /* requests */
  struct lr__waiter *waiters;
  size_t n_waiters, cap_waiters;
  struct lr__event_q events;
  struct lr_buf scratch;
  struct lr_node_metrics metrics;
};

/* drive.c */
void lr__node_drive(struct lr_node *n);
void lr__node_apply_committed(struct lr_node *n, const struct raft_entry *e, uint32_t count);
int lr__node_take_snapshot(struct lr_node *n, char *err, size_t errlen);
void lr__node_fail(struct lr_node *n, const char *why);
void lr__node_halted(struct lr_node *n);
void lr__items_free(struct lr__item *it);

/* waiters.c */
int lr__waiter_add(struct lr_node *n, const struct lr__waiter *w);
void lr__waiters_check(struct lr_node *n);
void lr__waiters_read_state(struct lr_node *n, const struct raft_read_state *rs);
void lr__waiters_fail_all(struct lr_node *n, const char *code, const char *msg);
void lr__waiters_free(struct lr_node *n);
void lr__node_query(struct lr_node *n, uint64_t req, const char *q, size_t len, bool barrier);

/* events.c */
void lr__event_push(struct lr_node *n, const struct lr_event *ev);
void lr__event_done(struct lr_node *n, uint64_t req, const char *code, const char *data, size_t len,
                    raft_index index, raft_term term);
void lr__events_flush(struct lr_node *n);
void lr__events_free(struct lr_node *n);
void lr__events_flush_cb(uv_timer_t *t);
void lr__callback_enter(struct lr_node *n);
void lr__callback_leave(struct lr_node *n);

/* msgcopy.c */
int lr__msgs_copy(const struct raft_message *src, uint32_t n, struct raft_message **out);
void lr__msgs_free(struct raft_message *m, uint32_t n);
int lr__entries_copy(const struct raft_entry *src, uint32_t n, struct raft_entry **out);
void lr__entries_free(struct raft_entry *e, uint32_t n);
int lr__snapshot_copy(const struct raft_snapshot *src, struct raft_snapshot **out);
void lr__snapshot_free(struct raft_snapshot *s);

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

#endif
