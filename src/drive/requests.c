/* Requests into the driver. Each enters the core; the update it produced
 * goes out with the next lr_drive_run (the caller's choice: at once, or
 * after a burst). Outcomes arrive as LR_EV_DONE events with the request id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive/drive_int.h"

static int usable(struct lr_drive *d) {
  return d->failed ? RAFT_EDROPPED : 0;
}

/* Proposals and reads need a state machine that still applies. */
static int serving(struct lr_drive *d) {
  int rv = usable(d);
  if (rv == 0 && d->halted) rv = RAFT_EDROPPED;
  return rv;
}

int lr_drive_propose(struct lr_drive *d, uint64_t req, const char *cmd, size_t len,
                     const char *client, size_t client_len, uint64_t seq, int wait) {
  int rv = serving(d);
  if (rv) return rv;
  if (client && (client_len > LR_ENV_CLIENT_MAX || seq == 0)) return RAFT_EINVAL;
  struct lr_env env = {.origin = d->id,
                       .req = req,
                       .time_ms = d->io.wall(d->io.data),
                       .client = client,
                       .client_len = client_len,
                       .seq = seq,
                       .cmd = cmd,
                       .cmd_len = len};
  d->scratch.len = 0;
  if (lr_env_encode(&env, &d->scratch) != 0) return RAFT_ENOMEM;
  raft_index index = 0;
  raft_term term = 0;
  d->metrics.proposals++;
  uint64_t ctx = ++d->fwd_ctx;
  rv = raft_propose(d->raft, lr__drive_now(d), d->scratch.data, d->scratch.len, ctx, &index, &term);
  if (rv == RAFT_ENOTLEADER || rv == 1) {
    /* Forwarded (1), or no leader known yet: it stays here until answered,
     * and goes to each new leader this node learns of (issue 10). */
    struct lr__fwd f = {.req = req,
                        .ctx = rv == 1 ? ctx : 0,
                        .bytes = d->scratch.data,
                        .len = d->scratch.len,
                        .wait = wait,
                        .sends = rv == 1 ? 1 : 0,
                        .unsent = rv != 1};
    return lr__fwd_add(d, &f);
  }
  if (rv < 0) {
    d->metrics.proposals_failed++;
    return rv;
  }
  if (rv == 0 && wait == LR_WAIT_COMMIT) {
    struct lr__waiter w = {.kind = W_COMMIT, .req = req, .index = index};
    return lr__waiter_add(d, &w);
  }
  if (rv == 0 && index > 0) return lr__idx_push(d, index, term, req, false);
  return 0;
}

int lr_drive_read(struct lr_drive *d, uint64_t req, int mode, const char *q, size_t len) {
  int rv = serving(d);
  if (rv) return rv;
  struct lr__waiter w = {.kind = W_READ_CTX, .req = req, .barrier = mode == LR_READ_BARRIER};
  if (!w.barrier) {
    w.q = malloc(len ? len : 1);
    if (w.q == NULL) return RAFT_ENOMEM;
    memcpy(w.q, q, len);
    w.qlen = len;
  }
  if (mode == LR_READ_STALE) {
    w.kind = W_READ_AT;
    w.index = 0;
  } else if (mode == LR_READ_LEASE) {
    raft_index index = 0;
    rv = raft_lease_read(d->raft, lr__drive_now(d), &index);
    w.kind = W_READ_AT;
    w.index = index;
  } else {
    rv = raft_read_index(d->raft, lr__drive_now(d), req);
    if (rv == RAFT_ENOTLEADER) { /* no leader known yet: ask the first one */
      rv = 0;
      w.unsent = true;
    }
  }
  if (rv == 0 && w.kind == W_READ_AT && lr_sm_applied_index(d->sm) >= w.index) {
    lr__drive_query(d, req, w.q, w.qlen, w.barrier, w.index);
    free(w.q);
    return 0;
  }
  if (rv == 0) rv = lr__waiter_add(d, &w);
  if (rv != 0) free(w.q);
  return rv;
}

int lr_drive_change(struct lr_drive *d, uint64_t req, int kind, raft_id id, const char *address,
                    unsigned flags) {
  int rv = usable(d);
  if (rv) return rv;
  raft_index index = 0;
  char why[256] = "";
  flags &= RAFT_CHANGE_FORCE;
  rv = raft_change_ex(d->raft, lr__drive_now(d), kind, id, address ? address : "", flags, &index,
                      why, sizeof why);
  if (rv < 0 && rv != RAFT_ENOTLEADER && why[0] != '\0' && req != 0 &&
      !lr__drive_change_later(d, rv)) {
    /* A refusal the core explained (which learner is behind, which voters
     * are unreachable): the caller gets the sentence, after the generic one
     * its code maps to, as the request's outcome. */
    char msg[400];
    int n = snprintf(msg, sizeof msg, "%s: %s", raft_strerror(rv), why);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = (int)sizeof msg - 1;
    lr__drive_done(d, req, raft_errcode(rv), msg, (size_t)n, 0, d->term);
    return 0;
  }
  if (lr__drive_change_later(d, rv)) {
    /* A new leader's configuration is not settled until it commits an
     * entry of its term: wait for that (retried at each commit) instead of
     * answering busy; the caller's timeout bounds the wait. */
    struct lr__waiter w = {
        .kind = W_CHANGE, .req = req, .change_kind = kind, .change_id = id, .change_flags = flags};
    if (address && (w.change_addr = strdup(address)) == NULL) return RAFT_ENOMEM;
    rv = lr__waiter_add(d, &w);
    if (rv != 0) free(w.change_addr);
    return rv;
  }
  if (rv != 0) return rv;
  struct raft_status st;
  raft_status(d->raft, &st);
  return lr__idx_push(d, index, st.term, req, true);
}

int lr_drive_transfer(struct lr_drive *d, uint64_t req, raft_id to) {
  int rv = usable(d);
  if (rv) return rv;
  rv = raft_transfer(d->raft, lr__drive_now(d), to);
  if (rv != 0) return rv;
  if (to != 0 && req != 0) {
    struct lr__waiter w = {.kind = W_TRANSFER, .req = req, .target = to};
    return lr__waiter_add(d, &w);
  }
  if (req != 0) lr__drive_done(d, req, NULL, NULL, 0, 0, d->term);
  return 0;
}

int lr_drive_step_down(struct lr_drive *d) {
  int rv = usable(d);
  if (rv) return rv;
  return raft_step_down(d->raft, lr__drive_now(d));
}
