/* Elections (thesis 3.4, 3.6, 9.6 pre-vote, 4.2.3 disruptive servers) and
 * leadership transfer (thesis 3.10). */
#include "raft_int.h"

/* Thesis 3.4: "Raft uses randomized election timeouts ... chosen randomly
 * from a fixed interval", here [election_ms, 2 * election_ms). */
void raft__reset_election_timer(struct raft *r) {
  r->elect_start = r->now;
  r->elect_timeout = r->o.election_ms + raft__random(r) % r->o.election_ms;
}

void raft__become_follower(struct raft *r, raft_term term, raft_id leader) {
  bool was_leader = r->role == RAFT_LEADER;
  raft__set_term(r, term);
  if (r->role != RAFT_FOLLOWER) {
    r->role = RAFT_FOLLOWER;
    r->soft_dirty = true;
  }
  raft__set_leader(r, leader);
  if (was_leader) {
    raft__progress_release(r, true); /* removed nodes: the next leader's job */
    raft__reads_fail(r, RAFT_ENOTLEADER);
    r->transfer_to = 0;
    r->uncommitted = 0;
    r->bcast_pending = false;
    r->hb_pending = false;
  }
  raft__reset_election_timer(r);
  if (leader != 0) {
    r->leader_seen = r->now;
  }
}

/* A new leader whose newest CONFIG entry may not be committed replicates
 * to the members that entry removed too, as the leader that appended it
 * did (see raft__progress_rebuild). */
static void add_leaving(struct raft *r) {
  struct raft_config prev;
  raft_index ci;
  if (r->config_index <= r->commit || r->config_index <= 1 ||
      raft__config_at(r, r->config_index - 1, &prev, &ci) != 0) {
    return;
  }
  raft__progress_add_leaving(r, &prev, r->config_index);
  raft_config_free(&prev);
}

/* Thesis 3.4: a leader sends heartbeats at once; thesis 6.4: it appends a
 * no-op entry so it learns which entries are committed (and so reads, which
 * wait for the first commit of its term, can be served). */
void raft__become_leader(struct raft *r) {
  r->role = RAFT_LEADER;
  r->soft_dirty = true;
  raft__set_leader(r, r->o.id);
  raft__progress_reset(r);
  r->leader_since = r->now;
  r->transfer_to = 0;
  r->uncommitted = 0;
  r->hb_due = r->now + r->o.heartbeat_ms;
  add_leaving(r);
  if (raft__append_local(r, RAFT_ENTRY_NOOP, NULL, 0) != 0) {
    raft__become_follower(r, r->term, 0); /* UNTESTED: out of memory */
    return;
  }
  r->term_start = raft__log_last(&r->log);
  raft__maybe_commit(r);
}

static void clear_votes(struct raft *r) {
  for (uint32_t i = 0; i < r->n_prs; i++) {
    r->prs[i].vote = r->prs[i].id == r->o.id ? 1 : 0;
  }
}

static void tally(const struct raft *r, uint32_t *yes, uint32_t *no) {
  *yes = *no = 0;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    if (r->prs[i].role == RAFT_VOTER) {
      *yes += r->prs[i].vote == 1;
      *no += r->prs[i].vote == 2;
    }
  }
}

static void request_votes(struct raft *r, int type, raft_term term, bool transfer) {
  for (uint32_t i = 0; i < r->n_prs; i++) {
    const struct raft__progress *p = &r->prs[i];
    if (p->id == r->o.id || p->role != RAFT_VOTER) {
      continue;
    }
    /* a vote request depends on the persisted term and vote */
    struct raft_message *m = raft__send(r, type, p->id, type == RAFT_MSG_VOTE);
    if (m == NULL) continue;
    m->term = term;
    m->index = raft__log_last(&r->log);
    m->log_term = raft__log_last_term(&r->log);
    m->context = transfer ? 1 : 0;
  }
}

/* Both polls start alike: take the role, forget the leader, restart the
 * election timer and count our own vote. -> true when that vote alone is a
 * quorum (a single voter), so the poll is already won. */
static bool start_poll(struct raft *r, int role) {
  r->role = role;
  r->soft_dirty = true;
  raft__set_leader(r, 0);
  raft__reset_election_timer(r);
  clear_votes(r);
  uint32_t yes, no;
  tally(r, &yes, &no);
  return yes >= raft__quorum(r);
}

/* Thesis 9.6: "a candidate would first ask other servers whether its log
 * was up-to-date enough to get their vote"; the pre-candidate keeps its
 * term. It forgets its leader (etcd#8334), so it is never "in lease" and
 * grants other pre-candidates (etcd#9586). */
static void pre_campaign(struct raft *r) {
  if (start_poll(r, RAFT_PRE_CANDIDATE)) {
    raft__campaign(r, false);
    return;
  }
  request_votes(r, RAFT_MSG_PRE_VOTE, r->term + 1, false);
}

/* Thesis 3.4: "a follower increments its current term and transitions to
 * candidate state. It then votes for itself and issues RequestVote RPCs". */
void raft__campaign(struct raft *r, bool transfer) {
  if (!raft__is_voter(r, r->o.id)) {
    return;
  }
  raft__set_term(r, r->term + 1);
  raft__set_vote(r, r->o.id);
  if (start_poll(r, RAFT_CANDIDATE)) {
    raft__become_leader(r);
    return;
  }
  request_votes(r, RAFT_MSG_VOTE, r->term, transfer);
}

void raft__start_election(struct raft *r) {
  if (!raft__is_voter(r, r->o.id)) {
    return; /* learners and non-members never campaign (thesis 4.2.1) */
  }
  if (r->o.pre_vote) {
    pre_campaign(r);
  } else {
    raft__campaign(r, false);
  }
}

/* Thesis 4.2.3: "if a server receives a RequestVote request within the
 * minimum election timeout of hearing from a current leader, it does not
 * update its term or grant its vote". Only a follower that knows a leader
 * (or a leader with a live quorum) is in lease; pre-candidates are not. */
bool raft__in_lease(const struct raft *r) {
  if (!r->o.check_quorum) {
    return false;
  }
  if (r->role == RAFT_LEADER) {
    return r->now - raft__quorum_time(r, false) < r->o.election_ms;
  }
  return r->role == RAFT_FOLLOWER && r->leader != 0 && r->now - r->leader_seen < r->o.election_ms;
}

/* Thesis 3.6.1: grant only a candidate whose log is at least as up-to-date:
 * "the log with the later term is more up-to-date; if the logs end with the
 * same term, whichever log is longer is more up-to-date". One vote per term
 * (3.4); the vote response waits until the vote is durable (msgs_after). */
void raft__recv_vote(struct raft *r, const struct raft_message *m) {
  bool pre = m->type == RAFT_MSG_PRE_VOTE;
  raft_term lt = raft__log_last_term(&r->log);
  bool can = r->vote == m->from || (r->vote == 0 && r->leader == 0) || (pre && m->term > r->term);
  bool fresh = m->log_term > lt || (m->log_term == lt && m->index >= raft__log_last(&r->log));
  bool grant = can && fresh;
  if (grant && !pre) {
    raft__set_vote(r, m->from);
    raft__reset_election_timer(r);
  }
  struct raft_message *resp =
      raft__send(r, pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, m->from, !pre);
  if (resp == NULL) return;
  resp->term = grant ? m->term : r->term;
  resp->reject = !grant;
}

void raft__recv_vote_resp(struct raft *r, const struct raft_message *m) {
  bool pre = m->type == RAFT_MSG_PRE_VOTE_RESP;
  if (r->role != (pre ? RAFT_PRE_CANDIDATE : RAFT_CANDIDATE)) {
    return;
  }
  if (pre && !m->reject && m->term != r->term + 1) {
    return;
  }
  struct raft__progress *p = raft__progress_get(r, m->from);
  if (p == NULL || p->role != RAFT_VOTER) {
    return;
  }
  p->vote = m->reject ? 2 : 1;
  uint32_t yes, no, q = raft__quorum(r);
  tally(r, &yes, &no);
  if (yes >= q) {
    if (pre) {
      raft__campaign(r, false);
    } else {
      raft__become_leader(r);
    }
  } else if (raft__voters(r) - no < q) {
    raft__become_follower(r, r->term, 0);
  }
}

void raft__election_tick(struct raft *r) {
  if (r->now >= r->elect_start + r->elect_timeout) {
    raft__start_election(r);
    if (r->role == RAFT_FOLLOWER) {
      raft__reset_election_timer(r); /* not a voter: look again later */
    }
  }
}

/* ---- leadership transfer (thesis 3.10) ----------------------------------- */

static struct raft__progress *best_target(struct raft *r) {
  struct raft__progress *best = NULL;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    struct raft__progress *p = &r->prs[i];
    if (p->id != r->o.id && p->role == RAFT_VOTER && (best == NULL || p->match > best->match)) {
      best = p;
    }
  }
  return best;
}

/* Thesis 3.10: "the prior leader sends its log entries to the target
 * server ... once the target server is caught up, the prior leader sends it
 * a TimeoutNow request". A lease must not outlive that request: the target
 * campaigns without waiting for the old leader's lease to expire. */
void raft__transfer_check(struct raft *r, struct raft__progress *p) {
  if (r->transfer_to == 0 || p->id != r->transfer_to || p->match < raft__log_last(&r->log)) {
    return;
  }
  struct raft_message *m = raft__send(r, RAFT_MSG_TIMEOUT_NOW, p->id, false);
  (void)m;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    r->prs[i].lease_time = 0;
  }
}

void raft__transfer_abort(struct raft *r) {
  r->transfer_to = 0;
}

int raft_transfer(struct raft *r, uint64_t now, raft_id target) {
  raft__begin(r, now);
  if (r->role != RAFT_LEADER) {
    return RAFT_ENOTLEADER;
  }
  struct raft__progress *p = target == 0 ? best_target(r) : raft__progress_get(r, target);
  if (p == NULL || p->id == r->o.id || p->role != RAFT_VOTER) {
    return RAFT_EINVAL;
  }
  r->transfer_to = p->id;
  r->transfer_deadline = r->now + r->o.transfer_timeout_ms;
  raft__transfer_check(r, p);
  if (p->match < raft__log_last(&r->log)) {
    raft__send_append(r, p, false);
  }
  raft__check(r);
  return 0;
}

void raft__recv_timeout_now(struct raft *r, const struct raft_message *m) {
  if (r->role == RAFT_LEADER || m->from != r->leader) {
    return;
  }
  raft__campaign(r, true); /* thesis 3.10: no pre-vote, no lease wait */
}

/* Gives up leadership at once; the cluster elects a new leader after an
 * election timeout. Use raft_transfer for a hand-over without that gap. */
int raft_step_down(struct raft *r, uint64_t now) {
  raft__begin(r, now);
  if (r->role != RAFT_LEADER) {
    return RAFT_ENOTLEADER;
  }
  raft__become_follower(r, r->term, 0);
  raft__check(r);
  return 0;
}
