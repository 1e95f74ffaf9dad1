/* luaraft storage: where a node keeps its Raft state across restarts.
 *
 * One interface, two implementations:
 *   LR_STORE_SQLITE  one SQLite database per node, DIR/raft.db (WAL mode,
 *                    synchronous=FULL, a crc32 on every entry and snapshot);
 *   LR_STORE_MEMORY  the same behaviour in memory; everything is lost when the
 *                    store is closed (`storage = "memory"`, the simulator).
 *
 * What is kept: the hard state (term, vote), the log after the last snapshot
 * (plus up to `trailing` entries behind it), and the latest snapshot (meta
 * and data). The host drives it like this:
 *
 *   lr_store_open(&opts, &s, err)     create or recover DIR/raft.db; refuses a
 *                                     corrupted or foreign database with a
 *                                     sentence in err, never serves it
 *   lr_store_load(s, &st)             term, vote, snapshot and the entries
 *                                     after it; lr_store_state_boot() turns
 *                                     that into the struct raft_boot that
 *                                     raft_new() takes
 *   per raft_update with something to persist:
 *     lr_store_batch_prepare(s, &u, &b)   LOOP THREAD: copies what the update
 *                                         holds (its pointers die at the next
 *                                         raft_* call)
 *     lr_store_batch_write(s, b)          ANY ONE THREAD (uv_queue_work): the
 *                                         transaction and its fsync
 *     lr_store_batch_result(b, ...)       LOOP THREAD, in the after-work
 *                                         callback: 0 -> raft_persisted(),
 *                                         else raft_persist_failed()
 *     lr_store_batch_free(b)
 *   when the write queue runs empty and lr_store_idle_due(s):
 *     lr_store_idle(s)                    THE WRITE THREAD, like a batch: the
 *                                         WAL checkpoint, off the commit path
 *   a snapshot the host took itself:  lr_store_batch_snapshot() on a new batch
 *   lr_store_close(s)
 *
 * Threading rule: a store is used by one thread at a time. Open, load and
 * close on the loop thread; at most one lr_store_batch_write() (or
 * lr_store_compact()) in flight at any time, on any thread; nothing else may
 * touch the store while it runs (uv_queue_work's after-callback gives the
 * needed happens-before edge back to the loop thread). Batches are written
 * in the order they were prepared: a host keeps a FIFO of prepared batches
 * and starts the next write in the after-callback of the previous one.
 *
 * Atomicity: a batch is one transaction. If it fails (disk full, I/O error,
 * injected fault) nothing of it is visible, earlier batches are intact, and
 * later batches work again once the cause is gone.
 */
#ifndef LUARAFT_STORE_H
#define LUARAFT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/raft.h"

#define LR_STORE_FORMAT 1                /* schema version in new databases */
#define LR_STORE_TRAILING_DEFAULT 100    /* entries kept behind a snapshot */
#define LR_STORE_CHECKPOINT_DEFAULT 1024 /* batches between WAL checkpoints */
#define LR_STORE_WAL_PAGES_MAX 1024      /* WAL frames that make a checkpoint due */
#define LR_STORE_ERR_MAX 256             /* bytes of an error sentence */

/* Errors: negative codes; names and messages from this one table. */

enum lr_store_kind { LR_STORE_SQLITE = 1, LR_STORE_MEMORY = 2 };

struct lr_store_options {
  enum lr_store_kind kind;
  const char *dir;           /* SQLite: the node's data dir (created if missing) */
  raft_id node_id;           /* must match what the database holds */
  uint64_t cluster_id;       /* must match what the database holds, unless either
                                is 0 (not known yet: lr_store_cluster_id) */
  uint32_t trailing;         /* entries kept behind a snapshot; 0: default, and
                                UINT32_MAX keeps nothing more than needed */
  uint32_t checkpoint_every; /* SQLite: a WAL checkpoint is due after this
                                many batches (or LR_STORE_WAL_PAGES_MAX
                                WAL frames); 0: default */
};

struct lr_store;

/* Opens (creating if new) and verifies the store. On failure *out is NULL and
 * err holds one sentence for the user, e.g.
 *   "data/1/raft.db belongs to node 2, not node 1"
 *   "data/1/raft.db: entry 17 checksum mismatch: the database is corrupted;
 *    restore it from a replica" */
int lr_store_open(const struct lr_store_options *o, struct lr_store **out, char *err,
                  size_t errlen);
void lr_store_close(struct lr_store *s);
/* The cluster id the database holds (or the one given at open when the
 * database holds none yet); 0: not known. */
uint64_t lr_store_cluster_id(const struct lr_store *s);
/* Records the cluster id (made at bootstrap, or learned when joining),
 * durably. Same threading rule as a write. */
int lr_store_set_cluster_id(struct lr_store *s, uint64_t id, char *err, size_t errlen);
/* The database file ("DIR/raft.db"), or "memory". */
const char *lr_store_path(const struct lr_store *s);

/* ---- loading --------------------------------------------------------------- */
struct lr_store_state {
  bool fresh; /* nothing was ever written: a brand-new node */
  raft_term term;
  raft_id vote;
  bool has_snapshot;
  struct raft_snapshot snapshot; /* meta.config and data owned by the state */
  struct raft_entry *entries;    /* the log after the snapshot, in order */
  uint32_t n_entries;
  raft_index last_index; /* of the log (or the snapshot); 0 when empty */
  raft_term last_term;
};
/* Fills st (owned by the caller: lr_store_state_free). Verifies every
 * checksum again; an error leaves st empty and err filled. */
int lr_store_load(struct lr_store *s, struct lr_store_state *st, char *err, size_t errlen);
/* Points boot into st (st must outlive raft_new). */
void lr_store_state_boot(const struct lr_store_state *st, struct raft_boot *boot);
void lr_store_state_free(struct lr_store_state *st);

/* ---- writing --------------------------------------------------------------- */
struct lr_store_batch;

/* Copies what u asks to persist (hard state, entries, received snapshot).
 * *out is NULL when there is nothing to persist. Loop thread. */
int lr_store_batch_prepare(const struct raft_update *u, struct lr_store_batch **out);
/* Building blocks, for batches the host makes itself. All copy their input. */
int lr_store_batch_new(struct lr_store_batch **out);
void lr_store_batch_hard_state(struct lr_store_batch *b, raft_term term, raft_id vote);
/* Truncates the log from entries[0].index, then appends (contiguous). */
int lr_store_batch_entries(struct lr_store_batch *b, const struct raft_entry *e, uint32_t n);
/* Replaces the snapshot. Log rule (thesis 5.3 / figure 5.13 InstallSnapshot):
 * if the log holds the snapshot's last entry (same index and term), entries
 * after it are kept and those more than `trailing` behind it are deleted;
 * otherwise the whole log is discarded. */
int lr_store_batch_snapshot(struct lr_store_batch *b, const struct raft_snapshot *snap);
/* The same, taking snap->data (from raft_malloc) instead of copying it: a
 * large snapshot is not copied once more on the loop thread. On failure the
 * caller still owns it. */
int lr_store_batch_snapshot_take(struct lr_store_batch *b, const struct raft_snapshot *snap);
/* Deletes entries <= index (never past the snapshot index). */
void lr_store_batch_compact(struct lr_store_batch *b, raft_index index);
bool lr_store_batch_empty(const struct lr_store_batch *b);

/* What a batch holds, read-only: a simulated disk applies it to storage of
 * its own (src/sim). Valid until the batch is changed or freed. */
struct lr_store_batch_view {
  bool has_hard;
  raft_term term;
  raft_id vote;
  const struct raft_entry *entries; /* truncate from entries[0].index, then append */
  uint32_t n_entries;
  const struct raft_snapshot_meta *snap; /* NULL: none */
  const uint8_t *snap_data;
  size_t snap_len;
};
void lr_store_batch_view(const struct lr_store_batch *b, struct lr_store_batch_view *v);

/* Writes b as one transaction (durable when it returns 0). Any one thread;
 * see the threading rule above. The outcome is also kept in b. */
int lr_store_batch_write(struct lr_store *s, struct lr_store_batch *b);
/* Outcome of the last write of b: 0 or LR_STORE_E*, with a sentence
 * ("data/1/raft.db: disk full (SQLITE_FULL) ...") when msg is not NULL.
 * last_index/last_term: the last log position b made durable (its last
 * entry, else its snapshot; 0 when it held neither) for raft_persisted(). */
int lr_store_batch_result(const struct lr_store_batch *b, const char **msg, raft_index *last_index,
                          raft_term *last_term);
void lr_store_batch_free(struct lr_store_batch *b);
/* One more owner of b (lr_store_batch_free drops one): the simulated disk
 * keeps a written batch as its durable log instead of copying it. */
void lr_store_batch_hold(struct lr_store_batch *b);
/* Deep copies of entries (each entry's bytes its own allocation), for what
 * is kept past the next raft_* call; lr_store_entries_free frees one. */
int lr_store_entries_copy(const struct raft_entry *src, uint32_t n, struct raft_entry **out);
void lr_store_entries_free(struct raft_entry *e, uint32_t n);
/* Once b is written: its snapshot bytes (raft_malloc'd), now the caller's
 * (raft_snapshot_taken_own gives them to the core without a copy); NULL
 * when b holds none. */
void *lr_store_batch_snapshot_release(struct lr_store_batch *b, size_t *len);

/* Housekeeping that should not delay a commit: for SQLite, the checkpoint
 * that folds the WAL back into the database (a PASSIVE one: the WAL file is
 * kept and rewritten from its start by the next commit, never truncated and
 * regrown). lr_store_idle_due() says whether there is any (loop thread, in
 * the after-callback of a write, or any thread under the threading rule);
 * lr_store_idle() does it, under the same threading rule as a batch write
 * (on the write thread, while no batch is being written). A host that never
 * calls it loses nothing but latency: a due checkpoint then runs at the
 * start of the next batch write. Returns 0 or LR_STORE_E* (a failed
 * checkpoint only leaves the WAL longer; it is due again later). Memory
 * store: nothing to do, never due. */
bool lr_store_idle_due(const struct lr_store *s);
int lr_store_idle(struct lr_store *s);

/* Convenience: one compaction batch, written synchronously. */
int lr_store_compact(struct lr_store *s, raft_index index, char *err, size_t errlen);

/* ---- introspection and test hooks ----------------------------------------------- */
struct lr_store_stats {
  uint64_t batches_written, batches_failed;
  uint64_t entries_written;
  raft_index first_index, last_index; /* entries held (0, 0 when none) */
  raft_index snapshot_index;
  uint64_t file_bytes;  /* SQLite: database + WAL file sizes; memory: bytes held */
  uint64_t wal_bytes;   /* SQLite: the WAL file's size (0 when absent) */
  uint64_t wal_frames;  /* SQLite: frames in use in the WAL since its last reset */
  uint64_t checkpoints; /* SQLite: WAL checkpoints completed since open */
};
/* Same threading rule as a write: not while a batch write is in flight. */
void lr_store_stats(struct lr_store *s, struct lr_store_stats *out);

/* Test hook: the next n batch writes fail with `rv` (e.g. RAFT_ESTORAGE) after
 * doing their work and before committing, so the rollback path runs. */
void lr_store_fail_next(struct lr_store *s, int n, int rv);
/* Test/debug hook: runs SQL on an SQLite store's connection (e.g.
 * "PRAGMA max_page_count = 20" to simulate a full disk). Same threading rule
 * as a write. RAFT_EINVAL on a memory store. */
int lr_store_sqlite_exec(struct lr_store *s, const char *sql, char *err, size_t errlen);

#endif
