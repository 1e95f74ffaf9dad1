/* The allocation hook: every byte the core owns goes through here so tests
 * can make allocation fail (STYLE.md "Allocation goes through one hook"). */
#include <stdlib.h>

#include "raft_int.h"

static void *libc_malloc(void *data, size_t n) {
  (void)data;
  return malloc(n);
}

static void *libc_realloc(void *data, void *p, size_t n) {
  (void)data;
  return realloc(p, n);
}

static void libc_free(void *data, void *p) {
  (void)data;
  free(p);
}

static struct raft_heap heap = {libc_malloc, libc_realloc, libc_free, NULL};

void raft_heap_set(const struct raft_heap *h) {
  if (h == NULL) {
    heap.malloc = libc_malloc;
    heap.realloc = libc_realloc;
    heap.free = libc_free;
    heap.data = NULL;
    return;
  }
  heap = *h;
}

void *raft_malloc(size_t n) {
  return heap.malloc(heap.data, n == 0 ? 1 : n);
}

void *raft_realloc(void *p, size_t n) {
  return heap.realloc(heap.data, p, n == 0 ? 1 : n);
}

void raft_free(void *p) {
  if (p != NULL) {
    heap.free(heap.data, p);
  }
}
