/* Divergence detection (README "Deterministic state machines").
 *
 * At every checkpoint (an index that is a multiple of digest_entries and
 * holds a client command) each replica computes digest() right after
 * applying it and proposes a DIGEST entry {index, digest} with its node id.
 * Every replica records the DIGEST entries it applies. Once the digests for
 * a checkpoint from a majority of the voters agree, a replica whose own
 * digest at that checkpoint differs knows it diverged from the majority and
 * stops (the runner halts). Only a majority can condemn: a diverged leader
 * cannot flag healthy followers, since its one report is not a majority.
 *
 * Reports are log entries, so every replica records them in the same order;
 * but each replica only ever judges itself, so a replica that restored a
 * snapshot past some reports (and so misses them) just skips that check.
 * The tables here are therefore not part of snapshots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec/codec.h"
#include "sm/bytes.h"

#include "sm/sm_int.h"

void lr__sm_digest_make(struct lr__sm_digest *d, const char *p, size_t n) {
  if (n <= LR_SM_DIGEST_MAX) {
    memcpy(d->d, p, n);
    d->len = (uint8_t)n;
    return;
  }
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
  d->len = (uint8_t)snprintf(d->d, sizeof d->d, "#%016llx", (unsigned long long)h);
}

static bool same(const struct lr__sm_digest *a, const struct lr__sm_digest *b) {
  return a->len == b->len && memcmp(a->d, b->d, a->len) == 0;
}

/* The slot of checkpoint index, made (evicting the oldest) when absent and
 * create is set; NULL when absent or older than every slot kept. */
static struct lr__sm_ckpt *slot(struct lr__sm_digests *t, raft_index index, bool create) {
  struct lr__sm_ckpt *free_ = NULL, *oldest = NULL;
  for (int i = 0; i < LR__SM_CKPTS; i++) {
    struct lr__sm_ckpt *c = &t->ck[i];
    if (c->index == index) return c;
    if (c->index == 0)
      free_ = c;
    else if (oldest == NULL || c->index < oldest->index)
      oldest = c;
  }
  if (!create) return NULL;
  struct lr__sm_ckpt *c = free_;
  if (c == NULL) {
    if (index < oldest->index) return NULL;
    c = oldest;
  }
  memset(c, 0, sizeof *c);
  c->index = index;
  return c;
}

void lr__sm_digest_own(struct lr__sm_digests *t, raft_index index, const struct lr__sm_digest *d) {
  struct lr__sm_ckpt *c = slot(t, index, true);
  if (c == NULL) return; /* UNTESTED: cannot happen, index only grows */
  c->own = *d;
  c->has_own = true;
  t->due = true;
  t->due_index = index;
  t->taken++;
}

void lr__sm_digest_config(struct lr__sm_digests *t, const struct raft_config *c) {
  t->voters = 0;
  for (uint32_t i = 0; c != NULL && i < c->n && t->voters < LR__SM_REPORTS_MAX; i++)
    if (c->members[i].role == RAFT_VOTER) t->voter[t->voters++] = c->members[i].id;
}

static bool is_voter(const struct lr__sm_digests *t, uint64_t node) {
  for (uint32_t i = 0; i < t->voters; i++)
    if (t->voter[i] == node) return true;
  return false;
}

/* The digest a majority of voters reported at c, if any. */
static const struct lr__sm_digest *majority(const struct lr__sm_digests *t,
                                            const struct lr__sm_ckpt *c) {
  if (t->voters == 0) return NULL;
  uint32_t need = t->voters / 2 + 1;
  for (uint32_t i = 0; i < c->n; i++) {
    uint32_t k = 0;
    for (uint32_t j = 0; j < c->n; j++)
      k += same(&c->r[i].d, &c->r[j].d);
    if (k >= need) return &c->r[i].d;
  }
  return NULL;
}

bool lr__sm_digest_report(struct lr__sm_digests *t, raft_index index, uint64_t node,
                          const struct lr__sm_digest *d) {
  if (!is_voter(t, node)) return false; /* a learner's report does not count */
  struct lr__sm_ckpt *c = slot(t, index, true);
  if (c == NULL || c->decided || c->n >= LR__SM_REPORTS_MAX) return false;
  for (uint32_t i = 0; i < c->n; i++)
    if (c->r[i].node == node) return false; /* a duplicate: first one counts */
  c->r[c->n].node = node;
  c->r[c->n].d = *d;
  c->n++;
  const struct lr__sm_digest *m = majority(t, c);
  if (m == NULL) return false;
  c->decided = true;
  if (!c->has_own) return false; /* restored past it: nothing to compare */
  if (same(&c->own, m)) {
    t->matched++;
    return false;
  }
  t->mismatches++;
  if (t->diverged) return false;
  t->diverged = true;
  t->div_index = index;
  t->div_mine = c->own;
  t->div_majority = *m;
  return true;
}

/* ---- the runner's side: taking digest(), applying reports ---- */
/* Shows a digest in a log line: printable bytes as they are, others as \xNN. */
static const char *printable(char *buf, size_t cap, const char *p, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 5 < cap; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c >= 32 && c < 127 && c != '"')
      buf[k++] = (char)c;
    else
      k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", c);
  }
  buf[k] = 0;
  return buf;
}

/* Calls digest() right after applying the checkpoint entry at index. */
void lr__sm_take_digest(struct lr_sm *sm, raft_index index) {
  lua_State *L = sm->L;
  uint64_t hard = sm->mem->hard;
  lua_pushvalue(L, S_DIGEST);
  lr__sm_call_begin(sm, L, (lua_Integer)index, -1);
  int rc = lua_pcall(L, 0, 1, S_HANDLER);
  lr__sm_call_end(sm, L, sm->mem, hard, rc);
  char line[400];
  if (sm->halted) {
    /* nothing: halted */
  } else if (rc != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    snprintf(line, sizeof line, "digest at %llu skipped: %s", (unsigned long long)index,
             rc != LUA_OK ? lua_tostring(L, -1) : "digest() must return a string");
    lr__sm_log(sm, RAFT_LOG_WARN, line);
  } else {
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);
    struct lr__sm_digest d;
    lr__sm_digest_make(&d, p, n);
    lr__sm_digest_own(&sm->dg, index, &d);
  }
  lua_settop(L, S_TOP);
}

/* An applied DIGEST entry: u64 index | digest bytes. */
void lr__sm_apply_digest(struct lr_sm *sm, const struct lr_env *env) {
  struct lr__rd r;
  lr__rd_init(&r, env->cmd, env->cmd_len);
  raft_index index = lr__getn(&r, 8);
  if (r.bad || r.n > LR_SM_DIGEST_MAX || index == 0 || index > sm->applied) return;
  struct lr__sm_digest d;
  d.len = (uint8_t)r.n;
  memcpy(d.d, r.p, r.n);
  if (!lr__sm_digest_report(&sm->dg, index, env->origin, &d)) return;
  char mine[4 * LR_SM_DIGEST_MAX + 1], maj[4 * LR_SM_DIGEST_MAX + 1];
  lr__sm_halt(sm, false,
              "diverged from the majority at index %llu: digest() gave \"%s\" here, "
              "\"%s\" on a majority of the voters; this replica's state is wrong: stop the node, "
              "delete its data directory and start it again, so it catches up from a healthy "
              "replica's snapshot",
              (unsigned long long)index,
              printable(mine, sizeof mine, sm->dg.div_mine.d, sm->dg.div_mine.len),
              printable(maj, sizeof maj, sm->dg.div_majority.d, sm->dg.div_majority.len));
}

bool lr_sm_digest_due(const struct lr_sm *sm) {
  return sm->dg.due && !sm->halted;
}

int lr_sm_digest_envelope(struct lr_sm *sm, struct lr_buf *out) {
  if (!sm->dg.due) return -1;
  const struct lr__sm_ckpt *c = NULL;
  for (int i = 0; i < LR__SM_CKPTS; i++)
    if (sm->dg.ck[i].index == sm->dg.due_index && sm->dg.ck[i].has_own) c = &sm->dg.ck[i];
  sm->dg.due = false;
  if (c == NULL) return -1; /* UNTESTED: evicted */
  char cmd[8 + LR_SM_DIGEST_MAX];
  lr__put64(cmd, c->index);
  memcpy(cmd + 8, c->own.d, c->own.len);
  struct lr_env e = {
      .origin = sm->o.id, .kind = LR_ENV_DIGEST, .cmd = cmd, .cmd_len = 8 + (size_t)c->own.len};
  return lr_env_encode(&e, out);
}
