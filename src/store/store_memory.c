/* Memory storage: the SQLite store's behaviour without a disk. Everything is
 * lost at lr_store_close(). A write allocates everything it needs before it
 * changes anything, so a failed batch (no memory, injected fault) leaves the
 * store exactly as it was. */
#include <string.h>

#include "store/store_int.h"

struct mem {
  struct lr_store base;
  raft_term term;
  raft_id vote;
  struct raft_entry *e; /* contiguous, e[0].index is the first held */
  uint32_t n, cap;
  bool has_snap;
  struct raft_snapshot snap; /* config and data owned */
  uint64_t bytes;
};

static raft_index first_index(const struct mem *m) {
  return m->n ? m->e[0].index : 0;
}

static raft_index last_index(const struct mem *m) {
  return m->n ? m->e[m->n - 1].index : 0;
}

static void drop_range(struct mem *m, uint32_t from, uint32_t to) {
  for (uint32_t i = from; i < to; i++) {
    m->bytes -= m->e[i].len;
    raft_free(m->e[i].data);
  }
}

/* Deletes entries with index < keep. */
static void drop_below(struct mem *m, raft_index keep) {
  if (m->n == 0 || keep <= first_index(m)) return;
  uint32_t k = keep > last_index(m) ? m->n : (uint32_t)(keep - first_index(m));
  drop_range(m, 0, k);
  memmove(m->e, m->e + k, sizeof *m->e * (m->n - k));
  m->n -= k;
}

/* Deletes entries with index >= from. */
static void drop_from(struct mem *m, raft_index from) {
  if (m->n == 0 || from > last_index(m)) return;
  uint32_t k = from <= first_index(m) ? 0 : (uint32_t)(from - first_index(m));
  drop_range(m, k, m->n);
  m->n = k;
}

static raft_term term_at(const struct mem *m, raft_index i) {
  if (m->n == 0 || i < first_index(m) || i > last_index(m)) return 0;
  return m->e[i - first_index(m)].term;
}

static int mem_write(struct lr_store *s, struct lr_store_batch *b) {
  struct mem *m = (struct mem *)s;
  int inj = lr__store_fail_hook(s);
  if (inj != 0) {
    lr__store_errf(b->err, sizeof b->err, "memory: injected write failure: %s", raft_strerror(inj));
    return inj;
  }
  /* Where the log will stand after the snapshot part. */
  raft_index snap = m->has_snap ? m->snap.meta.index : 0;
  raft_index keep = 0, last = last_index(m);
  if (b->has_snap) {
    keep = lr__store_snap_keep_from(b->snap.index, b->snap.term, term_at(m, b->snap.index), last,
                                    s->trailing);
    snap = b->snap.index;
    if (keep > last) last = 0;
  }
  if (b->n_entries > 0) {
    raft_index from = b->entries[0].index;
    if (from <= snap || from > (last > snap ? last : snap) + 1) {
      lr__store_errf(b->err, sizeof b->err,
                     "memory: entries from %llu do not follow the log (last %llu, snapshot %llu)",
                     (unsigned long long)from, (unsigned long long)last, (unsigned long long)snap);
      return RAFT_EINVAL;
    }
  }
  /* Allocate everything first. */
  struct raft_entry *copy = NULL;
  struct raft_snapshot ns;
  memset(&ns, 0, sizeof ns);
  if (lr_store_entries_copy(b->entries, b->n_entries, &copy) != 0) return RAFT_ENOMEM;
  if (b->has_snap) {
    uint8_t *d = raft_malloc(b->snap_len ? b->snap_len : 1);
    if (d == NULL || raft_config_copy(&b->snap.config, &ns.meta.config) != 0) {
      raft_free(d);
      lr_store_entries_free(copy, b->n_entries);
      return RAFT_ENOMEM;
    }
    if (b->snap_len) memcpy(d, b->snap_data, b->snap_len);
    ns.meta.index = b->snap.index;
    ns.meta.term = b->snap.term;
    ns.meta.config_index = b->snap.config_index;
    ns.data = d;
    ns.len = b->snap_len;
  }
  if (m->n + b->n_entries > m->cap) {
    uint32_t cap = m->cap ? m->cap : 64;
    while (cap < m->n + b->n_entries)
      cap *= 2;
    struct raft_entry *e = raft_realloc(m->e, sizeof *e * cap);
    if (e == NULL) {
      lr_store_entries_free(copy, b->n_entries);
      if (b->has_snap) {
        raft_config_free(&ns.meta.config);
        raft_free((void *)ns.data);
      }
      return RAFT_ENOMEM;
    }
    m->e = e;
    m->cap = cap;
  }
  /* Now nothing can fail. */
  if (b->has_hard) {
    m->term = b->term;
    m->vote = b->vote;
  }
  if (b->has_snap) {
    drop_below(m, keep);
    if (m->has_snap) {
      m->bytes -= m->snap.len;
      raft_config_free(&m->snap.meta.config);
      raft_free((void *)m->snap.data);
    }
    m->snap = ns;
    m->has_snap = true;
    m->bytes += ns.len;
  }
  if (b->n_entries > 0) {
    drop_from(m, b->entries[0].index);
    memcpy(m->e + m->n, copy, sizeof *copy * b->n_entries);
    m->n += b->n_entries;
    for (uint32_t i = 0; i < b->n_entries; i++)
      m->bytes += copy[i].len;
    raft_free(copy);
  }
  if (b->compact > 0) {
    raft_index c = b->compact < snap ? b->compact : snap;
    drop_below(m, c + 1);
  }
  return 0;
}

static int mem_load(struct lr_store *s, struct lr_store_state *st, char *err, size_t errlen) {
  struct mem *m = (struct mem *)s;
  st->term = m->term;
  st->vote = m->vote;
  raft_index snap = 0;
  if (m->has_snap) {
    snap = m->snap.meta.index;
    st->snapshot.meta = m->snap.meta;
    uint8_t *d = raft_malloc(m->snap.len ? m->snap.len : 1);
    if (d == NULL || raft_config_copy(&m->snap.meta.config, &st->snapshot.meta.config) != 0) {
      raft_free(d);
      memset(st, 0, sizeof *st);
      lr__store_errf(err, errlen, "memory: out of memory loading the snapshot");
      return RAFT_ENOMEM;
    }
    if (m->snap.len) memcpy(d, m->snap.data, m->snap.len);
    st->snapshot.data = d;
    st->snapshot.len = m->snap.len;
    st->has_snapshot = true;
    st->last_index = snap;
    st->last_term = m->snap.meta.term;
  }
  uint32_t skip = 0;
  while (skip < m->n && m->e[skip].index <= snap)
    skip++;
  if (lr_store_entries_copy(m->e + skip, m->n - skip, &st->entries) != 0) {
    lr_store_state_free(st);
    lr__store_errf(err, errlen, "memory: out of memory loading the log");
    return RAFT_ENOMEM;
  }
  st->n_entries = m->n - skip;
  if (st->n_entries > 0) {
    st->last_index = st->entries[st->n_entries - 1].index;
    st->last_term = st->entries[st->n_entries - 1].term;
  }
  st->fresh = m->term == 0 && m->vote == 0 && m->n == 0 && !m->has_snap;
  return 0;
}

static void mem_stats(struct lr_store *s, struct lr_store_stats *out) {
  struct mem *m = (struct mem *)s;
  out->first_index = first_index(m);
  out->last_index = last_index(m);
  out->snapshot_index = m->has_snap ? m->snap.meta.index : 0;
  out->file_bytes = m->bytes;
}

static void mem_close(struct lr_store *s) {
  struct mem *m = (struct mem *)s;
  drop_range(m, 0, m->n);
  raft_free(m->e);
  if (m->has_snap) {
    raft_config_free(&m->snap.meta.config);
    raft_free((void *)m->snap.data);
  }
  raft_free(m);
}

static const struct lr__store_ops MEM_OPS = {mem_load, mem_write, mem_stats, mem_close};

int lr__store_memory_open(const struct lr_store_options *o, struct lr_store **out, char *err,
                          size_t errlen) {
  struct mem *m = raft_malloc(sizeof *m);
  if (m == NULL) {
    lr__store_errf(err, errlen, "memory: out of memory");
    return RAFT_ENOMEM;
  }
  memset(m, 0, sizeof *m);
  lr__store_base_init(&m->base, &MEM_OPS, o);
  snprintf(m->base.path, sizeof m->base.path, "memory");
  *out = &m->base;
  return 0;
}
