/* Fixtures for the storage tests (test_store_*.c): temporary data dirs,
 * entries with checkable contents, and the behaviour every store kind shares
 * (run by both test_store_sqlite and test_store_memory). */
#ifndef LUARAFT_TEST_STORE_UTIL_H
#define LUARAFT_TEST_STORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"

/* A fresh empty directory under /tmp (free with store_rmdir, which deletes
 * it and everything in it, then frees the string). */
char *store_tmpdir(void);
void store_rmdir(char *dir);

/* Opens a store of `kind` for node `id` in dir; fails the test on error. */
struct lr_store *store_open(enum lr_store_kind kind, const char *dir, raft_id id, uint64_t cluster);

/* Entry contents are a pattern of `size` bytes derived from (index, term). */
void store_entries_make(struct raft_entry *e, raft_index from, uint32_t n, raft_term term,
                        size_t size);
void store_entries_free(struct raft_entry *e, uint32_t n);
void store_entry_check(const struct raft_entry *e, raft_index index, raft_term term, size_t size);

/* Writes one batch: hard state (when term > 0) plus n entries from `from`. */
int store_append(struct lr_store *s, raft_term term, raft_id vote, raft_index from, uint32_t n,
                 raft_term entry_term, size_t size);
/* Writes a snapshot at (index, term) with `size` bytes of data and a
 * two-member configuration. */
int store_snapshot(struct lr_store *s, raft_index index, raft_term term, size_t size);

/* Shared behaviour; each takes the store kind through *state (an int). */
void store_case_fresh(void **state);
void store_case_round_trip(void **state);
void store_case_truncate(void **state);
void store_case_prepare_from_update(void **state);
void store_case_snapshot_compacts(void **state);
void store_case_snapshot_divergent(void **state);
void store_case_snapshot_ahead(void **state);
void store_case_gap_refused(void **state);
void store_case_injected_fault(void **state);
void store_case_compact_clamped(void **state);

/* The reopen step of the shared cases: SQLite closes and opens the store
 * again; memory keeps the same store (it has nothing to reopen). */
struct lr_store *store_reopen(struct lr_store *s, enum lr_store_kind kind, const char *dir);

#endif
