/* Little-endian fixed-width fields for the sm envelope and snapshot blob. */
#ifndef LUARAFT_SM_BYTES_H
#define LUARAFT_SM_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void lr__put8(char *p, uint8_t v) {
  p[0] = (char)v;
}
static inline void lr__put16(char *p, uint16_t v) {
  p[0] = (char)(v & 0xff);
  p[1] = (char)(v >> 8);
}
/* On a little-endian host a field is a plain (unaligned) load or store: the
 * envelope is read and written once per entry on every node. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LR__LITTLE_ENDIAN 1
#else
#define LR__LITTLE_ENDIAN 0
#endif
/* n little-endian bytes of v at p */
static inline void lr__put_le(char *p, uint64_t v, int n) {
  if (LR__LITTLE_ENDIAN) {
    memcpy(p, &v, (size_t)n); /* the low n bytes come first */
    return;
  }
  for (int i = 0; i < n; i++)
    p[i] = (char)(v >> (8 * i));
}
static inline void lr__put32(char *p, uint32_t v) {
  lr__put_le(p, v, 4);
}
static inline void lr__put64(char *p, uint64_t v) {
  lr__put_le(p, v, 8);
}

/* A strict reader: every get fails once the input is exhausted. */
struct lr__rd {
  const unsigned char *p;
  size_t n;
  int bad;
};
static inline void lr__rd_init(struct lr__rd *r, const void *p, size_t n) {
  r->p = p;
  r->n = n;
  r->bad = 0;
}
static inline const void *lr__get(struct lr__rd *r, size_t n) {
  if (r->bad || r->n < n) {
    r->bad = 1;
    return NULL;
  }
  const void *p = r->p;
  r->p += n;
  r->n -= n;
  return p;
}
static inline uint64_t lr__getn(struct lr__rd *r, int bytes) {
  const unsigned char *p = lr__get(r, (size_t)bytes);
  uint64_t v = 0;
  if (p == NULL) return 0;
  if (LR__LITTLE_ENDIAN && bytes == 8) {
    memcpy(&v, p, 8);
    return v;
  }
  if (LR__LITTLE_ENDIAN && bytes == 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
  }
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

#endif
