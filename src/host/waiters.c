/* Requests that wait inside the host: reads (a read state, then the applied
 * index reaching it), membership changes (applied >= the change's index),
 * commit waits and leadership transfers. Proposals waiting for their apply
 * are matched by the envelope's request id in drive.c instead. */
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"

int lr__waiter_add(struct lr_node *n, const struct lr__waiter *w) {
  if (n->n_waiters >= LR_NODE_WAITERS_MAX) return RAFT_EBUSY;
  if (n->n_waiters == n->cap_waiters) {
    size_t cap = n->cap_waiters ? n->cap_waiters * 2 : 32;
    struct lr__waiter *p = realloc(n->waiters, cap * sizeof *p);
    if (p == NULL) return RAFT_ENOMEM;
    n->waiters = p;
    n->cap_waiters = cap;
  }
  n->waiters[n->n_waiters++] = *w;
  return 0;
}

static void remove_at(struct lr_node *n, size_t i) {
  free(n->waiters[i].q);
  n->waiters[i] = n->waiters[--n->n_waiters];
}

/* Serves a read now: the state machine is at or past its read index. */
void lr__node_query(struct lr_node *n, uint64_t req, const char *q, size_t len, bool barrier) {
  raft_index applied = lr_sm_applied_index(n->sm);
  if (barrier) {
    lr__event_done(n, req, NULL, NULL, 0, applied, 0);
    return;
  }
  struct lr_sm_result res;
  if (lr_sm_query(n->sm, q, len, &res) != 0) {
    lr__event_done(n, req, "storage", "the state machine failed", 24, applied, 0);
    return;
  }
  const char *code = res.status == LR_SM_OK ? NULL : lr_sm_code(res.status);
  lr__event_done(n, req, code, res.data, res.len, applied, 0);
}

/* Called after entries were applied, the commit index moved or the leader
 * changed. Order among waiters does not matter: each has its own request. */
void lr__waiters_check(struct lr_node *n) {
  raft_index applied = lr_sm_applied_index(n->sm);
  for (size_t i = 0; i < n->n_waiters;) {
    struct lr__waiter *w = &n->waiters[i];
    bool done = false;
    switch (w->kind) {
    case W_INDEX:
      if ((done = applied >= w->index)) lr__event_done(n, w->req, NULL, NULL, 0, w->index, 0);
      break;
    case W_COMMIT:
      if ((done = n->commit >= w->index)) lr__event_done(n, w->req, NULL, NULL, 0, w->index, 0);
      break;
    case W_READ_AT:
      if ((done = applied >= w->index)) lr__node_query(n, w->req, w->q, w->qlen, w->barrier);
      break;
    case W_TRANSFER:
      if ((done = n->leader == w->target && n->leader != 0))
        lr__event_done(n, w->req, NULL, NULL, 0, 0, n->term);
      break;
    default:
      break;
    }
    if (done)
      remove_at(n, i);
    else
      i++;
  }
}

void lr__waiters_read_state(struct lr_node *n, const struct raft_read_state *rs) {
  for (size_t i = 0; i < n->n_waiters; i++) {
    struct lr__waiter *w = &n->waiters[i];
    if (w->kind != W_READ_CTX || w->req != rs->ctx) continue;
    if (rs->err != 0) {
      const char *msg = raft_strerror(rs->err);
      lr__event_done(n, w->req, raft_errcode(rs->err), msg, strlen(msg), 0, 0);
      remove_at(n, i);
    } else {
      w->kind = W_READ_AT;
      w->index = rs->index;
      lr__waiters_check(n);
    }
    return;
  }
}

void lr__waiters_fail_all(struct lr_node *n, const char *code, const char *msg) {
  for (size_t i = 0; i < n->n_waiters; i++)
    lr__event_done(n, n->waiters[i].req, code, msg, strlen(msg), 0, 0);
  lr__waiters_free(n);
}

void lr__waiters_free(struct lr_node *n) {
  for (size_t i = 0; i < n->n_waiters; i++)
    free(n->waiters[i].q);
  free(n->waiters);
  n->waiters = NULL;
  n->n_waiters = n->cap_waiters = 0;
}
