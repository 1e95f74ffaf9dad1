/* See core_fixture.h. Failures of the fixture's own checks abort with a
 * message: a test that trips one has found a safety bug. */
#include "core_fixture.h"
#include "drive/drive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fixture: " __VA_ARGS__);                                                      \
    fprintf(stderr, "\n");                                                                         \
    abort();                                                                                       \
  } while (0)

struct fx_qmsg {
  struct lr_msg_copy *c; /* the one message copy of luaraft (src/drive) */
  uint64_t at;
  struct fx_qmsg *next;
};

struct fx_write {
  bool hard_state;
  raft_term term;
  raft_id vote;
  struct raft_entry *entries;
  uint32_t n_entries;
  bool has_snap;
  struct raft_snapshot snap;
  struct lr_msg_copy **after;
  uint32_t n_after;
  raft_index ack_index;
  raft_term ack_term;
  struct fx_write *next;
};

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) FAIL("out of memory");
  return p;
}

static uint8_t *dup(const void *p, size_t n) {
  uint8_t *d = xmalloc(n);
  if (n) memcpy(d, p, n);
  return d;
}

static void copy_entries(struct raft_entry **out, const struct raft_entry *e, uint32_t n) {
  *out = n ? xmalloc(n * sizeof **out) : NULL;
  for (uint32_t i = 0; i < n; i++) {
    (*out)[i] = e[i];
    (*out)[i].data = e[i].len ? dup(e[i].data, e[i].len) : NULL;
  }
}

static void free_entries(struct raft_entry *e, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    free(e[i].data);
  free(e);
}

static struct lr_msg_copy *copy_msg(const struct raft_message *m) {
  struct lr_msg_copy *c = lr_msg_copy(m);
  if (c == NULL) FAIL("out of memory");
  return c;
}

static void copy_snap(struct raft_snapshot *d, const struct raft_snapshot *s) {
  *d = *s;
  d->data = dup(s->data, s->len);
  if (raft_config_copy(&s->meta.config, &d->meta.config) != 0) FAIL("config copy");
}

static void free_snap(struct raft_snapshot *s) {
  free((void *)s->data);
  raft_config_free(&s->meta.config);
  memset(s, 0, sizeof *s);
}

void fx_send(struct fx *f, const struct raft_message *m) {
  if (m->from <= FX_MAX) f->sent[m->from][m->type <= RAFT_MSG_TYPE_MAX ? m->type : 0]++;
  if (f->filter != NULL && !f->filter(f, m, f->filter_arg)) return;
  if (m->to == 0 || m->to > f->n || f->cut[m->from <= FX_MAX ? m->from : 0][m->to]) return;
  struct fx_qmsg *q = xmalloc(sizeof *q);
  q->c = copy_msg(m);
  q->at = f->now + f->latency;
  q->next = NULL;
  if (f->tail)
    f->tail->next = q;
  else
    f->head = q;
  f->tail = q;
}

/* ---- the state machine ---------------------------------------------------- */

static uint64_t mix(uint64_t h, const struct raft_entry *e) {
  h ^= e->term * 0x9e3779b97f4a7c15ULL + e->type;
  for (uint32_t i = 0; i < e->len; i++)
    h = (h ^ e->data[i]) * 0x100000001b3ULL;
  return h * 0xff51afd7ed558ccdULL + e->index;
}

static void chain_check(struct fx *f, struct fx_node *n) {
  if (n->applied >= f->n_chain) {
    raft_index cap = f->n_chain ? f->n_chain : 1024;
    while (cap <= n->applied)
      cap *= 2;
    f->chain = realloc(f->chain, cap * sizeof *f->chain);
    memset(f->chain + f->n_chain, 0, (cap - f->n_chain) * sizeof *f->chain);
    f->n_chain = cap;
  }
  uint64_t *c = &f->chain[n->applied];
  if (*c == 0)
    *c = n->hash;
  else if (*c != n->hash)
    FAIL("node %llu applied a different entry at %llu", (unsigned long long)n->id,
         (unsigned long long)n->applied);
}

static void apply(struct fx *f, struct fx_node *n, const struct raft_entry *e) {
  if (e->index != n->applied + 1)
    FAIL("node %llu applies %llu after %llu", (unsigned long long)n->id,
         (unsigned long long)e->index, (unsigned long long)n->applied);
  n->hash = mix(n->hash, e);
  n->applied = e->index;
  n->n_applied_normal += e->type == RAFT_ENTRY_NORMAL;
  chain_check(f, n);
}

static void take_snapshot(struct fx *f, struct fx_node *n) {
  size_t len = f->snap_size < 16 ? 16 : f->snap_size;
  uint8_t *d = xmalloc(len);
  for (size_t i = 0; i < len; i++)
    d[i] = (uint8_t)(i * 7 + n->applied);
  memcpy(d, &n->applied, 8);
  memcpy(d + 8, &n->hash, 8);
  if (raft_snapshot_taken(n->r, n->applied, d, len) != 0) FAIL("snapshot_taken");
  free(d);
}

static void restore(struct fx *f, struct fx_node *n, const struct raft_snapshot *s) {
  if (s->len < 16) FAIL("short snapshot");
  memcpy(&n->applied, s->data, 8);
  memcpy(&n->hash, s->data + 8, 8);
  if (n->applied != s->meta.index) FAIL("snapshot index mismatch");
  chain_check(f, n);
}

/* ---- storage -------------------------------------------------------------- */

static raft_index log_first(const struct fx_node *n) {
  return n->has_snap ? n->snap.meta.index + 1 : 1;
}

static void store_truncate(struct fx_node *n, raft_index from) {
  raft_index first = log_first(n);
  uint32_t keep = from <= first ? 0 : (uint32_t)(from - first);
  if (keep < n->n_log) {
    for (uint32_t i = keep; i < n->n_log; i++)
      free(n->log[i].data);
    n->n_log = keep;
  }
}

static void store_append(struct fx_node *n, const struct raft_entry *e, uint32_t k) {
  if (k == 0) return;
  store_truncate(n, e[0].index);
  if (e[0].index != log_first(n) + n->n_log)
    FAIL("storage gap at %llu", (unsigned long long)e[0].index);
  if (n->n_log + k > n->cap_log) {
    n->cap_log = (n->n_log + k) * 2;
    n->log = realloc(n->log, n->cap_log * sizeof *n->log);
  }
  struct raft_entry *c;
  copy_entries(&c, e, k);
  memcpy(n->log + n->n_log, c, k * sizeof *c);
  free(c);
  n->n_log += k;
}

/* The host rule for update.snapshot (see the report): drop every entry it
 * covers; keep the entries after it only when the log has the snapshot's
 * last entry with the same term. */
static void store_snapshot(struct fx_node *n, const struct raft_snapshot *s) {
  raft_index first = log_first(n);
  raft_index idx = s->meta.index;
  bool keep = idx >= first && idx < first + n->n_log && n->log[idx - first].term == s->meta.term;
  uint32_t drop = keep ? (uint32_t)(idx - first + 1) : n->n_log;
  for (uint32_t i = 0; i < drop; i++)
    free(n->log[i].data);
  memmove(n->log, n->log + drop, (n->n_log - drop) * sizeof *n->log);
  n->n_log -= drop;
  if (n->has_snap) free_snap(&n->snap);
  copy_snap(&n->snap, s);
  n->has_snap = true;
}

static void write_apply(struct fx_node *n, struct fx_write *w) {
  if (w->hard_state) {
    n->term = w->term;
    n->vote = w->vote;
  }
  if (w->has_snap) store_snapshot(n, &w->snap);
  store_append(n, w->entries, w->n_entries);
}

static void write_free(struct fx_write *w) {
  free_entries(w->entries, w->n_entries);
  if (w->has_snap) free_snap(&w->snap);
  for (uint32_t i = 0; i < w->n_after; i++)
    lr_msg_copy_free(w->after[i]);
  free(w->after);
  free(w);
}

/* ---- driving one node ----------------------------------------------------- */

static void observe(struct fx *f, struct fx_node *n, const struct raft_update *u) {
  if (u->soft_state) {
    if (u->role == RAFT_LEADER && n->role != RAFT_LEADER) {
      n->became_leader_at = f->now;
      raft_term t = fx_term(f, n->id);
      if (t < 256) {
        if (f->leader_of_term[t] != 0 && f->leader_of_term[t] != n->id) {
          FAIL("two leaders in term %llu", (unsigned long long)t);
        }
        f->leader_of_term[t] = n->id;
      }
    }
    if (u->role != RAFT_LEADER && n->role == RAFT_LEADER) n->stepped_down_at = f->now;
    n->role = u->role;
    n->leader = u->leader;
  }
  for (uint32_t i = 0; i < u->n_reads && n->n_reads < FX_READS_MAX; i++) {
    n->reads[n->n_reads++] = u->reads[i];
  }
  for (uint32_t i = 0; i < u->n_prop_errors && n->n_perrs < 64; i++) {
    n->perrs[n->n_perrs++] = u->prop_errors[i];
  }
}

static bool handle(struct fx *f, struct fx_node *n) {
  struct raft_update u;
  raft_update_take(n->r, &u);
  observe(f, n, &u);
  for (uint32_t i = 0; i < u.n_msgs; i++)
    fx_send(f, &u.msgs[i]);
  /* committed entries are already durable: apply them now */
  if (u.snapshot != NULL && u.n_committed > 0) FAIL("snapshot and committed together");
  for (uint32_t i = 0; i < u.n_committed; i++)
    apply(f, n, &u.committed[i]);
  struct fx_write *w = calloc(1, sizeof *w);
  w->hard_state = u.hard_state;
  w->term = u.term;
  w->vote = u.vote;
  copy_entries(&w->entries, u.entries, u.n_entries);
  w->n_entries = u.n_entries;
  if (u.snapshot) {
    w->has_snap = true;
    copy_snap(&w->snap, u.snapshot);
    restore(f, n, u.snapshot); /* the host restores after persisting */
  }
  w->n_after = u.n_msgs_after;
  w->after = xmalloc((u.n_msgs_after + 1) * sizeof *w->after);
  for (uint32_t i = 0; i < u.n_msgs_after; i++)
    w->after[i] = copy_msg(&u.msgs_after[i]);
  w->ack_index = u.ack_index;
  w->ack_term = u.ack_term;
  bool took = u.n_committed > 0;
  if (n->manual) {
    struct fx_write **p = &n->writes;
    while (*p)
      p = &(*p)->next;
    *p = w;
  } else {
    write_apply(n, w);
    for (uint32_t i = 0; i < w->n_after; i++)
      fx_send(f, &w->after[i]->m);
    if (w->ack_index != 0) raft_persisted(n->r, f->now, w->ack_index, w->ack_term);
    write_free(w);
  }
  if (took && f->snap_every && n->applied >= f->snap_every &&
      (!n->has_snap || n->applied - n->snap.meta.index >= f->snap_every)) {
    take_snapshot(f, n);
  }
  return true;
}

void fx_drain(struct fx *f, raft_id id) {
  struct fx_node *n = &f->nodes[id];
  for (int guard = 0; n->alive && raft_has_update(n->r); guard++) {
    if (guard > 100000) FAIL("node %llu never settles", (unsigned long long)id);
    handle(f, n);
  }
}

void fx_flush(struct fx *f, raft_id id) {
  struct fx_node *n = &f->nodes[id];
  while (n->writes) {
    struct fx_write *w = n->writes;
    n->writes = w->next;
    write_apply(n, w);
    for (uint32_t i = 0; i < w->n_after; i++)
      fx_send(f, &w->after[i]->m);
    if (w->ack_index != 0) raft_persisted(n->r, f->now, w->ack_index, w->ack_term);
    write_free(w);
    fx_drain(f, id);
  }
}

void fx_fail_writes(struct fx *f, raft_id id) {
  struct fx_node *n = &f->nodes[id];
  while (n->writes) {
    struct fx_write *w = n->writes;
    n->writes = w->next;
    write_free(w);
  }
  raft_persist_failed(n->r, f->now);
  fx_drain(f, id);
}

uint32_t fx_pending_writes(struct fx *f, raft_id id) {
  uint32_t k = 0;
  for (struct fx_write *w = f->nodes[id].writes; w; w = w->next)
    k++;
  return k;
}

void fx_set_manual(struct fx *f, raft_id id, bool manual) {
  f->nodes[id].manual = manual;
  if (!manual) fx_flush(f, id);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void boot_node(struct fx *f, struct fx_node *n) {
  struct raft_options o = f->opts;
  o.id = n->id;
  o.seed = f->opts.seed * 31 + n->id;
  struct raft_boot b = {n->term, n->vote, n->has_snap ? &n->snap : NULL, n->log, n->n_log};
  if (raft_new(&o, &b, f->now, &n->r) != 0) FAIL("raft_new");
  n->alive = true;
  n->role = RAFT_FOLLOWER;
  n->leader = 0;
  if (n->has_snap) {
    restore(f, n, &n->snap);
  } else {
    n->applied = 0;
    n->hash = 0;
  }
  fx_drain(f, n->id);
}

void fx_init(struct fx *f, uint32_t n, uint32_t extra, const struct raft_options *o) {
  memset(f, 0, sizeof *f);
  f->n = n + extra;
  if (f->n > FX_MAX) FAIL("too many nodes");
  f->opts = *o;
  f->latency = 1;
  struct raft_member m[FX_MAX];
  char addr[FX_MAX][16];
  for (uint32_t i = 0; i < n; i++) {
    snprintf(addr[i], sizeof addr[i], "node%u", i + 1);
    m[i] = (struct raft_member){i + 1, RAFT_VOTER, addr[i]};
  }
  struct raft_config c = {m, n};
  struct raft_entry e;
  if (raft_bootstrap_entry(&c, &e) != 0) FAIL("bootstrap");
  for (uint32_t i = 1; i <= f->n; i++) {
    struct fx_node *nd = &f->nodes[i];
    nd->id = i;
    if (i <= n) store_append(nd, &e, 1);
    boot_node(f, nd);
  }
  raft_entry_free_data(&e);
}

void fx_crash(struct fx *f, raft_id id) {
  struct fx_node *n = &f->nodes[id];
  if (!n->alive) return;
  raft_free_node(n->r);
  n->r = NULL;
  n->alive = false;
  while (n->writes) {
    struct fx_write *w = n->writes;
    n->writes = w->next;
    write_free(w);
  }
  if (n->role == RAFT_LEADER) n->stepped_down_at = f->now;
  n->role = 0;
}

void fx_restart(struct fx *f, raft_id id) {
  fx_crash(f, id);
  boot_node(f, &f->nodes[id]);
}

void fx_free(struct fx *f) {
  for (uint32_t i = 1; i <= f->n; i++) {
    struct fx_node *n = &f->nodes[i];
    fx_crash(f, i);
    free_entries(n->log, n->n_log);
    if (n->has_snap) free_snap(&n->snap);
  }
  while (f->head) {
    struct fx_qmsg *q = f->head;
    f->head = q->next;
    lr_msg_copy_free(q->c);
    free(q);
  }
  free(f->chain);
}

/* ---- time ----------------------------------------------------------------- */

static uint64_t next_event(struct fx *f) {
  uint64_t t = f->head ? f->head->at : UINT64_MAX;
  for (uint32_t i = 1; i <= f->n; i++) {
    if (f->nodes[i].alive) {
      uint64_t d = raft_deadline(f->nodes[i].r);
      if (d < t) t = d;
    }
  }
  return t;
}

static void deliver(struct fx *f, struct fx_qmsg *q) {
  struct fx_node *n = &f->nodes[q->c->m.to];
  if (n->alive && !f->cut[q->c->m.from <= FX_MAX ? q->c->m.from : 0][q->c->m.to]) {
    raft_step(n->r, f->now, &q->c->m);
    fx_drain(f, n->id);
  }
  lr_msg_copy_free(q->c);
  free(q);
}

static void advance_to(struct fx *f, uint64_t t) {
  if (t > f->now) f->now = t;
  while (f->head && f->head->at <= f->now) {
    struct fx_qmsg *q = f->head;
    f->head = q->next;
    if (!f->head) f->tail = NULL;
    deliver(f, q);
  }
  for (uint32_t i = 1; i <= f->n; i++) {
    struct fx_node *n = &f->nodes[i];
    if (n->alive && raft_deadline(n->r) <= f->now) {
      raft_tick(n->r, f->now);
      fx_drain(f, i);
    }
  }
}

bool fx_step(struct fx *f) {
  uint64_t t = next_event(f);
  if (t == UINT64_MAX) return false;
  advance_to(f, t);
  return true;
}

void fx_run(struct fx *f, uint64_t ms) {
  uint64_t end = f->now + ms;
  while (next_event(f) <= end)
    fx_step(f);
  f->now = end;
}

raft_id fx_leader(struct fx *f) {
  raft_id best = 0;
  raft_term bt = 0;
  for (uint32_t i = 1; i <= f->n; i++) {
    struct fx_node *n = &f->nodes[i];
    if (n->alive && n->role == RAFT_LEADER && fx_term(f, i) >= bt) {
      best = i;
      bt = fx_term(f, i);
    }
  }
  return best;
}

raft_id fx_run_until_leader(struct fx *f, uint64_t timeout_ms) {
  uint64_t end = f->now + timeout_ms;
  while (f->now <= end) {
    raft_id l = fx_leader(f);
    if (l != 0) return l;
    if (next_event(f) > end) break;
    fx_step(f);
  }
  return fx_leader(f);
}

bool fx_run_until_applied(struct fx *f, raft_id id, raft_index index, uint64_t timeout_ms) {
  uint64_t end = f->now + timeout_ms;
  while (f->nodes[id].applied < index) {
    if (next_event(f) > end) return false;
    fx_step(f);
  }
  return true;
}

void fx_cut(struct fx *f, raft_id from, raft_id to, bool cut) {
  f->cut[from][to] = cut;
}

void fx_isolate(struct fx *f, raft_id id, bool cut) {
  for (uint32_t i = 1; i <= f->n; i++) {
    if (i != id) {
      f->cut[id][i] = cut;
      f->cut[i][id] = cut;
    }
  }
}

void fx_heal(struct fx *f) {
  memset(f->cut, 0, sizeof f->cut);
}

struct raft *fx_r(struct fx *f, raft_id id) {
  return f->nodes[id].r;
}

int fx_propose(struct fx *f, raft_id id, const char *s, raft_index *index) {
  raft_term t;
  int rv = raft_propose(f->nodes[id].r, f->now, s, strlen(s), 0, index, &t);
  fx_drain(f, id);
  return rv;
}

uint64_t fx_sent(struct fx *f, raft_id from, int type) {
  return f->sent[from][type];
}

void fx_reset_sent(struct fx *f) {
  memset(f->sent, 0, sizeof f->sent);
}

int fx_role(struct fx *f, raft_id id) {
  struct raft_status s;
  if (!f->nodes[id].alive) return 0;
  raft_status(f->nodes[id].r, &s);
  return s.role;
}

raft_term fx_term(struct fx *f, raft_id id) {
  struct raft_status s;
  if (!f->nodes[id].alive) return 0;
  raft_status(f->nodes[id].r, &s);
  return s.term;
}

struct raft_options fx_opts(void) {
  struct raft_options o = {0};
  o.election_ms = 100;
  o.heartbeat_ms = 10;
  o.pre_vote = true;
  o.check_quorum = true;
  o.seed = 1;
  return o;
}

raft_index fx_commit(struct fx *f, raft_id id) {
  struct raft_status s;
  raft_status(f->nodes[id].r, &s);
  return s.commit;
}

raft_index fx_last(struct fx *f, raft_id id) {
  struct raft_status s;
  raft_status(f->nodes[id].r, &s);
  return s.last_index;
}
