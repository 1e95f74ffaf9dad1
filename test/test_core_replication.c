/* Log replication: batching, pipelining, backtracking, commitment,
 * persistence rules and limits (thesis 3.5, 3.6.2, 10.2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "lib/core_fixture.h"

struct appends {
  raft_id from, to;
  int count, rejects;
  uint32_t max_entries;
  bool drop;
};

static bool count_appends(struct fx *f, const struct raft_message *m, void *arg) {
  struct appends *a = arg;
  if (m->type == RAFT_MSG_APPEND && m->from == a->from && (a->to == 0 || m->to == a->to)) {
    a->count++;
    if (m->n_entries > a->max_entries) a->max_entries = m->n_entries;
    if (a->drop) return false;
  }
  if (m->type == RAFT_MSG_APPEND_RESP && m->to == a->from && m->reject) a->rejects++;
  return true;
}

static raft_id setup(struct fx *f, uint32_t n, struct raft_options *o) {
  fx_init(f, n, 0, o);
  raft_id l = fx_run_until_leader(f, 1000);
  assert_true(l != 0);
  fx_run(f, 20); /* the NOOP commits everywhere */
  return l;
}

/* Thesis 3.5: entries proposed together travel in one APPEND per follower
 * (batching), and every node applies them in order. */
static void test_batches_many_entries_per_append(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id x = l % 3 + 1;
  struct appends a = {l, x, 0, 0, 0, false};
  f.filter = count_appends;
  f.filter_arg = &a;
  raft_index idx = 0;
  raft_term t;
  for (int i = 0; i < 200; i++) {
    assert_int_equal(raft_propose(fx_r(&f, l), f.now, "0123456789", 10, 0, &idx, &t), 0);
  }
  fx_drain(&f, l);
  assert_int_equal(a.count, 1);
  assert_int_equal(a.max_entries, 200);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 1000));
  fx_free(&f);
}

/* max_append_bytes bounds each APPEND. */
static void test_append_size_is_bounded(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.max_append_bytes = 100;
  raft_id l = setup(&f, 3, &o);
  struct appends a = {l, l % 3 + 1, 0, 0, 0, false};
  f.filter = count_appends;
  f.filter_arg = &a;
  raft_index idx = 0;
  raft_term t;
  for (int i = 0; i < 100; i++)
    raft_propose(fx_r(&f, l), f.now, "0123456789", 10, 0, &idx, &t);
  fx_drain(&f, l);
  assert_int_equal(a.max_entries, 10);
  assert_int_equal(a.count, 10);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 1000));
  fx_free(&f);
}

/* Thesis 10.2.1 pipelining: a follower in replicate state gets APPENDs
 * without waiting for answers, but never more than max_inflight_msgs. */
static void test_pipeline_window_is_bounded(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.max_append_bytes = 10;
  o.max_inflight_msgs = 4;
  raft_id l = setup(&f, 3, &o);
  raft_id x = l % 3 + 1;
  fx_cut(&f, x, l, true); /* x's answers are lost */
  struct appends a = {l, x, 0, 0, 0, false};
  f.filter = count_appends;
  f.filter_arg = &a;
  raft_index idx;
  raft_term t;
  for (int i = 0; i < 20; i++)
    raft_propose(fx_r(&f, l), f.now, "0123456789", 10, 0, &idx, &t);
  fx_drain(&f, l);
  assert_int_equal(a.count, 4);
  fx_run(&f, 5);
  assert_int_equal(a.count, 4);
  fx_cut(&f, x, l, false);
  assert_true(fx_run_until_applied(&f, x, idx, 1000));
  fx_free(&f);
}

/* Fast backtracking (thesis 5.3 note; etcd findConflictByTerm): a follower
 * with a long divergent suffix is repaired in a few round trips, not one
 * per entry. */
static void test_fast_backtracking_skips_conflicting_terms(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  /* the leader appends 100 entries nobody else gets, then is deposed */
  fx_isolate(&f, l, true);
  for (int i = 0; i < 100; i++)
    fx_propose(&f, l, "lost", NULL);
  raft_id nl = fx_run_until_leader(&f, 2000);
  while (nl == l || nl == 0) {
    fx_step(&f);
    nl = fx_leader(&f);
  }
  raft_index idx;
  for (int i = 0; i < 100; i++)
    fx_propose(&f, nl, "kept", &idx);
  assert_true(fx_run_until_applied(&f, a, idx, 1000));
  assert_true(fx_run_until_applied(&f, b, idx, 1000));
  struct appends c = {nl, l, 0, 0, 0, false};
  f.filter = count_appends;
  f.filter_arg = &c;
  fx_isolate(&f, l, false);
  assert_true(fx_run_until_applied(&f, l, idx, 1000));
  assert_true(c.rejects <= 2);
  fx_free(&f);
}

static int step_as(struct raft *r, uint64_t now, struct raft_message m) {
  return raft_step(r, now, &m);
}

/* Thesis 3.6.2: a leader never commits an entry of an older term by
 * counting replicas; it commits once an entry of its own term is on a
 * quorum (and then the older ones with it). */
static void test_commits_only_by_counting_current_term_entries(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.pre_vote = false;
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  /* an entry of the old term reaches only the old leader */
  fx_isolate(&f, l, true);
  raft_index old;
  fx_propose(&f, l, "old", &old);
  fx_crash(&f, a);
  fx_crash(&f, b);
  /* l comes back as leader of a new term; answers are injected by hand */
  fx_isolate(&f, l, false);
  fx_run(&f, 150);
  fx_isolate(&f, l, true);
  struct raft *r = fx_r(&f, l);
  fx_run(&f, 400);
  raft_term t = fx_term(&f, l);
  assert_int_equal(fx_role(&f, l), RAFT_CANDIDATE);
  step_as(r, f.now,
          (struct raft_message){.type = RAFT_MSG_VOTE_RESP, .from = a, .to = l, .term = t});
  fx_drain(&f, l);
  assert_int_equal(fx_role(&f, l), RAFT_LEADER);
  raft_index noop = fx_last(&f, l);
  assert_int_equal(noop, old + 1);
  raft_index c0 = fx_commit(&f, l);
  assert_true(c0 < old);
  /* a has the old entry: a quorum holds it, yet it is not committed */
  step_as(r, f.now,
          (struct raft_message){
              .type = RAFT_MSG_APPEND_RESP, .from = a, .to = l, .term = t, .index = old});
  fx_drain(&f, l);
  assert_int_equal(fx_commit(&f, l), c0);
  step_as(r, f.now,
          (struct raft_message){
              .type = RAFT_MSG_APPEND_RESP, .from = a, .to = l, .term = t, .index = noop});
  fx_drain(&f, l);
  assert_int_equal(fx_commit(&f, l), noop);
  fx_free(&f);
}

/* Thesis 10.2.1: the leader sends its APPENDs before its own write is
 * durable, and counts itself only once raft_persisted says so. */
static void test_leader_counts_itself_only_once_persisted(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  fx_isolate(&f, b, true);
  fx_set_manual(&f, l, true);
  struct appends c = {l, a, 0, 0, 0, false};
  f.filter = count_appends;
  f.filter_arg = &c;
  raft_index idx;
  fx_propose(&f, l, "x", &idx);
  assert_int_equal(c.count, 1); /* sent before the leader's write */
  fx_run(&f, 5);
  assert_int_equal(f.nodes[a].applied, idx - 1); /* a has it, not committed */
  assert_true(fx_commit(&f, l) < idx);
  fx_flush(&f, l);
  assert_int_equal(fx_commit(&f, l), idx);
  fx_free(&f);
}

/* Followers apply committed entries only up to their durable index. */
static void test_follower_applies_only_persisted_entries(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1;
  fx_set_manual(&f, a, true);
  raft_index idx;
  fx_propose(&f, l, "x", &idx);
  fx_run(&f, 30);
  assert_int_equal(fx_commit(&f, l), idx);
  assert_true(f.nodes[a].applied < idx);
  fx_flush(&f, a);
  fx_run(&f, 30);
  fx_flush(&f, a);
  assert_int_equal(f.nodes[a].applied, idx);
  fx_free(&f);
}

/* Limits: an entry over max_entry_bytes is RAFT_ETOOLARGE; past
 * max_uncommitted_bytes proposals are RAFT_EBUSY until commits catch up. */
static void test_proposal_limits(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.max_entry_bytes = 64;
  o.max_uncommitted_bytes = 100;
  raft_id l = setup(&f, 3, &o);
  char big[65] = {0};
  raft_index i;
  raft_term t;
  assert_int_equal(raft_propose(fx_r(&f, l), f.now, big, 65, 0, &i, &t), RAFT_ETOOLARGE);
  assert_int_equal(raft_propose(fx_r(&f, l), f.now, big, 60, 0, &i, &t), 0);
  assert_int_equal(raft_propose(fx_r(&f, l), f.now, big, 60, 0, &i, &t), RAFT_EBUSY);
  fx_drain(&f, l);
  assert_true(fx_run_until_applied(&f, l, i, 1000));
  assert_int_equal(raft_propose(fx_r(&f, l), f.now, big, 60, 0, &i, &t), 0);
  fx_drain(&f, l);
  fx_free(&f);
}

/* A follower forwards a proposal to its leader (returns 1); the entry is
 * applied everywhere. Without a leader: RAFT_ENOTLEADER. */
static void test_follower_forwards_proposal(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1;
  raft_index before = f.nodes[l].applied;
  assert_int_equal(fx_propose(&f, a, "fwd", NULL), 1);
  fx_run(&f, 30);
  assert_int_equal(f.nodes[a].applied, before + 1);
  assert_int_equal(f.nodes[a].n_applied_normal, 1);
  fx_free(&f);
  fx_init(&f, 3, 0, &o);
  assert_int_equal(fx_propose(&f, 1, "x", NULL), RAFT_ENOTLEADER);
  fx_free(&f);
}

/* A forwarded proposal the leader refuses comes back as a prop_error with
 * the leader's error code and the follower's context. */
static void test_forwarded_proposal_refusal_reaches_follower(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.max_entry_bytes = 1000;
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  fx_isolate(&f, b, true);
  assert_int_equal(raft_transfer(fx_r(&f, l), f.now, b), 0);
  fx_drain(&f, l);
  raft_index i;
  raft_term t;
  assert_int_equal(raft_propose(fx_r(&f, a), f.now, "x", 1, 77, &i, &t), 1);
  fx_drain(&f, a);
  fx_run(&f, 5);
  assert_int_equal(f.nodes[a].n_perrs, 1);
  assert_int_equal(f.nodes[a].perrs[0].context, 77);
  assert_int_equal(f.nodes[a].perrs[0].err, RAFT_ETRANSFER);
  fx_free(&f);
}

/* A PROPOSE the network delivers twice: the leader appends the first copy,
 * steps down, and gets the second. Refusing it would tell the proposer "not
 * applied" about an entry that commits; the node stays silent because its
 * log holds that copy. A node without the copy still refuses. */
static void test_duplicate_proposal_is_not_refused_by_the_node_that_appended_it(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = 5, .data = (uint8_t *)"dup-1"};
  struct raft_message m = {
      .type = RAFT_MSG_PROPOSE, .from = a, .to = l, .context = 9, .n_entries = 1, .entries = &e};
  assert_int_equal(raft_step(fx_r(&f, l), f.now, &m), 0);
  fx_drain(&f, l);
  fx_run(&f, 30);
  assert_int_equal(raft_step_down(fx_r(&f, l), f.now), 0);
  fx_drain(&f, l);
  fx_reset_sent(&f);
  assert_int_equal(raft_step(fx_r(&f, l), f.now, &m), 0); /* the duplicate */
  fx_drain(&f, l);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_PROPOSE_RESP), 0);
  /* a proposal this node never appended is refused as before */
  e.data = (uint8_t *)"new-2";
  m.to = b;
  if (fx_role(&f, b) != RAFT_LEADER) {
    assert_int_equal(raft_step(fx_r(&f, b), f.now, &m), 0);
    fx_drain(&f, b);
    assert_int_equal(fx_sent(&f, b, RAFT_MSG_PROPOSE_RESP), 1);
  }
  fx_free(&f);
}

/* canonical/raft#320, tarantool#9399: a leader whose own write fails steps
 * down at once, stops heartbeating, and the cluster moves on. */
static void test_leader_steps_down_when_own_write_fails(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  fx_set_manual(&f, l, true);
  fx_propose(&f, l, "x", NULL);
  fx_fail_writes(&f, l);
  assert_int_equal(fx_role(&f, l), RAFT_FOLLOWER);
  fx_set_manual(&f, l, false);
  fx_reset_sent(&f);
  fx_run(&f, 100);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_HEARTBEAT), 0);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_APPEND), 0);
  raft_id nl = fx_run_until_leader(&f, 1000);
  assert_true(nl != 0);
  raft_index idx;
  fx_propose(&f, nl, "after", &idx);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 1000));
  fx_free(&f);
}

/* A follower that loses messages (random drops) still converges. */
static bool drop_some(struct fx *f, const struct raft_message *m, void *arg) {
  uint64_t *seed = arg;
  *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return (*seed >> 33) % 5 != 0;
}

static void test_converges_despite_message_loss(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  uint64_t seed = 42;
  f.filter = drop_some;
  f.filter_arg = &seed;
  raft_index idx = 0;
  for (int i = 0; i < 300; i++) {
    raft_id ld = fx_leader(&f);
    if (ld) fx_propose(&f, ld, "m", &idx);
    fx_run(&f, 1);
  }
  (void)l;
  f.filter = NULL;
  fx_run(&f, 500);
  raft_id ld = fx_run_until_leader(&f, 1000);
  fx_propose(&f, ld, "last", &idx);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 2000));
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_TEST(test_batches_many_entries_per_append),
      FX_TEST(test_append_size_is_bounded),
      FX_TEST(test_pipeline_window_is_bounded),
      FX_TEST(test_fast_backtracking_skips_conflicting_terms),
      FX_TEST(test_commits_only_by_counting_current_term_entries),
      FX_TEST(test_leader_counts_itself_only_once_persisted),
      FX_TEST(test_follower_applies_only_persisted_entries),
      FX_TEST(test_proposal_limits),
      FX_TEST(test_follower_forwards_proposal),
      FX_TEST(test_forwarded_proposal_refusal_reaches_follower),
      FX_TEST(test_duplicate_proposal_is_not_refused_by_the_node_that_appended_it),
      FX_TEST(test_leader_steps_down_when_own_write_fails),
      FX_TEST(test_converges_despite_message_loss),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
