/* The in-memory log: a contiguous array of entries after a snapshot offset.
 *
 * Contiguity matters: APPEND messages, `update.entries` and
 * `update.committed` point straight into this array, so a range of entries
 * is always one pointer and a count, never a copy. Compaction moves `start`
 * forward; appending slides the live window back to the front or doubles the
 * array when it runs out of room, so the cost per entry stays constant.
 * Entry data is bump-allocated in 64 KiB chunks (raft_int.h), so appending
 * an entry allocates nothing most of the time and compaction frees a chunk
 * at a time. */
#include <string.h>

#include "raft_int.h"

void raft__log_init(struct raft__log *l, raft_index offset, raft_term term) {
  memset(l, 0, sizeof *l);
  l->offset = offset;
  l->offset_term = term;
}

/* ---- entry data: chunks (see struct raft__chunk) ------------------------ */
#define HDR sizeof(struct raft__chunk *) /* before each entry's data */

static size_t align8(size_t n) {
  return (n + 7) & ~(size_t)7;
}

static struct raft__chunk *chunk_of(const uint8_t *data) {
  struct raft__chunk *c;
  memcpy(&c, data - HDR, sizeof c);
  return c;
}

/* The current chunk stays allocated while empty: the next entry reuses it. */
static void data_release(struct raft__log *l, uint8_t *data) {
  if (data == NULL) {
    return;
  }
  struct raft__chunk *c = chunk_of(data);
  RAFT_ASSERT(c->refs > 0);
  if (--c->refs > 0) {
    return;
  }
  if (c == l->chunk) {
    c->used = 0;
  } else {
    raft_free(c);
  }
}

/* Room for len bytes of data (and its header), or NULL (no memory). An entry
 * larger than a quarter chunk gets a chunk of its own, so a big entry never
 * wastes most of a chunk. */
static uint8_t *data_alloc(struct raft__log *l, uint32_t len) {
  size_t need = HDR + align8(len);
  struct raft__chunk *c = l->chunk;
  if (c == NULL || c->cap - c->used < need) {
    size_t cap = need > RAFT__CHUNK_BYTES / 4 ? need : RAFT__CHUNK_BYTES;
    c = raft_malloc(sizeof *c + cap);
    if (c == NULL) {
      return NULL;
    }
    c->refs = 0;
    c->cap = cap;
    c->used = 0;
    if (cap == RAFT__CHUNK_BYTES) {
      if (l->chunk != NULL && l->chunk->refs == 0) {
        raft_free(l->chunk);
      }
      l->chunk = c;
    }
  }
  uint8_t *p = c->data + c->used;
  memcpy(p, &c, sizeof c);
  c->used += need;
  c->refs++;
  return p + HDR;
}

static void free_range(struct raft__log *l, size_t from, size_t to) {
  for (size_t k = from; k < to; k++) {
    data_release(l, l->e[l->start + k].data);
  }
}

void raft__log_free(struct raft__log *l) {
  free_range(l, 0, l->n);
  if (l->chunk != NULL) {
    RAFT_ASSERT(l->chunk->refs == 0);
    raft_free(l->chunk);
  }
  raft_free(l->e);
  memset(l, 0, sizeof *l);
}

raft_index raft__log_last(const struct raft__log *l) {
  return l->offset + l->n;
}

raft_term raft__log_last_term(const struct raft__log *l) {
  return l->n == 0 ? l->offset_term : l->e[l->start + l->n - 1].term;
}

raft_term raft__log_term(const struct raft__log *l, raft_index i) {
  if (i == l->offset) {
    return l->offset_term;
  }
  if (i < l->offset || i > raft__log_last(l)) {
    return 0;
  }
  return l->e[l->start + (i - l->offset - 1)].term;
}

struct raft_entry *raft__log_get(const struct raft__log *l, raft_index i) {
  if (i <= l->offset || i > raft__log_last(l)) {
    return NULL;
  }
  return &l->e[l->start + (i - l->offset - 1)];
}

/* Makes room for one more entry at the end without moving live pointers in
 * the middle of an update: callers only hold index ranges until
 * raft_update_take resolves them. */
static int reserve(struct raft__log *l) {
  if (l->start + l->n < l->cap) {
    return 0;
  }
  if (l->start > 0 && l->start >= l->cap / 2) {
    memmove(l->e, l->e + l->start, l->n * sizeof *l->e);
    l->start = 0;
    return 0;
  }
  size_t cap = l->cap == 0 ? 64 : l->cap * 2;
  struct raft_entry *e = raft_realloc(l->e, cap * sizeof *e);
  if (e == NULL) {
    return RAFT_ENOMEM;
  }
  l->e = e;
  l->cap = cap;
  return 0;
}

int raft__log_append(struct raft__log *l, raft_term term, uint8_t type, const void *data,
                     uint32_t len) {
  RAFT_ASSERT(term >= raft__log_last_term(l));
  int rv = reserve(l);
  if (rv != 0) {
    return rv;
  }
  uint8_t *copy = NULL;
  if (len > 0) {
    copy = data_alloc(l, len);
    if (copy == NULL) {
      return RAFT_ENOMEM;
    }
    memcpy(copy, data, len);
  }
  struct raft_entry *e = &l->e[l->start + l->n];
  e->term = term;
  e->index = raft__log_last(l) + 1;
  e->type = type;
  e->len = len;
  e->data = copy;
  l->n++;
  return 0;
}

void raft__log_truncate(struct raft__log *l, raft_index from) {
  RAFT_ASSERT(from > l->offset);
  if (from > raft__log_last(l)) {
    return;
  }
  size_t keep = (size_t)(from - l->offset - 1);
  free_range(l, keep, l->n);
  l->n = keep;
}

void raft__log_compact(struct raft__log *l, raft_index upto) {
  if (upto <= l->offset) {
    return;
  }
  RAFT_ASSERT(upto <= raft__log_last(l));
  size_t drop = (size_t)(upto - l->offset);
  raft_term term = raft__log_term(l, upto);
  free_range(l, 0, drop);
  l->start += drop;
  l->n -= drop;
  l->offset = upto;
  l->offset_term = term;
  if (l->n == 0) {
    l->start = 0;
  }
}

void raft__log_reset(struct raft__log *l, raft_index offset, raft_term term) {
  free_range(l, 0, l->n);
  l->start = 0;
  l->n = 0;
  l->offset = offset;
  l->offset_term = term;
}
