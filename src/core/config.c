/* Configurations and their wire form.
 *
 * Encoding (little endian):  u8 version (1) | u32 n |
 *                            n x ( u64 id | u8 role | u32 len | len bytes )
 * decode is strict because the bytes may come from the network or a
 * damaged file: every length is bounds-checked, ids are non-zero and unique,
 * roles are known, addresses hold no NUL, and nothing may trail the data. */
#include <string.h>

#include "raft_int.h"

#define VERSION 1

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) {
    v = (v << 8) | p[i];
  }
  return v;
}

static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) {
    v = (v << 8) | p[i];
  }
  return v;
}

const struct raft_member *raft_config_get(const struct raft_config *c, raft_id id) {
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->members[i].id == id) {
      return &c->members[i];
    }
  }
  return NULL;
}

void raft_config_free(struct raft_config *c) {
  for (uint32_t i = 0; i < c->n; i++) {
    raft_free(c->members[i].address);
  }
  raft_free(c->members);
  c->members = NULL;
  c->n = 0;
}

/* Checks what any configuration must satisfy, wherever it came from. */
static int check(const struct raft_config *c) {
  if (c->n > RAFT__CONFIG_MAX || (c->n > 0 && c->members == NULL)) {
    return RAFT_EMALFORMED;
  }
  for (uint32_t i = 0; i < c->n; i++) {
    const struct raft_member *m = &c->members[i];
    if (m->id == 0 || (m->role != RAFT_VOTER && m->role != RAFT_LEARNER)) {
      return RAFT_EMALFORMED;
    }
    for (uint32_t j = 0; j < i; j++) {
      if (c->members[j].id == m->id) {
        return RAFT_EMALFORMED;
      }
    }
  }
  return 0;
}

static char *dup_bytes(const char *s, size_t len) {
  char *d = raft_malloc(len + 1);
  if (d != NULL) {
    if (len > 0) {
      memcpy(d, s, len);
    }
    d[len] = '\0';
  }
  return d;
}

int raft_config_copy(const struct raft_config *src, struct raft_config *dst) {
  struct raft_config c = {NULL, 0};
  if (check(src) != 0) {
    return RAFT_EMALFORMED;
  }
  if (src->n > 0) {
    c.members = raft_malloc(src->n * sizeof *c.members);
    if (c.members == NULL) {
      return RAFT_ENOMEM;
    }
  }
  for (uint32_t i = 0; i < src->n; i++) {
    const char *a = src->members[i].address ? src->members[i].address : "";
    c.members[i] = src->members[i];
    c.members[i].address = dup_bytes(a, strlen(a));
    if (c.members[i].address == NULL) {
      raft_config_free(&c);
      return RAFT_ENOMEM;
    }
    c.n = i + 1;
  }
  *dst = c;
  return 0;
}

int raft_config_encode(const struct raft_config *c, uint8_t **out, size_t *len) {
  if (check(c) != 0) {
    return RAFT_EINVAL;
  }
  size_t n = 5;
  for (uint32_t i = 0; i < c->n; i++) {
    const char *a = c->members[i].address ? c->members[i].address : "";
    n += 13 + strlen(a);
  }
  uint8_t *p = raft_malloc(n);
  if (p == NULL) {
    return RAFT_ENOMEM;
  }
  uint8_t *q = p;
  *q++ = VERSION;
  put32(q, c->n);
  q += 4;
  for (uint32_t i = 0; i < c->n; i++) {
    const char *a = c->members[i].address ? c->members[i].address : "";
    size_t al = strlen(a);
    put64(q, c->members[i].id);
    q[8] = c->members[i].role;
    put32(q + 9, (uint32_t)al);
    memcpy(q + 13, a, al);
    q += 13 + al;
  }
  RAFT_ASSERT((size_t)(q - p) == n);
  *out = p;
  *len = n;
  return 0;
}

static int decode_member(const uint8_t **pp, const uint8_t *end, struct raft_member *m) {
  const uint8_t *p = *pp;
  if (end - p < 13) {
    return RAFT_EMALFORMED;
  }
  m->id = get64(p);
  m->role = p[8];
  uint32_t al = get32(p + 9);
  p += 13;
  if ((size_t)(end - p) < al || memchr(p, '\0', al) != NULL) {
    return RAFT_EMALFORMED;
  }
  m->address = dup_bytes((const char *)p, al);
  if (m->address == NULL) {
    return RAFT_ENOMEM;
  }
  *pp = p + al;
  return 0;
}

int raft_config_decode(const uint8_t *p, size_t len, struct raft_config *out) {
  struct raft_config c = {NULL, 0};
  const uint8_t *end = p + len;
  if (p == NULL || len < 5 || p[0] != VERSION) {
    return RAFT_EMALFORMED;
  }
  uint32_t n = get32(p + 1);
  p += 5;
  /* each member takes at least 13 bytes: bound n before allocating */
  if (n > RAFT__CONFIG_MAX || (size_t)(end - p) / 13 < n) {
    return RAFT_EMALFORMED;
  }
  if (n > 0) {
    c.members = raft_malloc(n * sizeof *c.members);
    if (c.members == NULL) {
      return RAFT_ENOMEM;
    }
  }
  int rv = 0;
  for (uint32_t i = 0; i < n && rv == 0; i++) {
    rv = decode_member(&p, end, &c.members[i]);
    if (rv == 0) {
      c.n = i + 1;
    }
  }
  if (rv == 0 && p != end) {
    rv = RAFT_EMALFORMED;
  }
  if (rv == 0) {
    rv = check(&c);
  }
  if (rv != 0) {
    raft_config_free(&c);
    return rv;
  }
  *out = c;
  return 0;
}

int raft_bootstrap_entry(const struct raft_config *c, struct raft_entry *out) {
  uint8_t *data;
  size_t len;
  if (c == NULL || c->n == 0) {
    return RAFT_EINVAL;
  }
  int rv = raft_config_encode(c, &data, &len);
  if (rv != 0) {
    return rv;
  }
  out->term = 1;
  out->index = 1;
  out->type = RAFT_ENTRY_CONFIG;
  out->len = (uint32_t)len;
  out->data = data;
  return 0;
}

void raft_entry_free_data(struct raft_entry *e) {
  raft_free(e->data);
  e->data = NULL;
  e->len = 0;
}
