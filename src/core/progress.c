/* What the leader knows of each member: match/next indexes, the replication
 * state (probe, replicate, snapshot) and the window of APPENDs in flight.
 *
 * One progress record exists per member of the configuration in effect
 * (including this node, whose match is its persisted index), so candidates
 * use the same array to count votes (thesis 3.4, 3.5, 4.1). */
#include <string.h>

#include "raft_int.h"

struct raft__progress *raft__progress_get(struct raft *r, raft_id id) {
  for (uint32_t i = 0; i < r->n_prs; i++) {
    if (r->prs[i].id == id) {
      return &r->prs[i];
    }
  }
  return NULL;
}

static void init_one(struct raft *r, struct raft__progress *p, raft_id id) {
  memset(p, 0, sizeof *p);
  p->id = id;
  p->state = RAFT_PROGRESS_PROBE;
  p->next = raft__log_last(&r->log) + 1;
  p->last_resp = r->now;
}

/* A leader keeps the record of a member its newest, uncommitted CONFIG
 * entry removed (and of members removed earlier and not released yet), so
 * it goes on replicating to them: a removed node must receive the entry that
 * removes it, or it never learns (etcd does the same: the removed node is
 * dropped from the progress map only when the change is applied). */
static bool keep_leaving(const struct raft *r, const struct raft__progress *p) {
  return r->role == RAFT_LEADER && p->id != r->o.id &&
         (p->leave_index != 0 || r->config_index > r->commit);
}

/* Rebuilds the array after a configuration change (r->config and
 * r->config_index are the new ones), keeping what is known of members that
 * stay. Allocates before freeing, so ENOMEM changes nothing. */
int raft__progress_rebuild(struct raft *r) {
  uint32_t n = r->config.n;
  uint32_t extra = 0;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    const struct raft__progress *p = &r->prs[i];
    extra += raft_config_get(&r->config, p->id) == NULL && keep_leaving(r, p);
  }
  struct raft__progress *prs = raft_malloc((n + extra ? n + extra : 1) * sizeof *prs);
  if (prs == NULL) {
    return RAFT_ENOMEM;
  }
  for (uint32_t i = 0; i < n; i++) {
    const struct raft_member *m = &r->config.members[i];
    struct raft__progress *old = raft__progress_get(r, m->id);
    if (old != NULL) {
      prs[i] = *old;
      old->infl.buf = NULL; /* moved */
    } else {
      init_one(r, &prs[i], m->id);
    }
    prs[i].role = m->role;
    prs[i].leave_index = 0; /* a member again (re-added before release) */
    prs[i].leave_round = 0;
  }
  uint32_t k = n;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    struct raft__progress *p = &r->prs[i];
    if (raft_config_get(&r->config, p->id) == NULL && keep_leaving(r, p)) {
      prs[k] = *p;
      p->infl.buf = NULL;
      prs[k].role = 0;
      if (prs[k].leave_index == 0) prs[k].leave_index = r->config_index;
      k++;
    }
  }
  for (uint32_t i = 0; i < r->n_prs; i++) {
    raft_free(r->prs[i].infl.buf);
  }
  raft_free(r->prs);
  r->prs = prs;
  r->n_prs = k;
  return 0;
}

/* A new leader whose newest CONFIG entry (at leave_index, not known to be
 * committed) removed members of `prev`: it replicates to them as well. */
int raft__progress_add_leaving(struct raft *r, const struct raft_config *prev,
                               raft_index leave_index) {
  uint32_t extra = 0;
  for (uint32_t i = 0; i < prev->n; i++) {
    raft_id id = prev->members[i].id;
    extra += id != r->o.id && raft__progress_get(r, id) == NULL;
  }
  if (extra == 0) {
    return 0;
  }
  struct raft__progress *prs = raft_realloc(r->prs, (r->n_prs + extra) * sizeof *prs);
  if (prs == NULL) {
    return RAFT_ENOMEM; /* UNTESTED: the removed node then learns nothing */
  }
  r->prs = prs;
  for (uint32_t i = 0; i < prev->n; i++) {
    raft_id id = prev->members[i].id;
    if (id != r->o.id && raft__progress_get(r, id) == NULL) {
      struct raft__progress *p = &r->prs[r->n_prs++];
      init_one(r, p, id);
      p->role = 0;
      p->leave_index = leave_index;
    }
  }
  return 0;
}

/* Drops the records of removed nodes that need nothing more (or all of them,
 * when this node stops leading). Compacts in place: no allocation. */
void raft__progress_release(struct raft *r, bool all) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < r->n_prs; i++) {
    struct raft__progress *p = &r->prs[i];
    bool drop = false;
    if (p->leave_index != 0) {
      bool knows = p->leave_round != 0 && p->acked_round >= p->leave_round;
      bool silent = r->now - p->last_resp >= r->o.election_ms;
      drop = all || r->role != RAFT_LEADER || (r->commit >= p->leave_index && (knows || silent));
    }
    if (drop) {
      raft_free(p->infl.buf);
    } else {
      r->prs[k++] = *p;
    }
  }
  r->n_prs = k;
}

void raft__progress_heard(struct raft *r, struct raft__progress *p) {
  p->last_resp = r->now;
  p->heard = true;
}

int raft__reach(const struct raft *r, const struct raft__progress *p) {
  if (p == NULL) {
    return 0;
  }
  if (p->id == r->o.id) {
    return 1;
  }
  if (p->heard && r->now - p->last_resp < r->o.election_ms) {
    return 1;
  }
  if (!p->heard && r->role == RAFT_LEADER && r->now - r->leader_since < r->o.election_ms) {
    return -1;
  }
  return 0;
}

void raft__progress_reset(struct raft *r) {
  for (uint32_t i = 0; i < r->n_prs; i++) {
    struct raft__progress *p = &r->prs[i];
    uint8_t role = p->role;
    bool heard = p->vote != 0 && p->id != r->o.id; /* answered our vote request */
    struct raft__inflights infl = p->infl;
    init_one(r, p, p->id);
    p->role = role;
    p->heard = heard;
    p->infl = infl;
    p->infl.n = 0;
    p->infl.start = 0;
    if (p->id == r->o.id) {
      p->match = r->persisted;
      p->state = RAFT_PROGRESS_REPLICATE;
    }
  }
}

void raft__progress_probe(struct raft__progress *p, raft_index next) {
  p->state = RAFT_PROGRESS_PROBE;
  p->next = next > p->match ? next : p->match + 1;
  p->probe_sent = false;
  p->snap_inflight = false;
  raft__infl_clear(p);
}

void raft__progress_replicate(struct raft__progress *p) {
  p->state = RAFT_PROGRESS_REPLICATE;
  p->next = p->match + 1;
  p->probe_sent = false;
  raft__infl_clear(p);
}

bool raft__infl_full(const struct raft *r, const struct raft__progress *p) {
  return p->infl.n >= r->o.max_inflight_msgs;
}

int raft__infl_add(struct raft__progress *p, raft_index last, uint32_t max) {
  struct raft__inflights *f = &p->infl;
  if (f->cap < max) {
    raft_index *buf = raft_malloc(max * sizeof *buf);
    if (buf == NULL) {
      return RAFT_ENOMEM;
    }
    for (uint32_t i = 0; i < f->n; i++) {
      buf[i] = f->buf[(f->start + i) % f->cap];
    }
    raft_free(f->buf);
    f->buf = buf;
    f->cap = max;
    f->start = 0;
  }
  RAFT_ASSERT(f->n < f->cap);
  f->buf[(f->start + f->n) % f->cap] = last;
  f->n++;
  return 0;
}

/* An acknowledgement of `index` frees every APPEND that ended at or before
 * it: responses can be lost, a later one covers them. */
void raft__infl_free_to(struct raft__progress *p, raft_index index) {
  struct raft__inflights *f = &p->infl;
  while (f->n > 0 && f->buf[f->start] <= index) {
    f->start = (f->start + 1) % f->cap;
    f->n--;
  }
}

void raft__infl_clear(struct raft__progress *p) {
  p->infl.n = 0;
  p->infl.start = 0;
}

uint32_t raft__voters(const struct raft *r) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < r->config.n; i++) {
    n += r->config.members[i].role == RAFT_VOTER;
  }
  return n;
}

uint32_t raft__quorum(const struct raft *r) {
  return raft__voters(r) / 2 + 1;
}

bool raft__is_voter(const struct raft *r, raft_id id) {
  const struct raft_member *m = raft_config_get(&r->config, id);
  return m != NULL && m->role == RAFT_VOTER;
}
