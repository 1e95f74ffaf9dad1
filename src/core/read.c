/* Linearizable reads without log writes (thesis 6.4): ReadIndex, batched
 * so one heartbeat round confirms every read queued before it, and lease
 * reads (thesis 6.4.1). */
#include "raft_int.h"

/* Thesis 6.4 step 1: "If the leader has not yet marked an entry from its
 * current term committed, it waits until it has done so" (tikv#9239: also
 * right after a leadership transfer). */
bool raft__committed_own_term(const struct raft *r) {
  return r->role == RAFT_LEADER && r->commit >= r->term_start &&
         raft__log_term(&r->log, r->commit) == r->term;
}

static void answer(struct raft *r, const struct raft__read *q, raft_index index, int err) {
  if (q->from == 0) {
    raft__push_read(r, q->ctx, index, err);
    return;
  }
  struct raft_message *m = raft__send(r, RAFT_MSG_READ_INDEX_RESP, q->from, false);
  if (m == NULL) return;
  m->term = 0;
  m->context = q->ctx;
  m->index = index;
  m->reject = err != 0;
  m->hint_index = err != 0 ? (raft_index)(-err) : 0;
}

/* Step 2: record the commit index as the read index, then confirm
 * leadership with a round of heartbeats sent after that moment. */
static void start_round(struct raft *r, struct raft__read *q) {
  q->index = r->commit;
  q->round = r->round + 1;
  r->hb_pending = true;
}

static int enqueue(struct raft *r, uint64_t ctx, raft_id from) {
  if (r->n_rq == r->cap_rq) {
    uint32_t cap = r->cap_rq ? r->cap_rq * 2 : 16;
    struct raft__read *a = raft_realloc(r->rq, cap * sizeof *a);
    if (a == NULL) return RAFT_ENOMEM;
    r->rq = a;
    r->cap_rq = cap;
  }
  struct raft__read *q = &r->rq[r->n_rq++];
  q->ctx = ctx;
  q->from = from;
  q->index = 0;
  q->round = 0;
  if (raft__committed_own_term(r)) {
    start_round(r, q);
  }
  raft__reads_on_ack(r); /* a single voter confirms itself */
  return 0;
}

void raft__reads_on_commit(struct raft *r) {
  if (!raft__committed_own_term(r)) {
    return;
  }
  for (uint32_t i = 0; i < r->n_rq; i++) {
    if (r->rq[i].round == 0) {
      start_round(r, &r->rq[i]);
    }
  }
  raft__reads_on_ack(r);
}

/* Step 3: once a quorum answered a round, every read of that round or an
 * earlier one may be served at its read index. */
void raft__reads_on_ack(struct raft *r) {
  if (r->n_rq == 0) {
    return;
  }
  uint64_t confirmed = raft__quorum_round(r);
  uint32_t k = 0;
  for (uint32_t i = 0; i < r->n_rq; i++) {
    struct raft__read *q = &r->rq[i];
    if (q->round != 0 && q->round <= confirmed) {
      answer(r, q, q->index, 0);
    } else {
      r->rq[k++] = *q;
    }
  }
  r->n_rq = k;
}

void raft__reads_fail(struct raft *r, int err) {
  for (uint32_t i = 0; i < r->n_rq; i++) {
    answer(r, &r->rq[i], 0, err);
  }
  r->n_rq = 0;
}

int raft_read_index(struct raft *r, uint64_t now, uint64_t ctx) {
  raft__begin(r, now);
  int rv = 0;
  if (r->role == RAFT_LEADER) {
    rv = enqueue(r, ctx, 0);
  } else if (r->leader != 0) {
    /* followers forward to the leader (thesis 6.4, "followers ... can
     * request the current commit index from the leader") */
    struct raft_message *m = raft__send(r, RAFT_MSG_READ_INDEX, r->leader, false);
    if (m == NULL) {
      rv = RAFT_ENOMEM;
    } else {
      m->term = 0;
      m->context = ctx;
    }
  } else {
    rv = RAFT_ENOTLEADER;
  }
  raft__check(r);
  return rv;
}

void raft__recv_read_index(struct raft *r, const struct raft_message *m) {
  struct raft__read q = {m->context, m->from, 0, 0};
  if (r->role != RAFT_LEADER) {
    answer(r, &q, 0, RAFT_ENOTLEADER);
    return;
  }
  if (enqueue(r, m->context, m->from) != 0) {
    answer(r, &q, 0, RAFT_ENOMEM);
  }
}

void raft__recv_read_index_resp(struct raft *r, const struct raft_message *m) {
  if (m->reject && (m->hint_index == 0 || m->hint_index > 64)) {
    r->n_malformed++;
    return;
  }
  raft__push_read(r, m->context, m->index, m->reject ? -(int)m->hint_index : 0);
}

/* Thesis 6.4.1: the leader uses "the normal heartbeat mechanism to maintain
 * a lease": a quorum answered heartbeats sent less than an election timeout
 * ago, so no other leader can have been elected meanwhile (followers in
 * lease ignore votes, thesis 4.2.3). Assumes bounded clock drift. */
int raft_lease_read(struct raft *r, uint64_t now, raft_index *index) {
  raft__begin(r, now);
  if (r->role != RAFT_LEADER) {
    return RAFT_ENOTLEADER;
  }
  if (!r->o.check_quorum || r->transfer_to != 0 || !raft__committed_own_term(r)) {
    return RAFT_ENOLEASE;
  }
  uint64_t t = raft__quorum_time(r, true);
  if (t == 0 || r->now - t >= r->o.election_ms) {
    return RAFT_ENOLEASE;
  }
  if (index != NULL) *index = r->commit;
  return 0;
}
