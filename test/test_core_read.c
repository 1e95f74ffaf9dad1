/* Reads without log writes: ReadIndex (thesis 6.4) and leases (6.4.1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "lib/core_fixture.h"

static raft_id setup(struct fx *f, uint32_t n, struct raft_options *o) {
  fx_init(f, n, 0, o);
  raft_id l = fx_run_until_leader(f, 1000);
  assert_true(l != 0);
  fx_run(f, 20);
  return l;
}

/* Thesis 6.4: a read is answered after one heartbeat round confirms
 * leadership (2 ms round trip here), at the commit index of its arrival. */
static void test_read_index_answered_after_heartbeat_round(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  uint64_t t0 = f.now;
  assert_int_equal(raft_read_index(fx_r(&f, l), f.now, 5), 0);
  fx_drain(&f, l);
  assert_int_equal(f.nodes[l].n_reads, 0);
  fx_run(&f, 1);
  assert_int_equal(f.nodes[l].n_reads, 0);
  fx_run(&f, 1);
  assert_int_equal(f.now, t0 + 2);
  assert_int_equal(f.nodes[l].n_reads, 1);
  assert_int_equal(f.nodes[l].reads[0].ctx, 5);
  assert_int_equal(f.nodes[l].reads[0].err, 0);
  assert_int_equal(f.nodes[l].reads[0].index, fx_commit(&f, l));
  fx_free(&f);
}

/* Many reads queued together share one heartbeat round. */
static void test_read_index_batches_reads_in_one_round(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  fx_reset_sent(&f);
  for (uint64_t c = 1; c <= 50; c++)
    raft_read_index(fx_r(&f, l), f.now, c);
  fx_drain(&f, l);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_HEARTBEAT), 2);
  fx_run(&f, 2);
  assert_int_equal(f.nodes[l].n_reads, 50);
  fx_free(&f);
}

/* A leader cut off from its quorum never answers: the read fails when it
 * steps down (check-quorum), with RAFT_ENOTLEADER. */
static void test_read_fails_when_leadership_lost(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  fx_isolate(&f, l, true);
  raft_read_index(fx_r(&f, l), f.now, 9);
  fx_drain(&f, l);
  fx_run(&f, 50);
  assert_int_equal(f.nodes[l].n_reads, 0);
  fx_run(&f, 100);
  assert_int_equal(f.nodes[l].n_reads, 1);
  assert_int_equal(f.nodes[l].reads[0].err, RAFT_ENOTLEADER);
  fx_free(&f);
}

struct drop_to {
  raft_id to;
};

static bool drop_append_resp(struct fx *f, const struct raft_message *m, void *arg) {
  struct drop_to *d = arg;
  return !(m->type == RAFT_MSG_APPEND_RESP && m->to == d->to);
}

/* tikv#9239, thesis 6.4 step 1: a new leader answers reads only after it
 * committed an entry of its own term - also right after a transfer. */
static void test_new_leader_answers_reads_after_own_term_commit(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id t = l % 3 + 1, other = t % 3 + 1;
  assert_int_equal(raft_transfer(fx_r(&f, l), f.now, t), 0);
  fx_drain(&f, l);
  /* the new leader's NOOP cannot commit: its followers' answers are lost */
  struct drop_to d = {t};
  f.filter = drop_append_resp;
  f.filter_arg = &d;
  int steps = 0;
  while (fx_role(&f, t) != RAFT_LEADER && steps++ < 100)
    fx_step(&f);
  assert_int_equal(fx_role(&f, t), RAFT_LEADER);
  (void)other;
  raft_read_index(fx_r(&f, t), f.now, 3);
  fx_drain(&f, t);
  fx_run(&f, 30);
  assert_int_equal(f.nodes[t].n_reads, 0);
  raft_index li;
  assert_int_equal(raft_lease_read(fx_r(&f, t), f.now, &li), RAFT_ENOLEASE);
  f.filter = NULL;
  fx_run(&f, 30);
  assert_int_equal(f.nodes[t].n_reads, 1);
  assert_int_equal(f.nodes[t].reads[0].err, 0);
  assert_true(f.nodes[t].reads[0].index >= fx_last(&f, t) - 0);
  fx_free(&f);
}

/* Followers forward READ_INDEX to the leader and get the read index. */
static void test_follower_forwards_read_index(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_id a = l % 3 + 1;
  raft_index idx;
  fx_propose(&f, l, "w", &idx);
  assert_true(fx_run_until_applied(&f, l, idx, 100));
  assert_int_equal(raft_read_index(fx_r(&f, a), f.now, 11), 0);
  fx_drain(&f, a);
  fx_run(&f, 10);
  assert_int_equal(f.nodes[a].n_reads, 1);
  assert_int_equal(f.nodes[a].reads[0].ctx, 11);
  assert_int_equal(f.nodes[a].reads[0].err, 0);
  assert_true(f.nodes[a].reads[0].index >= idx);
  fx_free(&f);
}

/* Thesis 6.4.1: a lease read needs check-quorum and a quorum that answered
 * heartbeats sent less than election_ms ago. */
static void test_lease_read_needs_check_quorum_and_fresh_quorum(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, &o);
  raft_index i = 0;
  assert_int_equal(raft_lease_read(fx_r(&f, l), f.now, &i), 0);
  assert_int_equal(i, fx_commit(&f, l));
  raft_id a = l % 3 + 1;
  assert_int_equal(raft_lease_read(fx_r(&f, a), f.now, &i), RAFT_ENOTLEADER);
  /* cut the answers: the lease runs out before check-quorum deposes it */
  fx_cut(&f, l % 3 + 1, l, true);
  fx_cut(&f, (l % 3 + 1) % 3 + 1, l, true);
  uint64_t t0 = f.now;
  bool expired = false;
  while (f.now < t0 + 200 && fx_role(&f, l) == RAFT_LEADER) {
    if (raft_lease_read(fx_r(&f, l), f.now, &i) == RAFT_ENOLEASE) expired = true;
    fx_step(&f);
  }
  assert_true(expired);
  fx_free(&f);
  o.check_quorum = false;
  l = setup(&f, 3, &o);
  assert_int_equal(raft_lease_read(fx_r(&f, l), f.now, &i), RAFT_ENOLEASE);
  fx_free(&f);
}

/* A single voter confirms reads by itself. */
static void test_single_voter_answers_reads_at_once(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 1, &o);
  raft_read_index(fx_r(&f, l), f.now, 1);
  fx_drain(&f, l);
  assert_int_equal(f.nodes[l].n_reads, 1);
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_TEST(test_read_index_answered_after_heartbeat_round),
      FX_TEST(test_read_index_batches_reads_in_one_round),
      FX_TEST(test_read_fails_when_leadership_lost),
      FX_TEST(test_new_leader_answers_reads_after_own_term_commit),
      FX_TEST(test_follower_forwards_read_index),
      FX_TEST(test_lease_read_needs_check_quorum_and_fresh_quorum),
      FX_TEST(test_single_voter_answers_reads_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
