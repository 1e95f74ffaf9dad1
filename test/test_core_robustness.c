/* Robustness: malformed network input is counted and ignored, allocation
 * failure returns RAFT_ENOMEM, options are checked with clear messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/core_fixture.h"

static raft_id setup(struct fx *f, struct raft_options *o) {
  fx_init(f, 3, 0, o);
  raft_id l = fx_run_until_leader(f, 1000);
  assert_true(l != 0);
  fx_run(f, 20);
  return l;
}

static uint64_t malformed(struct fx *f, raft_id id) {
  struct raft_status s;
  raft_status(fx_r(f, id), &s);
  return s.n_malformed;
}

/* Messages that cannot be valid are refused with RAFT_EMALFORMED and
 * counted; none of them changes the node. */
static void test_malformed_messages_are_counted_and_ignored(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, &o);
  raft_id x = l % 3 + 1;
  struct raft *r = fx_r(&f, x);
  raft_term t = fx_term(&f, x);
  struct raft_entry e = {t, 99, RAFT_ENTRY_NORMAL, 1, (uint8_t *)"a"};
  struct raft_entry nodata = {t, 2, RAFT_ENTRY_NORMAL, 5, NULL};
  struct raft_message bad[] = {
      {.type = 0, .from = l, .to = x, .term = t},
      {.type = 200, .from = l, .to = x, .term = t},
      {.type = RAFT_MSG_APPEND, .from = 0, .to = x, .term = t},
      {.type = RAFT_MSG_APPEND, .from = x, .to = x, .term = t},
      {.type = RAFT_MSG_APPEND, .from = l, .to = x, .term = 0},
      {.type = RAFT_MSG_APPEND,
       .from = l,
       .to = x,
       .term = t,
       .index = 1,
       .log_term = 1,
       .n_entries = 1,
       .entries = &e},
      {.type = RAFT_MSG_APPEND,
       .from = l,
       .to = x,
       .term = t,
       .index = 1,
       .log_term = 1,
       .n_entries = 1,
       .entries = &nodata},
      {.type = RAFT_MSG_APPEND, .from = l, .to = x, .term = t, .n_entries = 3, .entries = NULL},
      {.type = RAFT_MSG_APPEND, .from = l, .to = x, .term = t, .log_term = t + 5},
      {.type = RAFT_MSG_SNAPSHOT,
       .from = l,
       .to = x,
       .term = t,
       .total = 10,
       .offset = 8,
       .chunk_len = 5,
       .chunk = (const uint8_t *)"hello"},
      {.type = RAFT_MSG_SNAPSHOT, .from = l, .to = x, .term = t, .total = (uint64_t)1 << 50},
      {.type = RAFT_MSG_PROPOSE, .from = l, .to = x, .n_entries = 2, .entries = &e},
      {.type = RAFT_MSG_VOTE_RESP, .from = l, .to = x, .term = t, .n_entries = 1, .entries = &e},
  };
  size_t n = sizeof bad / sizeof bad[0];
  raft_index last = fx_last(&f, x), commit = fx_commit(&f, x);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(raft_step(r, f.now, &bad[i]), RAFT_EMALFORMED);
  }
  assert_int_equal(raft_step(r, f.now, NULL), RAFT_EMALFORMED);
  assert_int_equal(malformed(&f, x), n + 1);
  fx_drain(&f, x);
  assert_int_equal(fx_last(&f, x), last);
  assert_int_equal(fx_commit(&f, x), commit);
  assert_int_equal(fx_term(&f, x), t);
  /* answers with absurd contents from a peer are ignored too */
  struct raft_message resp = {
      .type = RAFT_MSG_APPEND_RESP, .from = x, .to = l, .term = fx_term(&f, l), .index = 1000000};
  assert_int_equal(raft_step(fx_r(&f, l), f.now, &resp), 0);
  assert_int_equal(malformed(&f, l), 1);
  fx_drain(&f, l);
  raft_index idx;
  fx_propose(&f, l, "still fine", &idx);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 100));
  fx_free(&f);
}

static uint64_t rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}

/* Random garbage never crashes a node nor breaks the cluster's safety
 * (the fixture checks every applied entry against the others). */
static void test_random_messages_never_crash(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, &o);
  uint64_t s = 7;
#define RND() rnd(&s)
  struct raft_entry ents[4];
  uint8_t buf[32] = {0};
  for (int i = 0; i < 20000; i++) {
    raft_id to = 1 + RND() % 3;
    raft_term t = fx_term(&f, to);
    struct raft_message m = {0};
    m.type = (uint8_t)(RND() % (RAFT_MSG_TYPE_MAX + 2));
    m.from = RND() % 5;
    m.to = to;
    m.term = RND() % 4 == 0 ? 0 : t + RND() % 2 - (t > 0 ? RND() % 2 : 0);
    m.index = RND() % 40;
    m.log_term = RND() % (t + 2);
    m.commit = RND() % 40;
    m.reject = RND() % 2;
    m.hint_index = RND() % 40;
    m.hint_term = RND() % (t + 2);
    m.context = RND() % 100;
    if (m.type == RAFT_MSG_APPEND && RND() % 2) {
      m.n_entries = 1 + RND() % 4;
      for (uint32_t k = 0; k < m.n_entries; k++) {
        ents[k] = (struct raft_entry){m.log_term + RND() % 2, m.index + 1 + k,
                                      (uint8_t)(1 + RND() % 3), RND() % 32, buf};
      }
      m.entries = ents;
    }
    if (m.type == RAFT_MSG_SNAPSHOT) {
      m.total = RND() % 64;
      m.offset = RND() % 64;
      m.chunk_len = RND() % 32;
      m.chunk = buf;
      m.done = RND() % 2;
      m.snap.index = RND() % 40;
      m.snap.term = RND() % (t + 1);
    }
    if (m.type == RAFT_MSG_APPEND || m.type == RAFT_MSG_SNAPSHOT || m.type == RAFT_MSG_HEARTBEAT ||
        m.type == RAFT_MSG_TIMEOUT_NOW) {
      continue; /* forging a leader's messages can make nodes diverge for real */
    }
    raft_step(fx_r(&f, to), f.now, &m);
    fx_drain(&f, to);
    if (i % 100 == 0) fx_run(&f, 3);
  }
  fx_run(&f, 500);
  l = fx_run_until_leader(&f, 2000);
  raft_index idx;
  fx_propose(&f, l, "end", &idx);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 2000));
  fx_free(&f);
}

static int fail_after = -1;
static void *hook_malloc(void *d, size_t n) {
  (void)d;
  if (fail_after == 0) return NULL;
  if (fail_after > 0) fail_after--;
  return malloc(n);
}
static void *hook_realloc(void *d, void *p, size_t n) {
  (void)d;
  if (fail_after == 0) return NULL;
  if (fail_after > 0) fail_after--;
  return realloc(p, n);
}
static void hook_free(void *d, void *p) {
  (void)d;
  free(p);
}

/* Every allocation failure while creating a node or proposing returns
 * RAFT_ENOMEM (no crash, no leak), and the node keeps working after. */
static void test_allocation_failure_returns_enomem(void **state) {
  (void)state;
  struct raft_heap h = {hook_malloc, hook_realloc, hook_free, NULL};
  raft_heap_set(&h);
  struct raft_member m[3] = {{1, RAFT_VOTER, "a"}, {2, RAFT_VOTER, "b"}, {3, RAFT_VOTER, "c"}};
  struct raft_config c = {m, 3};
  struct raft_entry e;
  assert_int_equal(raft_bootstrap_entry(&c, &e), 0);
  struct raft_boot b = {0, 0, NULL, &e, 1};
  struct raft_options o = fx_opts();
  o.id = 1;
  int failures = 0;
  for (int k = 0; k < 200; k++) {
    struct raft *r = NULL;
    fail_after = k;
    int rv = raft_new(&o, &b, 0, &r);
    fail_after = -1;
    if (rv == RAFT_ENOMEM) {
      failures++;
      continue;
    }
    assert_int_equal(rv, 0);
    raft_free_node(r);
    break;
  }
  assert_true(failures > 3);
  /* proposals under allocation failure on a single-voter leader */
  struct raft_config c1 = {m, 1};
  raft_entry_free_data(&e);
  assert_int_equal(raft_bootstrap_entry(&c1, &e), 0);
  struct raft *r;
  assert_int_equal(raft_new(&o, &b, 0, &r), 0);
  raft_tick(r, raft_deadline(r));
  struct raft_update u;
  raft_update_take(r, &u);
  assert_int_equal(u.role, RAFT_LEADER);
  raft_persisted(r, 500, u.ack_index, u.ack_term);
  for (int k = 0; k < 10; k++) {
    raft_index i;
    raft_term t;
    fail_after = k % 2;
    int rv = raft_propose(r, 500, "abc", 3, 0, &i, &t);
    fail_after = -1;
    assert_true(rv == 0 || rv == RAFT_ENOMEM);
  }
  raft_update_take(r, &u);
  raft_persisted(r, 500, u.ack_index, u.ack_term);
  raft_update_take(r, &u);
  struct raft_status s;
  raft_status(r, &s);
  assert_int_equal(s.commit, s.last_index);
  raft_free_node(r);
  raft_entry_free_data(&e);
  raft_heap_set(NULL);
}

/* raft_options_check fills defaults and explains what is wrong. */
static void test_options_are_checked_with_clear_messages(void **state) {
  (void)state;
  struct raft_options o = {0};
  char err[128];
  o.id = 1;
  assert_int_equal(raft_options_check(&o, err, sizeof err), 0);
  assert_int_equal(o.max_inflight_msgs, 64);
  assert_int_equal(o.snapshot_trailing, 100);
  assert_int_equal(o.transfer_timeout_ms, o.election_ms);
  o.heartbeat_ms = 500;
  o.election_ms = 300;
  assert_int_equal(raft_options_check(&o, err, sizeof err), RAFT_EINVAL);
  assert_string_equal(err, "election_ms must be greater than heartbeat_ms");
  o = (struct raft_options){0};
  assert_int_equal(raft_options_check(&o, err, sizeof err), RAFT_EINVAL);
  assert_string_equal(raft_errcode(RAFT_EBUSY), "busy");
  assert_string_equal(raft_strerror(RAFT_ETOOLARGE), "entry larger than max_entry_bytes");
  assert_string_equal(raft_msg_name(RAFT_MSG_HEARTBEAT), "HEARTBEAT");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_TEST(test_malformed_messages_are_counted_and_ignored),
      FX_TEST(test_random_messages_never_crash),
      FX_TEST(test_allocation_failure_returns_enomem),
      FX_TEST(test_options_are_checked_with_clear_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
