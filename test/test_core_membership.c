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

static raft_id setup(struct fx *f, uint32_t n, uint32_t extra, struct raft_options *o)
{
  fx_init(f, n, extra, o);
  raft_id l = fx_run_until_leader(f, 1000);
  assert_true(l != 0);
  fx_run(f, 20);
  return l;
}

static const struct raft_config *config_of(struct fx *f, raft_id id)
{
  struct raft_status s;
  raft_status(fx_r(f, id), &s);
  return s.config;
}

/* Thesis 4.2.1: a new server joins as a learner, catches up, is promoted;
 * learners never campaign, even when they hear no leader. */
static void test_add_learner_then_promote(void **state)
{
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
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_PROMOTE, 4, NULL, &ci), 0);
  fx_drain(&f, l);
  assert_true(fx_run_until_applied(&f, 4, ci, 1000));
  assert_int_equal(raft_config_get(config_of(&f, 4), 4)->role, RAFT_VOTER);
  fx_free(&f);
}

/* Thesis 4.1: one change at a time (RAFT_ECONFPENDING while one is
 * uncommitted), and not before the leader committed an entry of its term. */
static void test_one_change_at_a_time(void **state)
{
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  fx_init(&f, 3, 2, &o);
  raft_id l = fx_run_until_leader(&f, 1000);
  raft_index ci;
  /* the NOOP of this term is not committed yet */
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "", &ci), RAFT_ECONFPENDING);
  fx_run(&f, 20);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "", &ci), 0);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 5, "", &ci), RAFT_ECONFPENDING);
  fx_drain(&f, l);
  fx_run(&f, 20);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_ADD_LEARNER, 4, "", &ci), RAFT_EBADCONF);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_PROMOTE, 1, "", &ci), RAFT_EBADCONF);
  assert_int_equal(raft_change(fx_r(&f, l), f.now, RAFT_REMOVE, 6, "", &ci), RAFT_EBADCONF);
  assert_int_equal(raft_change(fx_r(&f, l % 3 + 1), f.now, RAFT_ADD_LEARNER, 5, "", &ci), RAFT_ENOTLEADER);
  fx_free(&f);
}

/* Thesis 4.2.2: a leader that removes itself keeps leading until the
 * change commits, then steps down; the rest elect a new leader. */
static void test_removed_leader_steps_down_after_commit(void **state)
{
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
static void test_config_reverts_when_its_entry_is_truncated(void **state)
{
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
static void test_transfer_catches_target_up_then_hands_over(void **state)
{
  (void)state;
  struct fx f;
  struct raft_options o = fx_opts();
  raft_id l = setup(&f, 3, 0, &o);
  raft_id t = l % 3 + 1;
  fx_isolate(&f, t, true);
  raft_index idx;
  for (int i = 0; i < 10; i++) fx_propose(&f, l, "x", &idx);
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
static void test_transfer_aborts_after_timeout(void **state)
{
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
static void test_step_down(void **state)
{
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
static void test_config_decode_is_strict(void **state)
{
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

int main(void)
{
  const struct CMUnitTest tests[] = {
      FX_TEST(test_add_learner_then_promote),
      FX_TEST(test_one_change_at_a_time),
      FX_TEST(test_removed_leader_steps_down_after_commit),
      FX_TEST(test_config_reverts_when_its_entry_is_truncated),
      FX_TEST(test_transfer_catches_target_up_then_hands_over),
      FX_TEST(test_transfer_aborts_after_timeout),
      FX_TEST(test_step_down),
      FX_TEST(test_config_decode_is_strict),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
