/* Internal to src/store: the batch object and the implementation table. */
#ifndef LUARAFT_STORE_INT_H
#define LUARAFT_STORE_INT_H

#include <stdarg.h>
#include <stdio.h>

#include "store/store.h"

/* A copy of one update's persistent part, owned by the batch. */
/* Bytes of entries added to a batch in one call: one allocation instead of
 * one per entry (a leader under load adds thousands per batch). */
struct lr__store_block {
  struct lr__store_block *next;
  char bytes[];
};

struct lr_store_batch {
  uint32_t refs; /* lr_store_batch_hold */
  bool has_hard;
  raft_term term;
  raft_id vote;
  struct raft_entry *entries; /* data of each points into a block of `data` */
  uint32_t n_entries;
  struct lr__store_block *data; /* the entries' bytes: one block per
                                   lr_store_batch_entries call, a list */
  bool has_snap;
  struct raft_snapshot_meta snap; /* config owned */
  uint8_t *snap_data;
  size_t snap_len;
  raft_index compact; /* 0: none */
  /* outcome */
  int rv;
  char err[LR_STORE_ERR_MAX];
  raft_index last_index;
  raft_term last_term;
};

struct lr__store_ops {
  int (*load)(struct lr_store *s, struct lr_store_state *st, char *err, size_t errlen);
  int (*write)(struct lr_store *s, struct lr_store_batch *b);
  void (*stats)(struct lr_store *s, struct lr_store_stats *out);
  void (*close)(struct lr_store *s);
};

/* Fields common to both implementations (the first member of each). */
struct lr_store {
  const struct lr__store_ops *ops;
  char path[512];
  raft_id node_id;
  uint64_t cluster_id;
  uint32_t trailing;
  int fail_n, fail_rv; /* lr_store_fail_next */
  uint64_t batches_written, batches_failed, entries_written;
};

int lr__store_sqlite_open(const struct lr_store_options *o, struct lr_store **out, char *err,
                          size_t errlen);
int lr__store_sqlite_set_cluster(struct lr_store *s, uint64_t id, char *err, size_t errlen);
/* lr_store_idle(_due) of an SQLite store; 0 / false for any other kind. */
int lr__store_sqlite_idle(struct lr_store *s);
bool lr__store_sqlite_idle_due(const struct lr_store *s);
int lr__store_memory_open(const struct lr_store_options *o, struct lr_store **out, char *err,
                          size_t errlen);

/* Where a snapshot at (index, term) leaves a log that holds [first, last]
 * and whose entry at `index` has term `term_at` (0 when absent): the first
 * index to keep (entries below it are deleted; last + 1 means all). */
raft_index lr__store_snap_keep_from(raft_index index, raft_term term, raft_term term_at,
                                    raft_index last, uint32_t trailing);

/* crc32 of an entry: over index and term (8 bytes LE each), type, data. */
uint32_t lr__store_entry_crc(raft_index index, raft_term term, uint8_t type, const void *data,
                             size_t len);
/* crc32 of a snapshot: over index, term, config_index, the encoded config
 * and the data. */
uint32_t lr__store_snap_crc(raft_index index, raft_term term, raft_index config_index,
                            const void *conf, size_t conf_len, const void *data, size_t len);

/* Helpers. */
void lr__store_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int lr__store_fail_hook(struct lr_store *s); /* 0 or the injected rv */
/* Zeroes `base` and fills what both kinds take from the options. */
void lr__store_base_init(struct lr_store *base, const struct lr__store_ops *ops,
                         const struct lr_store_options *o);

#endif
