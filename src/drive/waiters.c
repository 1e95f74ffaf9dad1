/* Requests that wait inside the driver: reads (a read state, then the
 * applied index reaching it), commit waits, leadership transfers, and
 * entries expected at an index (membership changes; proposals, so that one
 * whose index another leader's entry took is told `dropped`). Proposals
 * waiting for their apply are matched by the envelope's request id. */
#include <stdlib.h>
#include <string.h>

#include "drive/drive_int.h"

/* Room for one more element in an array of *cap holding n: doubles *cap
 * (from `first`) when full. -> 0, or -1 out of memory (the array is kept). */
static int grow(void **arr, size_t *cap, size_t n, size_t elem, size_t first) {
  if (n < *cap) return 0;
  size_t c = *cap ? *cap * 2 : first;
  void *p = realloc(*arr, c * elem);
  if (p == NULL) return -1;
  *arr = p;
  *cap = c;
  return 0;
}

int lr__waiter_add(struct lr_drive *d, const struct lr__waiter *w) {
  if (d->n_waiters >= LR__WAITERS_MAX) return RAFT_EBUSY;
  if (grow((void **)&d->waiters, &d->cap_waiters, d->n_waiters, sizeof *d->waiters, 32) != 0)
    return RAFT_ENOMEM;
  d->waiters[d->n_waiters++] = *w;
  return 0;
}

/* Keeps the order of the rest: waiters finish in the order they came, so
 * the events (and a simulation's trace) do not depend on removals. */
static void remove_at(struct lr_drive *d, size_t i) {
  free(d->waiters[i].q);
  free(d->waiters[i].change_addr);
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
    if (rs->err == RAFT_ENOTLEADER || rs->err == RAFT_ENOQUORUM) {
      /* leadership moved while the read was asked: ask the next leader */
      w->unsent = true;
      d->fwd_due = true;
    } else if (rs->err != 0) {
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
    if (!lr__fwd_has(d, d->idxq[d->idxq_head + i].req))
      lr__drive_done(d, d->idxq[d->idxq_head + i].req, code, msg, len, 0, 0);
  d->idxq_head = d->idxq_n = 0;
  for (size_t i = 0; i < d->n_fwd; i++) {
    lr__drive_done(d, d->fwd[i].req, code, msg, len, 0, 0);
    free(d->fwd[i].bytes);
  }
  d->n_fwd = 0;
  lr__waiters_free(d);
}

void lr_drive_fail_all(struct lr_drive *d, const char *code, const char *msg) {
  lr__waiters_fail_all(d, code, msg);
}

void lr__waiters_free(struct lr_drive *d) {
  for (size_t i = 0; i < d->n_waiters; i++) {
    free(d->waiters[i].q);
    free(d->waiters[i].change_addr);
  }
  free(d->waiters);
  d->waiters = NULL;
  d->n_waiters = d->cap_waiters = 0;
}

int lr__idx_push(struct lr_drive *d, raft_index index, raft_term term, uint64_t req, bool change) {
  if (d->idxq_head + d->idxq_n == d->idxq_cap) {
    /* slide down only when that frees at least half: a queue that never
     * drains would otherwise move all of itself on every push */
    if (d->idxq_head > 0 && d->idxq_head >= d->idxq_cap / 2) {
      memmove(d->idxq, d->idxq + d->idxq_head, d->idxq_n * sizeof *d->idxq);
      d->idxq_head = 0;
    } else if (grow((void **)&d->idxq, &d->idxq_cap, d->idxq_head + d->idxq_n, sizeof *d->idxq,
                    64) != 0) {
      return RAFT_ENOMEM;
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
    else if (x.index == e->index && x.term != e->term && lr__fwd_has(d, x.req)) {
      /* a copy sent before may still be in another log: send it again */
      for (size_t i = 0; i < d->n_fwd; i++)
        if (d->fwd[i].req == x.req) d->fwd[i].unsent = true;
      d->fwd_due = true;
    } else if (x.index == e->index && x.term != e->term)
      lr__drive_done(d, x.req, "dropped", "the entry was replaced by another leader's", 41,
                     e->index, e->term);
  }
  if (d->idxq_n == 0) d->idxq_head = 0;
}

/* ---- requests that outlive a leader (issue 10) ----------------------------- */
int lr__fwd_add(struct lr_drive *d, const struct lr__fwd *f) {
  if (d->n_fwd >= LR__WAITERS_MAX) return RAFT_EBUSY;
  if (grow((void **)&d->fwd, &d->cap_fwd, d->n_fwd, sizeof *d->fwd, 32) != 0) return RAFT_ENOMEM;
  struct lr__fwd *n = &d->fwd[d->n_fwd];
  *n = *f;
  n->bytes = malloc(f->len ? f->len : 1);
  if (n->bytes == NULL) return RAFT_ENOMEM;
  memcpy(n->bytes, f->bytes, f->len);
  d->n_fwd++;
  return 0;
}

static void fwd_remove_at(struct lr_drive *d, size_t i) {
  free(d->fwd[i].bytes);
  memmove(&d->fwd[i], &d->fwd[i + 1], (d->n_fwd - i - 1) * sizeof *d->fwd);
  d->n_fwd--;
}

bool lr__fwd_has(const struct lr_drive *d, uint64_t req) {
  for (size_t i = 0; i < d->n_fwd; i++)
    if (d->fwd[i].req == req) return true;
  return false;
}

void lr__fwd_done(struct lr_drive *d, uint64_t req) {
  for (size_t i = 0; i < d->n_fwd; i++)
    if (d->fwd[i].req == req) {
      fwd_remove_at(d, i);
      return;
    }
}

/* Sends f to the leader this node knows (forwarded: 1; appended here as
 * leader: 0, and the entry is expected at its index), or leaves it to wait
 * for one. <0: refused here, only returned for a proposal never sent
 * before (so it is in no log: a true "not applied"). */
int lr__fwd_send(struct lr_drive *d, struct lr__fwd *f) {
  uint64_t ctx = ++d->fwd_ctx;
  raft_index index = 0;
  raft_term term = 0;
  int rv = raft_propose(d->raft, lr__drive_now(d), f->bytes, f->len, ctx, &index, &term);
  if (rv == 1) {
    f->ctx = ctx;
    f->sends++;
    f->unsent = false;
    return 1;
  }
  if (rv == 0) {
    f->ctx = 0;
    f->sends++;
    f->unsent = false;
    if (index > 0 && lr__idx_push(d, index, term, f->req, false) != 0) f->unsent = true;
    return 0;
  }
  f->unsent = true;
  if (f->sends == 0 && rv != RAFT_ENOTLEADER) return rv;
  return 0;
}

/* A leader refused one send of a forwarded proposal. */
void lr__fwd_refused(struct lr_drive *d, uint64_t ctx, int err) {
  for (size_t i = 0; i < d->n_fwd; i++) {
    struct lr__fwd *f = &d->fwd[i];
    if (f->ctx != ctx || ctx == 0) continue;
    f->ctx = 0;
    /* Only too_large is an answer: the leader's core checks no copy of it
     * (max_entry_bytes), and it was sent once. not_leader, busy and
     * transfer refusals are of one delivery of the PROPOSE; the network may
     * deliver another copy that the same node appends later (a candidate
     * that wins, uncommitted bytes that drain, a transfer that ends), so
     * the proposal is sent again at the next commit or leader change, and
     * a timeout says its fate is unknown. */
    if (err == RAFT_ETOOLARGE && f->sends == 1) {
      const char *msg = raft_strerror(err);
      uint64_t req = f->req;
      d->metrics.proposals_failed++;
      fwd_remove_at(d, i);
      lr__drive_done(d, req, raft_errcode(err), msg, strlen(msg), 0, 0);
    } else {
      f->unsent = true; /* to the next leader known (or again at the next commit) */
    }
    return;
  }
}

/* Deferred (lr__drive_deferred): sends what waits to the leader known, asks
 * it again for the reads it lost, retries membership changes that waited
 * for the leader's first own-term commit. */
void lr__fwd_resend(struct lr_drive *d) {
  if (d->leader == 0 || d->failed || d->halted) return;
  for (size_t i = 0; i < d->n_fwd; i++)
    if (d->fwd[i].unsent) lr__fwd_send(d, &d->fwd[i]);
  for (size_t i = 0; i < d->n_waiters;) {
    struct lr__waiter *w = &d->waiters[i];
    int rv = 0;
    if (w->kind == W_READ_CTX && w->unsent) {
      rv = raft_read_index(d->raft, lr__drive_now(d), w->req);
      if (rv == 0) w->unsent = false;
      if (rv == RAFT_ENOTLEADER) rv = 0;
    } else if (w->kind == W_CHANGE) {
      raft_index index = 0;
      rv = raft_change_ex(d->raft, lr__drive_now(d), w->change_kind, w->change_id,
                          w->change_addr ? w->change_addr : "", w->change_flags, &index, NULL, 0);
      if (rv == 0) {
        uint64_t req = w->req;
        remove_at(d, i);
        if (lr__idx_push(d, index, d->term, req, true) != 0)
          lr__drive_done(d, req, "storage", "out of memory", 13, 0, 0);
        continue;
      }
      if (lr__drive_change_later(d, rv)) rv = 0;
    }
    if (rv != 0) {
      const char *msg = raft_strerror(rv);
      lr__drive_done(d, w->req, raft_errcode(rv), msg, strlen(msg), 0, d->term);
      remove_at(d, i);
      continue;
    }
    i++;
  }
}

void lr_drive_forget(struct lr_drive *d, uint64_t req) {
  lr__fwd_done(d, req);
  for (size_t i = 0; i < d->n_waiters; i++)
    if (d->waiters[i].req == req) {
      remove_at(d, i);
      return;
    }
}
