/* libFuzzer target for the peer handshake, end to end on real sockets: each
 * input is what a dialer sends to a listening transport (src/net) over
 * loopback TCP, delivered in up to three writes. The listener is picked by
 * the first byte among four configurations (with and without a secret; a
 * known cluster id, or none and learn_cluster), so HELLO parsing, the
 * cluster/identity checks, refusals, the AUTH step, frames after a
 * handshake and their repetition logging all see arbitrary bytes. The
 * listener must never crash or leak, and must close every connection once
 * the dialer half-closes. With bit 2 of the first byte set, the harness
 * rewrites the CRC of each whole frame it finds, so mutations get past the
 * frame checksum into the bodies. Seeds: fuzz/corpus/handshake/ (made by
 * fuzz/make_corpus_handshake.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zlib.h>

#include "net/net.h"

#define SERVERS 4

static uv_loop_t loop;
static struct lr_net *srv[SERVERS];
static int port[SERVERS];

struct client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  uv_write_t writes[3];
  uv_buf_t bufs[3];
  int nbufs;
  bool closed, eof;
  char rbuf[4096];
};

static void on_log(void *data, int level, const char *line) {
  (void)data, (void)level, (void)line;
}

static bool on_cluster(void *data, uint64_t id, raft_id from) {
  (void)data, (void)from;
  return id != 0x0bad;
}

static void start(void) {
  uv_loop_init(&loop);
  for (int i = 0; i < SERVERS; i++) {
    struct lr_net_options o = {.loop = &loop, .id = 1, .listen = "127.0.0.1:0", .seed = 1};
    o.cluster_id = (i & 2) ? 0 : 7;
    o.learn_cluster = (i & 2) != 0;
    if (i & 1) {
      o.secret = "fuzz";
      o.secret_len = 4;
    }
    o.handshake_ms = 200;
    o.cb.log = on_log;
    o.cb.cluster = on_cluster;
    char err[256];
    if (lr_net_start(&o, &srv[i], err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      abort();
    }
    /* a known peer, so HELLOs from node 2 pass the identity checks */
    lr_net_peer_set(srv[i], 2, "127.0.0.1:1");
    port[i] = lr_net_port(srv[i]);
  }
}

static void on_closed(uv_handle_t *h) {
  ((struct client *)h->data)->closed = true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct client *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct client *c = s->data;
  if (nread < 0) {
    c->eof = true;
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
}

static void on_write(uv_write_t *req, int status) {
  (void)req, (void)status;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req, (void)status;
}

static void on_connect(uv_connect_t *req, int status) {
  struct client *c = req->data;
  if (status < 0) {
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  for (int i = 0; i < c->nbufs; i++)
    uv_write(&c->writes[i], (uv_stream_t *)&c->tcp, &c->bufs[i], 1, on_write);
  c->shutdown.data = c;
  uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (srv[0] == NULL) start();
  if (size < 3) return 0;
  int which = data[0] % SERVERS;
  bool fix_crc = data[0] & 4;
  size_t a = data[1], b = data[2];
  size -= 3;
  uint8_t *copy = malloc(size ? size : 1);
  if (copy == NULL) abort();
  memcpy(copy, data + 3, size);
  data = copy;
  for (size_t off = 0; fix_crc && off + 12 <= size;) {
    size_t len = (size_t)copy[off] | (size_t)copy[off + 1] << 8 | (size_t)copy[off + 2] << 16 |
                 (size_t)copy[off + 3] << 24;
    if (len > size - off - 12) break;
    uLong crc = crc32(0L, copy + off + 4, 4);
    crc = crc32(crc, copy + off + 12, (uInt)len);
    for (int i = 0; i < 4; i++)
      copy[off + 8 + i] = (uint8_t)(crc >> (8 * i));
    off += 12 + len;
  }
  /* up to three deliveries: [0, a), [a, a + b), the rest */
  if (a > size) a = size;
  if (b > size - a) b = size - a;
  struct client *c = calloc(1, sizeof *c);
  if (c == NULL) abort();
  c->tcp.data = c;
  c->connect.data = c;
  size_t cuts[4] = {0, a, a + b, size};
  for (int i = 0; i < 3; i++)
    if (cuts[i + 1] > cuts[i])
      c->bufs[c->nbufs++] = uv_buf_init((char *)data + cuts[i], (unsigned)(cuts[i + 1] - cuts[i]));
  uv_tcp_init(&loop, &c->tcp);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", port[which], &sa);
  if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&sa, on_connect) != 0) abort();
  /* the listener closes after our FIN (or refuses, or times out the
   * handshake): it must, or this spins until libFuzzer's timeout */
  while (!c->closed)
    uv_run(&loop, UV_RUN_ONCE);
  /* let the listener finish closing its side */
  for (int i = 0; i < 8; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  free(c);
  free(copy);
  return 0;
}
