/* Raft safety invariants (thesis 3.6.3, figure 3.2), checked as the
 * simulation runs; the first violation is kept with its virtual time:
 *   election safety      at most one leader per term
 *   log matching         two logs with an entry of the same index and term
 *                        are identical up to it (a hash chain over each
 *                        durable log, compared across nodes)
 *   leader completeness  a new leader holds every entry applied anywhere
 *   state machine safety no two nodes apply different entries at one index
 *   commit monotonicity  a node's commit index never goes back (checked in
 *                        sim_node.c, within one incarnation)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

void lr__sim_violation(struct lr_sim *s, const char *fmt, ...) {
  if (s->violation[0]) return;
  int k = snprintf(s->violation, sizeof s->violation, "at %llu ms: ", (unsigned long long)s->now);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->violation + k, sizeof s->violation - (size_t)k, fmt, ap);
  va_end(ap);
  if (s->o.trace) lr_sim_trace_line(s, "VIOLATION %s", s->violation);
}

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

uint64_t lr__sim_hash(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, b, 8);
    h = (h ^ v) * 0x100000001b3ull;
    h ^= h >> 29;
    b += 8;
    n -= 8;
  }
  uint64_t v = 0;
  if (n) memcpy(&v, b, n);
  return mix(h ^ v);
}

static void grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need < *cap) return;
  size_t c = *cap ? *cap : 1024;
  while (c <= need)
    c *= 2;
  char *q = raft_realloc(*p, c * size);
  if (q == NULL) abort(); /* UNTESTED */
  memset(q + *cap * size, 0, (c - *cap) * size);
  *p = q;
  *cap = c;
}

void lr__sim_check_leader(struct lr_sim *s, uint32_t slot, raft_term term) {
  struct lr__sim_node *n = &s->nodes[slot];
  grow((void **)&s->leader_of_term, &s->lot_cap, term, sizeof *s->leader_of_term);
  raft_id other = s->leader_of_term[term];
  if (other != 0 && other != n->id)
    lr__sim_violation(s, "election safety: n%llu and n%llu are both leaders of term %llu",
                      (unsigned long long)other, (unsigned long long)n->id,
                      (unsigned long long)term);
  s->leader_of_term[term] = n->id;
  raft_index a = s->applied_max;
  if (a == 0) return;
  struct raft_status st;
  raft_status(lr_drive_raft(n->d), &st);
  if (st.snapshot_index >= a) return;
  const struct raft_entry *e = raft_log_entry(lr_drive_raft(n->d), a);
  raft_term want = s->applied_map[a].term;
  if (e == NULL || e->term != want)
    lr__sim_violation(s,
                      "leader completeness: n%llu leads term %llu without entry %llu "
                      "(term %llu) that was applied",
                      (unsigned long long)n->id, (unsigned long long)term, (unsigned long long)a,
                      (unsigned long long)want);
}

void lr__sim_check_applied(struct lr_sim *s, uint32_t slot, const struct raft_entry *e) {
  grow((void **)&s->applied_map, &s->am_cap, e->index, sizeof *s->applied_map);
  uint64_t h = lr__sim_hash(e->data, e->len) ^ e->type;
  if (h == 0) h = 1;
  if (s->applied_map[e->index].hash == 0) {
    s->applied_map[e->index].term = e->term;
    s->applied_map[e->index].hash = h;
  } else if (s->applied_map[e->index].term != e->term || s->applied_map[e->index].hash != h) {
    lr__sim_violation(s,
                      "state machine safety: n%llu applied a different entry at index %llu "
                      "(term %llu, others term %llu)",
                      (unsigned long long)s->nodes[slot].id, (unsigned long long)e->index,
                      (unsigned long long)e->term,
                      (unsigned long long)s->applied_map[e->index].term);
  }
  if (e->index > s->applied_max) s->applied_max = e->index;
}

/* (index, term) -> chain hash, open addressing. */
static size_t ch_slot(raft_index index, raft_term term, size_t cap) {
  return (size_t)mix(index * 0x9e3779b97f4a7c15ull ^ term) & (cap - 1);
}

static struct lr__sim_chain *ch_find(struct lr_sim *s, raft_index index, raft_term term) {
  if (s->ch_cap == 0) return NULL;
  for (size_t i = ch_slot(index, term, s->ch_cap);; i = (i + 1) & (s->ch_cap - 1)) {
    struct lr__sim_chain *c = &s->chains[i];
    if (c->index == 0) return c;
    if (c->index == index && c->term == term) return c;
  }
}

static void ch_grow(struct lr_sim *s) {
  size_t cap = s->ch_cap ? s->ch_cap * 2 : 4096;
  struct lr__sim_chain *old = s->chains, *c = raft_malloc(cap * sizeof *c);
  if (c == NULL) abort(); /* UNTESTED */
  memset(c, 0, cap * sizeof *c);
  size_t oldcap = s->ch_cap;
  s->chains = c;
  s->ch_cap = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].index) *ch_find(s, old[i].index, old[i].term) = old[i];
  raft_free(old);
}

uint64_t lr__sim_check_chain_of(struct lr_sim *s, raft_index index, raft_term term) {
  struct lr__sim_chain *c = ch_find(s, index, term);
  return c && c->index ? c->chain : 0;
}

uint64_t lr__sim_check_persist(struct lr_sim *s, uint32_t slot, uint64_t prev,
                               const struct raft_entry *e) {
  if (prev == 0) return 0; /* unknown prefix: nothing to compare */
  uint64_t chain = mix(prev ^ mix(e->term * 31 + e->type) ^ lr__sim_hash(e->data, e->len));
  if (chain == 0) chain = 1;
  if ((s->ch_n + 1) * 2 > s->ch_cap) ch_grow(s);
  struct lr__sim_chain *c = ch_find(s, e->index, e->term);
  if (c->index == 0) {
    c->index = e->index;
    c->term = e->term;
    c->chain = chain;
    s->ch_n++;
  } else if (c->chain != chain) {
    lr__sim_violation(s,
                      "log matching: n%llu holds entry %llu of term %llu with a log that "
                      "differs from another node's",
                      (unsigned long long)s->nodes[slot].id, (unsigned long long)e->index,
                      (unsigned long long)e->term);
  }
  return chain;
}

void lr__sim_check_free(struct lr_sim *s) {
  raft_free(s->leader_of_term);
  raft_free(s->applied_map);
  raft_free(s->chains);
}
