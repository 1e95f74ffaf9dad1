/* The TCP transport on 127.0.0.1 with real sockets: delivery of every
 * message type, handshake refusals (secret, cluster), unknown nodes learned
 * from their HELLO, garbage
 * and oversize frames, reconnection, queue bounds, faults. Every test closes
 * its loop and checks that nothing leaked (uv_loop_close == 0, ASan). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net_util.h"

struct node {
  struct lr_net *net;
  raft_id id;
  int got[RAFT_MSG_TYPE_MAX + 1], total;
  int ups, downs;
  bool closed;
  char log[8192];
  struct raft_message expect[RAFT_MSG_TYPE_MAX + 1]; /* checked on arrival when set */
};

static void on_msg(void *data, const struct raft_message *m) {
  struct node *nd = data;
  if (nd->expect[m->type].type == m->type) net_msg_check(&nd->expect[m->type], m);
  nd->got[m->type]++;
  nd->total++;
}

static void on_peer(void *data, raft_id id, bool up) {
  struct node *nd = data;
  if (up)
    nd->ups++;
  else
    nd->downs++;
}

static void on_log(void *data, int level, const char *line) {
  struct node *nd = data;
  size_t n = strlen(nd->log);
  /* the level first, so a test can count warnings */
  snprintf(nd->log + n, sizeof nd->log - n, "%c %s\n",
           "EWID?"[level >= RAFT_LOG_ERROR && level <= RAFT_LOG_DEBUG ? level : 4], line);
}

static uint64_t learned_cluster;
static bool on_cluster(void *data, uint64_t cluster_id, raft_id from) {
  learned_cluster = cluster_id;
  return true;
}

static void on_closed(void *data) {
  ((struct node *)data)->closed = true;
}

struct opts {
  uint64_t cluster;
  bool learn;
  const char *tls_cert, *tls_key, *tls_ca;
  const char *secret;
  int port;
  uint32_t frame_max, queue_frames;
  uint64_t queue_bytes;
  bool faults;
};

static void node_start(uv_loop_t *loop, struct node *nd, raft_id id, const struct opts *o) {
  memset(nd, 0, sizeof *nd);
  nd->id = id;
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", o ? o->port : 0);
  struct lr_net_options no = {.loop = loop,
                              .id = id,
                              .cluster_id = o ? o->cluster : 0,
                              .listen = listen,
                              .seed = id,
                              .backoff_min_ms = 10,
                              .backoff_max_ms = 100,
                              .cb = {on_msg, on_peer, on_log},
                              .data = nd};
  if (o) {
    no.secret = o->secret;
    no.secret_len = o->secret ? strlen(o->secret) : 0;
    no.frame_max = o->frame_max;
    no.queue_frames_max = o->queue_frames;
    no.queue_bytes_max = o->queue_bytes;
    no.allow_faults = o->faults;
    no.learn_cluster = o->learn;
    no.tls_cert = o->tls_cert;
    no.tls_key = o->tls_key;
    no.tls_ca = o->tls_ca;
    no.cb.cluster = on_cluster;
  }
  char err[256];
  if (lr_net_start(&no, &nd->net, err, sizeof err) != 0) fail_msg("lr_net_start: %s", err);
}

static void node_close(uv_loop_t *loop, struct node *nd) {
  if (nd->net == NULL) return;
  lr_net_close(nd->net, on_closed, nd);
  assert_true(net_run_until(loop, &nd->closed, 2000));
  nd->net = NULL;
  for (int t = 0; t <= RAFT_MSG_TYPE_MAX; t++)
    if (nd->expect[t].type) net_msg_free(&nd->expect[t]);
}

static void link_to(struct node *a, struct node *b) {
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", lr_net_port(b->net));
  assert_int_equal(lr_net_peer_set(a->net, b->id, addr), 0);
}

static void loop_done(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(loop), 0);
}

struct wait_total {
  struct node *nd;
  int want;
};
static bool total_reached(void *arg) {
  struct wait_total *w = arg;
  return w->nd->total >= w->want;
}
static bool wait_total(uv_loop_t *loop, struct node *nd, int want, uint64_t ms) {
  struct wait_total w = {nd, want};
  return net_run_until_fn(loop, total_reached, &w, ms);
}

static bool up_reached(void *arg) {
  return ((struct node *)arg)->ups > 0;
}

static bool log_has(const struct node *nd, const char *s) {
  return strstr(nd->log, s) != NULL;
}

/* Two transports exchange every message type both ways, including 2 MiB of
 * entries and a 1 MiB snapshot chunk, each arriving intact. */
static void test_tcp_exchanges_every_type(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, NULL);
  node_start(&loop, &b, 2, NULL);
  link_to(&a, &b);
  link_to(&b, &a);
  for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
    uint32_t entries = t == RAFT_MSG_APPEND ? 2 : t == RAFT_MSG_PROPOSE ? 1 : 0;
    uint32_t elen = t == RAFT_MSG_APPEND ? 1 << 20 : 100;
    net_msg_make(&b.expect[t], t, t, entries, elen, t == RAFT_MSG_SNAPSHOT ? 1 << 20 : 10);
    b.expect[t].from = 1;
    b.expect[t].to = 2;
    net_msg_make(&a.expect[t], t, t + 100, entries ? 1 : 0, 10, 10);
    a.expect[t].from = 2;
    a.expect[t].to = 1;
    assert_int_equal(lr_net_send(a.net, &b.expect[t]), 0);
    assert_int_equal(lr_net_send(b.net, &a.expect[t]), 0);
  }
  assert_true(wait_total(&loop, &b, RAFT_MSG_TYPE_MAX, 5000));
  assert_true(wait_total(&loop, &a, RAFT_MSG_TYPE_MAX, 5000));
  for (int t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
    assert_int_equal(a.got[t], 1);
    assert_int_equal(b.got[t], 1);
  }
  assert_true(lr_net_peer_up(a.net, 2));
  struct lr_net_stats s;
  lr_net_stats(a.net, &s);
  assert_int_equal(s.frames_sent, RAFT_MSG_TYPE_MAX);
  assert_int_equal(s.frames_received, RAFT_MSG_TYPE_MAX);
  assert_int_equal(s.connects, 1);
  assert_int_equal(s.accepts, 1);
  assert_int_equal(s.bad_frames + s.handshake_failures + s.frames_dropped, 0);
  assert_true(s.bytes_sent > 3 << 20);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* Garbage bytes on the port close that connection (counted) and the
 * transport keeps serving its real peers. */
struct raw {
  uv_tcp_t tcp;
  uv_connect_t req;
  uv_write_t w;
  bool eof, closed;
  char data[256];
};
static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  static char buf[4096];
  *b = uv_buf_init(buf, sizeof buf);
}
static void raw_closed(uv_handle_t *h) {
  ((struct raw *)h->data)->closed = true;
}
static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct raw *r = s->data;
  if (n < 0) {
    r->eof = true;
    uv_close((uv_handle_t *)s, raw_closed);
  }
}
static void raw_connected(uv_connect_t *req, int status) {
  struct raw *r = req->data;
  assert_int_equal(status, 0);
  uv_buf_t b = uv_buf_init(r->data, sizeof r->data);
  uv_write(&r->w, (uv_stream_t *)&r->tcp, &b, 1, NULL);
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}
static void raw_send(uv_loop_t *loop, int port, struct raw *r, const void *data) {
  memset(r, 0, sizeof *r);
  memcpy(r->data, data, sizeof r->data);
  uv_tcp_init(loop, &r->tcp);
  r->tcp.data = r->req.data = r;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", port, &sa);
  uv_tcp_connect(&r->req, &r->tcp, (struct sockaddr *)&sa, raw_connected);
  assert_true(net_run_until(loop, &r->closed, 3000));
}

static void test_tcp_garbage_closes_only_that_connection(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, NULL);
  node_start(&loop, &b, 2, NULL);
  link_to(&a, &b);
  link_to(&b, &a);
  assert_true(net_run_until_fn(&loop, up_reached, &a, 3000));
  struct raw r;
  char junk[256];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (char)(i * 37 + 5);
  raw_send(&loop, lr_net_port(b.net), &r, junk);
  assert_true(r.eof);
  /* A plausible header with a bad checksum, then one claiming 4 GiB. */
  uint8_t fake[256] = {96, 0, 0, 0, LR_WIRE_VERSION, LR_WIRE_HELLO, 0, 0, 1, 2, 3, 4};
  raw_send(&loop, lr_net_port(b.net), &r, fake);
  uint8_t huge[256] = {0xff, 0xff, 0xff, 0xff, LR_WIRE_VERSION, 1, 0, 0};
  raw_send(&loop, lr_net_port(b.net), &r, huge);
  struct lr_net_stats s;
  lr_net_stats(b.net, &s);
  if (s.bad_frames != 3 || s.handshake_failures != 3)
    fail_msg("bad %llu hs %llu\n%s", (unsigned long long)s.bad_frames,
             (unsigned long long)s.handshake_failures, b.log);
  assert_true(log_has(&b, "not a luaraft peer"));
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_HEARTBEAT, 1, 0, 0, 0);
  m.from = 1;
  m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), 0);
  assert_true(wait_total(&loop, &b, 1, 3000));
  net_msg_free(&m);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* A bad frame after the handshake (here: a frame over B's frame_max) closes
 * that connection; A reconnects and later messages get through. */
static void test_tcp_oversize_frame_closes_connection(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  struct opts ob = {.frame_max = 4096};
  node_start(&loop, &a, 1, NULL);
  node_start(&loop, &b, 2, &ob);
  link_to(&a, &b);
  link_to(&b, &a);
  struct raft_message big, small;
  net_msg_make(&big, RAFT_MSG_APPEND, 1, 1, 10000, 0);
  big.from = 1, big.to = 2;
  net_msg_make(&small, RAFT_MSG_HEARTBEAT, 1, 0, 0, 0);
  small.from = 1, small.to = 2;
  assert_int_equal(lr_net_send(a.net, &big), 0);
  assert_true(net_run_until_fn(&loop, up_reached, &a, 3000));
  struct lr_net_stats s;
  for (int i = 0; i < 100; i++) {
    lr_net_stats(b.net, &s);
    if (s.bad_frames > 0 && a.downs > 0) break;
    uv_run(&loop, UV_RUN_ONCE);
  }
  assert_int_equal(s.bad_frames, 1);
  assert_true(log_has(&b, "larger than the maximum frame size"));
  assert_int_equal(lr_net_send(a.net, &small), 0);
  assert_true(wait_total(&loop, &b, 1, 3000));
  assert_int_equal(b.got[RAFT_MSG_HEARTBEAT], 1);
  assert_int_equal(b.got[RAFT_MSG_APPEND], 0);
  /* The sender refuses what exceeds its own frame_max too. */
  assert_int_equal(lr_net_send(b.net, &big), RAFT_ENOPEER);
  big.from = 2, big.to = 1;
  assert_int_equal(lr_net_send(b.net, &big), RAFT_ETOOBIG);
  net_msg_free(&big);
  net_msg_free(&small);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

static void pair_with(struct opts *oa, struct opts *ob, bool expect_up, const char *log_a,
                      const char *log_b) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, oa);
  node_start(&loop, &b, 2, ob);
  link_to(&a, &b);
  link_to(&b, &a);
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_VOTE, 1, 0, 0, 0);
  m.from = 1, m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), 0);
  if (expect_up) {
    assert_true(wait_total(&loop, &b, 1, 3000));
    assert_true(net_run_until_fn(&loop, up_reached, &b, 3000));
  } else {
    assert_false(wait_total(&loop, &b, 1, 400));
    assert_int_equal(a.ups + b.ups, 0);
    struct lr_net_stats sa, sb;
    lr_net_stats(a.net, &sa);
    lr_net_stats(b.net, &sb);
    assert_true(sa.handshake_failures > 0);
    assert_true(sb.handshake_failures > 0);
    if (!log_has(&a, log_a) || !log_has(&b, log_b))
      fail_msg("logs lack the reason:\nA:\n%s\nB:\n%s", a.log, b.log);
  }
  net_msg_free(&m);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* With a shared secret the handshake authenticates both ways. */
static void test_tcp_right_secret_accepted(void **state) {
  struct opts o = {.secret = "correct horse battery staple"};
  pair_with(&o, &o, true, NULL, NULL);
}

/* A wrong secret is refused, logged and counted on both sides. */
static void test_tcp_wrong_secret_refused(void **state) {
  struct opts oa = {.secret = "one"}, ob = {.secret = "two"};
  pair_with(&oa, &ob, false, "peer 2 (127.0.0.1:", "failed authentication (wrong secret?)");
  pair_with(&ob, &oa, false, "failed authentication (wrong secret?)", "peer 1 (127.0.0.1:");
}

/* A secret on one side only is refused. */
static void test_tcp_missing_secret_refused(void **state) {
  struct opts oa = {.secret = NULL}, ob = {.secret = "two"};
  pair_with(&oa, &ob, false, "refused us: the peer has no secret and this node requires one",
            "the peer has no secret");
}

/* A peer of another cluster is refused on both sides, with both ids named. */
static void test_tcp_wrong_cluster_refused(void **state) {
  struct opts oa = {.cluster = 1}, ob = {.cluster = 0xabcdef};
  pair_with(&oa, &ob, false,
            "refused us: cluster id mismatch: node 2 is in cluster 0000000000abcdef, node 1 in "
            "cluster 0000000000000001",
            "cluster id mismatch: node 2 is in cluster 0000000000abcdef, node 1 in cluster "
            "0000000000000001");
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
    n++;
  return n;
}

/* A refusal repeats at every redial; it is logged at warn level once per
 * peer and reason, then at debug level, and counted every time. */
static void test_tcp_repeated_refusal_logged_once(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  struct opts oa = {.cluster = 1}, ob = {.cluster = 2};
  node_start(&loop, &a, 1, &oa);
  node_start(&loop, &b, 2, &ob);
  link_to(&a, &b);
  struct lr_net_stats sb;
  for (int i = 0; i < 300; i++) {
    uv_run(&loop, UV_RUN_ONCE);
    lr_net_stats(b.net, &sb);
    if (sb.handshake_failures >= 5) break;
  }
  assert_true(sb.handshake_failures >= 5);
  if (count(a.log, "W peer 2") != 1 || count(b.log, "W refused") != 1)
    fail_msg("want one warning each:\nA:\n%s\nB:\n%s", a.log, b.log);
  assert_true(count(b.log, "D refused") >= 4);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* A node started without a cluster id and learn_cluster takes the id of the
 * first peer that completes a handshake with it, and reports it. */
static void test_tcp_learns_cluster_id(void **state) {
  struct opts oa = {.cluster = 0x5eed}, ob = {.cluster = 0, .learn = true};
  learned_cluster = 0;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, &oa);
  node_start(&loop, &b, 2, &ob);
  assert_int_equal(lr_net_cluster_id(b.net), 0);
  link_to(&a, &b);
  assert_true(net_run_until_fn(&loop, up_reached, &a, 3000));
  assert_int_equal(lr_net_cluster_id(b.net), 0x5eed);
  assert_int_equal(learned_cluster, 0x5eed);
  assert_true(log_has(&b, "learned cluster id 0000000000005eed from node 1"));
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
  /* without learn_cluster, 0 is just another id: refused */
  struct opts oc = {.cluster = 0};
  pair_with(&oa, &oc, false, "node 2 has no cluster id yet",
            "cluster id mismatch: node 2 is in cluster 0000000000000000, node 1 in cluster "
            "0000000000005eed");
}

/* ---- TLS: throwaway CAs and certificates from the openssl CLI ---- */
static char tls_dir[64];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  assert_int_equal(system(cmd), 0);
}

static void tls_files(void) {
  if (tls_dir[0]) return;
  snprintf(tls_dir, sizeof tls_dir, "/tmp/luaraft-net-tls-XXXXXX");
  assert_non_null(mkdtemp(tls_dir));
  const char *gen = "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  sh("cd %s && for ca in ca other; do %s -x509 -days 2 -subj /CN=$ca -keyout $ca.key -out $ca.pem;"
     " done >/dev/null 2>&1",
     tls_dir, gen);
  sh("cd %s && for n in a:ca b:ca evil:other; do name=${n%%:*}; ca=${n#*:}; %s -subj /CN=$name "
     "-keyout $name.key -out $name.csr && openssl x509 -req -in $name.csr -CA $ca.pem -CAkey "
     "$ca.key -CAcreateserial -days 2 -out $name.pem; done >/dev/null 2>&1",
     tls_dir, gen);
}

static void tls_opts(struct opts *o, const char *name, const char *ca, char files[3][128]) {
  snprintf(files[0], 128, "%s/%s.pem", tls_dir, name);
  snprintf(files[1], 128, "%s/%s.key", tls_dir, name);
  snprintf(files[2], 128, "%s/%s.pem", tls_dir, ca);
  o->tls_cert = files[0];
  o->tls_key = files[1];
  o->tls_ca = files[2];
}

/* Mutual TLS: both certificates from the CA both trust: messages flow (every
 * type, checked field by field in delivery_of_every_type's way). */
static void test_tcp_tls_delivers(void **state) {
  tls_files();
  char fa[3][128], fb[3][128];
  struct opts oa = {.cluster = 3}, ob = {.cluster = 3, .secret = NULL};
  tls_opts(&oa, "a", "ca", fa);
  tls_opts(&ob, "b", "ca", fb);
  pair_with(&oa, &ob, true, NULL, NULL);
  /* with a secret too: the HMAC handshake runs inside TLS */
  oa.secret = ob.secret = "s3cret";
  pair_with(&oa, &ob, true, NULL, NULL);
}

/* A peer whose certificate comes from another CA is refused, whichever
 * side it is on; so is a peer without TLS. */
static void test_tcp_tls_foreign_ca_refused(void **state) {
  tls_files();
  char fa[3][128], fe[3][128];
  struct opts oa = {.cluster = 3}, oe = {.cluster = 3}, plain = {.cluster = 3};
  tls_opts(&oa, "a", "ca", fa);
  tls_opts(&oe, "evil", "ca", fe); /* trusts the CA, but its certificate is another's */
  pair_with(&oe, &oa, false, "TLS", "certificate verify failed");
  pair_with(&oa, &oe, false, "certificate verify failed", "TLS");
  pair_with(&plain, &oa, false, "closed the connection during the handshake", "TLS handshake");
  pair_with(&oa, &plain, false, "TLS handshake", "not a luaraft peer");
}

/* A node that is not among the listener's peers (one joining with --join)
 * is accepted, added as a peer at the address its HELLO advertises, logged
 * and counted, so the listener can answer it without knowing it first. */
static void test_tcp_unknown_node_added_at_advertised_address(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, NULL);
  node_start(&loop, &b, 2, NULL);
  link_to(&a, &b); /* b does not know a */
  struct raft_message m, back;
  net_msg_make(&m, RAFT_MSG_VOTE, 1, 0, 0, 0);
  m.from = 1, m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), 0);
  assert_true(wait_total(&loop, &b, 1, 3000));
  struct lr_net_stats s;
  lr_net_stats(b.net, &s);
  assert_int_equal(s.peers_learned, 1);
  assert_int_equal(s.peers, 1);
  char want[128];
  snprintf(want, sizeof want,
           "node 1 is not a known peer: added it at its advertised address "
           "127.0.0.1:%d",
           lr_net_port(a.net));
  if (!log_has(&b, want)) fail_msg("B's log lacks \"%s\":\n%s", want, b.log);
  /* b answers a over its own outbound connection to the learned address */
  net_msg_make(&back, RAFT_MSG_VOTE_RESP, 1, 0, 0, 0);
  back.from = 2, back.to = 1;
  assert_int_equal(lr_net_send(b.net, &back), 0);
  assert_true(wait_total(&loop, &a, 1, 3000));
  assert_true(lr_net_peer_up(b.net, 1));
  net_msg_free(&m);
  net_msg_free(&back);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* An unknown node is only learned once authenticated: with the wrong secret
 * it is refused and not added. With the right one it is added. */
static void test_tcp_unknown_node_needs_the_secret(void **state) {
  for (int right = 0; right <= 1; right++) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct node a, b;
    struct opts oa = {.secret = right ? "two" : "one"}, ob = {.secret = "two"};
    node_start(&loop, &a, 1, &oa);
    node_start(&loop, &b, 2, &ob);
    link_to(&a, &b);
    struct raft_message m;
    net_msg_make(&m, RAFT_MSG_VOTE, 1, 0, 0, 0);
    m.from = 1, m.to = 2;
    lr_net_send(a.net, &m);
    struct lr_net_stats s;
    if (right) {
      assert_true(wait_total(&loop, &b, 1, 3000));
      lr_net_stats(b.net, &s);
      assert_int_equal(s.peers_learned, 1);
    } else {
      assert_false(wait_total(&loop, &b, 1, 400));
      lr_net_stats(b.net, &s);
      assert_int_equal(s.peers_learned, 0);
      assert_int_equal(s.peers, 0);
      assert_true(log_has(&a, "failed authentication (wrong secret?)"));
    }
    net_msg_free(&m);
    node_close(&loop, &a);
    node_close(&loop, &b);
    loop_done(&loop);
  }
}

/* When a peer restarts (on the same port) the dialer notices it went down,
 * reconnects with backoff, and delivers again. */
static void test_tcp_reconnects_after_peer_restart(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, NULL);
  node_start(&loop, &b, 2, NULL);
  link_to(&a, &b);
  link_to(&b, &a);
  assert_true(net_run_until_fn(&loop, up_reached, &a, 3000));
  int port = lr_net_port(b.net);
  node_close(&loop, &b);
  for (int i = 0; i < 200 && a.downs == 0; i++)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.downs, 1);
  assert_false(lr_net_peer_up(a.net, 2));
  struct opts ob = {.port = port};
  node_start(&loop, &b, 2, &ob);
  link_to(&b, &a);
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_APPEND, 4, 3, 10, 0);
  m.from = 1, m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), 0);
  assert_true(wait_total(&loop, &b, 1, 3000));
  assert_int_equal(a.ups, 2);
  assert_true(log_has(&a, "peer 2 (127.0.0.1:"));
  net_msg_free(&m);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* A peer's send queue is bounded in frames and bytes: past the bound the
 * newest message is dropped and counted. */
static void test_tcp_send_queue_bounded(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a;
  struct opts oa = {.queue_frames = 10, .queue_bytes = 1 << 20};
  node_start(&loop, &a, 1, &oa);
  assert_int_equal(lr_net_peer_set(a.net, 2, "127.0.0.1:1"), 0); /* nobody there */
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_HEARTBEAT, 1, 0, 0, 0);
  m.from = 1, m.to = 2;
  int ok = 0, dropped = 0;
  for (int i = 0; i < 15; i++) {
    int rv = lr_net_send(a.net, &m);
    if (rv == 0)
      ok++;
    else if (rv == RAFT_EQUEUEFULL)
      dropped++;
  }
  assert_int_equal(ok, 10);
  assert_int_equal(dropped, 5);
  net_msg_free(&m);
  /* Bytes: a 600 KiB entry fits once in 1 MiB... but not twice. */
  assert_int_equal(lr_net_peer_remove(a.net, 2), 0);
  assert_int_equal(lr_net_peer_set(a.net, 2, "127.0.0.1:1"), 0);
  net_msg_make(&m, RAFT_MSG_APPEND, 1, 1, 600 << 10, 0);
  m.from = 1, m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), 0);
  assert_int_equal(lr_net_send(a.net, &m), RAFT_EQUEUEFULL);
  struct lr_net_stats s;
  lr_net_stats(a.net, &s);
  assert_int_equal(s.frames_dropped, 6);
  assert_int_equal(s.peers, 1);
  assert_int_equal(s.peers_up, 0);
  net_msg_free(&m);
  uv_run(&loop, UV_RUN_NOWAIT); /* a connect attempt or two fails meanwhile */
  node_close(&loop, &a);
  loop_done(&loop);
}

/* Fault injection drops traffic to and from the named peers, only when the
 * transport was created with allow_faults. */
static void test_tcp_faults_drop_traffic(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  struct opts of = {.faults = true};
  node_start(&loop, &a, 1, &of);
  node_start(&loop, &b, 2, NULL);
  link_to(&a, &b);
  link_to(&b, &a);
  raft_id two = 2;
  assert_int_equal(lr_net_set_faults(b.net, &two, 1), RAFT_ENOFAULTS);
  assert_int_equal(lr_net_set_faults(a.net, &two, 1), 0);
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_HEARTBEAT, 1, 0, 0, 0);
  m.from = 1, m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), RAFT_EFAULT);
  m.from = 2, m.to = 1;
  assert_int_equal(lr_net_send(b.net, &m), 0);
  assert_false(wait_total(&loop, &a, 1, 300));
  struct lr_net_stats s;
  lr_net_stats(a.net, &s);
  assert_int_equal(s.frames_dropped_fault, 2);
  assert_int_equal(lr_net_set_faults(a.net, NULL, 0), 0); /* heal */
  assert_int_equal(lr_net_send(b.net, &m), 0);
  assert_true(wait_total(&loop, &a, 1, 3000));
  net_msg_free(&m);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* Peers follow the configuration: removed peers get ENOPEER, a moved peer
 * is dialed at its new address; bad addresses are refused up front. */
static void test_tcp_peers_follow_configuration(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a, b;
  node_start(&loop, &a, 1, NULL);
  node_start(&loop, &b, 2, NULL);
  link_to(&b, &a);
  assert_int_equal(lr_net_peer_set(a.net, 2, "127.0.0.1:1"), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", lr_net_port(b.net));
  struct raft_member mem[3] = {
      {1, RAFT_VOTER, "127.0.0.1:9"}, {2, RAFT_VOTER, addr}, {3, RAFT_LEARNER, "127.0.0.1:2"}};
  struct raft_config conf = {mem, 3};
  assert_int_equal(lr_net_peers_sync(a.net, &conf), 0);
  assert_true(net_run_until_fn(&loop, up_reached, &a, 3000));
  struct lr_net_stats s;
  lr_net_stats(a.net, &s);
  assert_int_equal(s.peers, 2);
  conf.n = 2; /* 3 removed */
  assert_int_equal(lr_net_peers_sync(a.net, &conf), 0);
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_HEARTBEAT, 1, 0, 0, 0);
  m.from = 1, m.to = 3;
  assert_int_equal(lr_net_send(a.net, &m), RAFT_ENOPEER);
  assert_int_equal(lr_net_peer_set(a.net, 4, "no-such-host:80"), RAFT_EADDRESS);
  assert_int_equal(lr_net_peer_set(a.net, 4, "127.0.0.1"), RAFT_EADDRESS);
  assert_int_equal(lr_net_peer_remove(a.net, 9), RAFT_ENOPEER);
  m.to = 2;
  assert_int_equal(lr_net_send(a.net, &m), 0);
  assert_true(wait_total(&loop, &b, 1, 3000));
  net_msg_free(&m);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_done(&loop);
}

/* A listen address in use is a clear error, and nothing leaks. */
static void test_tcp_listen_error_is_clear(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct node a;
  node_start(&loop, &a, 1, NULL);
  char listen[64], err[256];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", lr_net_port(a.net));
  struct lr_net_options no = {.loop = &loop, .id = 2, .listen = listen};
  struct lr_net *n;
  assert_int_equal(lr_net_start(&no, &n, err, sizeof err), RAFT_ELISTEN);
  assert_non_null(strstr(err, "address already in use"));
  no.listen = "nonsense";
  assert_int_equal(lr_net_start(&no, &n, err, sizeof err), RAFT_EADDRESS);
  node_close(&loop, &a);
  loop_done(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tcp_exchanges_every_type),
      cmocka_unit_test(test_tcp_garbage_closes_only_that_connection),
      cmocka_unit_test(test_tcp_oversize_frame_closes_connection),
      cmocka_unit_test(test_tcp_right_secret_accepted),
      cmocka_unit_test(test_tcp_wrong_secret_refused),
      cmocka_unit_test(test_tcp_missing_secret_refused),
      cmocka_unit_test(test_tcp_wrong_cluster_refused),
      cmocka_unit_test(test_tcp_repeated_refusal_logged_once),
      cmocka_unit_test(test_tcp_learns_cluster_id),
      cmocka_unit_test(test_tcp_tls_delivers),
      cmocka_unit_test(test_tcp_tls_foreign_ca_refused),
      cmocka_unit_test(test_tcp_unknown_node_added_at_advertised_address),
      cmocka_unit_test(test_tcp_unknown_node_needs_the_secret),
      cmocka_unit_test(test_tcp_reconnects_after_peer_restart),
      cmocka_unit_test(test_tcp_send_queue_bounded),
      cmocka_unit_test(test_tcp_faults_drop_traffic),
      cmocka_unit_test(test_tcp_peers_follow_configuration),
      cmocka_unit_test(test_tcp_listen_error_is_clear),
  };
  int rc = cmocka_run_group_tests_name("net_tcp", tests, NULL, NULL);
  if (tls_dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    if (system(cmd) != 0) rc = 1;
  }
  return rc;
}
