/* A node's lifecycle (start: state machine, store, boot, transport, timer;
 * stop), its requests and its introspection. The update loop is drive.c. */
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
  int l = level == LR_SM_LOG_ERROR  ? LR_LOG_ERROR
          : level == LR_SM_LOG_WARN ? LR_LOG_WARN
                                    : LR_LOG_INFO;
  LR__LOG(n, l, "state machine: %s", msg);
}

bool lr_node_sm_status(const struct lr_node *n, struct lr_sm_status *st) {
  lr_sm_status(n->sm, st);
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
  for (int i = 0; i < 8; i++) id |= (uint64_t)h[i] << (8 * i);
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
    for (int i = 0; i < 8; i++) id |= (uint64_t)h[i] << (8 * i);
  }
  while (id == 0) randombytes_buf(&id, sizeof id);
  return lr_store_set_cluster_id(n->store, id, err, errlen) == 0 ? 0 : -1;
}

/* A restarted node listens at its own address in --peers; if the stored
 * configuration says otherwise its peers dial the old one and it campaigns
 * forever unheard. */
static int check_own_address(struct lr_node *n, const struct lr_node_options *o, char *err,
                             size_t errlen) {
  const struct raft_member *given = raft_config_get(&o->peers, o->id);
  struct raft_status rs;
  raft_status(n->raft, &rs);
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

static int open_raft(struct lr_node *n, const struct lr_node_options *o, char *err, size_t errlen) {
  struct lr_store_state st;
  memset(&st, 0, sizeof st);
  if (lr_store_load(n->store, &st, err, errlen) != 0) return -1;
  bool fresh = st.fresh;
  if (st.fresh && !o->join && o->peers.n == 0) {
    lr_store_state_free(&st);
    snprintf(err, errlen, "%s holds no cluster state: a new node needs its peers (--peers) or "
             "--join", lr_store_path(n->store));
    return -1;
  }
  if (st.fresh && !o->join) {
    lr_store_state_free(&st);
    if (make_cluster_id(n, o, err, errlen) != 0) return -1;
    if (bootstrap(n, &o->peers, err, errlen) != 0) return -1;
    LR__LOG(n, LR_LOG_INFO, "bootstrapped a new cluster of %u members, cluster id %016llx",
            o->peers.n, (unsigned long long)lr_store_cluster_id(n->store));
    if (lr_store_load(n->store, &st, err, errlen) != 0) return -1;
  }
  if (st.has_snapshot) {
    if (lr_sm_restore(n->sm, st.snapshot.data, st.snapshot.len, err, errlen) != 0) {
      lr_store_state_free(&st);
      return -1;
    }
    raft_config_copy(&st.snapshot.meta.config, &n->applied_config);
    lr_sm_set_config(n->sm, &st.snapshot.meta.config);
    n->applied_config_index = st.snapshot.meta.config_index;
    n->snap_index = st.snapshot.meta.index;
    LR__LOG(n, LR_LOG_INFO, "restored snapshot at index %llu",
            (unsigned long long)st.snapshot.meta.index);
  }
  struct raft_options ro = {0};
  ro.id = o->id;
  ro.election_ms = o->election_ms;
  ro.heartbeat_ms = o->heartbeat_ms;
  ro.pre_vote = o->pre_vote;
  ro.check_quorum = o->check_quorum;
  ro.seed = seed_of(o->id);
  int rv = raft_options_check(&ro, err, errlen);
  if (rv == 0) {
    struct raft_boot boot;
    lr_store_state_boot(&st, &boot);
    rv = raft_new(&ro, &boot, lr_now_ms(), &n->raft);
    if (rv != 0) snprintf(err, errlen, "cannot start the Raft core: %s", raft_strerror(rv));
  }
  n->term = st.term;
  if (rv == 0 && fresh && o->join && o->cluster_name && /* known already: record it */
      lr_store_set_cluster_id(n->store, lr_cluster_id_of_name(o->cluster_name), err, errlen) != 0)
    rv = -1;
  n->cluster_id = lr_store_cluster_id(n->store);
  if (rv == 0 && !fresh && check_own_address(n, o, err, errlen) != 0) rv = -1;
  else if (rv == 0)
    LR__LOG(n, LR_LOG_INFO, "loaded term %llu, log up to %llu%s", (unsigned long long)st.term,
            (unsigned long long)st.last_index, o->join && st.fresh ? ", waiting to be added" : "");
  lr_store_state_free(&st);
  return rv == 0 ? 0 : -1;
}

static void on_handle_closed(uv_handle_t *h) {
  lr__node_handle_closed(h->data);
}

void lr__node_free(struct lr_node *n) {
  lr__items_free(n->head);
  lr__waiters_free(n);
  lr__events_free(n);
  if (n->raft) raft_free_node(n->raft);
  if (n->store) lr_store_close(n->store);
  if (n->sm) lr_sm_free(n->sm);
  raft_config_free(&n->applied_config);
  raft_config_free(&n->config);
  lr_buf_free(&n->scratch);
  free(n);
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
  n->snapshot_entries = o->snapshot_entries;
  n->allow_faults = o->allow_faults;
  n->cb = cb;
  n->cbdata = cbdata;
  n->role = RAFT_FOLLOWER;
  lr_buf_init(&n->scratch);
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
  if (lr_sm_new(&so, &n->sm, err, errlen) != 0) goto fail;
  struct lr_store_options sto = {.kind = o->storage, .dir = o->data_dir, .node_id = o->id};
  if (o->cluster_name) sto.cluster_id = lr_cluster_id_of_name(o->cluster_name);
  if (lr_store_open(&sto, &n->store, err, errlen) != 0) goto fail;
  if (raft_config_copy(&o->peers, &n->config) != 0 && o->peers.n > 0) {
    snprintf(err, errlen, "invalid peers");
    goto fail;
  }
  if (open_raft(n, o, err, errlen) != 0) goto fail;
  if (o->peers.n == 0) {
    /* Restarted without peers: the stored configuration names them. */
    struct raft_status rs;
    raft_status(n->raft, &rs);
    if (rs.config && rs.config->n > 0) {
      raft_config_free(&n->config);
      if (raft_config_copy(rs.config, &n->config) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
      }
    }
  }
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
    LR__LOG(n, LR_LOG_INFO, "started: cluster %016llx, storage %s, election %u ms, heartbeat %u ms%s",
            (unsigned long long)n->cluster_id, lr_store_path(n->store), o->election_ms,
            o->heartbeat_ms, o->tls_cert ? ", peer TLS" : "");
  else
    LR__LOG(n, LR_LOG_INFO, "started: cluster id not known yet (learned from the first peer "
            "that contacts this node), storage %s, election %u ms, heartbeat %u ms%s",
            lr_store_path(n->store), o->election_ms, o->heartbeat_ms,
            o->tls_cert ? ", peer TLS" : "");
  lr__tr_config(n, &n->config);
  lr__callback_enter(n);
  lr__node_drive(n);
  n->in_callback--; /* events wait for the flush timer: none during start */
  if (n->events.n) uv_timer_start(&n->flush, lr__events_flush_cb, 0, 0);
  *out = n;
  return 0;
fail:
  lr__node_free(n);
  return -1;
}

void lr_node_stop(struct lr_node *n) {
  if (n == NULL || n->stopping) return;
  LR__LOG(n, LR_LOG_INFO, "stopping");
  n->stopping = true;
  uv_close((uv_handle_t *)&n->timer, on_handle_closed);
  uv_close((uv_handle_t *)&n->flush, on_handle_closed);
  lr__tr_close(n);
}

void lr_node_subscribe(struct lr_node *n, int type, bool on) {
  if (type < 1 || type > LR_EV_TYPE_MAX) return;
  if (on)
    n->subscribed |= 1u << type;
  else
    n->subscribed &= ~(1u << type);
}

/* Every request enters the core, then the update it produced is drained
 * right away (messages go out now); its events come from the flush timer. */
static int usable(struct lr_node *n) {
  if (n->stopping || n->failed) return RAFT_EDROPPED;
  return 0;
}

/* Proposals and reads need a state machine that still applies. */
static int serving(struct lr_node *n) {
  int rv = usable(n);
  if (rv == 0 && n->halted) rv = RAFT_EDROPPED;
  return rv;
}

int lr_node_propose(struct lr_node *n, uint64_t req, const char *cmd, size_t len,
                    const char *client, size_t client_len, uint64_t seq, int wait) {
  int rv = serving(n);
  if (rv) return rv;
  struct lr_env env = {.origin = n->id,
                       .req = req,
                       .time_ms = lr_wall_ms(),
                       .client = client,
                       .client_len = client_len,
                       .seq = seq,
                       .cmd = cmd,
                       .cmd_len = len};
  n->scratch.len = 0;
  if (client && (client_len > LR_ENV_CLIENT_MAX || seq == 0)) return RAFT_EINVAL;
  if (lr_env_encode(&env, &n->scratch) != 0) return RAFT_ENOMEM;
  raft_index index = 0;
  raft_term term = 0;
  n->metrics.proposals++;
  rv = raft_propose(n->raft, lr_now_ms(), n->scratch.data, n->scratch.len, req, &index, &term);
  if (rv < 0) {
    n->metrics.proposals_failed++;
    return rv;
  }
  if (wait == LR_WAIT_COMMIT && rv == 0) {
    struct lr__waiter w = {.kind = W_COMMIT, .req = req, .index = index};
    lr__waiter_add(n, &w);
  }
  lr__node_drive(n);
  return 0;
}

int lr_node_read(struct lr_node *n, uint64_t req, int mode, const char *q, size_t len) {
  int rv = serving(n);
  if (rv) return rv;
  struct lr__waiter w = {.kind = W_READ_CTX, .req = req, .barrier = mode == LR_READ_BARRIER};
  if (!w.barrier) {
    w.q = malloc(len ? len : 1);
    if (w.q == NULL) return RAFT_ENOMEM;
    memcpy(w.q, q, len);
    w.qlen = len;
  }
  if (mode == LR_READ_STALE) {
    w.kind = W_READ_AT;
    w.index = 0;
  } else if (mode == LR_READ_LEASE) {
    raft_index index;
    rv = raft_lease_read(n->raft, lr_now_ms(), &index);
    w.kind = W_READ_AT;
    w.index = index;
  } else {
    rv = raft_read_index(n->raft, lr_now_ms(), req);
  }
  if (rv == 0) rv = lr__waiter_add(n, &w);
  if (rv != 0) {
    free(w.q);
    return rv;
  }
  if (w.kind == W_READ_AT) lr__waiters_check(n);
  lr__node_drive(n);
  return 0;
}

int lr_node_change(struct lr_node *n, uint64_t req, int kind, raft_id id, const char *address) {
  int rv = usable(n);
  if (rv) return rv;
  raft_index index = 0;
  rv = raft_change(n->raft, lr_now_ms(), kind, id, address, &index);
  if (rv != 0) return rv;
  struct lr__waiter w = {.kind = W_INDEX, .req = req, .index = index};
  rv = lr__waiter_add(n, &w);
  lr__node_drive(n);
  return rv;
}

int lr_node_transfer(struct lr_node *n, uint64_t req, raft_id to) {
  int rv = usable(n);
  if (rv) return rv;
  rv = raft_transfer(n->raft, lr_now_ms(), to);
  if (rv != 0) return rv;
  if (to != 0) {
    struct lr__waiter w = {.kind = W_TRANSFER, .req = req, .target = to};
    rv = lr__waiter_add(n, &w);
  } else {
    lr__event_done(n, req, NULL, NULL, 0, 0, n->term);
  }
  lr__node_drive(n);
  return rv;
}

int lr_node_step_down(struct lr_node *n) {
  int rv = usable(n);
  if (rv) return rv;
  rv = raft_step_down(n->raft, lr_now_ms());
  lr__node_drive(n);
  return rv;
}

int lr_node_snapshot(struct lr_node *n, char *err, size_t errlen) {
  if (usable(n)) return fail(err, errlen, "%sthe node is stopped", "");
  if (!lr_sm_can_snapshot(n->sm))
    return fail(err, errlen, "%sthe state machine has no snapshot() and restore()", "");
  if (n->snap_pending) return fail(err, errlen, "%sa snapshot is already being written", "");
  if (lr_sm_applied_index(n->sm) <= n->snap_index)
    return fail(err, errlen, "%snothing applied since the last snapshot", "");
  if (lr__node_take_snapshot(n, err, errlen) != 0) return -1;
  lr__node_drive(n);
  return 0;
}

int lr_node_faults(struct lr_node *n, const raft_id *ids, size_t count) {
  if (!n->allow_faults) return -1;
  return lr__tr_faults(n, ids, count) == 0 ? 0 : -1;
}

int lr_node_fail_writes(struct lr_node *n, int count) {
  if (!n->allow_faults || count < 0) return -1;
  lr_store_fail_next(n->store, count, LR_STORE_EIO);
  return 0;
}

/* Says when a snapshot starts arriving, and when one continues after a
 * pause (a dropped connection, a stopped peer): the core resumes it from the
 * offset this node holds rather than starting over. */
static void note_snapshot_chunk(struct lr_node *n, const struct raft_message *m) {
  uint64_t now = lr_now_ms();
  if (m->offset == 0 && m->snap.index != n->snap_in_index) {
    n->snap_in_index = m->snap.index;
    LR__LOG(n, LR_LOG_INFO, "receiving a snapshot at index %llu (%llu bytes) from node %llu",
            (unsigned long long)m->snap.index, (unsigned long long)m->total,
            (unsigned long long)m->from);
  } else if (m->offset > 0 && m->snap.index == n->snap_in_index &&
             now - n->snap_in_last_ms >= 200) {
    LR__LOG(n, LR_LOG_INFO,
            "snapshot at index %llu: chunk at offset %llu of %llu after %llu ms without one "
            "(the transfer continues where it stopped)",
            (unsigned long long)m->snap.index, (unsigned long long)m->offset,
            (unsigned long long)m->total, (unsigned long long)(now - n->snap_in_last_ms));
  }
  n->snap_in_last_ms = now;
}

void lr__node_recv(struct lr_node *n, const struct raft_message *m) {
  if (n->stopping || n->failed) return;
  lr__callback_enter(n);
  n->metrics.peer_msgs_recv++;
  if (n->removed && (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                     m->type == RAFT_MSG_SNAPSHOT)) {
    n->removed = false;
    LR__LOG(n, LR_LOG_INFO, "node %llu leads this node again: taking part again",
            (unsigned long long)m->from);
  }
  if (m->type == RAFT_MSG_SNAPSHOT) note_snapshot_chunk(n, m);
  int rv = raft_step(n->raft, lr_now_ms(), m);
  if (rv != 0 && rv != RAFT_EMALFORMED)
    LR__LOG(n, LR_LOG_DEBUG, "step %s from %llu: %s", raft_msg_name(m->type),
            (unsigned long long)m->from, raft_strerror(rv));
  lr__node_drive(n);
  lr__callback_leave(n);
}

void lr_node_metrics(const struct lr_node *n, struct lr_node_metrics *m) {
  *m = n->metrics;
  struct lr_net_stats ns;
  lr__tr_stats(n, &ns);
  m->net_bad_frames = ns.bad_frames;
  m->net_handshake_failures = ns.handshake_failures;
  m->net_frames_dropped = ns.frames_dropped + ns.frames_dropped_fault;
  m->peers = ns.peers;
  m->peers_up = ns.peers_up;
}
void lr_node_status(const struct lr_node *n, struct raft_status *s) {
  raft_status(n->raft, s);
}
raft_index lr_node_applied(const struct lr_node *n) {
  return lr_sm_applied_index(n->sm);
}
uint32_t lr_node_progress(const struct lr_node *n, struct raft_progress_info *out, uint32_t max) {
  return raft_progress(n->raft, out, max);
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
  const struct raft_member *m = raft_config_get(&n->config, id);
  return m ? m->address : NULL;
}
