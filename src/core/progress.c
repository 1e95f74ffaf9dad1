/* What the leader knows of each member: match/next indexes, the replication
 * state (probe, replicate, snapshot) and the window of APPENDs in flight.
 *
 * One progress record exists per member of the configuration in effect
 * (including this node, whose match is its persisted index), so candidates
 * use the same array to count votes (thesis 3.4, 3.5, 4.1). */
#include <string.h>

#include "raft_int.h"

struct raft__progress *raft__progress_get(struct raft *r, raft_id id)
{
  for (uint32_t i = 0; i < r->n_prs; i++) {
    if (r->prs[i].id == id) {
      return &r->prs[i];
    }
  }
  return NULL;
}

static void init_one(struct raft *r, struct raft__progress *p, raft_id id)
{
  memset(p, 0, sizeof *p);
  p->id = id;
  p->state = RAFT_PROGRESS_PROBE;
  p->next = raft__log_last(&r->log) + 1;
  p->last_resp = r->now;
}

/* Rebuilds the array after a configuration change, keeping what is known of
 * members that stay. Allocates before freeing, so ENOMEM changes nothing. */
int raft__progress_rebuild(struct raft *r)
{
  uint32_t n = r->config.n;
  struct raft__progress *prs = raft_malloc((n ? n : 1) * sizeof *prs);
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
  }
  for (uint32_t i = 0; i < r->n_prs; i++) {
    raft_free(r->prs[i].infl.buf);
  }
  raft_free(r->prs);
  r->prs = prs;
  r->n_prs = n;
  return 0;
}

void raft__progress_reset(struct raft *r)
{
  for (uint32_t i = 0; i < r->n_prs; i++) {
    struct raft__progress *p = &r->prs[i];
    uint8_t role = p->role;
    struct raft__inflights infl = p->infl;
    init_one(r, p, p->id);
    p->role = role;
    p->infl = infl;
    p->infl.n = 0;
    p->infl.start = 0;
    if (p->id == r->o.id) {
      p->match = r->persisted;
      p->state = RAFT_PROGRESS_REPLICATE;
    }
  }
}

void raft__progress_probe(struct raft__progress *p, raft_index next)
{
  p->state = RAFT_PROGRESS_PROBE;
  p->next = next > p->match ? next : p->match + 1;
  p->probe_sent = false;
  p->snap_inflight = false;
  raft__infl_clear(p);
}

void raft__progress_replicate(struct raft__progress *p)
{
  p->state = RAFT_PROGRESS_REPLICATE;
  p->next = p->match + 1;
  p->probe_sent = false;
  raft__infl_clear(p);
}

bool raft__infl_full(const struct raft *r, const struct raft__progress *p)
{
  return p->infl.n >= r->o.max_inflight_msgs;
}

int raft__infl_add(struct raft__progress *p, raft_index last, uint32_t max)
{
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
void raft__infl_free_to(struct raft__progress *p, raft_index index)
{
  struct raft__inflights *f = &p->infl;
  while (f->n > 0 && f->buf[f->start] <= index) {
    f->start = (f->start + 1) % f->cap;
    f->n--;
  }
}

void raft__infl_clear(struct raft__progress *p)
{
  p->infl.n = 0;
  p->infl.start = 0;
}

uint32_t raft__voters(const struct raft *r)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < r->config.n; i++) {
    n += r->config.members[i].role == RAFT_VOTER;
  }
  return n;
}

uint32_t raft__quorum(const struct raft *r)
{
  return raft__voters(r) / 2 + 1;
}

bool raft__is_voter(const struct raft *r, raft_id id)
{
  const struct raft_member *m = raft_config_get(&r->config, id);
  return m != NULL && m->role == RAFT_VOTER;
}
