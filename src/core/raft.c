/* A node: creation from what storage loaded, the dispatch of inputs
 * (step, tick, propose, acknowledgements) and introspection.
 *
 * Every input runs raft__begin (the previous update dies), does its work
 * and ends with raft__check, which asserts the node's invariants. */
#include <stdio.h>
#include <string.h>

#include "raft_int.h"

#define CHUNK_TOTAL_MAX ((uint64_t)1 << 40)

int raft_options_check(struct raft_options *o, char *err, size_t errlen) {
  const char *msg = NULL;
  if (o->election_ms == 0) o->election_ms = 300;
  if (o->heartbeat_ms == 0) o->heartbeat_ms = o->election_ms >= 60 ? 50 : 1;
  if (o->max_entry_bytes == 0) o->max_entry_bytes = 1 << 20;
  if (o->max_append_bytes == 0) o->max_append_bytes = 1 << 20;
  if (o->max_inflight_msgs == 0) o->max_inflight_msgs = 64;
  if (o->max_uncommitted_bytes == 0) o->max_uncommitted_bytes = (uint64_t)64 << 20;
  if (o->snapshot_chunk_bytes == 0) o->snapshot_chunk_bytes = 256 << 10;
  if (o->snapshot_trailing == 0) o->snapshot_trailing = 100;
  if (o->transfer_timeout_ms == 0) o->transfer_timeout_ms = o->election_ms;
  if (o->max_promote_lag == 0) o->max_promote_lag = 1000;
  if (o->id == 0) {
    msg = "id must be a positive integer";
  } else if (o->heartbeat_ms >= o->election_ms) {
    msg = "election_ms must be greater than heartbeat_ms";
  } else if (o->election_ms > (1u << 30)) {
    msg = "election_ms is too large";
  } else if (o->max_inflight_msgs > (1u << 16)) {
    msg = "max_inflight_msgs must be at most 65536";
  }
  if (msg != NULL) {
    if (err != NULL && errlen > 0) {
      snprintf(err, errlen, "%s", msg);
    }
    return RAFT_EINVAL;
  }
  return 0;
}

/* splitmix64: small, fast and good enough for election jitter; the one
 * copy in the tree (the simulator seeds from it, the transport jitters
 * reconnects with it). */
uint64_t raft_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t raft__random(struct raft *r) {
  return raft_splitmix64(&r->rng);
}

void raft__set_term(struct raft *r, raft_term term) {
  RAFT_ASSERT(term >= r->term);
  if (term > r->term) {
    r->term = term;
    r->vote = 0;
    r->hs_dirty = true;
  }
}

void raft__set_vote(struct raft *r, raft_id vote) {
  RAFT_ASSERT(r->vote == 0 || r->vote == vote);
  if (r->vote != vote) {
    r->vote = vote;
    r->hs_dirty = true;
  }
}

void raft__set_leader(struct raft *r, raft_id leader) {
  if (r->leader != leader) {
    r->leader = leader;
    r->soft_dirty = true;
  }
}

void raft__mark_unstable(struct raft *r, raft_index from) {
  if (r->unstable_from == 0 || from < r->unstable_from) {
    r->unstable_from = from;
  }
}

void raft__check(struct raft *r) {
  raft_index last = raft__log_last(&r->log);
  RAFT_ASSERT(r->term >= r->chk_term);
  if (r->term == r->chk_term && r->chk_vote != 0) {
    RAFT_ASSERT(r->vote == r->chk_vote); /* one vote per term */
  }
  RAFT_ASSERT(r->commit >= r->chk_commit);
  RAFT_ASSERT(r->emitted <= r->commit);
  RAFT_ASSERT(r->commit <= last);
  RAFT_ASSERT(r->persisted <= last);
  RAFT_ASSERT(r->role != RAFT_LEADER || r->leader == r->o.id);
  r->chk_term = r->term;
  r->chk_vote = r->vote;
  r->chk_commit = r->commit;
}

static int boot_log(struct raft *r, const struct raft_boot *b) {
  for (uint32_t i = 0; i < b->n_entries; i++) {
    const struct raft_entry *e = &b->entries[i];
    if (e->index != raft__log_last(&r->log) + 1 || e->term < raft__log_last_term(&r->log) ||
        e->term == 0 || (e->len > 0 && e->data == NULL)) {
      return RAFT_EINVAL;
    }
    int rv = raft__log_append(&r->log, e->term, e->type, e->data, e->len);
    if (rv != 0) {
      return rv;
    }
    if (e->type == RAFT_ENTRY_CONFIG) {
      rv = raft__config_apply_entry(r, raft__log_get(&r->log, e->index));
      if (rv != 0) {
        return rv;
      }
    }
  }
  return 0;
}

static int boot(struct raft *r, const struct raft_boot *b) {
  int rv;
  if (b->snapshot != NULL) {
    const struct raft_snapshot *s = b->snapshot;
    if (!raft__snap_meta_valid(&s->meta) || (s->len > 0 && s->data == NULL)) {
      return RAFT_EINVAL;
    }
    raft__log_init(&r->log, s->meta.index, s->meta.term);
    rv = raft__snapshot_set(r, s);
    if (rv == 0) rv = raft_config_copy(&s->meta.config, &r->base_config);
    if (rv == 0) rv = raft__config_set(r, &s->meta.config, s->meta.config_index);
    if (rv != 0) return rv;
    r->base_config_index = s->meta.config_index;
  }
  rv = boot_log(r, b);
  if (rv != 0) {
    return rv;
  }
  r->term = b->term;
  r->vote = b->vote;
  r->persisted = raft__log_last(&r->log);
  r->commit = r->emitted = r->log.offset;
  return raft__progress_rebuild(r);
}

int raft_new(const struct raft_options *o, const struct raft_boot *b, uint64_t now,
             struct raft **out) {
  struct raft_options opts = *o;
  int rv = raft_options_check(&opts, NULL, 0);
  if (rv != 0) {
    return rv;
  }
  struct raft *r = raft_malloc(sizeof *r);
  if (r == NULL) {
    return RAFT_ENOMEM;
  }
  memset(r, 0, sizeof *r);
  r->o = opts;
  r->now = now;
  r->rng = opts.seed ^ (opts.id * 0xd1b54a32d192ed03ULL);
  r->role = RAFT_FOLLOWER;
  static const struct raft_boot empty;
  rv = boot(r, b != NULL ? b : &empty);
  if (rv != 0) {
    raft_free_node(r);
    return rv;
  }
  raft__reset_election_timer(r);
  r->chk_term = r->term;
  r->chk_vote = r->vote;
  r->chk_commit = r->commit;
  r->conf_dirty = r->config.n > 0;
  *out = r;
  return 0;
}

void raft_free_node(struct raft *r) {
  if (r == NULL) {
    return;
  }
  r->taken = true;
  raft__begin(r, r->now);
  raft__log_free(&r->log);
  raft_config_free(&r->config);
  raft_config_free(&r->base_config);
  for (uint32_t i = 0; i < r->n_prs; i++) {
    raft_free(r->prs[i].infl.buf);
  }
  raft_free(r->prs);
  raft_free(r->rq);
  raft__snapshot_free(r);
  raft_free(r->in.buf);
  raft_config_free(&r->in.meta.config);
  if (r->installed_pending) {
    r->installed_out = true;
    r->taken = true;
    raft__begin(r, r->now);
  }
  raft_free(r->msgs.m);
  raft_free(r->after.m);
  raft_free(r->reads);
  raft_free(r->perrs);
  raft_free(r->bufs);
  raft_free(r);
}

static bool is_local_type(int t) {
  return t == RAFT_MSG_PROPOSE || t == RAFT_MSG_PROPOSE_RESP || t == RAFT_MSG_READ_INDEX ||
         t == RAFT_MSG_READ_INDEX_RESP;
}

static bool entries_valid(const struct raft_message *m) {
  if (m->n_entries == 0) {
    return true;
  }
  if (m->entries == NULL || m->n_entries > RAFT__ENTRIES_MAX ||
      m->index > UINT64_MAX - m->n_entries) {
    return false;
  }
  raft_term prev = m->log_term;
  for (uint32_t i = 0; i < m->n_entries; i++) {
    const struct raft_entry *e = &m->entries[i];
    if ((m->type == RAFT_MSG_APPEND && e->index != m->index + 1 + i) ||
        e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONFIG ||
        (e->len > 0 && e->data == NULL)) {
      return false;
    }
    if (m->type == RAFT_MSG_APPEND && (e->term < prev || e->term > m->term)) {
      return false;
    }
    prev = e->term;
  }
  return true;
}

/* A message from the network can be anything: this is the only gate. */
bool raft__msg_valid(const struct raft *r, const struct raft_message *m) {
  if (m == NULL || m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 ||
      m->from == r->o.id || m->to != r->o.id) {
    return false;
  }
  if (m->term == 0 && !is_local_type(m->type)) {
    return false;
  }
  if (m->log_term > m->term && !is_local_type(m->type)) {
    return false;
  }
  if (m->n_entries > 0 && m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE) {
    return false;
  }
  if (m->type == RAFT_MSG_PROPOSE &&
      (m->n_entries != 1 || m->entries == NULL || m->entries[0].type != RAFT_ENTRY_NORMAL)) {
    return false;
  }
  if (!entries_valid(m)) {
    return false;
  }
  if (m->type == RAFT_MSG_SNAPSHOT) {
    if (m->total > CHUNK_TOTAL_MAX || m->offset > m->total || m->chunk_len > m->total - m->offset ||
        (m->chunk_len > 0 && m->chunk == NULL) ||
        m->done != (m->offset + m->chunk_len == m->total) || !raft__snap_meta_valid(&m->snap) ||
        m->snap.term > m->term) {
      return false;
    }
  }
  return true;
}

/* Thesis 3.3: a higher term makes any node a follower of that term; a
 * message of a lower term is stale. Exceptions: a (pre)vote is ignored by a
 * node in its leader's lease (thesis 4.2.3) unless sent for a leadership
 * transfer; a pre-vote never changes the receiver's term (thesis 9.6).
 * Returns false when the message must go no further. */
static bool step_term(struct raft *r, const struct raft_message *m) {
  int t = m->type;
  if (m->term == 0) {
    return true;
  }
  if (m->term > r->term) {
    if ((t == RAFT_MSG_VOTE || t == RAFT_MSG_PRE_VOTE) && m->context != 1 && raft__in_lease(r)) {
      return false;
    }
    if (t == RAFT_MSG_PRE_VOTE || (t == RAFT_MSG_PRE_VOTE_RESP && !m->reject)) {
      return true;
    }
    bool from_leader = t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT || t == RAFT_MSG_SNAPSHOT;
    raft__become_follower(r, m->term, from_leader ? m->from : 0);
    return true;
  }
  if (m->term < r->term) {
    /* Tell a stale leader (or pre-candidate, etcd#8243) about the newer
     * term, or with check-quorum/pre-vote it may never find out. */
    struct raft_message *resp = NULL;
    if ((r->o.check_quorum || r->o.pre_vote) && (t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT)) {
      resp = raft__send(r, RAFT_MSG_APPEND_RESP, m->from, false);
    } else if (t == RAFT_MSG_PRE_VOTE) {
      resp = raft__send(r, RAFT_MSG_PRE_VOTE_RESP, m->from, false);
    }
    if (resp != NULL) {
      resp->reject = true;
      resp->index = m->index;
    }
    return false;
  }
  return true;
}

static void dispatch(struct raft *r, const struct raft_message *m) {
  switch (m->type) {
  case RAFT_MSG_APPEND:
    raft__recv_append(r, m);
    break;
  case RAFT_MSG_APPEND_RESP:
    raft__recv_append_resp(r, m);
    break;
  case RAFT_MSG_VOTE:
  case RAFT_MSG_PRE_VOTE:
    raft__recv_vote(r, m);
    break;
  case RAFT_MSG_VOTE_RESP:
  case RAFT_MSG_PRE_VOTE_RESP:
    raft__recv_vote_resp(r, m);
    break;
  case RAFT_MSG_HEARTBEAT:
    raft__recv_heartbeat(r, m);
    break;
  case RAFT_MSG_HEARTBEAT_RESP:
    raft__recv_heartbeat_resp(r, m);
    break;
  case RAFT_MSG_SNAPSHOT:
    raft__recv_snapshot(r, m);
    break;
  case RAFT_MSG_SNAPSHOT_RESP:
    raft__recv_snapshot_resp(r, m);
    break;
  case RAFT_MSG_TIMEOUT_NOW:
    raft__recv_timeout_now(r, m);
    break;
  case RAFT_MSG_PROPOSE:
    raft__recv_propose(r, m);
    break;
  case RAFT_MSG_PROPOSE_RESP:
    raft__recv_propose_resp(r, m);
    break;
  case RAFT_MSG_READ_INDEX:
    raft__recv_read_index(r, m);
    break;
  case RAFT_MSG_READ_INDEX_RESP:
    raft__recv_read_index_resp(r, m);
    break;
  }
}

int raft_step(struct raft *r, uint64_t now, const struct raft_message *m) {
  raft__begin(r, now);
  if (!raft__msg_valid(r, m)) {
    r->n_malformed++;
    return RAFT_EMALFORMED;
  }
  if (step_term(r, m)) {
    dispatch(r, m);
  }
  raft__check(r);
  return 0;
}

int raft_tick(struct raft *r, uint64_t now) {
  raft__begin(r, now);
  if (r->role == RAFT_LEADER) {
    raft__leader_tick(r);
  } else {
    raft__election_tick(r);
  }
  raft__check(r);
  return 0;
}

uint64_t raft_deadline(const struct raft *r) {
  if (r->role == RAFT_LEADER) {
    uint64_t d = r->hb_due;
    if (r->o.check_quorum) {
      uint64_t q = raft__quorum_time(r, false) + r->o.election_ms;
      d = q < d ? q : d;
    }
    if (r->transfer_to != 0 && r->transfer_deadline < d) {
      d = r->transfer_deadline;
    }
    return d;
  }
  if (!raft__is_voter(r, r->o.id)) {
    return UINT64_MAX;
  }
  return r->elect_start + r->elect_timeout;
}

static int forward(struct raft *r, const void *data, size_t len, uint64_t ctx) {
  if (r->n_bufs == r->cap_bufs) {
    uint32_t cap = r->cap_bufs ? r->cap_bufs * 2 : 16;
    uint8_t **b = raft_realloc(r->bufs, cap * sizeof *b);
    if (b == NULL) return RAFT_ENOMEM;
    r->bufs = b;
    r->cap_bufs = cap;
  }
  uint8_t *blk = raft_malloc(sizeof(struct raft_entry) + len);
  if (blk == NULL) return RAFT_ENOMEM;
  struct raft_entry *e = (struct raft_entry *)blk;
  memset(e, 0, sizeof *e);
  e->type = RAFT_ENTRY_NORMAL;
  e->len = (uint32_t)len;
  e->data = len ? blk + sizeof *e : NULL;
  if (len) memcpy(e->data, data, len);
  struct raft_message *m = raft__send(r, RAFT_MSG_PROPOSE, r->leader, false);
  if (m == NULL) {
    raft_free(blk);
    return RAFT_ENOMEM;
  }
  r->bufs[r->n_bufs++] = blk;
  m->term = 0;
  m->context = ctx;
  m->n_entries = 1;
  m->entries = e;
  return 1;
}

/* Refusals a leader gives to any proposal, local or forwarded. */
static int admit(struct raft *r, size_t len) {
  if (len > r->o.max_entry_bytes) return RAFT_ETOOLARGE;
  if (r->transfer_to != 0) return RAFT_ETRANSFER;
  if (r->uncommitted > 0 && r->uncommitted + len > r->o.max_uncommitted_bytes) {
    return RAFT_EBUSY;
  }
  return 0;
}

int raft__propose_entry(struct raft *r, const void *data, size_t len) {
  int rv = admit(r, len);
  if (rv == 0) {
    rv = raft__append_local(r, RAFT_ENTRY_NORMAL, data, (uint32_t)len);
  }
  return rv;
}

int raft_propose(struct raft *r, uint64_t now, const void *data, size_t len, uint64_t context,
                 raft_index *index, raft_term *term) {
  raft__begin(r, now);
  if (len > 0 && data == NULL) return RAFT_EINVAL;
  if (len > r->o.max_entry_bytes) return RAFT_ETOOLARGE;
  int rv;
  if (r->role == RAFT_LEADER) {
    rv = raft__propose_entry(r, data, len);
    if (rv == 0) {
      if (index) *index = raft__log_last(&r->log);
      if (term) *term = r->term;
    }
  } else if (r->leader != 0) {
    rv = forward(r, data, len, context);
  } else {
    rv = RAFT_ENOTLEADER;
  }
  raft__check(r);
  return rv;
}

void raft_persisted(struct raft *r, uint64_t now, raft_index index, raft_term term) {
  raft__begin(r, now);
  /* An ack for entries since overwritten (truncated, or replaced by a
   * snapshot) proves nothing: a later ack will cover the new ones. */
  if (index > r->persisted && index <= raft__log_last(&r->log) &&
      raft__log_term(&r->log, index) == term && term != 0) {
    r->persisted = index;
    if (r->role == RAFT_LEADER) {
      struct raft__progress *p = raft__progress_get(r, r->o.id);
      if (p != NULL) p->match = index;
      raft__maybe_commit(r);
    }
  }
  raft__check(r);
}

/* The host's write failed and it dropped every queued write. Entries after
 * the last acknowledged index are written again from the next update; a
 * leader steps down at once (canonical/raft#320, tarantool#9399): it must
 * not heartbeat as a zombie nor reuse an index in its term. */
void raft_persist_failed(struct raft *r, uint64_t now) {
  raft__begin(r, now);
  r->hs_dirty = true;
  if (r->persisted < raft__log_last(&r->log)) {
    raft__mark_unstable(r, r->persisted + 1);
  }
  if (r->role == RAFT_LEADER) {
    raft__become_follower(r, r->term, 0);
  }
  raft__check(r);
}

void raft_status(const struct raft *r, struct raft_status *s) {
  memset(s, 0, sizeof *s);
  s->id = r->o.id;
  s->role = r->role;
  s->term = r->term;
  s->vote = r->vote;
  s->leader = r->leader;
  s->commit = r->commit;
  s->last_index = raft__log_last(&r->log);
  s->last_term = raft__log_last_term(&r->log);
  s->last_persisted = r->persisted;
  s->snapshot_index = r->has_snap ? r->snap.meta.index : 0;
  s->transferring = r->transfer_to != 0;
  s->config = &r->config;
  s->config_index = r->config_index;
  const struct raft_member *me = raft_config_get(&r->config, r->o.id);
  s->is_member = me != NULL;
  s->is_learner = me != NULL && me->role == RAFT_LEARNER;
  s->applied = r->emitted;
  s->n_malformed = r->n_malformed;
}

uint32_t raft_progress(const struct raft *r, struct raft_progress_info *out, uint32_t n) {
  uint32_t k = 0;
  if (r->role != RAFT_LEADER) {
    return 0;
  }
  for (uint32_t i = 0; i < r->n_prs && k < n; i++) {
    const struct raft__progress *p = &r->prs[i];
    out[k].id = p->id;
    out[k].match = p->match;
    out[k].next = p->next;
    out[k].state = p->state;
    out[k].active = r->now - p->last_resp < r->o.election_ms || p->id == r->o.id;
    out[k].role = p->role;
    out[k].reachable = raft__reach(r, p) == 1;
    k++;
  }
  return k;
}

const struct raft_entry *raft_log_entry(const struct raft *r, raft_index index) {
  return raft__log_get(&r->log, index);
}
