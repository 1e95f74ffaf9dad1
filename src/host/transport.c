/* The adapter between the node and the TCP transport (src/net). */
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"
#include "net/net.h"

static void on_message(void *data, const struct raft_message *m) {
  lr__node_recv(data, m);
}

static void on_peer(void *data, raft_id id, bool up) {
  struct lr_node *n = data;
  const char *addr = lr_node_address(n, id);
  LR__LOG(n, RAFT_LOG_DEBUG, "peer %llu (%s) %s", (unsigned long long)id, addr ? addr : "?",
          up ? "up" : "down");
}

static void on_log(void *data, int level, const char *line) {
  struct lr_node *n = data;
  LR__LOG(n, level, "net: %s", line); /* one log-level enum (raft.h) */
}

/* Members learn members from configurations; only a node that is not (or
 * no longer) a member itself, one joining, learns an unknown dialer (the
 * leader that just added it). A member refuses, naming its configuration
 * index, so that a removed node can tell it was removed (on_refused). */
static bool on_learn(void *data, raft_id id, char *why, size_t whylen) {
  struct lr_node *n = data;
  if (n->drive == NULL || !lr_drive_was_member(n->drive)) return true;
  struct raft_status rs;
  raft_status(lr_drive_raft(n->drive), &rs);
  snprintf(why, whylen, "not a member (configuration index %llu)",
           (unsigned long long)rs.config_index);
  (void)id;
  return false;
}

/* A member whose configuration is as new as ours or newer and does not
 * hold us: we were removed (the leader stops replicating to a removed node
 * when it appends the change, so this node may never see that entry). */
static void on_refused(void *data, raft_id id, const char *reason) {
  struct lr_node *n = data;
  const char *p = strstr(reason, "not a member (configuration index ");
  if (p == NULL || n->drive == NULL) return;
  unsigned long long theirs = strtoull(p + strlen("not a member (configuration index "), NULL, 10);
  lr_drive_set_removed(n->drive, id, theirs);
}

/* A joining node learned its cluster's id: record it before any frame of
 * that peer is taken (the first peer of a fresh node: no write is in flight). */
static bool on_cluster(void *data, uint64_t cluster_id, raft_id from) {
  struct lr_node *n = data;
  char err[LR_STORE_ERR_MAX];
  if (lr_store_set_cluster_id(n->store, cluster_id, err, sizeof err) != 0) {
    LR__LOG(n, RAFT_LOG_ERROR, "cannot record cluster id %016llx: %s",
            (unsigned long long)cluster_id, err);
    return false;
  }
  n->cluster_id = cluster_id;
  LR__LOG(n, RAFT_LOG_INFO, "joined cluster %016llx (learned from node %llu)",
          (unsigned long long)cluster_id, (unsigned long long)from);
  return true;
}

int lr__tr_open(struct lr_node *n, const struct lr_node_options *o, char *err, size_t errlen) {
  const char *listen = o->listen;
  if (listen == NULL) {
    const struct raft_member *me = raft_config_get(&o->peers, o->id);
    if (me == NULL) me = raft_config_get(lr_drive_config(n->drive), o->id); /* stored */
    listen = me && me->address[0] ? me->address : NULL;
  }
  if (listen == NULL) {
    snprintf(err, errlen,
             "no peer address to listen on for node %llu (not in --peers nor in the stored "
             "configuration)",
             (unsigned long long)o->id);
    return -1;
  }
  struct lr_net_options no = {0};
  no.loop = n->loop;
  no.id = o->id;
  no.listen = listen;
  no.secret = o->secret;
  no.secret_len = o->secret_len;
  no.cluster_id = n->cluster_id;
  no.learn_cluster = n->cluster_id == 0 && o->join;
  no.tls_cert = o->tls_cert;
  no.tls_key = o->tls_key;
  no.tls_ca = o->tls_ca;
  no.cb.cluster = on_cluster;
  no.seed = uv_hrtime() ^ o->id;
  no.allow_faults = o->allow_faults;
  no.cb.message = on_message;
  no.cb.peer = on_peer;
  no.cb.log = on_log;
  no.cb.learn = on_learn;
  no.cb.refused = on_refused;
  no.data = n;
  struct lr_net *net = NULL;
  if (lr_net_start(&no, &net, err, errlen) != 0) return -1;
  n->net = net;
  n->handles_open++;
  return 0;
}

void lr__tr_send(struct lr_node *n, const struct raft_message *m) {
  if (n->net == NULL) return;
  if (m->type == RAFT_MSG_SNAPSHOT_RESP && m->reject && m->offset > 0 &&
      m->offset != n->snap_in_resume_logged) {
    n->snap_in_resume_logged = m->offset;
    LR__LOG(n, RAFT_LOG_INFO, "snapshot at index %llu: asking node %llu to resume from offset %llu",
            (unsigned long long)m->index, (unsigned long long)m->to, (unsigned long long)m->offset);
  }
  if (m->type == RAFT_MSG_SNAPSHOT) lr__snap_progress(n, m, false);
  lr_net_send(n->net, m); /* a drop is fine: Raft retransmits */
}

void lr__tr_config(struct lr_node *n, const struct raft_config *c) {
  if (n->net) lr_net_peers_sync(n->net, c);
}

bool lr__tr_peer_up(const struct lr_node *n, raft_id id) {
  return n->net ? lr_net_peer_up(n->net, id) : false;
}

int lr__tr_faults(struct lr_node *n, const raft_id *ids, size_t count) {
  return n->net ? lr_net_set_faults(n->net, ids, count) : -1;
}

void lr__tr_stats(const struct lr_node *n, struct lr_net_stats *out) {
  memset(out, 0, sizeof *out);
  if (n->net) lr_net_stats(n->net, out);
}

static void net_closed(void *data) {
  lr__node_handle_closed(data);
}

void lr__tr_close(struct lr_node *n) {
  if (n->net == NULL) return;
  struct lr_net *net = n->net;
  n->net = NULL;
  lr_net_close(net, net_closed, n);
}
