/* Internals of the TCP transport, shared by its files:
 *   net.c            listener, peers and their connections, framing, writes
 *   net_handshake.c  the handshake: HELLO/AUTH both ways, the cluster and
 *                    version checks, refusals logged once
 * (wire.c is the frame format, tls/ the TLS sessions.) */
#ifndef LUARAFT_NET_INT_H
#define LUARAFT_NET_INT_H

#include <assert.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "tls/tls.h"

#define READ_CHUNK 65536
#define HANDSHAKE_BODY_MAX 512 /* HELLO: 96 fixed + 2 + an address of up to 255 */

static_assert(HANDSHAKE_BODY_MAX >= LR_WIRE_HELLO_SIZE + 2 + LR_WIRE_ADDR_MAX, "a HELLO fits");
static_assert(LR_NET_ADDRESS_MAX == LR_WIRE_ADDR_MAX, "peer addresses fit in a HELLO");

enum { C_CONNECTING, C_TLS, C_HELLO_SENT, C_AWAIT_HELLO, C_AWAIT_AUTH, C_UP, C_REFUSING };

#define QUIET_MAX 64 /* (who, reason) pairs whose repetitions are logged at debug level */
#define QUIET_REMIND_MS (10 * 60 * 1000) /* ... with a reminder at warn level this often */

struct frame {
  struct frame *next;
  uint8_t *data;
  size_t len;
};

struct lr_net;
struct peer;

struct conn {
  struct lr_net *net;
  uv_tcp_t tcp;
  uv_timer_t timer; /* handshake deadline */
  uv_connect_t connect;
  int state, handles;
  bool closing, outbound, writing;
  struct peer *peer;                       /* outbound: the owner (NULL once detached) */
  raft_id remote;                          /* who is on the other end, once known */
  bool learn;                              /* inbound from a node we did not know: add it once up */
  char advertised[LR_NET_ADDRESS_MAX + 1]; /* inbound: the dialer's HELLO address */
  uint8_t nonce_c[LR_WIRE_NONCE], nonce_s[LR_WIRE_NONCE];
  uint64_t cluster;   /* the cluster id this handshake speaks for */
  struct lr_tls *tls; /* NULL without TLS */
  uint8_t *cbuf;      /* TLS: ciphertext read buffer (READ_CHUNK) */
  uint8_t *buf;       /* read buffer (plaintext) */
  size_t len, cap;
  uint64_t inflight_bytes;
  uint32_t inflight_frames;
  char addr[LR_NET_ADDRESS_MAX + 1];
  struct conn *next; /* inbound list */
};

struct peer {
  struct lr_net *net;
  raft_id id;
  char address[LR_NET_ADDRESS_MAX + 1];
  struct conn *conn;
  uv_timer_t retry;
  uint32_t backoff;
  struct frame *head, *tail;
  uint32_t n_frames;
  uint64_t bytes;
  bool up;
  struct peer *next;
};

struct lr_net {
  uv_loop_t *loop;
  struct lr_net_options o;
  uv_tcp_t listener;
  bool closing;
  int handles; /* open libuv handles, all kinds */
  void (*close_cb)(void *data);
  void *close_data;
  struct peer *peers;
  struct conn *inbound;
  bool auth;
  uint8_t key[crypto_auth_hmacsha256_KEYBYTES];
  uint64_t rng;
  raft_id faults[LR_NET_FAULTS_MAX];
  size_t n_faults;
  struct lr_wire_scratch scratch;
  struct lr_net_stats st;
  int port;
  char self_addr[LR_NET_ADDRESS_MAX + 1]; /* advertised in our HELLOs */
  struct lr_tls_ctx *tls;                 /* NULL without TLS */
  struct {
    uint64_t who, reason; /* hashes; reason 0: a free slot */
    uint64_t logged_ms;   /* uv_now when last logged at warn level */
    uint64_t repeats;     /* since then */
  } quiet[QUIET_MAX];     /* (who, reason) pairs already logged */
  uint32_t quiet_next;
};

struct wreq {
  uv_write_t req;
  struct conn *c;
  struct frame *frames; /* NULL for a handshake write */
  uint8_t *raw;
  uint8_t *cipher; /* TLS: what was actually written */
  uint32_t n;
  uint64_t bytes;
  bool close_after;
  uv_buf_t bufs[];
};

void lr__net_logf(struct lr_net *n, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t lr__net_rng_next(struct lr_net *n);
bool lr__net_faulted(const struct lr_net *n, raft_id id);
struct peer *lr__net_peer_find(const struct lr_net *n, raft_id id);
void lr__net_maybe_finish(struct lr_net *n);
void lr__net_tls_flush(struct conn *c, bool close_after);
void lr__net_write_raw(struct conn *c, struct lr_wire_buf *b, bool close_after);
void lr__net_peer_flush(struct peer *p);
void lr__net_peer_schedule(struct peer *p);
void lr__net_conn_close(struct conn *c);
void lr__net_tls_failed(struct conn *c, const char *what);
void lr__net_process(struct conn *c);
void lr__net_conn_start(struct conn *c);
void lr__net_peer_connect(struct peer *p);
void lr__net_mac(const struct lr_net *n, const struct conn *c, char side, raft_id dialer,
                 raft_id listener, const char *dialer_addr, uint8_t out[LR_WIRE_MAC]);
void lr__net_handshake_failed(struct conn *c, const char *refuse, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lr__net_on_handshake_timeout(uv_timer_t *t);
void lr__net_conn_up(struct conn *c);
void lr__net_on_hello_in(struct conn *c, const uint8_t *p, size_t len);
void lr__net_on_auth_in(struct conn *c, const uint8_t *p, size_t len);
void lr__net_on_hello_out(struct conn *c, uint8_t type, const uint8_t *p, size_t len);
void lr__net_send_hello(struct conn *c);
int lr__net_parse_addr(const char *s, struct sockaddr_storage *sa);
uint64_t lr__net_who_hash(const struct conn *c, raft_id id);
bool lr__net_quiet(struct lr_net *n, uint64_t who, const char *reason, uint64_t *repeats);
const char *lr__net_quiet_note(uint64_t repeats, char *buf, size_t len);

/* net_send.c: drops a peer's queued frames */
void lr__net_queue_free(struct peer *p);

#endif
