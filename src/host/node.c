/* A node's lifecycle (start: state machine, store, boot, transport, timer;
 * stop), the driver's io on libuv (batch writes on the thread pool, the uv
 * timer, the transport, the event queue), requests and introspection. The
 * protocol itself is the driver's (src/drive). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"
#include "net/net.h"

static int fail(char *err, size_t errlen, const char *fmt, const char *a) {
  snprintf(err, errlen, fmt, a);
  return -1;
}

static int check_options(const struct lr_node_options *o, char *err, size_t errlen) {
  if (o->id == 0) return fail(err, errlen, "%sid must be a positive integer", "");
  /* No peers is fine for a node that restarts from its data directory: the
   * members and their addresses travel in the configuration it stored. */
  if (o->peers.n == 0 && o->join && o->listen == NULL)
    return fail(err, errlen, "%sa joining node needs its own address (peers = {[id] = addr})", "");
  if (o->peers.n > LR_NODE_PEERS_MAX) return fail(err, errlen, "%stoo many peers (at most 64)", "");
  if (o->peers.n > 0 && raft_config_get(&o->peers, o->id) == NULL && o->listen == NULL)
    return fail(err, errlen, "%speers must include this node's own id and address", "");
  if (o->storage == LR_STORE_SQLITE && (o->data_dir == NULL || o->data_dir[0] == 0))
    return fail(err, errlen, "%sdata_dir is needed with sqlite storage", "");
  if (o->sm_path == NULL && o->sm_chunk == NULL && o->sm == NULL)
    return fail(err, errlen, "%sa state machine is needed", "");
  return 0;
}

static void sm_log(void *ud, int level, const char *msg) {
  struct lr_node *n = ud;
  LR__LOG(n, level, "state machine: %s", msg); /* one log-level enum (raft.h) */
}

bool lr_node_sm_status(const struct lr_node *n, struct lr_sm_status *st) {
  lr_sm_status(lr_drive_sm(n->drive), st);
  return st->halted;
}

static uint64_t seed_of(raft_id id) {
  return uv_hrtime() ^ ((uint64_t)id * 0x9E3779B97F4A7C15ull) ^ (uint64_t)uv_os_getpid();
}

/* A brand-new node of a brand-new cluster persists the bootstrap entry (the
 * same on every founding node) before it boots. Loop thread, synchronous:
 * nothing else runs yet. */
static int bootstrap(struct lr_node *n, const struct raft_config *peers, char *err, size_t errlen) {
  struct raft_entry e;
  struct lr_store_batch *b = NULL;
  int rv = raft_bootstrap_entry(peers, &e);
  if (rv != 0) return fail(err, errlen, "bootstrap: %s", raft_strerror(rv));
  if (lr_store_batch_new(&b) != 0 || lr_store_batch_entries(b, &e, 1) != 0) {
    raft_entry_free_data(&e);
    if (b) lr_store_batch_free(b);
    return fail(err, errlen, "%sbootstrap: out of memory", "");
  }
  raft_entry_free_data(&e);
  rv = lr_store_batch_write(n->store, b);
  if (rv != 0) {
    const char *msg = "write failed";
    lr_store_batch_result(b, &msg, NULL, NULL);
    snprintf(err, errlen, "bootstrap: %s", msg);
  }
  lr_store_batch_free(b);
  return rv == 0 ? 0 : -1;
}

uint64_t lr_cluster_id_of_name(const char *name) {
  static const char label[] = "luaraft cluster name:";
  uint8_t h[8];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof h);
  crypto_generichash_update(&st, (const uint8_t *)label, sizeof label - 1);
  crypto_generichash_update(&st, (const uint8_t *)name, strlen(name));
  crypto_generichash_final(&st, h, sizeof h);
  uint64_t id = 0;
  for (int i = 0; i < 8; i++)
    id |= (uint64_t)h[i] << (8 * i);
  return id ? id : 1;
}

/* A new cluster's id, recorded before the bootstrap entry (so a crash in
 * between keeps it). From --cluster-name when given. Else a lone founder
 * draws a random one; several founders must agree without having talked
 * yet, so theirs is derived from the bootstrap configuration (ids,
 * addresses, roles, in id order), which they are given identically: two
 * clusters bootstrapped with different members or addresses differ, and a
 * cluster made again with the very same members at the very same addresses
 * needs a new --cluster-name to differ from the old one (docs/security.md). */
static int make_cluster_id(struct lr_node *n, const struct lr_node_options *o, char *err,
                           size_t errlen) {
  if (lr_store_cluster_id(n->store) != 0) return 0;
  uint64_t id = 0;
  if (o->cluster_name) {
    id = lr_cluster_id_of_name(o->cluster_name);
  } else if (o->peers.n > 1) {
    crypto_generichash_state st;
    static const char label[] = "luaraft bootstrap configuration:";
    crypto_generichash_init(&st, NULL, 0, 8);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label - 1);
    raft_id last = 0;
    for (uint32_t k = 0; k < o->peers.n; k++) { /* ascending ids, without sorting a copy */
      const struct raft_member *next = NULL;
      for (uint32_t i = 0; i < o->peers.n; i++) {
        const struct raft_member *m = &o->peers.members[i];
        if (m->id > last && (next == NULL || m->id < next->id)) next = m;
      }
      if (next == NULL) break;
      char item[LR_NET_ADDRESS_MAX + 48];
      int len = snprintf(item, sizeof item, "%llu=%s/%d;", (unsigned long long)next->id,
                         next->address, (int)next->role);
      crypto_generichash_update(&st, (const uint8_t *)item, (size_t)len);
      last = next->id;
    }
    uint8_t h[8];
    crypto_generichash_final(&st, h, sizeof h);
    for (int i = 0; i < 8; i++)
      id |= (uint64_t)h[i] << (8 * i);
  }
  while (id == 0)
    randombytes_buf(&id, sizeof id);
  return lr_store_set_cluster_id(n->store, id, err, errlen) == 0 ? 0 : -1;
}

/* A restarted node listens at its own address in --peers; if the stored
 * configuration says otherwise its peers dial the old one and it campaigns
 * forever unheard. */
static int check_own_address(const struct raft *r, const struct lr_node_options *o, char *err,
                             size_t errlen) {
  const struct raft_member *given = raft_config_get(&o->peers, o->id);
  struct raft_status rs;
  raft_status(r, &rs);
  const struct raft_member *stored = rs.config ? raft_config_get(rs.config, o->id) : NULL;
  if (o->listen != NULL || given == NULL || stored == NULL || stored->address[0] == 0 ||
      strcmp(given->address, stored->address) == 0)
    return 0;
  snprintf(err, errlen,
           "node %llu's address in --peers (%s) differs from its address in the stored "
           "configuration (%s, at index %llu): an address cannot be changed by restarting. "
           "Restart it with %s, or move it: remove it from the cluster (remove_member), then add "
           "it back at the new address (add_member) and start it there with an empty data "
           "directory and --join",
           (unsigned long long)o->id, given->address, stored->address,
           (unsigned long long)rs.config_index, stored->address);
  return -1;
}

static struct lr_drive_io node_io(struct lr_node *n);

static int open_raft(struct lr_node *n, const struct lr_node_options *o, struct lr_sm **sm,
                     char *err, size_t errlen) {
  struct lr_store_state st;
  memset(&st, 0, sizeof st);
  if (lr_store_load(n->store, &st, err, errlen) != 0) return -1;
  bool fresh = st.fresh;
  if (st.fresh && !o->join && o->peers.n == 0) {
    lr_store_state_free(&st);
    snprintf(err, errlen,
             "%s holds no cluster state: a new node needs its peers (--peers) or "
             "--join",
             lr_store_path(n->store));
    return -1;
  }
  if (st.fresh && !o->join) {
    lr_store_state_free(&st);
    if (make_cluster_id(n, o, err, errlen) != 0) return -1;
    if (bootstrap(n, &o->peers, err, errlen) != 0) return -1;
    LR__LOG(n, RAFT_LOG_INFO, "bootstrapped a new cluster of %u members, cluster id %016llx",
            o->peers.n, (unsigned long long)lr_store_cluster_id(n->store));
    if (lr_store_load(n->store, &st, err, errlen) != 0) return -1;
  }
  struct raft_options ro = {0};
  ro.id = o->id;
  ro.election_ms = o->election_ms;
  ro.heartbeat_ms = o->heartbeat_ms;
  ro.pre_vote = o->pre_vote;
  ro.check_quorum = o->check_quorum;
  ro.seed = seed_of(o->id);
  struct raft *r = NULL;
  int rv = raft_options_check(&ro, err, errlen);
  if (rv == 0) {
    struct raft_boot boot;
    lr_store_state_boot(&st, &boot);
    rv = raft_new(&ro, &boot, lr_now_ms(), &r);
    if (rv != 0) snprintf(err, errlen, "cannot start the Raft core: %s", raft_strerror(rv));
  }
  if (rv == 0 && fresh && o->join && o->cluster_name && /* known already: record it */
      lr_store_set_cluster_id(n->store, lr_cluster_id_of_name(o->cluster_name), err, errlen) != 0)
    rv = -1;
  n->cluster_id = lr_store_cluster_id(n->store);
  if (rv == 0 && !fresh && check_own_address(r, o, err, errlen) != 0) rv = -1;
  if (rv != 0 && r != NULL) {
    raft_free_node(r);
    r = NULL;
  }
  if (rv == 0) {
    /* No peers is fine on a restart: the stored configuration names them. */
    struct raft_status rs;
    raft_status(r, &rs);
    struct lr_drive_options dopt = {.id = o->id,
                                    .raft = r,
                                    .sm = *sm,
                                    .config = o->peers.n > 0 ? &o->peers : rs.config,
                                    .boot_snapshot = st.has_snapshot ? &st.snapshot : NULL,
                                    .durable_last = st.last_index,
                                    .snapshot_entries = o->snapshot_entries,
                                    .io = node_io(n)};
    *sm = NULL; /* the driver's now, even when it fails */
    rv = lr_drive_new(&dopt, &n->drive, err, errlen);
  }
  if (rv == 0)
    LR__LOG(n, RAFT_LOG_INFO, "loaded term %llu, log up to %llu%s", (unsigned long long)st.term,
            (unsigned long long)st.last_index, o->join && st.fresh ? ", waiting to be added" : "");
  lr_store_state_free(&st);
  return rv == 0 ? 0 : -1;
}

static void on_handle_closed(uv_handle_t *h) {
  lr__node_handle_closed(h->data);
}

/* ---- the driver's io on libuv --------------------------------------------- */
static uint64_t io_now(void *data) {
  (void)data;
  return lr_now_ms();
}

static uint64_t io_wall(void *data) {
  (void)data;
  return lr_wall_ms();
}

static void work_cb(uv_work_t *w) {
  struct lr_node *n = w->data;
  lr_store_batch_write(n->store, n->writing);
}

static void free_if_done(struct lr_node *n);
static int start_write(struct lr_node *n);

/* The store's housekeeping (the WAL checkpoint) runs on the thread pool
 * like a write, when the driver has no write in flight: off the commit
 * path. A write the driver starts meanwhile waits for it (one thread at a
 * time on the store) and starts from its after-callback. */
static void idle_cb(uv_work_t *w) {
  struct lr_node *n = w->data;
  lr_store_idle(n->store);
}

static void after_idle_cb(uv_work_t *w, int status) {
  struct lr_node *n = w->data;
  (void)status;
  n->idle_busy = false;
  if (n->stopping) {
    if (n->writing && !n->work_busy) n->writing = NULL; /* dropped with the driver */
    free_if_done(n);
    return;
  }
  if (n->writing && !n->work_busy && start_write(n) != 0) {
    n->writing = NULL; /* UNTESTED: */
    lr__callback_enter(n);
    lr_drive_written(n->drive, RAFT_ESTORAGE, 0.0);
    lr__callback_leave(n);
  }
}

static void maybe_idle(struct lr_node *n) {
  if (n->stopping || n->work_busy || n->idle_busy || n->writing || !lr_store_idle_due(n->store))
    return;
  n->idle_work.data = n;
  n->idle_busy = true;
  if (uv_queue_work(n->loop, &n->idle_work, idle_cb, after_idle_cb) != 0) n->idle_busy = false;
}

static void after_work_cb(uv_work_t *w, int status) {
  struct lr_node *n = w->data;
  n->work_busy = false;
  if (n->stopping) {
    free_if_done(n);
    return;
  }
  int rv = status == 0 ? lr_store_batch_result(n->writing, NULL, NULL, NULL) : RAFT_ESTORAGE;
  double ms = (double)(uv_hrtime() - n->write_start_ns) / 1e6;
  n->writing = NULL;
  lr__callback_enter(n);
  lr_drive_written(n->drive, rv, ms);
  maybe_idle(n); /* the driver started no write: the queue is empty */
  lr__callback_leave(n);
}

static int start_write(struct lr_node *n) {
  n->write_start_ns = uv_hrtime();
  n->work.data = n;
  n->work_busy = true;
  if (uv_queue_work(n->loop, &n->work, work_cb, after_work_cb) != 0) {
    n->work_busy = false; /* UNTESTED: */
    return -1;
  }
  return 0;
}

/* One batch on the thread pool at a time (store.h's threading rule); one
 * started while the store's idle work runs waits for it. */
static int io_write(void *data, struct lr_store_batch *b) {
  struct lr_node *n = data;
  n->writing = b;
  if (n->idle_busy) return 0; /* after_idle_cb starts it */
  if (start_write(n) != 0) {
    n->writing = NULL;
    return -1;
  }
  return 0;
}

static void io_send(void *data, const struct raft_message *m) {
  lr__tr_send(data, m);
}

static void io_event(void *data, const struct lr_event *ev) {
  struct lr_node *n = data;
  if (ev->type == LR_EV_STATE) return; /* the binding hears ROLE and LEADER */
  struct lr_event e = *ev;
  e.config = NULL; /* valid only during the call; the binding reads status */
  lr__event_push(n, &e);
}

static void io_log(void *data, int level, const char *line) {
  struct lr_node *n = data;
  LR__LOG(n, level, "%s", line);
}

static void on_timer(uv_timer_t *t);

/* At least 1 ms: libuv 1.44 runs a timer re-armed with 0 ms from its own
 * callback again in the same iteration, so a deadline the core leaves in
 * the past would spin the loop forever. A removed node (no deadline) looks
 * again every second. */
static void io_arm(void *data, uint64_t deadline) {
  struct lr_node *n = data;
  if (n->stopping) return;
  uint64_t now = lr_now_ms();
  uint64_t wait = deadline == UINT64_MAX ? 1000 : deadline > now ? deadline - now : 1;
  if (wait > 3600000) wait = 3600000;
  uv_timer_start(&n->timer, on_timer, wait, 0);
}

static void io_config(void *data, const struct raft_config *c) {
  lr__tr_config(data, c);
}

static uint64_t io_now_us(void *data) {
  (void)data;
  return uv_hrtime() / 1000;
}

static struct lr_drive_io node_io(struct lr_node *n) {
  /* disk, net, clock, events: the world of a real node */
  struct lr_drive_io io = {.data = n, .write = io_write, .send = io_send};
  io.now = io_now, io.wall = io_wall, io.arm = io_arm, io.now_us = io_now_us;
  io.snapshot = lr__node_io_snapshot;
  io.event = io_event, io.log = io_log, io.config = io_config;
  return io;
}

static void on_timer(uv_timer_t *t) {
  struct lr_node *n = t->data;
  lr__callback_enter(n);
  lr_drive_tick(n->drive);
  lr__callback_leave(n);
}

/* ---- life ------------------------------------------------------------------ */
void lr__node_free(struct lr_node *n) {
  lr__events_free(n);
  lr_drive_free(n->drive);
  if (n->store) lr_store_close(n->store);
  free(n);
}

/* Stopping: libuv cannot cancel a write that started, so the node is freed
 * by whichever finishes last, the close callbacks or the write. */
static void free_if_done(struct lr_node *n) {
  if (n->handles_open == 0 && !n->work_busy && !n->idle_busy) lr__node_free(n);
}

void lr__node_handle_closed(struct lr_node *n) {
  n->handles_open--;
  free_if_done(n);
}

int lr_node_start(const struct lr_node_options *o, lr_event_cb cb, void *cbdata,
                  struct lr_node **out, char *err, size_t errlen) {
  *out = NULL;
  if (check_options(o, err, errlen) != 0) return -1;
  struct lr_node *n = calloc(1, sizeof *n);
  if (n == NULL) return fail(err, errlen, "%sout of memory", "");
  n->loop = o->loop ? o->loop : uv_default_loop();
  n->id = o->id;
  n->log_level = o->log_level;
  n->allow_faults = o->allow_faults;
  n->cb = cb;
  n->cbdata = cbdata;
  /* The state machine first: a script that does not load is refused before
   * anything is written to the data directory. */
  struct lr_sm_options so = {.path = o->sm_path,
                             .chunk = o->sm_chunk,
                             .chunk_len = o->sm_chunk_len,
                             .chunkname = "=state_machine"};
  if (o->sm) so = *o->sm;
  so.id = o->id;
  so.log = sm_log;
  so.log_ud = n;
  struct lr_sm *sm = NULL;
  if (lr_sm_new(&so, &sm, err, errlen) != 0) goto fail;
  struct lr_store_options sto = {.kind = o->storage, .dir = o->data_dir, .node_id = o->id};
  if (o->cluster_name) sto.cluster_id = lr_cluster_id_of_name(o->cluster_name);
  if (lr_store_open(&sto, &n->store, err, errlen) != 0) goto fail;
  if (open_raft(n, o, &sm, err, errlen) != 0) goto fail;
  uv_timer_init(n->loop, &n->timer);
  uv_timer_init(n->loop, &n->flush);
  n->timer.data = n->flush.data = n;
  n->handles_open = 2;
  if (lr__tr_open(n, o, err, errlen) != 0) {
    n->stopping = true;
    uv_close((uv_handle_t *)&n->timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->flush, on_handle_closed);
    return -1; /* freed by the close callbacks */
  }
  if (n->cluster_id)
    LR__LOG(n, RAFT_LOG_INFO,
            "started: cluster %016llx, storage %s, election %u ms, heartbeat %u ms%s",
            (unsigned long long)n->cluster_id, lr_store_path(n->store), o->election_ms,
            o->heartbeat_ms, o->tls_cert ? ", peer TLS" : "");
  else
    LR__LOG(n, RAFT_LOG_INFO,
            "started: cluster id not known yet (learned from the first peer "
            "that contacts this node), storage %s, election %u ms, heartbeat %u ms%s",
            lr_store_path(n->store), o->election_ms, o->heartbeat_ms,
            o->tls_cert ? ", peer TLS" : "");
  lr__tr_config(n, lr_drive_config(n->drive));
  lr__callback_enter(n);
  lr_drive_run(n->drive);
  n->in_callback--; /* events wait for the flush timer: none during start */
  if (n->events.n) uv_timer_start(&n->flush, lr__events_flush_cb, 0, 0);
  *out = n;
  return 0;
fail:
  if (sm) lr_sm_free(sm);
  lr__node_free(n);
  return -1;
}

void lr_node_stop(struct lr_node *n) {
  if (n == NULL || n->stopping) return;
  LR__LOG(n, RAFT_LOG_INFO, "stopping");
  n->stopping = true;
  lr__node_snapshot_abandon(n);
  uv_close((uv_handle_t *)&n->timer, on_handle_closed);
  uv_close((uv_handle_t *)&n->flush, on_handle_closed);
  lr__tr_close(n);
}

void lr_node_subscribe(struct lr_node *n, int type, bool on) {
  lr_drive_subscribe(n->drive, type, on);
}

/* Every request enters the driver, then the update it produced is drained
 * right away (messages go out now); its events come from the flush timer. */
static int usable(struct lr_node *n) {
  return n->stopping ? RAFT_EDROPPED : 0;
}

int lr_node_propose(struct lr_node *n, uint64_t req, const char *cmd, size_t len,
                    const char *client, size_t client_len, uint64_t seq, int wait) {
  int rv = usable(n);
  if (rv == 0) rv = lr_drive_propose(n->drive, req, cmd, len, client, client_len, seq, wait);
  if (rv == 0) lr_drive_run(n->drive);
  return rv;
}

int lr_node_read(struct lr_node *n, uint64_t req, int mode, const char *q, size_t len) {
  int rv = usable(n);
  if (rv == 0) rv = lr_drive_read(n->drive, req, mode, q, len);
  if (rv == 0) lr_drive_run(n->drive);
  return rv;
}

int lr_node_change(struct lr_node *n, uint64_t req, int kind, raft_id id, const char *address,
                   unsigned flags) {
  int rv = usable(n);
  if (rv == 0) rv = lr_drive_change(n->drive, req, kind, id, address, flags);
  if (rv == 0) lr_drive_run(n->drive);
  return rv;
}

int lr_node_transfer(struct lr_node *n, uint64_t req, raft_id to) {
  int rv = usable(n);
  if (rv == 0) rv = lr_drive_transfer(n->drive, req, to);
  if (rv == 0) lr_drive_run(n->drive);
  return rv;
}

void lr_node_forget(struct lr_node *n, uint64_t req) {
  if (n->drive) lr_drive_forget(n->drive, req);
}

int lr_node_step_down(struct lr_node *n) {
  int rv = usable(n);
  if (rv == 0) rv = lr_drive_step_down(n->drive);
  if (!n->stopping) lr_drive_run(n->drive);
  return rv;
}

int lr_node_snapshot(struct lr_node *n, char *err, size_t errlen) {
  if (usable(n)) return fail(err, errlen, "%sthe node is stopped", "");
  return lr_drive_snapshot(n->drive, err, errlen);
}

int lr_node_faults(struct lr_node *n, const raft_id *ids, size_t count) {
  if (!n->allow_faults) return -1;
  return lr__tr_faults(n, ids, count) == 0 ? 0 : -1;
}

int lr_node_fail_writes(struct lr_node *n, int count) {
  if (!n->allow_faults || count < 0) return -1;
  lr_store_fail_next(n->store, count, RAFT_ESTORAGE);
  return 0;
}

/* Says when a snapshot starts arriving, and when one continues after a
 * pause (a dropped connection, a stopped peer): the core resumes it from the
 * offset this node holds rather than starting over. */
static void note_snapshot_chunk(struct lr_node *n, const struct raft_message *m) {
  uint64_t now = lr_now_ms();
  if (m->offset == 0 && m->snap.index != n->snap_in_index) {
    n->snap_in_index = m->snap.index;
    LR__LOG(n, RAFT_LOG_INFO, "receiving a snapshot at index %llu (%llu bytes) from node %llu",
            (unsigned long long)m->snap.index, (unsigned long long)m->total,
            (unsigned long long)m->from);
  } else if (m->offset > 0 && m->snap.index == n->snap_in_index &&
             now - n->snap_in_last_ms >= 200) {
    LR__LOG(n, RAFT_LOG_INFO,
            "snapshot at index %llu: chunk at offset %llu of %llu after %llu ms without one "
            "(the transfer continues where it stopped)",
            (unsigned long long)m->snap.index, (unsigned long long)m->offset,
            (unsigned long long)m->total, (unsigned long long)(now - n->snap_in_last_ms));
  }
  n->snap_in_last_ms = now;
}

void lr__node_recv(struct lr_node *n, const struct raft_message *m) {
  if (n->stopping) return;
  lr__callback_enter(n);
  if (m->type == RAFT_MSG_SNAPSHOT) {
    note_snapshot_chunk(n, m);
    lr__snap_progress(n, m, true);
  }
  lr_drive_recv(n->drive, m);
  lr__callback_leave(n);
}

void lr_node_metrics(const struct lr_node *n, struct lr_node_metrics *m) {
  memset(m, 0, sizeof *m);
  lr_drive_metrics(n->drive, &m->drive);
  struct lr_net_stats ns;
  lr__tr_stats(n, &ns);
  m->net_bad_frames = ns.bad_frames;
  m->net_handshake_failures = ns.handshake_failures;
  m->net_frames_dropped = ns.frames_dropped + ns.frames_dropped_fault;
  m->peers = ns.peers;
  m->peers_up = ns.peers_up;
}
void lr_node_status(const struct lr_node *n, struct raft_status *s) {
  raft_status(lr_drive_raft(n->drive), s);
}
raft_index lr_node_applied(const struct lr_node *n) {
  return lr_sm_applied_index(lr_drive_sm(n->drive));
}
uint32_t lr_node_progress(const struct lr_node *n, struct raft_progress_info *out, uint32_t max) {
  return raft_progress(lr_drive_raft(n->drive), out, max);
}
bool lr_node_peer_up(const struct lr_node *n, raft_id id) {
  return lr__tr_peer_up(n, id);
}
raft_id lr_node_id(const struct lr_node *n) {
  return n->id;
}
uint64_t lr_node_cluster_id(const struct lr_node *n) {
  return n->cluster_id;
}
int lr_node_log_level(const struct lr_node *n) {
  return n->log_level;
}

const char *lr_node_address(const struct lr_node *n, raft_id id) {
  const struct raft_member *m = raft_config_get(lr_drive_config(n->drive), id);
  return m ? m->address : NULL;
}
