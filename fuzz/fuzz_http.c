/* libFuzzer target for the HTTP request path (src/http): any bytes a client
 * may send, over a real loopback TCP connection to the real server.
 * Run: scripts/fuzz 600 fuzz_http
 *
 * Input: byte 0 picks how the rest is delivered:
 *   mode % 4 != 1 -> in chunks whose sizes come from byte 1 on (each chunk is a
 *            separate read on the server: the loop runs between them)
 *   mode % 4 == 1 -> the differential check: the request bytes are delivered whole,
 *            then split in two at EVERY byte position; what the handler saw
 *            and what the client received must be the same every time (a
 *            header name or value split across segments must not change
 *            anything). Inputs over SPLIT_MAX bytes are only delivered whole.
 * After the last chunk the client shuts down its side, and reads until the
 * server closes. A crash, a sanitizer report, a hang (the server never
 * closes) or a difference between deliveries is a finding. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http/http.h"

#define SPLIT_MAX 160
#define LOG_MAX 65536

static uv_loop_t *loop;
static struct lr_http_server *srv;
static int port;
static uv_timer_t later;
static uint64_t later_id;
static int later_pending;

/* what the handler saw, for the differential check */
static char seen[LOG_MAX];
static size_t seen_len;

static void logf_(const char *s, size_t n) {
  if (seen_len + n > LOG_MAX) n = LOG_MAX - seen_len;
  memcpy(seen + seen_len, s, n);
  seen_len += n;
}

static void log_field(const char *name, const char *v) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%s=", name);
  logf_(buf, (size_t)n);
  if (v)
    logf_(v, strlen(v));
  else
    logf_("(none)", 6);
  logf_("|", 1);
}

static void on_later(uv_timer_t *t) {
  (void)t;
  later_pending = 0;
  lr_http_respond(srv, later_id, 200, "text/plain", "later", 5);
}

static void handler(void *data, const struct lr_http_request *req) {
  (void)data;
  log_field("m", req->method);
  log_field("p", req->path);
  log_field("q", req->query);
  log_field("ct", req->content_type);
  log_field("cid", req->client_id);
  log_field("seq", req->seq);
  log_field("auth", req->authorization);
  char n[32];
  snprintf(n, sizeof n, "%zu", req->body_len);
  log_field("bl", n);
  logf_(req->body, req->body_len);
  logf_("\n", 1);
  if (strcmp(req->path, "/later") == 0 && !later_pending) {
    /* answered from the loop: exercises holding pipelined bytes */
    later_pending = 1;
    later_id = req->id;
    uv_timer_start(&later, on_later, 0, 0);
    return;
  }
  lr_http_respond_h(srv, req->id, 200, "text/plain", "X-A: 1\r\n", req->body, req->body_len);
}

static void setup(void) {
  loop = uv_default_loop();
  struct lr_http_options o = {.max_body = 256, .max_header = 1024};
  char err[256];
  if (lr_http_listen(loop, "127.0.0.1:0", &o, handler, NULL, &srv, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_http: %s\n", err);
    abort();
  }
  port = lr_http_port(srv);
  uv_timer_init(loop, &later);
}

/* One connection: sends chunks (len[i] bytes each) and collects the reply in
 * out. -> bytes received */
static size_t run_one(const uint8_t *p, const size_t *lens, size_t nchunks, char *out, size_t cap) {
  seen_len = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) abort();
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) abort();
  uv_run(loop, UV_RUN_NOWAIT); /* accept */
  size_t got = 0;
  for (size_t i = 0; i < nchunks; i++) {
    if (lens[i] && send(fd, p, lens[i], MSG_NOSIGNAL) < 0) break; /* the server closed */
    p += lens[i];
    uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_NOWAIT);
  }
  shutdown(fd, SHUT_WR);
  for (int spins = 0;; spins++) {
    uv_run(loop, UV_RUN_NOWAIT);
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      size_t k = (size_t)n < cap - got ? (size_t)n : cap - got;
      memcpy(out + got, buf, k);
      got += k;
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
    if (spins > 200000) {
      fprintf(stderr, "fuzz_http: the server never closed the connection\n");
      abort();
    }
    if (spins > 1000) usleep(10);
  }
  close(fd);
  for (int i = 0; i < 4; i++)
    uv_run(loop, UV_RUN_NOWAIT);
  return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (srv == NULL) setup();
  if (size < 1) return 0;
  uint8_t mode = data[0];
  const uint8_t *req = data + 1;
  size_t n = size - 1;
  static char out[LOG_MAX], out2[LOG_MAX], seen1[LOG_MAX];
  if ((mode & 3) != 1) {
    /* chunks: sizes 1..16 from the request bytes' own values, cycling */
    size_t lens[4096], k = 0, left = n;
    for (size_t i = 0; left > 0 && k < 4096; i++) {
      size_t c = (size_t)(((mode >> 1) + (i < n ? req[i] : 0)) % 16) + 1;
      if (c > left) c = left;
      lens[k++] = c;
      left -= c;
    }
    if (left) lens[k - 1] += left;
    run_one(req, lens, k, out, sizeof out);
    return 0;
  }
  size_t whole = n;
  size_t got1 = run_one(req, &whole, 1, out, sizeof out);
  size_t seen1_len = seen_len;
  memcpy(seen1, seen, seen_len);
  if (n > SPLIT_MAX) return 0;
  for (size_t at = 1; at < n; at++) {
    size_t lens[2] = {at, n - at};
    size_t got2 = run_one(req, lens, 2, out2, sizeof out2);
    if (seen_len != seen1_len || memcmp(seen, seen1, seen_len) != 0 || got2 != got1 ||
        memcmp(out, out2, got1) != 0) {
      fprintf(stderr,
              "fuzz_http: split at %zu of %zu changed the outcome\n--- whole:\n%.*s\n%.*s\n--- "
              "split:\n%.*s\n%.*s\n",
              at, n, (int)seen1_len, seen1, (int)got1, out, (int)seen_len, seen, (int)got2, out2);
      abort();
    }
  }
  return 0;
}
