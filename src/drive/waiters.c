/* Requests that wait inside the driver: reads (a read state, then the
 * applied index reaching it), commit waits, leadership transfers, and
 * entries expected at an index (membership changes; proposals, so that one
 * whose index another leader's entry took is told `dropped`). Proposals
 * waiting for their apply are matched by the envelope's request id. */
#include <stdlib.h>
#include <string.h>

#include "drive/drive_int.h"

int lr__waiter_add(struct lr_drive *d, const struct lr__waiter *w) {
  if (d->n_waiters >= LR__WAITERS_MAX) return RAFT_EBUSY;
  if (d->n_waiters == d->cap_waiters) {
    size_t cap = d->cap_waiters ? d->cap_waiters * 2 : 32;
    struct lr__waiter *p = realloc(d->waiters, cap * sizeof *p);
    if (p == NULL) return RAFT_ENOMEM;
    d->waiters = p;
    d->cap_waiters = cap;
  }
  d->waiters[d->n_waiters++] = *w;
  return 0;
}

/* Keeps the order of the rest: waiters finish in the order they came, so
 * the events (and a simulation's trace) do not depend on removals. */
static void remove_at(struct lr_drive *d, size_t i) {
  free(d->waiters[i].q);
  memmove(&d->waiters[i], &d->waiters[i + 1], (d->n_waiters - i - 1) * sizeof *d->waiters);
  d->n_waiters--;
}

/* Serves a read now: the state machine is at or past its read index. */
void lr__drive_query(struct lr_drive *d, uint64_t req, const char *q, size_t len, bool barrier,
                     raft_index index) {
  if (barrier) {
    lr__drive_done(d, req, NULL, NULL, 0, index, 0);
    return;
  }
  struct lr_sm_result res;
  if (lr_sm_query(d->sm, q, len, &res) != 0) {
    lr__drive_done(d, req, "storage", "the state machine failed", 24, index, 0);
    return;
  }
  const char *code = res.status == LR_SM_OK ? NULL : lr_sm_code(res.status);
  lr__drive_done(d, req, code, res.data, res.len, index, 0);
}

/* Called after entries were applied, the commit index moved or the leader
 * changed. */
void lr__waiters_check(struct lr_drive *d) {
  raft_index applied = lr_sm_applied_index(d->sm);
  for (size_t i = 0; i < d->n_waiters;) {
    struct lr__waiter *w = &d->waiters[i];
    bool done = false;
    switch (w->kind) {
    case W_COMMIT:
      if ((done = d->commit >= w->index)) lr__drive_done(d, w->req, NULL, NULL, 0, w->index, 0);
      break;
    case W_READ_AT:
      if ((done = applied >= w->index))
        lr__drive_query(d, w->req, w->q, w->qlen, w->barrier, w->index);
      break;
    case W_TRANSFER:
      if ((done = d->leader == w->target && d->leader != 0))
        lr__drive_done(d, w->req, NULL, NULL, 0, 0, d->term);
      break;
    default:
      break;
    }
    if (done)
      remove_at(d, i);
    else
      i++;
  }
}

void lr__waiters_read_state(struct lr_drive *d, const struct raft_read_state *rs) {
  for (size_t i = 0; i < d->n_waiters; i++) {
    struct lr__waiter *w = &d->waiters[i];
    if (w->kind != W_READ_CTX || w->req != rs->ctx) continue;
    if (rs->err != 0) {
      const char *msg = raft_strerror(rs->err);
      lr__drive_done(d, w->req, raft_errcode(rs->err), msg, strlen(msg), 0, 0);
      remove_at(d, i);
    } else {
      w->kind = W_READ_AT;
      w->index = rs->index;
      if (lr_sm_applied_index(d->sm) >= w->index) {
        lr__drive_query(d, w->req, w->q, w->qlen, w->barrier, w->index);
        remove_at(d, i);
      }
    }
    return;
  }
}

void lr__waiters_fail_all(struct lr_drive *d, const char *code, const char *msg) {
  size_t len = strlen(msg);
  for (size_t i = 0; i < d->n_waiters; i++)
    lr__drive_done(d, d->waiters[i].req, code, msg, len, 0, 0);
  for (size_t i = 0; i < d->idxq_n; i++)
    lr__drive_done(d, d->idxq[d->idxq_head + i].req, code, msg, len, 0, 0);
  d->idxq_head = d->idxq_n = 0;
  lr__waiters_free(d);
}

void lr_drive_fail_all(struct lr_drive *d, const char *code, const char *msg) {
  lr__waiters_fail_all(d, code, msg);
}

void lr__waiters_free(struct lr_drive *d) {
  for (size_t i = 0; i < d->n_waiters; i++)
    free(d->waiters[i].q);
  free(d->waiters);
  d->waiters = NULL;
  d->n_waiters = d->cap_waiters = 0;
}

int lr__idx_push(struct lr_drive *d, raft_index index, raft_term term, uint64_t req, bool change) {
  if (d->idxq_head + d->idxq_n == d->idxq_cap) {
    if (d->idxq_head > 0) {
      memmove(d->idxq, d->idxq + d->idxq_head, d->idxq_n * sizeof *d->idxq);
      d->idxq_head = 0;
    } else {
      size_t cap = d->idxq_cap ? d->idxq_cap * 2 : 64;
      struct lr__idx *q = realloc(d->idxq, cap * sizeof *q);
      if (q == NULL) return RAFT_ENOMEM;
      d->idxq = q;
      d->idxq_cap = cap;
    }
  }
  d->idxq[d->idxq_head + d->idxq_n++] = (struct lr__idx){index, term, req, change};
  return 0;
}

/* Entries expected at an index this node now applied: a change completes
 * when its entry applies; an entry expected there that is not the one
 * applied was dropped (a proposal's own entry completes it first, through
 * its envelope). One skipped by a restored snapshot is left to time out. */
void lr__idx_settle(struct lr_drive *d, const struct raft_entry *e) {
  while (d->idxq_n > 0 && d->idxq[d->idxq_head].index <= e->index) {
    struct lr__idx x = d->idxq[d->idxq_head];
    d->idxq_head++;
    d->idxq_n--;
    if (x.index == e->index && x.term == e->term && x.change)
      lr__drive_done(d, x.req, NULL, NULL, 0, e->index, e->term);
    else if (x.index == e->index && x.term != e->term)
      lr__drive_done(d, x.req, "dropped", "the entry was replaced by another leader's", 41,
                     e->index, e->term);
  }
  if (d->idxq_n == 0) d->idxq_head = 0;
}
