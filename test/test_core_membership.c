/* Membership changes one server at a time, learners, and leadership
 * transfer (thesis 4.1-4.4, 3.10). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/core_fixture.h"

static raft_id setup(struct fx *f, uint32_t n, uint32_t extra, struct raft_options *o) {
  fx_init(f, n, extra, o);
  raft_id l = fx_run_until_leader(f, 1000);
  assert_true(l != 0);
  fx_run(f, 20);
  return l;
}

static const struct raft_config *config_of(struct fx *f, raft_id id) {
  struct raft_status s;
  raft_status(fx_r(f, id), &s);
  return s.config;
}

static int raft_get_role(struct raft *r, raft_id id) {
  struct raft_status s;
  raft_status(r, &s);
  const struct raft_member *m = raft_config_get(s.config, id);
  return m ? m->role : 0;
}

/* Thesis 4.2.1: a new server joins as a learner, catches up, is promoted;
 * learners never campaign, even when they hear no leader. */
static void test_add_learner_then_promote(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  raft_index ci;
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "node4", &ci), 0);
  fx_drain(&f, l);
  assert_true(fx_run_until_applied(&f, 4, ci, 1000));
  const struct raft_member *m = raft_config_get(config_of(&f, 4), 4);
  assert_non_null(m);
  assert_int_equal(m->role, RAFT_LEARNER);
  assert_string_equal(m->address, "node4");
  /* a learner cut off from the leader never campaigns */
  fx_isolate(&f, 4, true);
  fx_reset_sent(&f);
  fx_run(&f, 500);
  assert_int_equal(fx_sent(&f, 4, RAFT_MSG_PRE_VOTE) + fx_sent(&f, 4, RAFT_MSG_VOTE), 0);
  assert_int_equal(fx_role(&f, 4), RAFT_FOLLOWER);
  fx_isolate(&f, 4, false);
  l = fx_run_until_leader(&f, 1000);
  fx_run(&f, 30); /* the leader hears from the learner again */
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_PROMOTE, 4, NULL, &ci), 0);
  fx_drain(&f, l);
  assert_true(fx_run_until_applied(&f, 4, ci, 1000));
  assert_int_equal(raft_config_get(config_of(&f, 4), 4)->role, RAFT_VOTER);
  fx_free(&f);
}

/* Thesis 4.1: one change at a time (RAFT_ECONFPENDING while one is
 * uncommitted); the first-commit rule has its own code (next test). */
static void test_one_change_at_a_time(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 2, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  raft_index ci;
  fx_run(&f, 20);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "", &ci), 0);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 5, "", &ci),
                   RAFT_ECONFPENDING);
  fx_drain(&f, l);
  fx_run(&f, 20);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "", &ci), RAFT_EBADCONF);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_PROMOTE, 1, "", &ci), RAFT_EBADCONF);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_REMOVE, 6, "", &ci), RAFT_EBADCONF);
  assert_int_equal(raft_change(fx_r(&f, l % 3 + 1), f.now, RAFT_ADD_LEARNER, 5, "", &ci),
                   RAFT_ENOTLEADER);
  fx_free(&f);
}

/* Thesis 4.2.2: a leader that removes itself keeps leading until the
 * change commits, then steps down; the rest elect a new leader. */
static void test_removed_leader_steps_down_after_commit(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_index ci;
  fx_set_manual(&f, (l % 3) + 1, true); /* slows the commit down a bit */
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_REMOVE, l, NULL, &ci), 0);
  fx_drain(&f, l);
  assert_int_equal(fx_role(&f, l), RAFT_LEADER);
  fx_set_manual(&f, (l % 3) + 1, false);
  fx_run(&f, 5);
  assert_true(fx_commit(&f, l) >= ci);
  assert_int_equal(fx_role(&f, l), RAFT_FOLLOWER);
  raft_id nl = fx_run_until_leader(&f, 1000);
  assert_true(nl != 0 && nl != l);
  assert_null(raft_config_get(config_of(&f, nl), l));
  /* the removed node never campaigns */
  fx_reset_sent(&f);
  fx_run(&f, 500);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_PRE_VOTE) + fx_sent(&f, l, RAFT_MSG_VOTE), 0);
  fx_free(&f);
}

/* Thesis 4.1: a configuration takes effect when appended; if the entry is
 * truncated the node reverts to the previous configuration. */
static void test_config_reverts_when_its_entry_is_truncated(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  fx_isolate(&f, a, true);
  fx_isolate(&f, b, true);
  raft_index ci;
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "", &ci), 0);
  fx_drain(&f, l);
  assert_non_null(raft_config_get(config_of(&f, l), 4)); /* in effect at once */
  fx_isolate(&f, l, true);
  fx_isolate(&f, a, false);
  fx_isolate(&f, b, false);
  fx_isolate(&f, l, true);
  raft_id nl;
  do {
    fx_step(&f);
    nl = fx_leader(&f);
  } while (nl == l || nl == 0);
  raft_index idx;
  fx_propose(&f, nl, "x", &idx);
  fx_run(&f, 20);
  fx_isolate(&f, l, false);
  assert_true(fx_run_until_applied(&f, l, idx, 2000));
  assert_null(raft_config_get(config_of(&f, l), 4));
  fx_free(&f);
}

/* Thesis 3.10: the leader catches the target up, then sends TIMEOUT_NOW;
 * proposals are refused with RAFT_ETRANSFER meanwhile. */
static void test_transfer_catches_target_up_then_hands_over(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id t = l % 3 + 1;
  fx_isolate(&f, t, true);
  raft_index idx;
  for (int i = 0; i < 10; i++)
    fx_propose(&f, l, "x", &idx);
  fx_run(&f, 5);
  fx_reset_sent(&f);
  assert_int_equal(raft_transfer(fx_r(&f, l), f.now, t), 0);
  fx_drain(&f, l);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_TIMEOUT_NOW), 0);
  raft_term tm;
  assert_int_equal(raft_propose(fx_r(&f, l), f.now, "y", 1, 0, &idx, &tm), RAFT_ETRANSFER);
  fx_isolate(&f, t, false);
  fx_run(&f, 30);
  assert_int_equal(fx_sent(&f, l, RAFT_MSG_TIMEOUT_NOW), 1);
  assert_int_equal(fx_leader(&f), t);
  fx_free(&f);
}

/* A transfer that does not complete is abandoned after
 * transfer_timeout_ms, and the leader accepts proposals again. */
static void test_transfer_aborts_after_timeout(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.transfer_timeout_ms = 50;
  raft_id l = setup(&f, 3, 0, &o);
  raft_id t = l % 3 + 1;
  fx_cut(&f, l, t, true);
  raft_index idx;
  fx_propose(&f, l, "x", &idx);
  assert_int_equal(raft_transfer(fx_r(&f, l), f.now, t), 0);
  uint64_t t0 = f.now;
  raft_term tm;
  while (raft_propose(fx_r(&f, l), f.now, "y", 1, 0, &idx, &tm) == RAFT_ETRANSFER) {
    fx_drain(&f, l);
    fx_step(&f);
  }
  fx_drain(&f, l);
  assert_int_equal(f.now, t0 + 50);
  assert_int_equal(fx_role(&f, l), RAFT_LEADER);
  fx_free(&f);
}

/* raft_step_down gives up leadership at once. */
static void test_step_down(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  assert_int_equal(raft_step_down(fx_r(&f, l), f.now), 0);
  fx_drain(&f, l);
  assert_int_equal(fx_role(&f, l), RAFT_FOLLOWER);
  assert_int_equal(raft_step_down(fx_r(&f, l), f.now), RAFT_ENOTLEADER);
  assert_true(fx_run_until_leader(&f, 1000) != 0);
  fx_free(&f);
}

/* raft_config_decode is strict: truncation, trailing bytes, duplicates,
 * bad roles, zero ids and NULs in addresses are all RAFT_EMALFORMED. */
static void test_config_decode_is_strict(void **state) {
  (void)state;
  struct raft_member m[2] = {{1, RAFT_VOTER, "a:1"}, {2, RAFT_LEARNER, ""}};
  struct raft_config c = {m, 2}, d;
  uint8_t *p;
  size_t n;
  assert_int_equal(raft_config_encode(&c, &p, &n), 0);
  assert_int_equal(raft_config_decode(p, n, &d), 0);
  assert_int_equal(d.n, 2);
  assert_string_equal(d.members[0].address, "a:1");
  assert_int_equal(d.members[1].role, RAFT_LEARNER);
  raft_config_free(&d);
  for (size_t k = 0; k < n; k++) {
    assert_int_equal(raft_config_decode(p, k, &d), RAFT_EMALFORMED);
  }
  uint8_t *q = malloc(n + 1);
  memcpy(q, p, n);
  q[n] = 0;
  assert_int_equal(raft_config_decode(q, n + 1, &d), RAFT_EMALFORMED);
  memcpy(q, p, n);
  q[5 + 8] = 3; /* role */
  assert_int_equal(raft_config_decode(q, n, &d), RAFT_EMALFORMED);
  memcpy(q, p, n);
  q[5 + 13 + 3] = 1; /* second id = 1 + (2 << 0)... make it a duplicate */
  q[5 + 13 + 3] = q[5];
  assert_int_equal(raft_config_decode(q, n, &d), RAFT_EMALFORMED);
  memcpy(q, p, n);
  q[5 + 13 + 1] = 0; /* NUL inside the address */
  assert_int_equal(raft_config_decode(q, n, &d), RAFT_EMALFORMED);
  memcpy(q, p, n);
  memset(q + 5, 0, 8); /* id 0 */
  assert_int_equal(raft_config_decode(q, n, &d), RAFT_EMALFORMED);
  memcpy(q, p, n);
  q[1] = 0xff; /* absurd count */
  assert_int_equal(raft_config_decode(q, n, &d), RAFT_EMALFORMED);
  free(q);
  raft_free(p);
  struct raft_member dup[2] = {{1, RAFT_VOTER, ""}, {1, RAFT_VOTER, ""}};
  struct raft_config cd = {dup, 2};
  assert_int_equal(raft_config_encode(&cd, &p, &n), RAFT_EINVAL);
}

/* ---- the membership safety rules (issue 10; etcd's strict reconfig check) */

static int change(struct fx *f, raft_id l, int kind, raft_id id, const char *addr, unsigned flags,
                  raft_index *ci, char *why) {
  int rv = raft_change_ex(fx_r(f, l), f->now, kind, id, addr, flags, ci, why, 256);
  fx_drain(f, l);
  return rv;
}

/* Counts messages sent to `to` (set by the test), over cut links too. */
struct counter {
  raft_id to;
  uint64_t n;
};
static bool count_to(struct fx *f, const struct raft_message *m, void *arg) {
  (void)f;
  struct counter *c = arg;
  c->n += m->to == c->to;
  return true;
}

static bool has_member(struct fx *f, raft_id on, raft_id id) {
  return raft_config_get(config_of(f, on), id) != NULL;
}

/* Thesis 4.1 footnote (raft-dev bug fix): a new leader makes no change before
 * it committed an entry of its term. That refusal says so (RAFT_ENOTREADY,
 * transient), not "a change is already in progress". */
static void test_new_leader_refuses_change_with_notready_until_own_term_commit(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 1, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  raft_index ci = 0;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node4", 0, &ci, why), RAFT_ENOTREADY);
  assert_non_null(strstr(why, "not committed yet"));
  assert_string_equal(raft_errcode(RAFT_ENOTREADY), "busy");
  assert_non_null(strstr(raft_strerror(RAFT_ENOTREADY), "has not committed an entry of its term"));
  /* it ends by itself at the first commit of the term */
  while (fx_commit(&f, l) < fx_last(&f, l))
    assert_true(fx_step(&f));
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node4", 0, &ci, why), 0);
  assert_string_equal(why, "");
  fx_free(&f);
}

/* etcd isLearnerReady: promote refuses a learner the leader never heard
 * from; force overrides it. */
static void test_promote_refuses_learner_never_heard_from(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  fx_isolate(&f, 4, true);
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node4", 0, &ci, why), 0);
  fx_run(&f, 200);
  assert_int_equal(change(&f, l, RAFT_PROMOTE, 4, NULL, 0, &ci, why), RAFT_ENOTCAUGHTUP);
  assert_non_null(strstr(why, "learner 4 is not caught up"));
  assert_non_null(strstr(why, "never heard from"));
  assert_int_equal(raft_get_role(fx_r(&f, l), 4), RAFT_LEARNER);
  /* forced: the operator takes the risk (3 of 4 voters reachable is a quorum) */
  assert_int_equal(change(&f, l, RAFT_PROMOTE, 4, NULL, RAFT_CHANGE_FORCE, &ci, why), 0);
  fx_run(&f, 20);
  assert_true(fx_commit(&f, l) >= ci);
  assert_int_equal(raft_get_role(fx_r(&f, l), 4), RAFT_VOTER);
  fx_free(&f);
}

/* A learner that was caught up but went silent for election_ms (crashed)
 * is not promoted: "heard from within election_ms" is part of caught up. */
static void test_promote_refuses_learner_silent_for_election_ms(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node4", 0, &ci, why), 0);
  assert_true(fx_run_until_applied(&f, 4, ci, 1000));
  fx_run(&f, 20);
  fx_crash(&f, 4);
  fx_run(&f, 150);
  assert_int_equal(change(&f, l, RAFT_PROMOTE, 4, NULL, 0, &ci, why), RAFT_ENOTCAUGHTUP);
  assert_non_null(strstr(why, "last heard"));
  fx_restart(&f, 4);
  fx_run(&f, 30);
  assert_int_equal(change(&f, l, RAFT_PROMOTE, 4, NULL, 0, &ci, why), 0);
  fx_free(&f);
}

/* Caught up also means close to the leader's log: at most max_promote_lag
 * entries behind its last index. The learner's disk is slow here, so it
 * answers heartbeats but acknowledges no entries. */
static void test_promote_refuses_learner_behind_by_more_than_max_promote_lag(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  o.max_promote_lag = 5;
  raft_id l = setup(&f, 3, 1, &o);
  raft_index ci, idx;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node4", 0, &ci, why), 0);
  assert_true(fx_run_until_applied(&f, 4, ci, 1000));
  fx_run(&f, 20);
  fx_set_manual(&f, 4, true);
  for (int i = 0; i < 10; i++)
    fx_propose(&f, l, "x", &idx);
  fx_run(&f, 20);
  assert_true(fx_commit(&f, l) >= idx);
  assert_int_equal(change(&f, l, RAFT_PROMOTE, 4, NULL, 0, &ci, why), RAFT_ENOTCAUGHTUP);
  assert_non_null(strstr(why, "at most 5 behind"));
  fx_set_manual(&f, 4, false);
  fx_run(&f, 20);
  assert_int_equal(change(&f, l, RAFT_PROMOTE, 4, NULL, 0, &ci, why), 0);
  fx_free(&f);
}

/* etcd IsReadyToAddVotingMember: adding a voter that never connected while
 * one voter is down would leave 2 reachable of 4 (quorum 3): refused unless
 * forced; a learner can be added. */
static void test_add_voter_refused_when_reachable_voters_fall_below_quorum(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  raft_id down = l % 3 + 1;
  fx_crash(&f, down);
  fx_isolate(&f, 4, true);
  fx_run(&f, 150);
  assert_int_equal(fx_role(&f, l), RAFT_LEADER);
  raft_index ci = 0;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_VOTER, 4, "node4", 0, &ci, why), RAFT_EUNSAFE);
  assert_non_null(strstr(why, "2 of 4 voters would be reachable, fewer than a quorum of 3"));
  assert_non_null(strstr(why, "4 (new)"));
  assert_string_equal(raft_errcode(RAFT_EUNSAFE), "bad_request");
  assert_false(has_member(&f, l, 4));
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node4", 0, &ci, why), 0);
  fx_run(&f, 20);
  assert_true(fx_commit(&f, l) >= ci);
  fx_free(&f);
}

/* The same rule on a single-voter cluster: a second voter that never
 * connected makes the quorum 2 of which 1 is reachable. Forcing works. */
static void test_add_voter_to_single_node_cluster_needs_force(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 1, 1, &o);
  fx_isolate(&f, 2, true);
  raft_index ci = 0;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_VOTER, 2, "node2", 0, &ci, why), RAFT_EUNSAFE);
  assert_int_equal(change(&f, l, RAFT_ADD_VOTER, 2, "node2", RAFT_CHANGE_FORCE, &ci, why), 0);
  assert_true(has_member(&f, l, 2));
  /* the cluster now needs node 2 to commit anything */
  fx_run(&f, 50);
  assert_true(fx_commit(&f, l) < ci);
  fx_isolate(&f, 2, false);
  assert_true(fx_run_until_applied(&f, 2, ci, 2000));
  fx_free(&f);
}

/* The boundary of the rule: with every voter up, a voter that has not
 * connected yet may be added to three (3 reachable of 4, quorum 3). */
static void test_add_voter_allowed_while_quorum_stays_reachable(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  fx_isolate(&f, 4, true);
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_ADD_VOTER, 4, "node4", 0, &ci, why), 0);
  fx_free(&f);
}

/* etcd IsReadyToRemoveVotingMember: with one voter of three down, removing a
 * reachable one leaves 1 reachable of 2: refused; removing the down one
 * leaves 2 of 2: allowed. */
static void test_remove_refused_when_remaining_reachable_voters_fall_below_quorum(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id up = l % 3 + 1, down = up % 3 + 1;
  fx_crash(&f, down);
  fx_run(&f, 150);
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_REMOVE, up, NULL, 0, &ci, why), RAFT_EUNSAFE);
  assert_non_null(strstr(why, "1 of 2 voters would be reachable"));
  assert_int_equal(change(&f, l, RAFT_REMOVE, l, NULL, 0, &ci, why), RAFT_EUNSAFE);
  assert_int_equal(change(&f, l, RAFT_REMOVE, down, NULL, 0, &ci, why), 0);
  fx_run(&f, 20);
  assert_true(fx_commit(&f, l) >= ci);
  assert_false(has_member(&f, up, down));
  fx_free(&f);
}

/* Right after an election the leader has not heard from every voter; when
 * the verdict depends on such a voter the answer is RAFT_ENOTREADY (it
 * settles within election_ms), not a premature RAFT_EUNSAFE. */
static void test_young_leader_answers_notready_when_reachability_unknown(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 0, &o);
  fx_isolate(&f, 3, true);
  raft_id l = fx_run_until_leader(&f, 1000);
  assert_true(l == 1 || l == 2);
  while (fx_commit(&f, l) < fx_last(&f, l))
    assert_true(fx_step(&f));
  raft_id other = l == 1 ? 2 : 1;
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_REMOVE, other, NULL, 0, &ci, why), RAFT_ENOTREADY);
  assert_non_null(strstr(why, "not heard from every voter"));
  fx_run(&f, 100);
  assert_int_equal(fx_role(&f, l), RAFT_LEADER);
  assert_int_equal(change(&f, l, RAFT_REMOVE, other, NULL, 0, &ci, why), RAFT_EUNSAFE);
  fx_free(&f);
}

/* A leader keeps replicating to the node it removes until the removal
 * commits (etcd removes the progress only when the change is applied), so
 * that node receives the entry, learns it is no longer a member, and never
 * campaigns; afterwards the leader stops sending to it. */
static void test_removed_follower_learns_its_removal(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id x = l % 3 + 1;
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_REMOVE, x, NULL, 0, &ci, why), 0);
  assert_true(fx_run_until_applied(&f, x, ci, 1000));
  assert_false(has_member(&f, x, x));
  struct raft_status st;
  raft_status(fx_r(&f, x), &st);
  assert_false(st.is_member);
  /* released: nothing more goes to it, and it never campaigns */
  fx_run(&f, 50);
  struct counter c = {x, 0};
  f.filter = count_to;
  f.filter_arg = &c;
  fx_reset_sent(&f);
  fx_run(&f, 500);
  assert_int_equal(c.n, 0);
  assert_int_equal(fx_sent(&f, x, RAFT_MSG_PRE_VOTE) + fx_sent(&f, x, RAFT_MSG_VOTE), 0);
  fx_free(&f);
}

/* The removed node's acknowledgements are never counted (thesis 4.1: the
 * new configuration decides from the moment it is appended): with the other
 * remaining voter's answers cut, the removal does not commit although the
 * removed node acknowledges it. A removed node that then stays silent for
 * election_ms after the commit is let go. */
static void test_removed_node_is_not_counted_and_released_when_silent(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id a = l % 3 + 1, x = a % 3 + 1;
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_REMOVE, x, NULL, 0, &ci, why), 0);
  fx_cut(&f, a, l, true);
  fx_run(&f, 30);
  assert_false(has_member(&f, x, x)); /* x has the entry and acknowledged it */
  assert_true(fx_commit(&f, l) < ci); /* but only {l, a} count */
  fx_cut(&f, a, l, false);
  fx_cut(&f, x, l, true); /* x hears the leader, the leader no longer hears x */
  fx_run(&f, 20);
  assert_true(fx_commit(&f, l) >= ci);
  struct raft_progress_info pi[8];
  uint32_t n = raft_progress(fx_r(&f, l), pi, 8);
  bool kept = false;
  for (uint32_t i = 0; i < n; i++)
    kept |= pi[i].id == x && pi[i].role == 0;
  assert_true(kept);
  fx_run(&f, 150);
  n = raft_progress(fx_r(&f, l), pi, 8);
  assert_int_equal(n, 2);
  for (uint32_t i = 0; i < n; i++)
    assert_true(pi[i].id != x);
  fx_free(&f);
}

/* A new leader whose log ends in an uncommitted removal replicates to the
 * removed node as well: it learns its removal even though the leader that
 * appended the entry is gone. */
static void test_next_leader_replicates_uncommitted_removal_to_removed_node(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 5, 0, &o);
  raft_id a = l % 5 + 1, b = a % 5 + 1, c = b % 5 + 1, x = c % 5 + 1;
  raft_index ci;
  char why[256];
  fx_cut(&f, l, b, true);
  fx_cut(&f, l, c, true);
  fx_cut(&f, l, x, true);
  assert_int_equal(change(&f, l, RAFT_REMOVE, x, NULL, 0, &ci, why), 0);
  fx_run(&f, 5);
  assert_true(fx_last(&f, a) >= ci);
  assert_true(fx_commit(&f, l) < ci); /* L and A: not a quorum of four */
  assert_int_equal(raft_transfer(fx_r(&f, l), f.now, a), 0);
  fx_drain(&f, l);
  while (fx_leader(&f) != a)
    assert_true(fx_step(&f));
  fx_crash(&f, l);
  fx_heal(&f);
  assert_true(fx_run_until_applied(&f, x, ci, 1000));
  assert_false(has_member(&f, x, x));
  fx_free(&f);
}

/* Thesis 4.2.2: a leader that removes itself steps down once the removal
 * commits; it first tells the others the commit index and sends TIMEOUT_NOW
 * to an up-to-date voter (thesis 3.10), so the remaining nodes apply the
 * removal and elect a leader without waiting out an election timeout. */
static void test_leader_removal_is_applied_by_the_rest_at_once(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  raft_index ci;
  char why[256];
  assert_int_equal(change(&f, l, RAFT_REMOVE, l, NULL, 0, &ci, why), 0);
  uint64_t t0 = f.now;
  assert_true(fx_run_until_applied(&f, l, ci, 1000)); /* done for its host */
  assert_int_equal(fx_role(&f, l), RAFT_FOLLOWER);
  assert_true(fx_run_until_applied(&f, a, ci, 10));
  assert_true(fx_run_until_applied(&f, b, ci, 10));
  raft_id nl = fx_run_until_leader(&f, 1000);
  assert_true(nl == a || nl == b);
  assert_true(f.now - t0 < o.election_ms); /* no election timeout waited out */
  raft_index idx;
  assert_int_equal(fx_propose(&f, nl, "after", &idx), 0);
  assert_true(fx_run_until_applied(&f, a, idx, 1000));
  assert_true(f.nodes[l].applied < idx); /* the removed node gets nothing more */
  fx_free(&f);
}

static bool drop_timeout_now(struct fx *f, const struct raft_message *m, void *arg) {
  (void)f;
  (void)arg;
  return m->type != RAFT_MSG_TIMEOUT_NOW;
}

/* Same, with TIMEOUT_NOW lost: the removed leader sent the commit index
 * before stepping down, so the others apply the removal before any new
 * election (which then takes an election timeout). */
static void test_leader_removal_commit_reaches_the_rest_without_an_election(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id a = l % 3 + 1, b = a % 3 + 1;
  raft_index ci;
  char why[256];
  f.filter = drop_timeout_now;
  assert_int_equal(change(&f, l, RAFT_REMOVE, l, NULL, 0, &ci, why), 0);
  assert_true(fx_run_until_applied(&f, l, ci, 1000));
  assert_true(fx_run_until_applied(&f, a, ci, 10));
  assert_true(fx_run_until_applied(&f, b, ci, 10));
  assert_int_equal(fx_leader(&f), 0);
  fx_free(&f);
}

/* The core sees addresses as opaque text but keeps them bounded and
 * printable, and refuses two members on one address (etcd: a peer URL
 * that exists). host:port syntax is the host's job. */
static void test_address_checks(void **state) {
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 1, &o);
  raft_index ci;
  char why[256];
  char big[RAFT_ADDRESS_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, big, 0, &ci, why), RAFT_EADDRESS);
  assert_non_null(strstr(why, "at most 255"));
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node\n4", 0, &ci, why), RAFT_EADDRESS);
  assert_non_null(strstr(why, "control character"));
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, "node2", 0, &ci, why), RAFT_EBADCONF);
  assert_non_null(strstr(why, "already used by member 2"));
  big[RAFT_ADDRESS_MAX] = '\0';
  assert_int_equal(change(&f, l, RAFT_ADD_LEARNER, 4, big, 0, &ci, why), 0);
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_TEST(test_add_learner_then_promote),
      FX_TEST(test_one_change_at_a_time),
      FX_TEST(test_removed_leader_steps_down_after_commit),
      FX_TEST(test_config_reverts_when_its_entry_is_truncated),
      FX_TEST(test_transfer_catches_target_up_then_hands_over),
      FX_TEST(test_transfer_aborts_after_timeout),
      FX_TEST(test_step_down),
      FX_TEST(test_config_decode_is_strict),
      FX_TEST(test_new_leader_refuses_change_with_notready_until_own_term_commit),
      FX_TEST(test_promote_refuses_learner_never_heard_from),
      FX_TEST(test_promote_refuses_learner_silent_for_election_ms),
      FX_TEST(test_promote_refuses_learner_behind_by_more_than_max_promote_lag),
      FX_TEST(test_add_voter_refused_when_reachable_voters_fall_below_quorum),
      FX_TEST(test_add_voter_to_single_node_cluster_needs_force),
      FX_TEST(test_add_voter_allowed_while_quorum_stays_reachable),
      FX_TEST(test_remove_refused_when_remaining_reachable_voters_fall_below_quorum),
      FX_TEST(test_young_leader_answers_notready_when_reachability_unknown),
      FX_TEST(test_removed_follower_learns_its_removal),
      FX_TEST(test_removed_node_is_not_counted_and_released_when_silent),
      FX_TEST(test_next_leader_replicates_uncommitted_removal_to_removed_node),
      FX_TEST(test_leader_removal_is_applied_by_the_rest_at_once),
      FX_TEST(test_leader_removal_commit_reaches_the_rest_without_an_election),
      FX_TEST(test_address_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
