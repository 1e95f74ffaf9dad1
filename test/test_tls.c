/* src/tls: two in-memory sessions handshake and exchange data when both
 * certificates come from the CA the other trusts, and refuse each other
 * when one comes from another CA; bad files give sentences naming them.
 * Certificates are made with the openssl CLI in a fresh temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls/tls.h"

static char dir[64];

static void sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  assert_int_equal(system(cmd), 0);
}

/* CA `ca` and a certificate `name` signed by it. */
static void make_ca(const char *ca) {
  sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
     "-subj /CN=%s -keyout %s.key -out %s.pem >/dev/null 2>&1",
     dir, ca, ca, ca);
}
static void make_cert(const char *ca, const char *name) {
  sh("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s "
     "-keyout %s.key -out %s.csr >/dev/null 2>&1 && openssl x509 -req -in %s.csr -CA %s.pem "
     "-CAkey %s.key -CAcreateserial -days 2 -out %s.pem >/dev/null 2>&1",
     dir, name, name, name, name, ca, ca, name);
}

static int setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/luaraft-tls-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  make_ca("ca1");
  make_ca("ca2");
  make_cert("ca1", "a");
  make_cert("ca1", "b");
  make_cert("ca2", "evil");
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static struct lr_tls_ctx *ctx(const char *name, const char *ca) {
  char cert[128], key[128], caf[128], err[300];
  snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
  snprintf(key, sizeof key, "%s/%s.key", dir, name);
  snprintf(caf, sizeof caf, "%s/%s.pem", dir, ca);
  struct lr_tls_ctx_options o = {cert, key, caf, true};
  struct lr_tls_ctx *c = NULL;
  int rv = lr_tls_ctx_new(&o, &c, err, sizeof err);
  if (rv != 0) fail_msg("%s", err);
  return c;
}

/* Moves all x has to send into y; returns the bytes moved. */
static size_t drain(struct lr_tls *x, struct lr_tls *y) {
  char buf[4096];
  size_t total = 0;
  while (lr_tls_pending(x)) {
    size_t n = lr_tls_take(x, buf, sizeof buf);
    assert_true(n > 0); /* pending means something to take */
    assert_int_equal(lr_tls_feed(y, buf, n), 0);
    total += n;
  }
  return total;
}

/* Moves ciphertext each way until neither side has anything to send; a
 * handshake moves bytes both ways, so each direction must have carried some. */
static void pump(struct lr_tls *x, struct lr_tls *y, int *rx, int *ry) {
  size_t xy = 0, yx = 0;
  for (int round = 0; round < 20; round++) {
    size_t a = drain(x, y);
    if (!lr_tls_established(y)) *ry = lr_tls_handshake(y);
    size_t b = drain(y, x);
    if (!lr_tls_established(x)) *rx = lr_tls_handshake(x);
    xy += a;
    yx += b;
    if (a == 0 && b == 0 && lr_tls_pending(x) == 0) break;
  }
  assert_true(xy > 0 && yx > 0);
}

static void test_tls_mutual_handshake_and_data(void **state) {
  struct lr_tls_ctx *ca = ctx("a", "ca1"), *cb = ctx("b", "ca1");
  struct lr_tls *c, *s;
  assert_int_equal(lr_tls_new(ca, LR_TLS_CLIENT, NULL, &c), 0);
  assert_int_equal(lr_tls_new(cb, LR_TLS_SERVER, NULL, &s), 0);
  int rc = lr_tls_handshake(c), rs = RAFT_ETLSAGAIN;
  assert_int_equal(rc, RAFT_ETLSAGAIN);
  pump(c, s, &rc, &rs);
  assert_int_equal(rc, 0);
  assert_int_equal(rs, 0);
  assert_true(lr_tls_established(c) && lr_tls_established(s));
  assert_non_null(strstr(lr_tls_peer_subject(s), "CN=a"));
  assert_non_null(strstr(lr_tls_peer_subject(c), "CN=b"));
  /* 100 KB each way, through records of at most 16 KB. */
  static char big[100000], got[100000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 7);
  assert_int_equal(lr_tls_write(c, big, sizeof big), 0);
  /* the records carry all of it, plus their headers and tags */
  assert_true(drain(c, s) > sizeof big);
  size_t total = 0, n;
  while (lr_tls_read(s, got + total, sizeof got - total, &n) == 0 && n > 0)
    total += n;
  assert_int_equal(total, sizeof big);
  assert_memory_equal(got, big, sizeof big);
  /* close_notify reads as ECLOSED. */
  lr_tls_shutdown(s);
  assert_true(drain(s, c) > 0); /* the close_notify alert */
  char buf[64];
  assert_int_equal(lr_tls_read(c, buf, sizeof buf, &n), RAFT_ETLSCLOSED);
  lr_tls_free(c);
  lr_tls_free(s);
  lr_tls_ctx_free(ca);
  lr_tls_ctx_free(cb);
}

/* A client whose certificate comes from another CA is refused by the
 * server, and the server's certificate does not verify at the client. */
static void test_tls_foreign_ca_refused(void **state) {
  struct lr_tls_ctx *ce = ctx("evil", "ca2"), *cb = ctx("b", "ca1");
  struct lr_tls *c, *s;
  assert_int_equal(lr_tls_new(ce, LR_TLS_CLIENT, NULL, &c), 0);
  assert_int_equal(lr_tls_new(cb, LR_TLS_SERVER, NULL, &s), 0);
  int rc = lr_tls_handshake(c), rs = RAFT_ETLSAGAIN;
  pump(c, s, &rc, &rs);
  assert_false(lr_tls_established(c));
  assert_false(lr_tls_established(s));
  assert_int_equal(rc, RAFT_ETLSVERIFY);
  if (strstr(lr_tls_error(c), "certificate verify failed") == NULL)
    fail_msg("client error: %s", lr_tls_error(c));
  lr_tls_free(c);
  lr_tls_free(s);
  /* The evil one trusting ca1 gets past its own check, but the server still
   * refuses its certificate. */
  struct lr_tls_ctx *ce1 = ctx("evil", "ca1");
  assert_int_equal(lr_tls_new(ce1, LR_TLS_CLIENT, NULL, &c), 0);
  assert_int_equal(lr_tls_new(cb, LR_TLS_SERVER, NULL, &s), 0);
  rc = lr_tls_handshake(c);
  rs = RAFT_ETLSAGAIN;
  pump(c, s, &rc, &rs);
  assert_false(lr_tls_established(s));
  assert_int_equal(rs, RAFT_ETLSVERIFY);
  assert_non_null(strstr(lr_tls_error(s), "certificate verify failed"));
  lr_tls_free(c);
  lr_tls_free(s);
  lr_tls_ctx_free(ce);
  lr_tls_ctx_free(ce1);
  lr_tls_ctx_free(cb);
}

static void test_tls_bad_files_named(void **state) {
  char err[300], cert[128], key[128];
  struct lr_tls_ctx *c = NULL;
  struct lr_tls_ctx_options o = {"/nonexistent/x.pem", "/nonexistent/x.key", NULL, false};
  assert_int_equal(lr_tls_ctx_new(&o, &c, err, sizeof err), RAFT_ETLSCONFIG);
  assert_non_null(strstr(err, "/nonexistent/x.pem"));
  snprintf(cert, sizeof cert, "%s/a.pem", dir);
  snprintf(key, sizeof key, "%s/b.key", dir);
  struct lr_tls_ctx_options m = {cert, key, NULL, false};
  assert_int_equal(lr_tls_ctx_new(&m, &c, err, sizeof err), RAFT_ETLSCONFIG);
  if (strstr(err, "mismatch") == NULL && strstr(err, "does not match") == NULL)
    fail_msg("err: %s", err);
  struct lr_tls_ctx_options v = {NULL, NULL, NULL, true};
  assert_int_equal(lr_tls_ctx_new(&v, &c, err, sizeof err), RAFT_EINVAL);
  assert_null(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls_mutual_handshake_and_data),
      cmocka_unit_test(test_tls_foreign_ca_refused),
      cmocka_unit_test(test_tls_bad_files_named),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
