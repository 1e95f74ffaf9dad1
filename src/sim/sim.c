/* The simulator: clock, event queue, PRNG, network, requests (see sim.h). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

/* ---- PRNG: xoshiro256**, seeded through splitmix64 ----------------------- */
static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t lr__sim_rand(struct lr_sim *s) {
  uint64_t *r = s->rng;
  uint64_t result = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
  r[2] ^= r[0];
  r[3] ^= r[1];
  r[1] ^= r[2];
  r[0] ^= r[3];
  r[2] ^= t;
  r[3] = rotl(r[3], 45);
  return result;
}
uint64_t lr_sim_random(struct lr_sim *s) {
  lr__sim_flush(s);
  return lr__sim_rand(s);
}

uint32_t lr__sim_rand_range(struct lr_sim *s, uint32_t lo, uint32_t hi) {
  if (hi <= lo) return lo;
  return lo + (uint32_t)(lr__sim_rand(s) % ((uint64_t)hi - lo + 1));
}
static bool chance(struct lr_sim *s, double p) {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return (double)(lr__sim_rand(s) >> 11) * 0x1.0p-53 < p;
}

/* ---- the event heap: ordered by time, then insertion --------------------- */
static bool ev_less(const struct lr__sim_ev *a, const struct lr__sim_ev *b) {
  return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void heap_push(struct lr_sim *s, struct lr__sim_heap *h, const struct lr__sim_ev *ev) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    struct lr__sim_ev *a = raft_realloc(h->a, cap * sizeof *a);
    if (a == NULL) abort(); /* UNTESTED: the simulator cannot go on */
    h->a = a;
    h->cap = cap;
  }
  size_t i = h->n++;
  struct lr__sim_ev e = *ev;
  e.seq = s->seq++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!ev_less(&e, &h->a[p])) break;
    h->a[i] = h->a[p];
    i = p;
  }
  h->a[i] = e;
}

static void sift_down(struct lr__sim_heap *h, size_t i, struct lr__sim_ev last) {
  size_t n = h->n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && ev_less(&h->a[c + 1], &h->a[c])) c++;
    if (!ev_less(&h->a[c], &last)) break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (n > 0) h->a[i] = last;
}

static struct lr__sim_ev heap_pop(struct lr__sim_heap *h) {
  struct lr__sim_ev top = h->a[0], last = h->a[--h->n];
  sift_down(h, 0, last);
  return top;
}

void lr__sim_push_event(struct lr_sim *s, const struct lr__sim_ev *ev) {
  heap_push(s, &s->events, ev);
}

/* Drops the timeouts of finished requests once they are most of the heap. */
static void timeouts_compact(struct lr_sim *s) {
  struct lr__sim_heap *h = &s->timeouts;
  if (h->n < 1024 || h->n < 4 * s->w_n) return;
  size_t k = 0;
  for (size_t i = 0; i < h->n; i++)
    if (lr__sim_waiter_get(s, h->a[i].u.id) != NULL) h->a[k++] = h->a[i];
  h->n = k;
  for (size_t i = k / 2; i-- > 0;)
    sift_down(h, i, h->a[i]);
}

/* ---- messages ------------------------------------------------------------ */
void lr__sim_blk_unref(struct lr__sim_blk *b) {
  if (b == NULL || --b->refs > 0) return;
  lr_store_batch_free(b->batch);
  raft_free(b);
}

int lr__sim_slot(const struct lr_sim *s, raft_id id) {
  for (uint32_t i = 0; i < s->n_slots; i++)
    if (s->nodes[i].id == id && s->nodes[i].exists) return (int)i;
  return -1;
}

static bool blocked(const struct lr_sim *s, uint32_t a, uint32_t b) {
  return s->group[a] != s->group[b] && s->group[a] != 0 && s->group[b] != 0;
}

static void schedule(struct lr_sim *s, uint32_t from, uint32_t to, struct lr_msg_copy *msg) {
  const struct lr__sim_link *l = &s->link[from][to];
  uint32_t lo = l->set ? l->lo : s->lo, hi = l->set ? l->hi : s->hi;
  uint64_t t = s->now + lr__sim_rand_range(s, lo, hi);
  if (!s->reorder) {
    if (t < s->last_deliver[from][to]) t = s->last_deliver[from][to];
    s->last_deliver[from][to] = t;
  }
  struct lr__sim_ev ev = {.time = t, .type = EV_MSG, .slot = to, .u.msg = msg};
  lr__sim_push_event(s, &ev);
}

/* A copy of m for the network. A leader sends the same entries to every
 * follower that is caught up: they are copied once and shared (the last
 * copy with entries is kept for that), as a real node encodes them once. */
static struct lr_msg_copy *copy_msg(struct lr_sim *s, const struct raft_message *m) {
  if (m->n_entries == 0) return lr_msg_copy(m);
  /* the same sender's same log array: nothing a bug in the core does can
   * make the shared bytes differ from what this message holds */
  if (s->last_entries && s->last_src == m->entries && s->last_entries->m.from == m->from &&
      lr_msg_same_entries(&s->last_entries->m, m))
    return lr_msg_copy_sharing(m, s->last_entries);
  struct lr_msg_copy *c = lr_msg_copy(m);
  if (c == NULL) return NULL; /* UNTESTED */
  lr_msg_copy_free(s->last_entries);
  c->refs++;
  s->last_entries = c;
  s->last_src = m->entries;
  return c;
}

/* Sends a copy of m: drops, duplicates and delays it by the network rules.
 * b: the batch holding m's entries (io.send_batch), or NULL. */
void lr__sim_send(struct lr_sim *s, uint32_t from, const struct raft_message *m,
                  struct lr_store_batch *b) {
  int to = lr__sim_slot(s, m->to);
  if (s->o.trace >= LR_SIM_TRACE_MESSAGES)
    lr_sim_trace_line(s, "msg %s %llu->%llu term %llu index %llu n %u", raft_msg_name(m->type),
                      (unsigned long long)m->from, (unsigned long long)m->to,
                      (unsigned long long)m->term, (unsigned long long)m->index, m->n_entries);
  const struct lr__sim_link *l = to >= 0 ? &s->link[from][to] : NULL;
  double drop = l && l->set ? l->drop : s->drop;
  if (to < 0 || blocked(s, from, (uint32_t)to) || chance(s, drop)) return;
  if (chance(s, s->dup)) {
    struct lr_msg_copy *again = b ? lr_msg_copy_in_batch(m, b) : copy_msg(s, m);
    if (again) schedule(s, from, (uint32_t)to, again);
  }
  struct lr_msg_copy *msg = b ? lr_msg_copy_in_batch(m, b) : copy_msg(s, m);
  if (msg == NULL) return; /* UNTESTED: a lost message */
  schedule(s, from, (uint32_t)to, msg);
}

/* ---- the loop ------------------------------------------------------------ */
/* A proposal does not drain its node at once: a burst of proposals becomes
 * one update (one write, one APPEND per follower), as in a real host, whose
 * loop takes one update per iteration. Every other call that acts on the
 * cluster or looks at it drains first, so it sees the proposals sent. */
void lr__sim_flush(struct lr_sim *s) {
  if (!s->drain_due) return;
  s->drain_due = false;
  for (uint32_t i = 0; i < s->n_slots; i++)
    if (s->nodes[i].drain_due) lr__sim_node_drain(s, i);
}

/* A member refuses a node its configuration does not hold, naming its
 * configuration index, as a real node's transport refuses the connection
 * (src/host/transport.c): the sender learns it was removed and stops
 * ticking, until a leader talks to it again. A node that is not a member
 * (one joining) hears from anyone. */
static bool refused(struct lr_sim *s, uint32_t from, uint32_t to) {
  struct lr__sim_node *a = &s->nodes[from], *b = &s->nodes[to];
  if (!lr_drive_was_member(b->d) || raft_config_get(lr_drive_config(b->d), a->id) != NULL)
    return false;
  if (a->up) {
    struct raft_status st;
    raft_status(lr_drive_raft(b->d), &st);
    lr_drive_set_removed(a->d, b->id, st.config_index);
  }
  return true;
}

static void handle(struct lr_sim *s, struct lr__sim_ev *ev) {
  struct lr__sim_node *n = &s->nodes[ev->slot];
  switch (ev->type) {
  case EV_MSG: {
    int from = lr__sim_slot(s, ev->u.msg->m.from);
    if (n->up && (from < 0 || !blocked(s, (uint32_t)from, ev->slot)) &&
        (from < 0 || !refused(s, (uint32_t)from, ev->slot)))
      lr__sim_node_deliver(s, ev->slot, ev->u.msg);
    lr_msg_copy_free(ev->u.msg);
    break;
  }
  case EV_DISK:
    if (n->up && n->inc == ev->inc) lr__sim_node_durable(s, ev->slot);
    break;
  case EV_TIMEOUT: {
    static const char msg[] = "request timed out";
    /* the node's driver stops sending it to new leaders (issue 10) */
    struct lr__sim_waiter *w = lr__sim_waiter_get(s, ev->u.id);
    if (w != NULL && w->slot < s->n_slots && s->nodes[w->slot].up &&
        s->nodes[w->slot].inc == w->inc && s->nodes[w->slot].d != NULL)
      lr_drive_forget(s->nodes[w->slot].d, ev->u.id);
    lr__sim_complete(s, ev->u.id, "timeout", msg, sizeof msg - 1, 0, 0, 0);
    break;
  }
  }
}

/* The next time something is due, and which node's tick (or -1: an event). */
/* The heap whose top comes first, or NULL when both are empty. */
static struct lr__sim_heap *first_heap(struct lr_sim *s) {
  struct lr__sim_heap *e = &s->events, *t = &s->timeouts;
  if (e->n == 0) return t->n ? t : NULL;
  if (t->n == 0) return e;
  return ev_less(&t->a[0], &e->a[0]) ? t : e;
}

static uint64_t next_due(struct lr_sim *s, int *tick_slot) {
  struct lr__sim_heap *h = first_heap(s);
  uint64_t best = UINT64_MAX, te = h ? h->a[0].time : UINT64_MAX;
  int bs = -1;
  for (uint32_t i = 0; i < s->n_slots; i++) {
    struct lr__sim_node *n = &s->nodes[i];
    if (!n->up) continue;
    uint64_t d = lr_drive_deadline(n->d);
    if (d <= n->last_tick) d = n->last_tick + 1; /* never tick twice at once */
    if (d < best) {
      best = d;
      bs = (int)i;
    }
  }
  /* Ticks go first at equal times; among nodes, the lowest slot. */
  if (bs >= 0 && best <= te) {
    *tick_slot = bs;
    return best;
  }
  *tick_slot = -1;
  return te;
}

static bool run_one(struct lr_sim *s, uint64_t limit) {
  lr__sim_flush(s);
  int slot;
  uint64_t t = next_due(s, &slot);
  if (t > limit || t == UINT64_MAX) return false;
  if (t > s->now) s->now = t;
  if (slot >= 0) {
    lr__sim_node_tick(s, (uint32_t)slot);
  } else {
    struct lr__sim_ev ev = heap_pop(first_heap(s));
    handle(s, &ev);
  }
  return true;
}

void lr_sim_run(struct lr_sim *s, uint64_t until) {
  while (run_one(s, until)) {
  }
  if (until > s->now) s->now = until;
}

bool lr_sim_step(struct lr_sim *s, uint64_t limit) {
  lr__sim_flush(s);
  int slot;
  uint64_t t = next_due(s, &slot);
  if (t > limit || t == UINT64_MAX) return false;
  while (run_one(s, t)) {
  }
  return true;
}

uint64_t lr_sim_now(const struct lr_sim *s) {
  return s->now;
}

/* ---- requests and completions -------------------------------------------- */
static size_t w_hash(uint64_t id, size_t cap) {
  return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

struct lr__sim_waiter *lr__sim_waiter_get(struct lr_sim *s, uint64_t id) {
  if (s->w_cap == 0 || id == 0) return NULL;
  for (size_t i = w_hash(id, s->w_cap);; i = (i + 1) & (s->w_cap - 1)) {
    if (s->waiters[i].id == id) return &s->waiters[i];
    if (s->waiters[i].id == 0) return NULL;
  }
}

static struct lr__sim_waiter *waiter_add(struct lr_sim *s, uint64_t id) {
  if ((s->w_n + 1) * 2 > s->w_cap) {
    size_t cap = s->w_cap ? s->w_cap * 2 : 256;
    struct lr__sim_waiter *w = raft_malloc(cap * sizeof *w), *old = s->waiters;
    if (w == NULL) abort(); /* UNTESTED */
    memset(w, 0, cap * sizeof *w);
    for (size_t i = 0; i < s->w_cap; i++) {
      if (old[i].id == 0) continue;
      size_t j = w_hash(old[i].id, cap);
      while (w[j].id != 0)
        j = (j + 1) & (cap - 1);
      w[j] = old[i];
    }
    raft_free(old);
    s->waiters = w;
    s->w_cap = cap;
  }
  size_t j = w_hash(id, s->w_cap);
  while (s->waiters[j].id != 0)
    j = (j + 1) & (s->w_cap - 1);
  memset(&s->waiters[j], 0, sizeof s->waiters[j]);
  s->waiters[j].id = id;
  s->w_n++;
  return &s->waiters[j];
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void waiter_del(struct lr_sim *s, struct lr__sim_waiter *w) {
  size_t mask = s->w_cap - 1, i = (size_t)(w - s->waiters);
  for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    if (s->waiters[j].id == 0) break;
    size_t h = w_hash(s->waiters[j].id, s->w_cap);
    /* can j's entry move to i? only if h is not in (i, j] cyclically */
    bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
    if (stays) continue;
    s->waiters[i] = s->waiters[j];
    i = j;
  }
  memset(&s->waiters[i], 0, sizeof s->waiters[i]);
  s->w_n--;
}

void lr__sim_complete(struct lr_sim *s, uint64_t id, const char *code, const char *data, size_t len,
                      raft_index index, raft_term term, raft_id leader) {
  struct lr__sim_waiter *w = lr__sim_waiter_get(s, id);
  if (w == NULL) return;
  waiter_del(s, w);
  if (s->cq_head + s->cq_n == s->cq_cap) {
    /* slide down only when that frees at least half: a queue that never
     * drains would otherwise move all of itself on every push */
    if (s->cq_head > 0 && s->cq_head >= s->cq_cap / 2) {
      memmove(s->cq, s->cq + s->cq_head, s->cq_n * sizeof *s->cq);
      s->cq_head = 0;
    } else {
      size_t cap = s->cq_cap ? s->cq_cap * 2 : 256;
      struct lr__sim_cmpl *q = raft_realloc(s->cq, cap * sizeof *q);
      if (q == NULL) abort(); /* UNTESTED */
      s->cq = q;
      s->cq_cap = cap;
    }
  }
  struct lr__sim_cmpl *c = &s->cq[s->cq_head + s->cq_n++];
  memset(c, 0, sizeof *c);
  c->buf = len > sizeof c->small ? raft_malloc(len) : NULL;
  if (len > sizeof c->small && c->buf == NULL) abort(); /* UNTESTED */
  if (len) memcpy(c->buf ? c->buf : c->small, data, len);
  c->c.id = id;
  c->c.time = s->now;
  c->c.code = code;
  c->c.data = NULL; /* set when handed out: the queue may move */
  c->c.len = len;
  c->c.index = index;
  c->c.term = term;
  c->c.leader = leader;
  if (s->o.trace)
    lr_sim_trace_line(s, "done #%llu %s%s%.*s", (unsigned long long)id, code ? code : "ok",
                      code ? " " : "", code ? (int)(len > 80 ? 80 : len) : 0, code ? data : "");
}

void lr__sim_complete_err(struct lr_sim *s, uint64_t id, int rv, raft_id leader) {
  const char *msg = raft_strerror(rv);
  lr__sim_complete(s, id, raft_errcode(rv), msg, strlen(msg), 0, 0, leader);
}

void lr__sim_complete_node(struct lr_sim *s, uint32_t slot, bool changes, const char *code,
                           const char *msg, size_t len) {
  struct lr__sim_node *n = &s->nodes[slot];
  uint64_t *ids = NULL;
  size_t k = 0;
  if (s->w_n > 0) {
    ids = raft_malloc(s->w_n * sizeof *ids);
    if (ids == NULL) abort(); /* UNTESTED */
    for (size_t i = 0; i < s->w_cap; i++)
      if (s->waiters[i].id && s->waiters[i].slot == slot && s->waiters[i].inc == n->inc &&
          (changes || s->waiters[i].kind != W_CHANGE))
        ids[k++] = s->waiters[i].id;
  }
  for (size_t i = 1; i < k; i++) /* id order: the trace must not depend on hashing */
    for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
      uint64_t t = ids[j];
      ids[j] = ids[j - 1];
      ids[j - 1] = t;
    }
  for (size_t i = 0; i < k; i++)
    lr__sim_complete(s, ids[i], code, msg, len, 0, 0, 0);
  raft_free(ids);
}

bool lr_sim_next_completion(struct lr_sim *s, struct lr_sim_completion *c) {
  raft_free(s->cq_last);
  s->cq_last = NULL;
  if (s->cq_n == 0) {
    s->cq_head = 0;
    return false;
  }
  s->cq_out = s->cq[s->cq_head++];
  s->cq_n--;
  s->cq_last = s->cq_out.buf;
  *c = s->cq_out.c;
  c->data = s->cq_out.buf ? s->cq_out.buf : s->cq_out.small;
  return true;
}

/* A new request: id, waiter and timeout event. NULL if the node is down (the
 * request then completes at once with `stopped`). */
static struct lr__sim_waiter *request(struct lr_sim *s, raft_id node, uint8_t kind,
                                      uint64_t timeout_ms, uint64_t *id, int *slotp) {
  *id = ++s->next_id;
  int slot = lr__sim_slot(s, node);
  struct lr__sim_waiter *w = waiter_add(s, *id);
  w->kind = kind;
  *slotp = slot;
  if (slot < 0 || !s->nodes[slot].up) {
    lr__sim_complete(s, *id, "stopped", "the node is not running", 23, 0, 0, 0);
    return NULL;
  }
  w->slot = (uint32_t)slot;
  w->inc = s->nodes[slot].inc;
  struct lr__sim_ev ev = {
      .time = s->now + (timeout_ms ? timeout_ms : 5000), .type = EV_TIMEOUT, .u.id = *id};
  timeouts_compact(s);
  heap_push(s, &s->timeouts, &ev);
  return w;
}

/* A halted state machine (memory_max, divergence) serves nothing: the
 * request ends at once with `stopped` and the reason. */
static bool halted(struct lr_sim *s, struct lr__sim_node *n, uint64_t id) {
  if (!lr_drive_halted(n->d)) return false;
  struct lr_sm_status st;
  lr_sm_status(lr_drive_sm(n->d), &st);
  lr__sim_complete(s, id, "stopped", st.reason, strlen(st.reason), 0, 0, 0);
  return true;
}

uint64_t lr_sim_propose(struct lr_sim *s, raft_id node, const char *cmd, size_t len,
                        const char *client, size_t client_len, uint64_t seq, uint64_t timeout_ms) {
  uint64_t id;
  int slot;
  if (s->o.trace)
    lr_sim_trace_line(s, "propose #%llu n%llu", (unsigned long long)(s->next_id + 1),
                      (unsigned long long)node);
  if (request(s, node, W_PROPOSE, timeout_ms, &id, &slot) == NULL) return id;
  struct lr__sim_node *n = &s->nodes[slot];
  if (halted(s, n, id)) return id;
  int rv = lr_drive_propose(n->d, id, cmd, len, client, client_len, seq, LR_WAIT_APPLY);
  if (rv < 0) lr__sim_complete_err(s, id, rv, n->leader);
  n->drain_due = true; /* see lr__sim_flush */
  s->drain_due = true;
  return id;
}

uint64_t lr_sim_propose_many(struct lr_sim *s, raft_id node, const char *cmd, size_t len,
                             uint32_t n, const char *client, size_t client_len, uint64_t seq,
                             uint64_t timeout_ms) {
  uint64_t first = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t id =
        lr_sim_propose(s, node, cmd, len, client, client_len, client ? seq + i : seq, timeout_ms);
    if (i == 0) first = id;
    assert(id == first + i); /* one id per proposal, nothing in between */
  }
  return first;
}

uint64_t lr_sim_read(struct lr_sim *s, raft_id node, int mode, const char *q, size_t len,
                     uint64_t timeout_ms) {
  lr__sim_flush(s);
  uint64_t id;
  int slot;
  if (s->o.trace)
    lr_sim_trace_line(s, "read #%llu n%llu", (unsigned long long)(s->next_id + 1),
                      (unsigned long long)node);
  struct lr__sim_waiter *w = request(s, node, W_READ, timeout_ms, &id, &slot);
  if (w == NULL || halted(s, &s->nodes[slot], id)) return id;
  struct lr__sim_node *n = &s->nodes[slot];
  int rv = lr_drive_read(n->d, id, mode, q, len);
  if (rv < 0) lr__sim_complete_err(s, id, rv, n->leader);
  lr__sim_node_drain(s, (uint32_t)slot);
  return id;
}

uint64_t lr_sim_change(struct lr_sim *s, raft_id node, int kind, raft_id target,
                       const char *address, unsigned flags, uint64_t timeout_ms) {
  lr__sim_flush(s);
  uint64_t id;
  int slot;
  lr__sim_trace(s, "change #%llu n%llu kind %d target %llu", (unsigned long long)(s->next_id + 1),
                (unsigned long long)node, kind, (unsigned long long)target);
  struct lr__sim_waiter *w = request(s, node, W_CHANGE, timeout_ms, &id, &slot);
  if (w == NULL) return id;
  struct lr__sim_node *n = &s->nodes[slot];
  int rv = lr_drive_change(n->d, id, kind, target, address, flags);
  if (rv < 0) lr__sim_complete_err(s, id, rv, n->leader);
  lr__sim_node_drain(s, (uint32_t)slot);
  return id;
}

static struct lr__sim_node *live(struct lr_sim *s, raft_id node, int *slot) {
  *slot = lr__sim_slot(s, node);
  if (*slot < 0 || !s->nodes[*slot].up) return NULL;
  return &s->nodes[*slot];
}

int lr_sim_transfer(struct lr_sim *s, raft_id node, raft_id target) {
  lr__sim_flush(s);
  int slot;
  struct lr__sim_node *n = live(s, node, &slot);
  if (n == NULL) return RAFT_EINVAL;
  lr__sim_trace(s, "transfer n%llu -> n%llu", (unsigned long long)node, (unsigned long long)target);
  int rv = lr_drive_transfer(n->d, 0, target);
  lr__sim_node_drain(s, (uint32_t)slot);
  return rv;
}

int lr_sim_step_down(struct lr_sim *s, raft_id node) {
  lr__sim_flush(s);
  int slot;
  struct lr__sim_node *n = live(s, node, &slot);
  if (n == NULL) return RAFT_EINVAL;
  lr__sim_trace(s, "step_down n%llu", (unsigned long long)node);
  int rv = lr_drive_step_down(n->d);
  lr__sim_node_drain(s, (uint32_t)slot);
  return rv;
}

int lr_sim_snapshot_now(struct lr_sim *s, raft_id node, char *err, size_t errlen) {
  lr__sim_flush(s);
  int slot;
  struct lr__sim_node *n = live(s, node, &slot);
  if (n == NULL) {
    snprintf(err, errlen, "node %llu is not running", (unsigned long long)node);
    return -1;
  }
  return lr_drive_snapshot(n->d, err, errlen);
}

int lr_sim_metrics(struct lr_sim *s, raft_id node, struct lr_sim_node_metrics *m) {
  lr__sim_flush(s);
  memset(m, 0, sizeof *m);
  int slot;
  struct lr__sim_node *n = live(s, node, &slot);
  if (n == NULL) return RAFT_EINVAL;
  lr_drive_metrics(n->d, &m->drive);
  const struct raft_config *c = lr_drive_config(n->d);
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->members[i].id == node) continue;
    m->peers++;
    int other = lr__sim_slot(s, c->members[i].id);
    if (other >= 0 && s->nodes[other].up && !blocked(s, (uint32_t)slot, (uint32_t)other))
      m->peers_up++;
  }
  m->n_progress = raft_progress(lr_drive_raft(n->d), m->progress, LR_SIM_NODES_MAX);
  return 0;
}

/* ---- faults and topology ------------------------------------------------- */
int lr_sim_fail_writes(struct lr_sim *s, raft_id node, uint32_t count) {
  lr__sim_flush(s);
  int slot = lr__sim_slot(s, node);
  if (slot < 0) return RAFT_EINVAL;
  s->nodes[slot].fail_writes = count;
  lr__sim_trace(s, "fail_writes n%llu %u", (unsigned long long)node, count);
  return 0;
}

int lr_sim_crash(struct lr_sim *s, raft_id node) {
  lr__sim_flush(s);
  int slot;
  if (live(s, node, &slot) == NULL) return RAFT_EINVAL;
  lr__sim_trace(s, "crash n%llu", (unsigned long long)node);
  lr__sim_node_stop(s, (uint32_t)slot);
  return 0;
}

int lr_sim_restart(struct lr_sim *s, raft_id node, char *err, size_t errlen) {
  lr__sim_flush(s);
  int slot = lr__sim_slot(s, node);
  if (slot < 0 || s->nodes[slot].up) {
    snprintf(err, errlen, "node %llu is not a crashed node", (unsigned long long)node);
    return -1;
  }
  lr__sim_trace(s, "restart n%llu", (unsigned long long)node);
  return lr__sim_node_start(s, (uint32_t)slot, false, err, errlen);
}

int lr_sim_add_node(struct lr_sim *s, raft_id node, char *err, size_t errlen) {
  lr__sim_flush(s);
  if (node == 0 || lr__sim_slot(s, node) >= 0) {
    snprintf(err, errlen, "node id %llu is 0 or already used", (unsigned long long)node);
    return -1;
  }
  if (s->n_slots >= LR_SIM_NODES_MAX) {
    snprintf(err, errlen, "at most %d nodes", LR_SIM_NODES_MAX);
    return -1;
  }
  uint32_t slot = s->n_slots++;
  memset(&s->nodes[slot], 0, sizeof s->nodes[slot]);
  s->nodes[slot].id = node;
  s->nodes[slot].exists = true;
  lr__sim_trace(s, "add_node n%llu", (unsigned long long)node);
  if (lr__sim_node_start(s, slot, false, err, errlen) != 0) {
    s->nodes[slot].exists = false;
    return -1;
  }
  return 0;
}

void lr_sim_partition(struct lr_sim *s, const raft_id *ids, const int *groups, uint32_t n) {
  lr__sim_flush(s);
  for (uint32_t i = 0; i < n; i++) {
    int slot = lr__sim_slot(s, ids[i]);
    if (slot >= 0) s->group[slot] = groups[i];
  }
  if (s->o.trace) {
    char line[512];
    size_t off = 0;
    for (uint32_t i = 0; i < s->n_slots && off < sizeof line - 32; i++)
      off += (size_t)snprintf(line + off, sizeof line - off, " n%llu:%d",
                              (unsigned long long)s->nodes[i].id, s->group[i]);
    lr_sim_trace_line(s, "partition%s", line);
  }
}

void lr_sim_heal(struct lr_sim *s) {
  lr__sim_flush(s);
  memset(s->group, 0, sizeof s->group);
  memset(s->link, 0, sizeof s->link);
  lr__sim_trace(s, "heal");
}

void lr_sim_net(struct lr_sim *s, double drop, double duplicate, uint32_t lo, uint32_t hi,
                bool reorder) {
  lr__sim_flush(s);
  s->drop = drop;
  s->dup = duplicate;
  s->lo = lo;
  s->hi = hi < lo ? lo : hi;
  s->reorder = reorder;
  lr__sim_trace(s, "net drop %.3f dup %.3f delay %u-%u%s", drop, duplicate, lo, s->hi,
                reorder ? " reorder" : "");
}

int lr_sim_link(struct lr_sim *s, raft_id a, raft_id b, double drop, uint32_t lo, uint32_t hi) {
  lr__sim_flush(s);
  int sa = lr__sim_slot(s, a), sb = lr__sim_slot(s, b);
  if (sa < 0 || sb < 0) return RAFT_EINVAL;
  struct lr__sim_link *l = &s->link[sa][sb];
  l->set = drop >= 0;
  l->drop = drop;
  l->lo = lo;
  l->hi = hi < lo ? lo : hi;
  lr__sim_trace(s, "link n%llu->n%llu drop %.3f delay %u-%u", (unsigned long long)a,
                (unsigned long long)b, drop, lo, l->hi);
  return 0;
}

/* ---- introspection ------------------------------------------------------- */
int lr_sim_status(struct lr_sim *s, raft_id node, struct lr_sim_node_status *st) {
  lr__sim_flush(s);
  memset(st, 0, sizeof *st);
  int slot = lr__sim_slot(s, node);
  if (slot < 0) return RAFT_EINVAL;
  struct lr__sim_node *n = &s->nodes[slot];
  st->exists = true;
  st->up = n->up;
  st->incarnation = n->inc;
  if (!n->up) return 0;
  struct lr_sm *sm = lr_drive_sm(n->d);
  raft_status(lr_drive_raft(n->d), &st->raft);
  st->applied = lr_sm_applied_index(sm);
  st->snapshot_index = n->has_snap ? n->snap.meta.index : 0;
  st->sessions = lr_sm_session_count(sm);
  lr_sm_status(sm, &st->sm);
  return 0;
}

uint32_t lr_sim_nodes(const struct lr_sim *s, raft_id *ids) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < s->n_slots; i++)
    if (s->nodes[i].exists) ids[k++] = s->nodes[i].id;
  return k;
}

raft_id lr_sim_leader(const struct lr_sim *s) {
  raft_id best = 0;
  raft_term term = 0;
  for (uint32_t i = 0; i < s->n_slots; i++) {
    const struct lr__sim_node *n = &s->nodes[i];
    if (n->up && n->role == RAFT_LEADER && lr_drive_term(n->d) >= term) {
      best = n->id;
      term = lr_drive_term(n->d);
    }
  }
  return best;
}

lua_State *lr_sim_node_lua(struct lr_sim *s, raft_id node) {
  lr__sim_flush(s);
  int slot = lr__sim_slot(s, node);
  if (slot < 0 || !s->nodes[slot].up) return NULL;
  return lr_sm_lua(lr_drive_sm(s->nodes[slot].d));
}

const char *lr_sim_violation(const struct lr_sim *s) {
  return s->violation[0] ? s->violation : NULL;
}

const char *lr_sim_trace(const struct lr_sim *s, size_t *len) {
  *len = s->trace.len;
  return s->trace.data ? s->trace.data : "";
}

void lr_sim_trace_line(struct lr_sim *s, const char *fmt, ...) {
  char line[512];
  int k = snprintf(line, sizeof line, "%8llu ", (unsigned long long)s->now);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + k, sizeof line - (size_t)k - 1, fmt, ap);
  va_end(ap);
  size_t n = (size_t)k + (m < 0 ? 0 : (size_t)m);
  if (n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  lr_buf_append(&s->trace, line, n);
}

uint64_t lr_sim_applied_total(const struct lr_sim *s) {
  return s->applied_total;
}

/* ---- life ---------------------------------------------------------------- */
static char *dup_str(const char *p, size_t n) {
  char *c = raft_malloc(n + 1);
  if (c) {
    memcpy(c, p, n);
    c[n] = 0;
  }
  return c;
}

int lr_sim_new(const struct lr_sim_options *o, struct lr_sim **out, char *err, size_t errlen) {
  if (o->n_nodes == 0 || o->n_nodes > LR_SIM_NODES_MAX) {
    snprintf(err, errlen, "nodes must be between 1 and %d", LR_SIM_NODES_MAX);
    return -1;
  }
  struct raft_options ro = o->raft;
  ro.id = o->ids[0];
  if (raft_options_check(&ro, err, errlen) != 0) return -1;
  struct lr_sim *s = raft_malloc(sizeof *s);
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memset(s, 0, sizeof *s);
  s->o = *o;
  s->o.raft = ro;
  if (s->o.snapshot_entries == 0) s->o.snapshot_entries = 10000;
  if (s->o.disk_hi < s->o.disk_lo) s->o.disk_hi = s->o.disk_lo;
  if (o->sm.path) s->o.sm.path = s->sm_path = dup_str(o->sm.path, strlen(o->sm.path));
  if (o->sm.chunk) s->o.sm.chunk = s->sm_chunk = dup_str(o->sm.chunk, o->sm.chunk_len);
  if (o->sm.chunkname)
    s->o.sm.chunkname = s->sm_chunkname = dup_str(o->sm.chunkname, strlen(o->sm.chunkname));
  uint64_t x = o->seed;
  for (int i = 0; i < 4; i++)
    s->rng[i] = raft_splitmix64(&x);
  s->lo = o->net_lo;
  s->hi = o->net_hi < o->net_lo ? o->net_lo : o->net_hi;
  lr_buf_init(&s->trace);
  for (uint32_t i = 0; i < o->n_nodes; i++) {
    for (uint32_t j = 0; j < i; j++)
      if (o->ids[j] == o->ids[i] || o->ids[i] == 0) {
        snprintf(err, errlen, "node ids must be distinct and positive");
        lr_sim_free(s);
        return -1;
      }
    s->nodes[i].id = o->ids[i];
    s->nodes[i].exists = true;
  }
  s->n_slots = o->n_nodes;
  for (uint32_t i = 0; i < o->n_nodes; i++) {
    if (lr__sim_node_start(s, i, true, err, errlen) != 0) {
      lr_sim_free(s);
      return -1;
    }
  }
  *out = s;
  return 0;
}

void lr_sim_free(struct lr_sim *s) {
  if (s == NULL) return;
  for (uint32_t i = 0; i < s->n_slots; i++) {
    if (s->nodes[i].up) lr__sim_node_stop(s, i);
    lr__sim_node_free_storage(&s->nodes[i]);
  }
  for (size_t i = 0; i < s->events.n; i++)
    if (s->events.a[i].type == EV_MSG) lr_msg_copy_free(s->events.a[i].u.msg);
  lr_msg_copy_free(s->last_entries);
  raft_free(s->events.a);
  raft_free(s->timeouts.a);
  raft_free(s->waiters);
  for (size_t i = 0; i < s->cq_n; i++)
    raft_free(s->cq[s->cq_head + i].buf);
  raft_free(s->cq);
  raft_free(s->cq_last);
  lr_buf_free(&s->trace);
  lr__sim_check_free(s);
  raft_free(s->sm_path);
  raft_free(s->sm_chunk);
  raft_free(s->sm_chunkname);
  raft_free(s);
}
