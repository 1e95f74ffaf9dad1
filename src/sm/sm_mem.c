/* The counting allocator of a state machine's Lua state (sm_int.h): the
 * memory limit, and a pool of small blocks for speed (off under ASan). */
#include <stdlib.h>
#include <string.h>

#include "sm/sm_int.h"

/* ---- memory ------------------------------------------------------------- */
/* Pooled: 1..LR__SM_POOL_MAX bytes (never, when the pool is off). */
static bool pooled(size_t n) {
  return LR__SM_POOL_MAX > 0 && n <= LR__SM_POOL_MAX;
}
static size_t pool_class(size_t n) {
  return (n - 1) >> 4;
}

/* A block of class k (k + 1 16-byte units): a free one, else carved from the
 * newest slab, else from a new slab. NULL: the process is out of memory. */
static void *pool_get(struct lr__sm_mem *m, size_t n) {
  size_t k = pool_class(n), size = (k + 1) * 16;
  void *p = m->free[k];
  if (p != NULL) {
    memcpy(&m->free[k], p, sizeof(void *)); /* next free block */
    return p;
  }
  if (m->bump_left < size) {
    /* the rest of the old slab (< 256 bytes) stays unused */
    char *slab = raft_malloc(LR__SM_POOL_SLAB);
    if (slab == NULL) return NULL; /* UNTESTED */
    memcpy(slab, &m->slabs, sizeof(void *));
    m->slabs = slab;
    m->bump = slab + 16; /* 16: keeps blocks 16-byte aligned, as malloc's */
    m->bump_left = LR__SM_POOL_SLAB - 16;
  }
  p = m->bump;
  m->bump += size;
  m->bump_left -= size;
  return p;
}

static void pool_put(struct lr__sm_mem *m, void *p, size_t n) {
  size_t k = pool_class(n);
  memcpy(p, &m->free[k], sizeof(void *));
  m->free[k] = p;
}

static void block_free(struct lr__sm_mem *m, void *p, size_t n) {
  if (pooled(n))
    pool_put(m, p, n);
  else
    raft_free(p);
}

/* The block resized from `old` to `nsize` bytes (ptr NULL: old is 0). */
static void *block_resize(struct lr__sm_mem *m, void *ptr, size_t old, size_t nsize) {
  if (ptr != NULL && !pooled(old) && !pooled(nsize)) return raft_realloc(ptr, nsize);
  if (ptr != NULL && pooled(old) && pooled(nsize) && pool_class(old) == pool_class(nsize))
    return ptr;
  void *p = pooled(nsize) ? pool_get(m, nsize) : raft_malloc(nsize);
  if (p == NULL || ptr == NULL) return p;
  memcpy(p, ptr, old < nsize ? old : nsize);
  block_free(m, ptr, old);
  return p;
}

void lr__sm_mem_free(struct lr__sm_mem *m) {
  if (m == NULL) return;
  while (m->slabs != NULL) {
    void *next;
    memcpy(&next, m->slabs, sizeof next);
    raft_free(m->slabs);
    m->slabs = next;
  }
  raft_free(m);
}

void *lr__sm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct lr__sm_mem *m = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    if (ptr != NULL) block_free(m, ptr, old);
    m->used -= old;
    return NULL;
  }
  if (nsize > old) {
    /* Lua answers a refusal with a full collection and the same request
     * once more: a second refusal of it is an error the script sees. */
    bool retry = m->last_nsize == nsize && m->last_ptr == ptr;
    m->last_ptr = NULL;
    m->last_nsize = 0;
    if (m->used - old + nsize > m->max || m->used - old + nsize < m->used - old) {
      m->refused++;
      if (retry) m->hard++;
      m->last_ptr = ptr;
      m->last_nsize = nsize;
      return NULL;
    }
  }
  void *p = block_resize(m, ptr, old, nsize);
  if (p == NULL) {
    m->hard++; /* UNTESTED: the process itself is out of memory */
    return NULL;
  }
  m->used = m->used - old + nsize;
  return p;
}
