/* The peer wire format (layout in wire.h).
 *
 * Raft message body:
 *   fixed (77 bytes): from, to, term, log_term, index, commit, hint_index,
 *                     hint_term, context (u64 each), flags (u8: 1 reject,
 *                     2 done), n_entries (u32)
 *   n_entries x entry: index u64, term u64, type u8, len u32, data[len]
 *   SNAPSHOT and SNAPSHOT_RESP only (48 bytes, then variable):
 *                     snap.index, snap.term, snap.config_index, offset,
 *                     total (u64 each), n_members u32, chunk_len u32,
 *                     n_members x (id u64, role u8, addr_len u16, addr),
 *                     chunk[chunk_len]
 */
#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "net/wire.h"

#define FIXED_SIZE 77
#define ENTRY_SIZE 21
#define SNAP_SIZE 48
#define MEMBER_SIZE 11
enum { F_REJECT = 1, F_DONE = 2 };

static_assert(sizeof(struct lr_wire_header) == LR_WIRE_HEADER_SIZE, "wire header is 12 bytes");
static_assert(offsetof(struct lr_wire_header, version) == 4, "version at 4");
static_assert(offsetof(struct lr_wire_header, type) == 5, "type at 5");
static_assert(offsetof(struct lr_wire_header, crc) == 8, "crc at 8");
static_assert(FIXED_SIZE == 9 * 8 + 1 + 4, "fixed message part");
static_assert(SNAP_SIZE == 5 * 8 + 4 + 4, "snapshot part");
static_assert(LR_WIRE_HELLO_SIZE == 4 + 2 + 2 + 8 + 8 + 8 + LR_WIRE_NONCE + LR_WIRE_MAC,
              "hello body");
static_assert((int)RAFT_MSG_TYPE_MAX < (int)LR_WIRE_HELLO, "raft types below handshake types");

/* ---- buffers and scalars ------------------------------------------------------------- */
void lr_wire_buf_free(struct lr_wire_buf *b) {
  raft_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

static int reserve(struct lr_wire_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return RAFT_ENOMEM;
  size_t cap = b->cap < 256 ? 256 : b->cap;
  while (cap - b->len < extra)
    cap *= 2;
  uint8_t *p = raft_realloc(b->data, cap);
  if (p == NULL) return RAFT_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

static uint8_t *put8(uint8_t *p, uint8_t v) {
  *p = v;
  return p + 1;
}
static uint8_t *put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  return p + 2;
}
static uint8_t *put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
  return p + 4;
}
static uint8_t *put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
  return p + 8;
}
static uint8_t *putn(uint8_t *p, const void *s, size_t n) {
  if (n > 0) memcpy(p, s, n);
  return p + n;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A bounds-checked reader. */
struct rd {
  const uint8_t *p;
  size_t left;
  bool bad;
};
static const uint8_t *take(struct rd *r, size_t n) {
  if (r->bad || r->left < n) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}
static uint8_t rd8(struct rd *r) {
  const uint8_t *p = take(r, 1);
  return p ? *p : 0;
}
static uint16_t rd16(struct rd *r) {
  const uint8_t *p = take(r, 2);
  return p ? get16(p) : 0;
}
static uint32_t rd32(struct rd *r) {
  const uint8_t *p = take(r, 4);
  return p ? get32(p) : 0;
}
static uint64_t rd64(struct rd *r) {
  const uint8_t *p = take(r, 8);
  return p ? get64(p) : 0;
}

/* ---- frames --------------------------------------------------------------------------- */
static uint32_t frame_crc(const uint8_t *hdr, const uint8_t *body, size_t len) {
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, hdr + 4, 4);
  if (len > 0) c = crc32_z(c, body, len);
  return (uint32_t)c;
}

/* Reserves header + body bytes and returns where the body goes. */
static uint8_t *frame_begin(struct lr_wire_buf *out, uint8_t type, size_t body) {
  if (body > UINT32_MAX || reserve(out, LR_WIRE_HEADER_SIZE + body) != 0) return NULL;
  uint8_t *h = out->data + out->len;
  put32(h, (uint32_t)body);
  h[4] = LR_WIRE_VERSION;
  h[5] = type;
  put16(h + 6, 0);
  return h + LR_WIRE_HEADER_SIZE;
}

static void frame_end(struct lr_wire_buf *out, size_t body) {
  uint8_t *h = out->data + out->len;
  put32(h + 8, frame_crc(h, h + LR_WIRE_HEADER_SIZE, body));
  out->len += LR_WIRE_HEADER_SIZE + body;
}

int lr_wire_header_read(const uint8_t *p, size_t max_body, struct lr_wire_header *h) {
  h->len = get32(p);
  h->version = p[4];
  h->type = p[5];
  h->reserved = get16(p + 6);
  h->crc = get32(p + 8);
  if (h->version != LR_WIRE_VERSION || h->reserved != 0) return RAFT_EVERSION;
  if (h->len > max_body) return RAFT_ETOOBIG;
  return 0;
}

/* Checks a whole frame; on success r reads its body. */
static int frame_open(const uint8_t *p, size_t len, struct lr_wire_header *h, struct rd *r) {
  if (len < LR_WIRE_HEADER_SIZE) return RAFT_ESHORT;
  int rv = lr_wire_header_read(p, UINT32_MAX, h);
  if (rv != 0) return rv;
  if ((size_t)h->len != len - LR_WIRE_HEADER_SIZE) return RAFT_ESHORT;
  if (frame_crc(p, p + LR_WIRE_HEADER_SIZE, h->len) != h->crc) return RAFT_ECHECKSUM;
  r->p = p + LR_WIRE_HEADER_SIZE;
  r->left = h->len;
  r->bad = false;
  return 0;
}

/* ---- raft messages ---------------------------------------------------------------------- */
static bool has_snap(uint8_t type) {
  return type == RAFT_MSG_SNAPSHOT || type == RAFT_MSG_SNAPSHOT_RESP;
}

int lr_wire_encode(const struct raft_message *m, struct lr_wire_buf *out) {
  if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX) return RAFT_EMALFORMED;
  size_t body = FIXED_SIZE;
  for (uint32_t i = 0; i < m->n_entries; i++)
    body += ENTRY_SIZE + (size_t)m->entries[i].len;
  if (has_snap(m->type)) {
    body += SNAP_SIZE + m->chunk_len;
    for (uint32_t i = 0; i < m->snap.config.n; i++) {
      const char *a = m->snap.config.members[i].address;
      size_t n = a ? strlen(a) : 0;
      if (n > UINT16_MAX) return RAFT_EMALFORMED;
      body += MEMBER_SIZE + n;
    }
  }
  uint8_t *p = frame_begin(out, m->type, body);
  if (p == NULL) return RAFT_ENOMEM;
  p = put64(p, m->from);
  p = put64(p, m->to);
  p = put64(p, m->term);
  p = put64(p, m->log_term);
  p = put64(p, m->index);
  p = put64(p, m->commit);
  p = put64(p, m->hint_index);
  p = put64(p, m->hint_term);
  p = put64(p, m->context);
  p = put8(p, (uint8_t)((m->reject ? F_REJECT : 0) | (m->done ? F_DONE : 0)));
  p = put32(p, m->n_entries);
  for (uint32_t i = 0; i < m->n_entries; i++) {
    const struct raft_entry *e = &m->entries[i];
    p = put64(p, e->index);
    p = put64(p, e->term);
    p = put8(p, e->type);
    p = put32(p, e->len);
    p = putn(p, e->data, e->len);
  }
  if (has_snap(m->type)) {
    p = put64(p, m->snap.index);
    p = put64(p, m->snap.term);
    p = put64(p, m->snap.config_index);
    p = put64(p, m->offset);
    p = put64(p, m->total);
    p = put32(p, m->snap.config.n);
    p = put32(p, m->chunk_len);
    for (uint32_t i = 0; i < m->snap.config.n; i++) {
      const struct raft_member *mb = &m->snap.config.members[i];
      size_t n = mb->address ? strlen(mb->address) : 0;
      p = put64(p, mb->id);
      p = put8(p, mb->role);
      p = put16(p, (uint16_t)n);
      p = putn(p, mb->address, n);
    }
    p = putn(p, m->chunk, m->chunk_len);
  }
  assert(p == out->data + out->len + LR_WIRE_HEADER_SIZE + body);
  frame_end(out, body);
  return 0;
}

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t size) {
  if (need <= *cap) return 0;
  void *p = raft_realloc(*arr, size * need);
  if (p == NULL) return RAFT_ENOMEM;
  *arr = p;
  *cap = need;
  return 0;
}

void lr_wire_scratch_free(struct lr_wire_scratch *s) {
  raft_free(s->entries);
  raft_free(s->members);
  raft_free(s->strs);
  memset(s, 0, sizeof *s);
}

static int decode_members(struct rd *r, uint32_t n, struct raft_message *m,
                          struct lr_wire_scratch *s) {
  /* Each member takes at least MEMBER_SIZE bytes: checked before allocating. */
  if (n > r->left / MEMBER_SIZE) return RAFT_EMALFORMED;
  if (grow((void **)&s->members, &s->members_cap, n, sizeof *s->members) != 0) return RAFT_ENOMEM;
  /* Addresses (plus a NUL each) fit in what is left of the body. */
  size_t strs = r->left + n;
  if (strs > s->strs_cap) {
    char *p = raft_realloc(s->strs, strs);
    if (p == NULL) return RAFT_ENOMEM;
    s->strs = p;
    s->strs_cap = strs;
  }
  char *out = s->strs;
  for (uint32_t i = 0; i < n; i++) {
    struct raft_member *mb = &s->members[i];
    mb->id = rd64(r);
    mb->role = rd8(r);
    uint16_t len = rd16(r);
    const uint8_t *a = take(r, len);
    if (r->bad || (mb->role != RAFT_VOTER && mb->role != RAFT_LEARNER) ||
        memchr(a, '\0', len) != NULL)
      return RAFT_EMALFORMED;
    memcpy(out, a, len);
    out[len] = '\0';
    mb->address = out;
    out += len + 1;
  }
  m->snap.config.members = n ? s->members : NULL;
  m->snap.config.n = n;
  return 0;
}

int lr_wire_decode(const uint8_t *p, size_t len, struct raft_message *m,
                   struct lr_wire_scratch *s) {
  memset(m, 0, sizeof *m);
  struct lr_wire_header h;
  struct rd r;
  int rv = frame_open(p, len, &h, &r);
  if (rv != 0) return rv;
  if (h.type < 1 || h.type > RAFT_MSG_TYPE_MAX) return RAFT_ETYPE;
  m->type = h.type;
  m->from = rd64(&r);
  m->to = rd64(&r);
  m->term = rd64(&r);
  m->log_term = rd64(&r);
  m->index = rd64(&r);
  m->commit = rd64(&r);
  m->hint_index = rd64(&r);
  m->hint_term = rd64(&r);
  m->context = rd64(&r);
  uint8_t flags = rd8(&r);
  uint32_t n = rd32(&r);
  if (r.bad || (flags & ~(F_REJECT | F_DONE)) != 0 || n > r.left / ENTRY_SIZE)
    return RAFT_EMALFORMED;
  m->reject = flags & F_REJECT;
  m->done = flags & F_DONE;
  if (grow((void **)&s->entries, &s->entries_cap, n, sizeof *s->entries) != 0) return RAFT_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    struct raft_entry *e = &s->entries[i];
    e->index = rd64(&r);
    e->term = rd64(&r);
    e->type = rd8(&r);
    e->len = rd32(&r);
    e->data = (uint8_t *)take(&r, e->len);
    if (r.bad || e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONFIG) return RAFT_EMALFORMED;
  }
  m->entries = n ? s->entries : NULL;
  m->n_entries = n;
  if (has_snap(m->type)) {
    m->snap.index = rd64(&r);
    m->snap.term = rd64(&r);
    m->snap.config_index = rd64(&r);
    m->offset = rd64(&r);
    m->total = rd64(&r);
    uint32_t nm = rd32(&r);
    m->chunk_len = rd32(&r);
    if (r.bad) return RAFT_EMALFORMED;
    if ((rv = decode_members(&r, nm, m, s)) != 0) return rv;
    m->chunk = take(&r, m->chunk_len);
    if (r.bad) return RAFT_EMALFORMED;
  }
  if (r.left != 0) return RAFT_EMALFORMED; /* trailing bytes */
  return 0;
}

/* ---- handshake frames ----------------------------------------------------------------- */
int lr_wire_hello_encode(const struct lr_wire_hello *h, struct lr_wire_buf *out) {
  size_t alen = strnlen(h->addr, LR_WIRE_ADDR_MAX + 1);
  if (alen > LR_WIRE_ADDR_MAX) return RAFT_EMALFORMED;
  size_t body = LR_WIRE_HELLO_SIZE + 2 + alen;
  uint8_t *p = frame_begin(out, LR_WIRE_HELLO, body);
  if (p == NULL) return RAFT_ENOMEM;
  p = put32(p, h->magic);
  p = put16(p, h->proto);
  p = put16(p, h->flags);
  p = put64(p, h->cluster_id);
  p = put64(p, h->from);
  p = put64(p, h->to);
  p = putn(p, h->nonce, LR_WIRE_NONCE);
  p = putn(p, h->mac, LR_WIRE_MAC);
  p = put16(p, (uint16_t)alen);
  putn(p, h->addr, alen);
  frame_end(out, body);
  return 0;
}

int lr_wire_auth_encode(const uint8_t mac[LR_WIRE_MAC], struct lr_wire_buf *out) {
  uint8_t *p = frame_begin(out, LR_WIRE_AUTH, LR_WIRE_MAC);
  if (p == NULL) return RAFT_ENOMEM;
  putn(p, mac, LR_WIRE_MAC);
  frame_end(out, LR_WIRE_MAC);
  return 0;
}

int lr_wire_refuse_encode(const char *reason, struct lr_wire_buf *out) {
  size_t n = strlen(reason);
  if (n > LR_WIRE_REASON_MAX) n = LR_WIRE_REASON_MAX;
  uint8_t *p = frame_begin(out, LR_WIRE_REFUSE, n);
  if (p == NULL) return RAFT_ENOMEM;
  putn(p, reason, n);
  frame_end(out, n);
  return 0;
}

static int open_typed(const uint8_t *p, size_t len, uint8_t type, struct rd *r) {
  struct lr_wire_header h;
  int rv = frame_open(p, len, &h, r);
  if (rv != 0) return rv;
  return h.type == type ? 0 : RAFT_ETYPE;
}

int lr_wire_hello_decode(const uint8_t *p, size_t len, struct lr_wire_hello *h) {
  struct rd r;
  int rv = open_typed(p, len, LR_WIRE_HELLO, &r);
  if (rv != 0) return rv;
  if (r.left < LR_WIRE_HELLO_SIZE + 2) return RAFT_EMALFORMED;
  h->magic = rd32(&r);
  h->proto = rd16(&r);
  h->flags = rd16(&r);
  h->cluster_id = rd64(&r);
  h->from = rd64(&r);
  h->to = rd64(&r);
  memcpy(h->nonce, take(&r, LR_WIRE_NONCE), LR_WIRE_NONCE);
  memcpy(h->mac, take(&r, LR_WIRE_MAC), LR_WIRE_MAC);
  size_t alen = rd16(&r);
  if (alen > LR_WIRE_ADDR_MAX || r.left != alen) return RAFT_EMALFORMED;
  const uint8_t *a = take(&r, alen);
  for (size_t i = 0; i < alen; i++)
    if (a[i] < 0x21 || a[i] > 0x7e)
      return RAFT_EMALFORMED; /* printable, no spaces: it goes into logs */
  memcpy(h->addr, a, alen);
  h->addr[alen] = '\0';
  return 0;
}

int lr_wire_auth_decode(const uint8_t *p, size_t len, uint8_t mac[LR_WIRE_MAC]) {
  struct rd r;
  int rv = open_typed(p, len, LR_WIRE_AUTH, &r);
  if (rv != 0) return rv;
  if (r.left != LR_WIRE_MAC) return RAFT_EMALFORMED;
  memcpy(mac, r.p, LR_WIRE_MAC);
  return 0;
}

int lr_wire_refuse_decode(const uint8_t *p, size_t len, char *reason) {
  struct rd r;
  int rv = open_typed(p, len, LR_WIRE_REFUSE, &r);
  if (rv != 0) return rv;
  if (r.left > LR_WIRE_REASON_MAX) return RAFT_EMALFORMED;
  for (size_t i = 0; i < r.left; i++)
    reason[i] = (r.p[i] >= 0x20 && r.p[i] < 0x7f) ? (char)r.p[i] : '?';
  reason[r.left] = '\0';
  return 0;
}

/* ---- fuzzing --------------------------------------------------------------------------- */
int lr_wire_fuzz_one(const uint8_t *data, size_t size) {
  struct lr_wire_scratch s = {0};
  struct raft_message m;
  struct lr_wire_buf out = {0};
  if (lr_wire_decode(data, size, &m, &s) == 0) {
    if (lr_wire_encode(&m, &out) == 0 && (out.len != size || memcmp(out.data, data, size) != 0))
      abort(); /* decode and encode disagree */
  }
  struct lr_wire_hello h;
  out.len = 0;
  if (lr_wire_hello_decode(data, size, &h) == 0) {
    if (lr_wire_hello_encode(&h, &out) == 0 && (out.len != size || memcmp(out.data, data, size)))
      abort();
  }
  char reason[LR_WIRE_REASON_MAX + 1];
  uint8_t mac[LR_WIRE_MAC];
  (void)lr_wire_refuse_decode(data, size, reason);
  (void)lr_wire_auth_decode(data, size, mac);
  lr_wire_buf_free(&out);
  lr_wire_scratch_free(&s);
  return 0;
}
