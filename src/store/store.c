/* The storage interface: error table, batches and dispatch to the two
 * implementations (store_sqlite.c, store_memory.c). */
#include <string.h>
#include <zlib.h>

#include "store/store_int.h"

void lr__store_base_init(struct lr_store *base, const struct lr__store_ops *ops,
                         const struct lr_store_options *o) {
  memset(base, 0, sizeof *base);
  base->ops = ops;
  base->node_id = o->node_id;
  base->cluster_id = o->cluster_id;
  base->trailing = o->trailing ? o->trailing : LR_STORE_TRAILING_DEFAULT;
  if (base->trailing == UINT32_MAX) base->trailing = 0; /* keep no trailing entries */
}

void lr__store_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t lr__store_entry_crc(raft_index index, raft_term term, uint8_t type, const void *data,
                             size_t len) {
  uint8_t h[17];
  put64(h, index);
  put64(h + 8, term);
  h[16] = type;
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, h, sizeof h);
  if (len > 0) c = crc32_z(c, data, len);
  return (uint32_t)c;
}

uint32_t lr__store_snap_crc(raft_index index, raft_term term, raft_index config_index,
                            const void *conf, size_t conf_len, const void *data, size_t len) {
  uint8_t h[24];
  put64(h, index);
  put64(h + 8, term);
  put64(h + 16, config_index);
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, h, sizeof h);
  if (conf_len > 0) c = crc32_z(c, conf, conf_len);
  if (len > 0) c = crc32_z(c, data, len);
  return (uint32_t)c;
}

raft_index lr__store_snap_keep_from(raft_index index, raft_term term, raft_term term_at,
                                    raft_index last, uint32_t trailing) {
  /* "If existing log entry has same index and term as snapshot's last
   * included entry, retain log entries following it and reply; otherwise
   * discard the entire log" (Raft paper, figure 13, InstallSnapshot 6-7). */
  if (term_at != term) return last + 1;
  return index > trailing ? index - trailing + 1 : 1;
}

int lr__store_fail_hook(struct lr_store *s) {
  if (s->fail_n <= 0) return 0;
  s->fail_n--;
  return s->fail_rv;
}

void lr_store_fail_next(struct lr_store *s, int n, int rv) {
  s->fail_n = n;
  s->fail_rv = rv != 0 ? rv : RAFT_ESTORAGE;
}

int lr_store_entries_copy(const struct raft_entry *src, uint32_t n, struct raft_entry **out) {
  *out = NULL;
  if (n == 0) return 0;
  struct raft_entry *e = raft_malloc(sizeof *e * n);
  if (e == NULL) return RAFT_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    e[i] = src[i];
    e[i].data = raft_malloc(src[i].len > 0 ? src[i].len : 1);
    if (e[i].data == NULL) {
      lr_store_entries_free(e, i);
      return RAFT_ENOMEM;
    }
    if (src[i].len > 0) memcpy(e[i].data, src[i].data, src[i].len);
  }
  *out = e;
  return 0;
}

void lr_store_entries_free(struct raft_entry *e, uint32_t n) {
  if (e == NULL) return;
  for (uint32_t i = 0; i < n; i++)
    raft_free(e[i].data);
  raft_free(e);
}

/* ---- open / load / close ------------------------------------------------------ */
int lr_store_open(const struct lr_store_options *o, struct lr_store **out, char *err,
                  size_t errlen) {
  *out = NULL;
  if (o->node_id == 0) {
    lr__store_errf(err, errlen, "storage: node id must not be 0");
    return RAFT_EINVAL;
  }
  switch (o->kind) {
  case LR_STORE_SQLITE:
    if (o->dir == NULL || o->dir[0] == '\0') {
      lr__store_errf(err, errlen, "storage: sqlite needs a data directory");
      return RAFT_EINVAL;
    }
    return lr__store_sqlite_open(o, out, err, errlen);
  case LR_STORE_MEMORY:
    return lr__store_memory_open(o, out, err, errlen);
  }
  lr__store_errf(err, errlen, "storage: unknown kind %d (sqlite or memory)", (int)o->kind);
  return RAFT_EINVAL;
}

void lr_store_close(struct lr_store *s) {
  if (s != NULL) s->ops->close(s);
}

uint64_t lr_store_cluster_id(const struct lr_store *s) {
  return s->cluster_id;
}

int lr_store_set_cluster_id(struct lr_store *s, uint64_t id, char *err, size_t errlen) {
  if (strcmp(s->path, "memory") != 0) {
    int rv = lr__store_sqlite_set_cluster(s, id, err, errlen);
    if (rv != 0) return rv;
  }
  s->cluster_id = id;
  return 0;
}

const char *lr_store_path(const struct lr_store *s) {
  return s->path;
}

int lr_store_load(struct lr_store *s, struct lr_store_state *st, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  return s->ops->load(s, st, err, errlen);
}

void lr_store_state_boot(const struct lr_store_state *st, struct raft_boot *boot) {
  memset(boot, 0, sizeof *boot);
  boot->term = st->term;
  boot->vote = st->vote;
  boot->snapshot = st->has_snapshot ? &st->snapshot : NULL;
  boot->entries = st->entries;
  boot->n_entries = st->n_entries;
}

void lr_store_state_free(struct lr_store_state *st) {
  lr_store_entries_free(st->entries, st->n_entries);
  if (st->has_snapshot) {
    raft_config_free(&st->snapshot.meta.config);
    raft_free((void *)st->snapshot.data);
  }
  memset(st, 0, sizeof *st);
}

void lr_store_stats(struct lr_store *s, struct lr_store_stats *out) {
  memset(out, 0, sizeof *out);
  out->batches_written = s->batches_written;
  out->batches_failed = s->batches_failed;
  out->entries_written = s->entries_written;
  s->ops->stats(s, out);
}

/* ---- batches ----------------------------------------------------------------------- */
int lr_store_batch_new(struct lr_store_batch **out) {
  *out = raft_malloc(sizeof **out);
  if (*out == NULL) return RAFT_ENOMEM;
  memset(*out, 0, sizeof **out);
  (*out)->refs = 1;
  return 0;
}

void lr_store_batch_hold(struct lr_store_batch *b) {
  b->refs++;
}

void *lr_store_batch_snapshot_release(struct lr_store_batch *b, size_t *len) {
  void *data = b->has_snap ? b->snap_data : NULL;
  *len = data ? b->snap_len : 0;
  if (data) b->snap_data = NULL;
  return data;
}

void lr_store_batch_free(struct lr_store_batch *b) {
  if (b == NULL || --b->refs > 0) return;
  raft_free(b->entries);
  while (b->data) {
    struct lr__store_block *next = b->data->next;
    raft_free(b->data);
    b->data = next;
  }
  if (b->has_snap) raft_config_free(&b->snap.config);
  raft_free(b->snap_data);
  raft_free(b);
}

void lr_store_batch_hard_state(struct lr_store_batch *b, raft_term term, raft_id vote) {
  b->has_hard = true;
  b->term = term;
  b->vote = vote;
}

int lr_store_batch_entries(struct lr_store_batch *b, const struct raft_entry *e, uint32_t n) {
  if (n == 0) return 0;
  for (uint32_t i = 1; i < n; i++)
    if (e[i].index != e[i - 1].index + 1) return RAFT_EINVAL;
  if (e[0].index == 0) return RAFT_EINVAL;
  /* A second call in one batch replaces the tail from its first index. */
  uint32_t keep = 0;
  if (b->n_entries > 0) {
    if (e[0].index < b->entries[0].index || e[0].index > b->entries[b->n_entries - 1].index + 1)
      return RAFT_EINVAL;
    keep = (uint32_t)(e[0].index - b->entries[0].index);
  }
  size_t bytes = 0;
  for (uint32_t i = 0; i < n; i++)
    bytes += e[i].len;
  struct lr__store_block *blk = raft_malloc(sizeof *blk + (bytes ? bytes : 1));
  if (blk == NULL) return RAFT_ENOMEM;
  struct raft_entry *all = b->entries;
  if (keep + n > b->n_entries) { /* a shorter tail keeps the array as it is */
    all = raft_realloc(b->entries, sizeof *all * (keep + n));
    if (all == NULL) {
      raft_free(blk);
      return RAFT_ENOMEM; /* b is as it was */
    }
    b->entries = all;
  }
  /* what the tail replaced stays in its block until the batch is freed */
  blk->next = b->data;
  b->data = blk;
  char *p = blk->bytes;
  for (uint32_t i = 0; i < n; i++) {
    all[keep + i] = e[i];
    all[keep + i].data = (uint8_t *)p;
    if (e[i].len) memcpy(p, e[i].data, e[i].len);
    p += e[i].len;
  }
  b->n_entries = keep + n;
  return 0;
}

static int batch_snapshot(struct lr_store_batch *b, const struct raft_snapshot *snap, bool take) {
  if (snap->meta.index == 0 || b->has_snap || b->n_entries > 0)
    return RAFT_EINVAL; /* entries in the same batch must come after */
  uint8_t *data =
      take && snap->data ? (uint8_t *)snap->data : raft_malloc(snap->len > 0 ? snap->len : 1);
  if (data == NULL) return RAFT_ENOMEM;
  if (!take && snap->len > 0) memcpy(data, snap->data, snap->len);
  b->snap = snap->meta;
  if (raft_config_copy(&snap->meta.config, &b->snap.config) != 0) {
    if (data != snap->data) raft_free(data);
    return RAFT_ENOMEM;
  }
  b->has_snap = true;
  b->snap_data = data;
  b->snap_len = snap->len;
  return 0;
}

int lr_store_batch_snapshot(struct lr_store_batch *b, const struct raft_snapshot *snap) {
  return batch_snapshot(b, snap, false);
}

int lr_store_batch_snapshot_take(struct lr_store_batch *b, const struct raft_snapshot *snap) {
  return batch_snapshot(b, snap, true);
}

void lr_store_batch_compact(struct lr_store_batch *b, raft_index index) {
  if (index > b->compact) b->compact = index;
}

bool lr_store_batch_empty(const struct lr_store_batch *b) {
  return !b->has_hard && b->n_entries == 0 && !b->has_snap && b->compact == 0;
}

int lr_store_batch_prepare(const struct raft_update *u, struct lr_store_batch **out) {
  *out = NULL;
  if (!u->hard_state && u->n_entries == 0 && u->snapshot == NULL) return 0;
  struct lr_store_batch *b;
  int rv = lr_store_batch_new(&b);
  if (rv != 0) return rv;
  if (u->hard_state) lr_store_batch_hard_state(b, u->term, u->vote);
  if (u->snapshot != NULL && (rv = lr_store_batch_snapshot(b, u->snapshot)) != 0) goto fail;
  if ((rv = lr_store_batch_entries(b, u->entries, u->n_entries)) != 0) goto fail;
  *out = b;
  return 0;
fail:
  lr_store_batch_free(b);
  return rv;
}

int lr_store_batch_write(struct lr_store *s, struct lr_store_batch *b) {
  b->rv = 0;
  b->err[0] = '\0';
  b->last_index = 0;
  b->last_term = 0;
  int rv = s->ops->write(s, b);
  b->rv = rv;
  if (rv != 0) {
    s->batches_failed++;
    if (b->err[0] == '\0')
      lr__store_errf(b->err, sizeof b->err, "%s: %s", s->path, raft_strerror(rv));
    return rv;
  }
  s->batches_written++;
  s->entries_written += b->n_entries;
  if (b->n_entries > 0) {
    b->last_index = b->entries[b->n_entries - 1].index;
    b->last_term = b->entries[b->n_entries - 1].term;
  } else if (b->has_snap) {
    b->last_index = b->snap.index;
    b->last_term = b->snap.term;
  }
  return 0;
}

int lr_store_batch_result(const struct lr_store_batch *b, const char **msg, raft_index *last_index,
                          raft_term *last_term) {
  if (msg != NULL) *msg = b->rv != 0 ? b->err : "";
  if (last_index != NULL) *last_index = b->last_index;
  if (last_term != NULL) *last_term = b->last_term;
  return b->rv;
}

bool lr_store_idle_due(const struct lr_store *s) {
  return lr__store_sqlite_idle_due(s);
}

int lr_store_idle(struct lr_store *s) {
  return lr__store_sqlite_idle(s);
}

int lr_store_compact(struct lr_store *s, raft_index index, char *err, size_t errlen) {
  struct lr_store_batch *b;
  int rv = lr_store_batch_new(&b);
  if (rv != 0) return rv;
  lr_store_batch_compact(b, index);
  rv = lr_store_batch_write(s, b);
  if (rv != 0) lr__store_errf(err, errlen, "%s", b->err);
  lr_store_batch_free(b);
  return rv;
}

void lr_store_batch_view(const struct lr_store_batch *b, struct lr_store_batch_view *v) {
  v->has_hard = b->has_hard;
  v->term = b->term;
  v->vote = b->vote;
  v->entries = b->entries;
  v->n_entries = b->n_entries;
  v->snap = b->has_snap ? &b->snap : NULL;
  v->snap_data = b->snap_data;
  v->snap_len = b->snap_len;
}
