#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/store_util.h"

char *store_tmpdir(void) {
  char *d = strdup("/tmp/lrstore.XXXXXX");
  assert_non_null(d);
  assert_non_null(mkdtemp(d));
  return d;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

void store_rmdir(char *dir) {
  if (dir == NULL) return;
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
}

struct lr_store *store_open(enum lr_store_kind kind, const char *dir, raft_id id,
                            uint64_t cluster) {
  struct lr_store_options o = {.kind = kind, .dir = dir, .node_id = id, .cluster_id = cluster};
  struct lr_store *s;
  char err[256] = "";
  int rv = lr_store_open(&o, &s, err, sizeof err);
  if (rv != 0) fail_msg("lr_store_open: %s", err);
  return s;
}

struct lr_store *store_reopen(struct lr_store *s, enum lr_store_kind kind, const char *dir) {
  if (kind == LR_STORE_MEMORY) return s;
  lr_store_close(s);
  return store_open(kind, dir, 1, 7);
}

static uint8_t pattern(raft_index index, raft_term term, size_t i) {
  return (uint8_t)(index * 31 + term * 7 + i * 13);
}

void store_entries_make(struct raft_entry *e, raft_index from, uint32_t n, raft_term term,
                        size_t size) {
  for (uint32_t k = 0; k < n; k++) {
    e[k].index = from + k;
    e[k].term = term;
    e[k].type = (e[k].index % 5 == 0) ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL;
    e[k].len = (uint32_t)size;
    e[k].data = malloc(size ? size : 1);
    assert_non_null(e[k].data);
    for (size_t i = 0; i < size; i++)
      e[k].data[i] = pattern(e[k].index, term, i);
  }
}

void store_entries_free(struct raft_entry *e, uint32_t n) {
  for (uint32_t k = 0; k < n; k++)
    free(e[k].data);
}

void store_entry_check(const struct raft_entry *e, raft_index index, raft_term term, size_t size) {
  assert_int_equal(e->index, index);
  assert_int_equal(e->term, term);
  assert_int_equal(e->type, index % 5 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL);
  assert_int_equal(e->len, size);
  for (size_t i = 0; i < size; i++)
    if (e->data[i] != pattern(index, term, i))
      fail_msg("entry %llu byte %zu differs", (unsigned long long)index, i);
}

int store_append(struct lr_store *s, raft_term term, raft_id vote, raft_index from, uint32_t n,
                 raft_term entry_term, size_t size) {
  struct lr_store_batch *b;
  assert_int_equal(lr_store_batch_new(&b), 0);
  if (term > 0) lr_store_batch_hard_state(b, term, vote);
  struct raft_entry *e = calloc(n ? n : 1, sizeof *e);
  store_entries_make(e, from, n, entry_term, size);
  assert_int_equal(lr_store_batch_entries(b, e, n), 0);
  store_entries_free(e, n);
  free(e);
  int rv = lr_store_batch_write(s, b);
  lr_store_batch_free(b);
  return rv;
}

int store_snapshot(struct lr_store *s, raft_index index, raft_term term, size_t size) {
  struct raft_member mem[2] = {{1, RAFT_VOTER, "127.0.0.1:7001"}, {2, RAFT_LEARNER, "h:2"}};
  struct raft_snapshot snap = {.meta = {.index = index,
                                        .term = term,
                                        .config = {mem, 2},
                                        .config_index = index > 3 ? index - 3 : 1}};
  uint8_t *data = malloc(size ? size : 1);
  for (size_t i = 0; i < size; i++)
    data[i] = (uint8_t)(i ^ index);
  snap.data = data;
  snap.len = size;
  struct lr_store_batch *b;
  assert_int_equal(lr_store_batch_new(&b), 0);
  assert_int_equal(lr_store_batch_snapshot(b, &snap), 0);
  free(data);
  int rv = lr_store_batch_write(s, b);
  lr_store_batch_free(b);
  return rv;
}

/* ---- shared cases ------------------------------------------------------------------------- */
struct fix {
  enum lr_store_kind kind;
  char *dir;
  struct lr_store *s;
};

static void fix_open(struct fix *f, void **state) {
  f->kind = (enum lr_store_kind)(intptr_t)*state;
  f->dir = store_tmpdir();
  f->s = store_open(f->kind, f->dir, 1, 7);
}

static void fix_close(struct fix *f) {
  lr_store_close(f->s);
  store_rmdir(f->dir);
}

static void load(struct lr_store *s, struct lr_store_state *st) {
  char err[256] = "";
  if (lr_store_load(s, st, err, sizeof err) != 0) fail_msg("lr_store_load: %s", err);
}

/* A new store loads as a fresh, empty node. */
void store_case_fresh(void **state) {
  struct fix f;
  fix_open(&f, state);
  struct lr_store_state st;
  load(f.s, &st);
  assert_true(st.fresh);
  assert_int_equal(st.n_entries, 0);
  assert_false(st.has_snapshot);
  struct raft_boot boot;
  lr_store_state_boot(&st, &boot);
  assert_null(boot.snapshot);
  assert_int_equal(boot.term, 0);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* Hard state and entries written in batches come back after a reopen. */
void store_case_round_trip(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 1, 1, 1, 10, 1, 100), 0);
  assert_int_equal(store_append(f.s, 2, 3, 11, 5, 2, 0), 0);
  assert_int_equal(store_append(f.s, 0, 0, 16, 1, 2, 70000), 0);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  assert_false(st.fresh);
  assert_int_equal(st.term, 2);
  assert_int_equal(st.vote, 3);
  assert_int_equal(st.n_entries, 16);
  for (uint32_t i = 0; i < 10; i++)
    store_entry_check(&st.entries[i], i + 1, 1, 100);
  for (uint32_t i = 10; i < 15; i++)
    store_entry_check(&st.entries[i], i + 1, 2, 0);
  store_entry_check(&st.entries[15], 16, 2, 70000);
  assert_int_equal(st.last_index, 16);
  assert_int_equal(st.last_term, 2);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* A batch truncates the log from its first entry (a follower overwriting a
 * conflicting suffix, thesis 3.5). */
void store_case_truncate(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 1, 1, 1, 10, 1, 8), 0);
  assert_int_equal(store_append(f.s, 3, 0, 6, 2, 3, 8), 0);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  assert_int_equal(st.n_entries, 7);
  for (uint32_t i = 0; i < 5; i++)
    store_entry_check(&st.entries[i], i + 1, 1, 8);
  store_entry_check(&st.entries[5], 6, 3, 8);
  store_entry_check(&st.entries[6], 7, 3, 8);
  lr_store_state_free(&st);
  struct lr_store_stats ss;
  lr_store_stats(f.s, &ss);
  assert_int_equal(ss.first_index, 1);
  assert_int_equal(ss.last_index, 7);
  fix_close(&f);
}

/* lr_store_batch_prepare copies a raft_update (whose pointers die at the next
 * core call) and the result names what to pass to raft_persisted. */
void store_case_prepare_from_update(void **state) {
  struct fix f;
  fix_open(&f, state);
  struct raft_entry e[3];
  store_entries_make(e, 1, 3, 4, 33);
  struct raft_update u;
  memset(&u, 0, sizeof u);
  u.hard_state = true;
  u.term = 4;
  u.vote = 2;
  u.entries = e;
  u.n_entries = 3;
  struct lr_store_batch *b;
  assert_int_equal(lr_store_batch_prepare(&u, &b), 0);
  assert_non_null(b);
  store_entries_free(e, 3);
  memset(e, 0xAB, sizeof e); /* the update's memory is gone */
  assert_int_equal(lr_store_batch_write(f.s, b), 0);
  const char *msg;
  raft_index li;
  raft_term lt;
  assert_int_equal(lr_store_batch_result(b, &msg, &li, &lt), 0);
  assert_int_equal(li, 3);
  assert_int_equal(lt, 4);
  lr_store_batch_free(b);
  memset(&u, 0, sizeof u); /* nothing to persist: no batch */
  assert_int_equal(lr_store_batch_prepare(&u, &b), 0);
  assert_null(b);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  assert_int_equal(st.term, 4);
  assert_int_equal(st.vote, 2);
  assert_int_equal(st.n_entries, 3);
  store_entry_check(&st.entries[2], 3, 4, 33);
  lr_store_state_free(&st);
  fix_close(&f);
}

static void check_snap(const struct lr_store_state *st, raft_index index, raft_term term,
                       size_t size) {
  assert_true(st->has_snapshot);
  assert_int_equal(st->snapshot.meta.index, index);
  assert_int_equal(st->snapshot.meta.term, term);
  assert_int_equal(st->snapshot.meta.config_index, index > 3 ? index - 3 : 1);
  assert_int_equal(st->snapshot.meta.config.n, 2);
  assert_int_equal(st->snapshot.meta.config.members[0].id, 1);
  assert_string_equal(st->snapshot.meta.config.members[0].address, "127.0.0.1:7001");
  assert_int_equal(st->snapshot.meta.config.members[1].role, RAFT_LEARNER);
  assert_int_equal(st->snapshot.len, size);
  for (size_t i = 0; i < size; i++)
    assert_int_equal(st->snapshot.data[i], (uint8_t)(i ^ index));
}

/* A snapshot over a matching log keeps the entries after it and `trailing`
 * behind it; load returns the snapshot and only the entries after it. */
void store_case_snapshot_compacts(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 2, 1, 1, 300, 2, 10), 0);
  assert_int_equal(store_snapshot(f.s, 250, 2, 5000), 0);
  struct lr_store_stats ss;
  lr_store_stats(f.s, &ss);
  assert_int_equal(ss.first_index, 151);
  assert_int_equal(ss.last_index, 300);
  assert_int_equal(ss.snapshot_index, 250);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  check_snap(&st, 250, 2, 5000);
  assert_int_equal(st.n_entries, 50);
  store_entry_check(&st.entries[0], 251, 2, 10);
  assert_int_equal(st.last_index, 300);
  struct raft_boot boot;
  lr_store_state_boot(&st, &boot);
  assert_ptr_equal(boot.snapshot, &st.snapshot);
  assert_int_equal(boot.n_entries, 50);
  lr_store_state_free(&st);
  /* A later snapshot replaces the first one. */
  assert_int_equal(store_snapshot(f.s, 300, 2, 10), 0);
  f.s = store_reopen(f.s, f.kind, f.dir);
  load(f.s, &st);
  check_snap(&st, 300, 2, 10);
  assert_int_equal(st.n_entries, 0);
  assert_int_equal(st.last_index, 300);
  assert_int_equal(st.last_term, 2);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* A received snapshot whose last entry conflicts with the log discards the
 * whole log (hashicorp/raft#697), and appending after it works. */
void store_case_snapshot_divergent(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 1, 1, 1, 10, 1, 4), 0);
  assert_int_equal(store_snapshot(f.s, 8, 2, 64), 0);
  struct lr_store_stats ss;
  lr_store_stats(f.s, &ss);
  assert_int_equal(ss.last_index, 0);
  assert_int_equal(store_append(f.s, 2, 0, 9, 3, 2, 4), 0);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  check_snap(&st, 8, 2, 64);
  assert_int_equal(st.n_entries, 3);
  store_entry_check(&st.entries[0], 9, 2, 4);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* A snapshot far ahead of a short log replaces it. */
void store_case_snapshot_ahead(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 1, 1, 1, 5, 1, 4), 0);
  assert_int_equal(store_snapshot(f.s, 100, 3, 1), 0);
  assert_int_equal(store_append(f.s, 0, 0, 101, 1, 3, 4), 0);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  check_snap(&st, 100, 3, 1);
  assert_int_equal(st.n_entries, 1);
  store_entry_check(&st.entries[0], 101, 3, 4);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* Entries that would leave a gap (or overwrite the snapshot) are refused
 * with EINVAL and nothing of the batch is written. */
void store_case_gap_refused(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 1, 1, 1, 10, 1, 4), 0);
  assert_int_equal(store_append(f.s, 5, 5, 12, 2, 5, 4), RAFT_EINVAL);
  assert_int_equal(store_snapshot(f.s, 5, 1, 4), 0);
  assert_int_equal(store_append(f.s, 5, 5, 5, 2, 5, 4), RAFT_EINVAL);
  struct lr_store_stats ss;
  lr_store_stats(f.s, &ss);
  assert_int_equal(ss.batches_failed, 2);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  assert_int_equal(st.term, 1); /* the refused batches' hard state is not there */
  assert_int_equal(st.n_entries, 5);
  store_entry_check(&st.entries[4], 10, 1, 4);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* A write error injected at the store boundary fails the batch with a clear
 * code and message, rolls it back, and later batches succeed. */
void store_case_injected_fault(void **state) {
  struct fix f;
  fix_open(&f, state);
  assert_int_equal(store_append(f.s, 1, 1, 1, 3, 1, 4), 0);
  lr_store_fail_next(f.s, 2, RAFT_ESTORAGE);
  struct lr_store_batch *b;
  assert_int_equal(lr_store_batch_new(&b), 0);
  lr_store_batch_hard_state(b, 9, 9);
  struct raft_entry e[2];
  store_entries_make(e, 2, 2, 9, 4); /* would truncate 2..3 */
  assert_int_equal(lr_store_batch_entries(b, e, 2), 0);
  store_entries_free(e, 2);
  assert_int_equal(lr_store_batch_write(f.s, b), RAFT_ESTORAGE);
  const char *msg;
  assert_int_equal(lr_store_batch_result(b, &msg, NULL, NULL), RAFT_ESTORAGE);
  assert_non_null(strstr(msg, "injected"));
  assert_int_equal(lr_store_batch_write(f.s, b), RAFT_ESTORAGE);
  lr_store_batch_free(b);
  assert_int_equal(store_append(f.s, 2, 0, 4, 1, 2, 4), 0);
  f.s = store_reopen(f.s, f.kind, f.dir);
  struct lr_store_state st;
  load(f.s, &st);
  assert_int_equal(st.term, 2);
  assert_int_equal(st.n_entries, 4);
  store_entry_check(&st.entries[1], 2, 1, 4);
  store_entry_check(&st.entries[2], 3, 1, 4);
  store_entry_check(&st.entries[3], 4, 2, 4);
  lr_store_state_free(&st);
  fix_close(&f);
}

/* lr_store_compact never deletes what no snapshot covers. */
void store_case_compact_clamped(void **state) {
  struct fix f;
  fix_open(&f, state);
  char err[256];
  assert_int_equal(store_append(f.s, 1, 1, 1, 50, 1, 4), 0);
  assert_int_equal(lr_store_compact(f.s, 40, err, sizeof err), 0);
  struct lr_store_stats ss;
  lr_store_stats(f.s, &ss);
  assert_int_equal(ss.first_index, 1);
  assert_int_equal(store_snapshot(f.s, 30, 1, 4), 0);
  assert_int_equal(lr_store_compact(f.s, 40, err, sizeof err), 0);
  lr_store_stats(f.s, &ss);
  assert_int_equal(ss.first_index, 31);
  assert_int_equal(ss.last_index, 50);
  fix_close(&f);
}
