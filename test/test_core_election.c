/* Elections: randomized timeouts, votes, pre-vote, check-quorum and leases
 * (thesis 3.4, 3.6, 4.2.3, 6.2, 9.6). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "lib/core_fixture.h"

/* Captures the last message of one type sent by one node. */
struct cap {
  raft_id from;
  int type;
  int count;
  struct raft_message last;
  uint64_t last_to_leader_at;
};

static bool capture(struct fx *f, const struct raft_message *m, void *arg) {
  struct cap *c = arg;
  if (m->from == c->from && m->type == c->type) {
    c->count++;
    c->last = *m;
    c->last.entries = NULL;
  }
  return true;
}

static raft_index last_index(struct fx *f, raft_id id) {
  return fx_last(f, id);
}

/* Thesis 3.4: the first election completes one pre-vote and one vote round
 * trip (4 ms at 1 ms latency) after the earliest randomized timeout. */
static void test_elects_leader_after_earliest_timeout(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 0, &o);
  uint64_t first = UINT64_MAX;
  for (raft_id i = 1; i <= 3; i++) {
    uint64_t d = raft_deadline(fx_r(&f, i));
    if (d < first) first = d;
  }
  raft_id l = fx_run_until_leader(&f, 1000);
  assert_true(l != 0);
  assert_int_equal(f.nodes[l].became_leader_at, first + 4);
  assert_int_equal(fx_term(&f, l), 1);
  fx_free(&f);
}

/* Thesis 3.4: timeouts are random in [election_ms, 2 * election_ms) and
 * depend on the seed, so nodes rarely time out together. */
static void test_election_timeouts_are_randomized_in_range(void **state) {
  (void)state;
  uint64_t seen[64];
  int distinct = 0;
  for (uint64_t seed = 1; seed <= 64; seed++) {
    struct fx f;
    struct raft_options o = fx_opts();
    o.seed = seed;
    fx_init(&f, 1, 0, &o);
    uint64_t d = raft_deadline(fx_r(&f, 1));
    assert_true(d >= 100 && d < 200);
    bool dup = false;
    for (int k = 0; k < distinct; k++)
      dup |= seen[k] == d;
    if (!dup) seen[distinct++] = d;
    fx_free(&f);
  }
  assert_true(distinct > 20);
}

/* Thesis 3.6.1: a vote goes only to a candidate whose log is at least as
 * up-to-date as the voter's. */
static void test_rejects_vote_from_candidate_with_stale_log(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.check_quorum = false;
  o.pre_vote = false;
  fx_init(&f, 3, 0, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  raft_index idx;
  assert_int_equal(fx_propose(&f, l, "x", &idx), 0);
  for (raft_id i = 1; i <= 3; i++)
    assert_true(fx_run_until_applied(&f, i, idx, 1000));
  raft_id v = l % 3 + 1, c = v % 3 + 1;
  if (c == l) c = c % 3 + 1;
  fx_isolate(&f, v, true);
  struct cap cap = {v, RAFT_MSG_VOTE_RESP, 0, {0}, 0};
  f.filter = capture;
  f.filter_arg = &cap;
  raft_term t = fx_term(&f, v);
  struct raft_message m = {
      .type = RAFT_MSG_VOTE, .from = c, .to = v, .term = t + 1, .index = 1, .log_term = 1};
  assert_int_equal(raft_step(fx_r(&f, v), f.now, &m), 0);
  fx_drain(&f, v);
  assert_int_equal(cap.count, 1);
  assert_true(cap.last.reject);
  /* the same candidate with the voter's log gets the vote */
  m.term = t + 2;
  m.index = last_index(&f, v);
  m.log_term = fx_term(&f, l);
  assert_int_equal(raft_step(fx_r(&f, v), f.now, &m), 0);
  fx_drain(&f, v);
  assert_int_equal(cap.count, 2);
  assert_false(cap.last.reject);
  assert_int_equal(f.nodes[v].vote, c);
  fx_free(&f);
}

/* Thesis 3.4: "each server will vote for at most one candidate in a given
 * term"; the vote is durable before the response leaves (msgs_after). */
static void test_grants_one_vote_per_term_and_persists_it_first(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.check_quorum = false;
  fx_init(&f, 3, 0, &o);
  fx_isolate(&f, 1, true);
  fx_set_manual(&f, 1, true);
  struct cap cap = {1, RAFT_MSG_VOTE_RESP, 0, {0}, 0};
  f.filter = capture;
  f.filter_arg = &cap;
  struct raft_message m = {
      .type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 1, .index = 1, .log_term = 1};
  raft_step(fx_r(&f, 1), f.now, &m);
  fx_drain(&f, 1);
  assert_int_equal(cap.count, 0); /* held until the vote is on disk */
  assert_int_equal(f.nodes[1].vote, 0);
  assert_int_equal(fx_pending_writes(&f, 1), 1);
  fx_flush(&f, 1);
  assert_int_equal(f.nodes[1].vote, 2);
  assert_int_equal(cap.count, 1);
  assert_false(cap.last.reject);
  m.from = 3;
  raft_step(fx_r(&f, 1), f.now, &m);
  fx_drain(&f, 1);
  fx_flush(&f, 1);
  assert_int_equal(cap.count, 2);
  assert_true(cap.last.reject);
  assert_int_equal(f.nodes[1].vote, 2);
  fx_free(&f);
}

/* Thesis 9.6: with pre-vote, a partitioned node cannot raise its term, so
 * when it comes back it does not depose a working leader. */
static void test_prevote_keeps_rejoining_node_from_disrupting_leader(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.check_quorum = false;
  fx_init(&f, 3, 0, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  raft_term t = fx_term(&f, l);
  raft_id x = l % 3 + 1;
  fx_isolate(&f, x, true);
  fx_run(&f, 1000);
  assert_int_equal(fx_term(&f, x), t);
  assert_int_equal(fx_role(&f, x), RAFT_PRE_CANDIDATE);
  fx_heal(&f);
  fx_run(&f, 500);
  assert_int_equal(fx_leader(&f), l);
  assert_int_equal(fx_term(&f, l), t);
  assert_int_equal(fx_role(&f, x), RAFT_FOLLOWER);
  fx_free(&f);
}

struct last_heard {
  raft_id leader;
  uint64_t at;
};

static bool note_arrival(struct fx *f, const struct raft_message *m, void *arg) {
  struct last_heard *h = arg;
  if (m->to == h->leader && !f->cut[m->from][m->to]) h->at = f->now + f->latency;
  return true;
}

/* Thesis 6.2: a leader that has not heard from a quorum for an election
 * timeout steps down, exactly election_ms after the last answer arrived. */
static void test_leader_steps_down_without_quorum(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 0, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  struct last_heard h = {l, 0};
  f.filter = note_arrival;
  f.filter_arg = &h;
  fx_run(&f, 55);
  fx_isolate(&f, l, true);
  fx_run(&f, 300);
  assert_int_not_equal(fx_role(&f, l), RAFT_LEADER);
  assert_true(h.at > 0);
  assert_int_equal(f.nodes[l].stepped_down_at, h.at + o.election_ms);
  fx_free(&f);
}

/* Thesis 4.2.3: a follower that heard from its leader within the election
 * timeout ignores (pre)votes of a higher term - unless the request carries
 * the leadership-transfer flag (context = 1). */
static void test_follower_in_lease_ignores_vote_unless_transfer(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 0, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  fx_run(&f, 20);
  raft_id v = l % 3 + 1, c = v % 3 + 1;
  if (c == l) c = c % 3 + 1;
  raft_term t = fx_term(&f, v);
  struct cap cap = {v, RAFT_MSG_VOTE_RESP, 0, {0}, 0};
  f.filter = capture;
  f.filter_arg = &cap;
  fx_isolate(&f, c, true);
  struct raft_message m = {.type = RAFT_MSG_VOTE,
                           .from = c,
                           .to = v,
                           .term = t + 1,
                           .index = last_index(&f, v) + 5,
                           .log_term = t};
  raft_step(fx_r(&f, v), f.now, &m);
  fx_drain(&f, v);
  assert_int_equal(cap.count, 0);
  assert_int_equal(fx_term(&f, v), t);
  m.context = 1;
  raft_step(fx_r(&f, v), f.now, &m);
  fx_drain(&f, v);
  assert_int_equal(cap.count, 1);
  assert_false(cap.last.reject);
  assert_int_equal(fx_term(&f, v), t + 1);
  fx_free(&f);
}

/* etcd#9586 / #8334: with pre-vote and check-quorum, a pre-candidate that
 * lost its leader must not count as "in lease"; when the leader becomes
 * unreachable from everyone after a partial partition, the others still
 * elect a leader. */
static void test_prevote_checkquorum_partial_partition_elects_leader(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 0, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  raft_term t = fx_term(&f, l);
  fx_run(&f, 20); /* everyone knows the leader */
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  fx_cut(&f, l, a, true); /* a stops hearing the leader; b still does */
  fx_run(&f, 400);
  assert_int_equal(fx_leader(&f), l); /* b keeps the leader in lease */
  assert_int_equal(fx_term(&f, a), t);
  assert_int_equal(fx_role(&f, a), RAFT_PRE_CANDIDATE);
  /* right after a pre-campaigns again, b's pre-vote must be granted: a
   * pre-candidate has no leader and so no lease (the etcd#9586 deadlock is
   * two pre-candidates ignoring each other "in lease") */
  uint64_t d = raft_deadline(fx_r(&f, a));
  while (raft_deadline(fx_r(&f, a)) == d)
    fx_step(&f);
  assert_int_equal(fx_role(&f, a), RAFT_PRE_CANDIDATE);
  struct cap cap = {a, RAFT_MSG_PRE_VOTE_RESP, 0, {0}, 0};
  f.filter = capture;
  f.filter_arg = &cap;
  struct raft_message pv = {.type = RAFT_MSG_PRE_VOTE,
                            .from = b,
                            .to = a,
                            .term = t + 1,
                            .index = fx_last(&f, a),
                            .log_term = t};
  raft_step(fx_r(&f, a), f.now, &pv);
  fx_drain(&f, a);
  assert_int_equal(cap.count, 1);
  assert_false(cap.last.reject);
  f.filter = NULL;
  fx_isolate(&f, l, true);
  uint64_t start = f.now;
  raft_id nl = 0;
  while (f.now < start + 1000 && (nl = fx_leader(&f)) == l)
    fx_step(&f);
  nl = fx_run_until_leader(&f, 1000);
  assert_true(nl == a || nl == b);
  assert_true(f.now < start + 500);
  fx_free(&f);
}

/* etcd#8243: a node with a stale term whose pre-votes are answered with a
 * newer term adopts it, so it can take part in the next election. */
static void test_stale_precandidate_learns_newer_term(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.check_quorum = false;
  fx_init(&f, 3, 0, &o);
  fx_isolate(&f, 1, true);
  struct raft_message m = {
      .type = RAFT_MSG_PRE_VOTE_RESP, .from = 2, .to = 1, .term = 7, .reject = true};
  raft_step(fx_r(&f, 1), f.now, &m);
  fx_drain(&f, 1);
  assert_int_equal(fx_term(&f, 1), 7);
  /* and a stale pre-vote is answered with the newer term */
  struct cap cap = {1, RAFT_MSG_PRE_VOTE_RESP, 0, {0}, 0};
  f.filter = capture;
  f.filter_arg = &cap;
  struct raft_message pv = {
      .type = RAFT_MSG_PRE_VOTE, .from = 3, .to = 1, .term = 3, .index = 1, .log_term = 1};
  raft_step(fx_r(&f, 1), f.now, &pv);
  fx_drain(&f, 1);
  assert_int_equal(cap.count, 1);
  assert_true(cap.last.reject);
  assert_int_equal(cap.last.term, 7);
  fx_free(&f);
}

/* Thesis 3.4: a cluster recovers from a leader crash and keeps one leader
 * per term (the fixture aborts on two). */
static void test_new_leader_after_leader_crash(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 5, 0, &o);
  for (int round = 0; round < 5; round++) {
    raft_id l = fx_run_until_leader(&f, 2000);
    assert_true(l != 0);
    raft_index idx;
    assert_int_equal(fx_propose(&f, l, "v", &idx), 0);
    assert_true(fx_run_until_applied(&f, l, idx, 1000));
    fx_crash(&f, l);
    raft_id nl = fx_run_until_leader(&f, 2000);
    assert_true(nl != 0 && nl != l);
    fx_restart(&f, l);
  }
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_TEST(test_elects_leader_after_earliest_timeout),
      FX_TEST(test_election_timeouts_are_randomized_in_range),
      FX_TEST(test_rejects_vote_from_candidate_with_stale_log),
      FX_TEST(test_grants_one_vote_per_term_and_persists_it_first),
      FX_TEST(test_prevote_keeps_rejoining_node_from_disrupting_leader),
      FX_TEST(test_leader_steps_down_without_quorum),
      FX_TEST(test_follower_in_lease_ignores_vote_unless_transfer),
      FX_TEST(test_prevote_checkquorum_partial_partition_elects_leader),
      FX_TEST(test_stale_precandidate_learns_newer_term),
      FX_TEST(test_new_leader_after_leader_crash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
