/* luaraft transport: raft messages between nodes over TCP (libuv).
 *
 * Shape: one listener; for each peer one outbound connection that this node
 * dials and keeps up (reconnecting with jittered exponential backoff), which
 * carries the messages this node sends to that peer. Peers' messages arrive
 * on the inbound connections they dial to us, identified by the handshake.
 * Frames are those of wire.h.
 *
 * Handshake (both directions of one TCP connection, dialer first):
 *   dialer   -> HELLO {magic, proto, flags, cluster id, from, to, nonce_c, addr_c}
 *   listener -> HELLO {..., from, to, nonce_s, mac_s, addr_s} or REFUSE {reason}
 *   dialer   -> AUTH {mac_c}                            (with a secret only)
 * addr_x is the sender's advertised peer address (options.advertise, else
 * the listen address). With a secret each side proves it holds the key:
 *   mac_x = HMAC-SHA256(key, "luaraft-" x || nonce_c || nonce_s || dialer id
 *                            || listener id || cluster id || len || addr_c),
 * x = "s" or "c", key = BLAKE2b-256(secret file bytes); compared in constant
 * time. A wrong cluster, wrong secret, bad magic or protocol version is
 * refused: the connection is closed, the reason logged through the log
 * callback in one clear line and counted (handshake_failures).
 *
 * Cluster identity: every HELLO carries the sender's cluster id; a
 * different one is refused on both sides with one line naming both ids in
 * hex ("cluster id mismatch: node 2 is in cluster 1f..., node 1 in cluster
 * 7a..."). A node started with cluster id 0 and learn_cluster (one joining
 * with --join) takes the id of the first peer whose handshake completes,
 * after authentication, and reports it through cb.cluster (which persists
 * it); from then on it checks it like any other node.
 *
 * TLS (tls_cert/tls_key/tls_ca): every connection is a TLS session (the
 * dialer is the TLS client) in which both sides present a certificate and
 * verify the other's against the CA (mutual TLS); the luaraft handshake
 * above then runs inside it, and every frame after it is encrypted and
 * integrity-protected. A failed TLS handshake is logged with OpenSSL's
 * reason ("certificate verify failed: ...") and closes the connection.
 *
 * Repetition: a handshake refused or failed for the same reason with the
 * same node (or address) is logged once at warn level, then at debug level
 * only, until a handshake with it succeeds or the reason changes; the
 * handshake_failures count still counts each.
 *
 * A dialer whose id is not among our peers (a node started with --join that
 * the leader just added, before our configuration says so) is accepted once
 * it passed the checks above (and, with a secret, authenticated): it becomes
 * a peer at its advertised address, is logged and counted (peers_learned).
 * One without a usable address is refused ("unknown node id").
 *
 * Limits: frames carry at most frame_max body bytes (a larger incoming frame
 * closes that connection); each peer's send queue is bounded in bytes and
 * frames, and when full the newest message is dropped and counted (Raft
 * retransmits). A frame that does not parse closes its connection and is
 * counted (bad_frames); it never takes the node down.
 *
 * Threading: everything runs on the loop thread given at start; callbacks
 * are called from it. Callbacks may call lr_net_send and the peer functions,
 * but not lr_net_close.
 */
#ifndef LUARAFT_NET_H
#define LUARAFT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/raft.h"
#include "net/wire.h"

#define LR_NET_BACKOFF_MIN_DEFAULT 50                    /* ms */
#define LR_NET_BACKOFF_MAX_DEFAULT 1000                  /* ms */
#define LR_NET_HANDSHAKE_MS_DEFAULT 3000                 /* a handshake must finish in this */
#define LR_NET_QUEUE_BYTES_DEFAULT (64ull * 1024 * 1024) /* per peer */
#define LR_NET_QUEUE_FRAMES_DEFAULT 4096                 /* per peer */
#define LR_NET_FAULTS_MAX 64
#define LR_NET_ADDRESS_MAX 255

struct lr_net_callbacks {
  /* A decoded message from an authenticated peer; m and everything it points
   * to are valid only during the call (copy what you keep). */
  void (*message)(void *data, const struct raft_message *m);
  /* The outbound connection to `id` finished its handshake (up) or closed. */
  void (*peer)(void *data, raft_id id, bool up);
  /* One line, no newline: "peer 2 (127.0.0.1:7002) refused us: wrong cluster id". */
  void (*log)(void *data, int level, const char *line);
  /* Optional: may a dialer with this unknown id become a peer (net.h top)?
   * false refuses it with `why` (filled in, NUL-terminated). NULL: yes. */
  bool (*learn)(void *data, raft_id id, char *why, size_t whylen);
  /* Optional: the listener of peer `id` refused our handshake for `reason`. */
  void (*refused)(void *data, raft_id id, const char *reason);
  /* Optional (learn_cluster): the cluster id was learned from peer `from`;
   * false (could not persist it) refuses that connection. */
  bool (*cluster)(void *data, uint64_t cluster_id, raft_id from);
};

struct lr_net_options {
  uv_loop_t *loop;
  raft_id id;
  uint64_t cluster_id; /* 0 with learn_cluster: take the first peer's */
  bool learn_cluster;
  const char *listen;    /* "IP:PORT"; port 0 picks a free one (lr_net_port) */
  const char *advertise; /* the address peers dial us at; NULL: listen's */
  const void *secret;    /* NULL: no authentication; else the shared key bytes */
  size_t secret_len;
  const char *tls_cert, *tls_key, *tls_ca;               /* all three, or none: no TLS */
  uint64_t seed;                                         /* backoff jitter */
  uint32_t backoff_min_ms, backoff_max_ms, handshake_ms; /* 0: defaults */
  uint32_t frame_max;        /* body bytes; 0: LR_WIRE_FRAME_MAX_DEFAULT */
  uint64_t queue_bytes_max;  /* per peer; 0: default */
  uint32_t queue_frames_max; /* per peer; 0: default */
  bool allow_faults;         /* lr_net_set_faults works only with this */
  struct lr_net_callbacks cb;
  void *data; /* passed to the callbacks */
};

struct lr_net_stats {
  uint64_t frames_sent, frames_received;
  uint64_t frames_dropped;       /* send queue full, or no such peer */
  uint64_t frames_dropped_fault; /* lr_net_set_faults */
  uint64_t bad_frames;           /* unparsable frames; each closed a connection */
  uint64_t handshake_failures;   /* refused or failed handshakes, both directions */
  uint64_t bytes_sent, bytes_received;
  uint64_t connects;      /* outbound handshakes completed */
  uint64_t accepts;       /* inbound handshakes completed */
  uint64_t peers_learned; /* unknown dialers added as peers */
  uint64_t tls_failures;  /* failed TLS handshakes or sessions */
  uint32_t peers, peers_up;
};

struct lr_net;

/* Binds and listens; err gets a sentence on failure
 * ("cannot listen on 127.0.0.1:7001: address already in use"). */
int lr_net_start(const struct lr_net_options *o, struct lr_net **out, char *err, size_t errlen);
/* The bound port (useful after listening on port 0). */
int lr_net_port(const struct lr_net *n);
/* Closes every handle; `cb` runs (from the loop) once all are closed and the
 * transport is freed. Run the loop until then before uv_loop_close. */
void lr_net_close(struct lr_net *n, void (*cb)(void *data), void *data);

/* Adds a peer, or changes its address (reconnecting at once). Messages to
 * it queue until its connection is up. The node's own id is ignored. */
int lr_net_peer_set(struct lr_net *n, raft_id id, const char *address);
/* Convenience: peer_set for every member of a configuration (the addresses
 * travel in it) and peer_remove for peers no longer in it. */
int lr_net_peers_sync(struct lr_net *n, const struct raft_config *c);
int lr_net_peer_remove(struct lr_net *n, raft_id id);
bool lr_net_peer_up(const struct lr_net *n, raft_id id);

/* Encodes m (copied now) and queues it for m->to. 0, or RAFT_ENOPEER,
 * RAFT_EQUEUEFULL, RAFT_ETOOBIG, RAFT_EFAULT (all counted as drops; the
 * caller may ignore them: Raft retransmits). */
int lr_net_send(struct lr_net *n, const struct raft_message *m);

/* Tests: drop all traffic to and from these peers (count 0 heals); the
 * connections with them are closed too (and redialled: they carry nothing
 * until healed). */
int lr_net_set_faults(struct lr_net *n, const raft_id *ids, size_t count);

void lr_net_stats(const struct lr_net *n, struct lr_net_stats *out);
/* The cluster id in use (0 while a learning node has not learned it). */
uint64_t lr_net_cluster_id(const struct lr_net *n);

#endif
