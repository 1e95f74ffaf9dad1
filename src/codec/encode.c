/* The encoder: Lua value -> canonical bytes (format in codec.c).
 *
 * A map is written in two steps. Its pairs are first encoded in traversal
 * order at the end of the output, each remembered as a record (offset, key
 * length, value length); the records are then sorted by their bytes and the
 * pairs copied back in that order behind the map header. Nested maps do the
 * same further along the buffer, and their records sit above their parent's
 * on one record stack, so a whole encoding needs one buffer and one stack
 * whatever its shape.
 *
 * The encoder never raises a Lua error: it calls no metamethod, allocates no
 * Lua memory, and reports failures through the err buffer, naming the path to
 * the bad value (`a.b[3]`, `value` for the root).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/codec_int.h"

#define INLINE_RECS 64
#define INSERTION_SORT_MAX 16

struct rec {
  size_t off;  /* of the pair, from the start of the map */
  size_t klen; /* bytes of the key; the value follows */
  size_t vlen;
};

/* Where the value being encoded sits inside the table at one level. */
enum { AT_INDEX, AT_KEY, AT_VALUE };
struct frame {
  int at;     /* AT_INDEX: element i; AT_KEY / AT_VALUE: key at keyidx */
  int keyidx; /* absolute stack index of the map key */
  lua_Integer i;
};

struct enc {
  lua_State *L;
  struct lr_buf *out;
  char *err;
  size_t errlen;
  int depth;                            /* tables open */
  const void *open[LR_CODEC_DEPTH_MAX]; /* the tables open, for cycles */
  struct frame path[LR_CODEC_DEPTH_MAX];
  struct rec *recs;
  size_t nrecs, caprecs;
  struct rec inline_recs[INLINE_RECS];
};

static int encode_value(struct enc *e, int idx, int is_key);

/* --- error messages with a path ------------------------------------------ */

struct sink {
  char *p;
  size_t left;
};

static void put(struct sink *s, const char *str, size_t n) {
  if (s->left <= 1) return;
  if (n > s->left - 1) n = s->left - 1;
  memcpy(s->p, str, n);
  s->p += n;
  s->left -= n;
  *s->p = '\0';
}

static void puts_(struct sink *s, const char *str) {
  put(s, str, strlen(str));
}

static int is_identifier(const char *k, size_t n) {
  if (n == 0 || !(k[0] == '_' || (k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z')))
    return 0;
  for (size_t i = 1; i < n; i++) {
    char c = k[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return 0;
  }
  return 1;
}

/* A string key as Lua would quote it: "x y", with escapes. */
static void put_quoted(struct sink *s, const char *k, size_t n) {
  char tmp[8];
  puts_(s, "\"");
  for (size_t i = 0; i < n && i < 60; i++) {
    unsigned char c = (unsigned char)k[i];
    if (c == '"' || c == '\\') {
      tmp[0] = '\\', tmp[1] = (char)c;
      put(s, tmp, 2);
    } else if (c < 32 || c >= 127) {
      snprintf(tmp, sizeof tmp, "\\%u", c);
      puts_(s, tmp);
    } else {
      put(s, (const char *)&c, 1);
    }
  }
  puts_(s, n > 60 ? "...\"" : "\"");
}

static void put_segment(struct enc *e, struct sink *s, const struct frame *f, int first) {
  lua_State *L = e->L;
  char tmp[64];
  if (f->at == AT_INDEX) {
    snprintf(tmp, sizeof tmp, "[%lld]", (long long)f->i);
    puts_(s, tmp);
    return;
  }
  if (f->at == AT_KEY) { /* inside a table used as a key */
    puts_(s, "[<table key>]");
    return;
  }
  switch (lua_type(L, f->keyidx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *k = lua_tolstring(L, f->keyidx, &n);
    if (is_identifier(k, n)) {
      if (!first) puts_(s, ".");
      put(s, k, n);
    } else {
      puts_(s, "[");
      put_quoted(s, k, n);
      puts_(s, "]");
    }
    return;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, f->keyidx))
      snprintf(tmp, sizeof tmp, "[%lld]", (long long)lua_tointeger(L, f->keyidx));
    else
      snprintf(tmp, sizeof tmp, "[%.17g]", (double)lua_tonumber(L, f->keyidx));
    puts_(s, tmp);
    return;
  case LUA_TBOOLEAN:
    puts_(s, lua_toboolean(L, f->keyidx) ? "[true]" : "[false]");
    return;
  default:
    puts_(s, "[<table>]");
    return;
  }
}

/* Writes "<what> at <path>" into err; the path covers the first n levels. */
static int fail(struct enc *e, const char *what, int n) {
  struct sink s = {e->err, e->errlen};
  if (s.left == 0) return -1;
  *s.p = '\0';
  puts_(&s, what);
  puts_(&s, " at ");
  if (n == 0) puts_(&s, "value");
  for (int i = 0; i < n; i++)
    put_segment(e, &s, &e->path[i], i == 0);
  return -1;
}

static int fail_type(struct enc *e, int idx, int is_key) {
  int t = lua_type(e->L, idx);
  const char *name = t == LUA_TLIGHTUSERDATA ? "light userdata" : lua_typename(e->L, t);
  char what[96];
  snprintf(what, sizeof what, "cannot encode a %s%s", name, is_key ? " as a table key" : "");
  /* A bad key is reported at the table holding it. */
  return fail(e, what, is_key ? e->depth - 1 : e->depth);
}

/* UNTESTED: no allocation hook to make malloc fail yet. */
static int no_memory(struct enc *e) {
  if (e->errlen > 0) snprintf(e->err, e->errlen, "not enough memory");
  return -1;
}

/* --- writing bytes ------------------------------------------------------- */

static inline char *put_varint(char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (char)v;
  return p;
}

static inline size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static int put_integer(struct enc *e, lua_Integer v) {
  if (lr_buf_reserve(e->out, 1 + LR__VARINT_MAX) != 0) return no_memory(e);
  char *p = e->out->data + e->out->len;
  if (v >= 0 && v <= LR__FIXINT_MAX) {
    *p++ = (char)(LR__TAG_FIXINT + v);
  } else {
    *p++ = LR__TAG_INT;
    p = put_varint(p, lr__zigzag((int64_t)v));
  }
  e->out->len = (size_t)(p - e->out->data);
  return 0;
}

static int put_float(struct enc *e, double d) {
  uint64_t u;
  if (isnan(d))
    u = LR__NAN_BITS;
  else
    memcpy(&u, &d, sizeof u);
  if (lr_buf_reserve(e->out, 9) != 0) return no_memory(e);
  unsigned char *p = (unsigned char *)e->out->data + e->out->len;
  p[0] = LR__TAG_FLOAT;
  for (int i = 0; i < 8; i++)
    p[1 + i] = (unsigned char)(u >> (8 * i));
  e->out->len += 9;
  return 0;
}

static int put_string(struct enc *e, const char *s, size_t n) {
  if (lr_buf_reserve(e->out, 1 + LR__VARINT_MAX + n) != 0) return no_memory(e);
  char *p = e->out->data + e->out->len;
  if (n <= LR__FIXSTR_MAX) {
    *p++ = (char)(LR__TAG_FIXSTR + n);
  } else {
    *p++ = LR__TAG_STR;
    p = put_varint(p, n);
  }
  memcpy(p, s, n);
  e->out->len = (size_t)(p + n - e->out->data);
  return 0;
}

static int put_header(struct enc *e, int tag, uint64_t n) {
  if (lr_buf_reserve(e->out, 1 + LR__VARINT_MAX) != 0) return no_memory(e);
  char *p = e->out->data + e->out->len;
  *p++ = (char)tag;
  p = put_varint(p, n);
  e->out->len = (size_t)(p - e->out->data);
  return 0;
}

/* --- sorting map pairs --------------------------------------------------- */

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c != 0) return c;
  return an < bn ? -1 : an > bn;
}

/* The canonical order: by key bytes, then (equal table keys) by value bytes. */
static int cmp_rec(const char *base, const struct rec *a, const struct rec *b) {
  int c = cmp_bytes(base + a->off, a->klen, base + b->off, b->klen);
  if (c != 0) return c;
  return cmp_bytes(base + a->off + a->klen, a->vlen, base + b->off + b->klen, b->vlen);
}

static void sift_down(const char *base, struct rec *r, size_t i, size_t n) {
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) return;
    if (c + 1 < n && cmp_rec(base, &r[c], &r[c + 1]) < 0) c++;
    if (cmp_rec(base, &r[i], &r[c]) >= 0) return;
    struct rec t = r[i];
    r[i] = r[c];
    r[c] = t;
    i = c;
  }
}

/* Insertion sort for the usual handful of keys, heapsort (no allocation,
 * n log n) for big maps. */
static void sort_recs(const char *base, struct rec *r, size_t n) {
  if (n <= INSERTION_SORT_MAX) {
    for (size_t i = 1; i < n; i++) {
      struct rec t = r[i];
      size_t j = i;
      while (j > 0 && cmp_rec(base, &r[j - 1], &t) > 0) {
        r[j] = r[j - 1];
        j--;
      }
      r[j] = t;
    }
    return;
  }
  for (size_t i = n / 2; i-- > 0;)
    sift_down(base, r, i, n);
  for (size_t end = n - 1; end > 0; end--) {
    struct rec t = r[0];
    r[0] = r[end];
    r[end] = t;
    sift_down(base, r, 0, end);
  }
}

static int push_rec(struct enc *e, size_t off, size_t klen, size_t vlen) {
  if (e->nrecs == e->caprecs) {
    size_t cap = e->caprecs * 2;
    struct rec *r;
    if (e->recs == e->inline_recs) {
      r = malloc(cap * sizeof *r);
      if (r != NULL) memcpy(r, e->recs, e->nrecs * sizeof *r);
    } else {
      r = realloc(e->recs, cap * sizeof *r);
    }
    if (r == NULL) return no_memory(e);
    e->recs = r;
    e->caprecs = cap;
  }
  e->recs[e->nrecs++] = (struct rec){off, klen, vlen};
  return 0;
}

/* --- tables -------------------------------------------------------------- */

/* Whether the table at t has exactly the keys 1..n (n = its border). */
static int is_sequence(lua_State *L, int t, lua_Unsigned n) {
  lua_Unsigned count = 0;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    if (!lua_isinteger(L, -2) || (lua_Unsigned)lua_tointeger(L, -2) - 1 >= n) {
      lua_pop(L, 2);
      return 0;
    }
    count++;
    lua_pop(L, 1);
  }
  return count == n;
}

static int encode_array(struct enc *e, int t, lua_Unsigned n) {
  lua_State *L = e->L;
  struct frame *f = &e->path[e->depth - 1];
  if (put_header(e, LR__TAG_ARRAY, n) != 0) return -1;
  f->at = AT_INDEX;
  for (lua_Unsigned i = 1; i <= n; i++) {
    f->i = (lua_Integer)i;
    lua_rawgeti(L, t, (lua_Integer)i);
    if (encode_value(e, lua_gettop(L), 0) != 0) return -1;
    lua_pop(L, 1);
  }
  return 0;
}

/* Encodes the pairs in traversal order, then rewrites them sorted. */
static int encode_map(struct enc *e, int t) {
  lua_State *L = e->L;
  struct frame *f = &e->path[e->depth - 1];
  size_t start = e->out->len, base = e->nrecs;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int k = lua_gettop(L) - 1;
    size_t off = e->out->len;
    f->at = AT_KEY;
    f->keyidx = k;
    if (encode_value(e, k, 1) != 0) return -1;
    size_t mid = e->out->len;
    f->at = AT_VALUE;
    if (encode_value(e, k + 1, 0) != 0) return -1;
    if (push_rec(e, off - start, mid - off, e->out->len - mid) != 0) return -1;
    lua_pop(L, 1);
  }
  size_t n = e->nrecs - base;
  if (n == 0) /* the empty table is the empty array */
    return put_header(e, LR__TAG_ARRAY, 0);
  size_t len = e->out->len - start, hlen = 1 + varint_len(n);
  if (lr_buf_reserve(e->out, hlen + len) != 0) return no_memory(e);
  /* Copy the pairs out of the way (past where the sorted ones will end),
   * sort their records, and copy them back in order behind the header. */
  char *dst = e->out->data + start;
  const char *src = dst + len + hlen;
  memcpy((char *)src, dst, len);
  struct rec *r = e->recs + base;
  sort_recs(src, r, n);
  *dst++ = LR__TAG_MAP;
  dst = put_varint(dst, n);
  for (size_t i = 0; i < n; i++) {
    size_t m = r[i].klen + r[i].vlen;
    memcpy(dst, src + r[i].off, m);
    dst += m;
  }
  e->out->len = start + hlen + len;
  e->nrecs = base;
  return 0;
}

static int encode_table(struct enc *e, int t) {
  lua_State *L = e->L;
  const void *id = lua_topointer(L, t);
  for (int i = 0; i < e->depth; i++)
    if (e->open[i] == id) return fail(e, "cannot encode a cycle", e->depth);
  if (e->depth >= LR_CODEC_DEPTH_MAX) {
    char what[96];
    snprintf(what, sizeof what, "cannot encode tables nested deeper than %d", LR_CODEC_DEPTH_MAX);
    return fail(e, what, e->depth);
  }
  if (!lua_checkstack(L, 4)) /* UNTESTED: the depth limit comes first */
    return fail(e, "cannot encode: Lua stack overflow", e->depth);
  e->open[e->depth++] = id;
  /* A border of 0 means t[1] is nil: not a non-empty sequence. */
  lua_Unsigned n = lua_rawlen(L, t);
  int rc = n > 0 && is_sequence(L, t, n) ? encode_array(e, t, n) : encode_map(e, t);
  if (rc == 0) e->depth--;
  return rc;
}

static int encode_value(struct enc *e, int idx, int is_key) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return lr_buf_append(e->out, "\x00", 1) == 0 ? 0 : no_memory(e);
  case LUA_TBOOLEAN:
    return lr_buf_append(e->out, lua_toboolean(L, idx) ? "\x02" : "\x01", 1) == 0 ? 0
                                                                                  : no_memory(e);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return put_integer(e, lua_tointeger(L, idx));
    return put_float(e, (double)lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return put_string(e, s, n);
  }
  case LUA_TTABLE:
    return encode_table(e, idx);
  default:
    return fail_type(e, idx, is_key);
  }
}

int lr_encode(lua_State *L, int idx, struct lr_buf *out, char *err, size_t errlen) {
  struct enc e;
  e.L = L;
  e.out = out;
  e.err = err;
  e.errlen = errlen;
  e.depth = 0;
  e.recs = e.inline_recs;
  e.nrecs = 0;
  e.caprecs = INLINE_RECS;
  int top = lua_gettop(L);
  size_t len0 = out->len;
  int rc = lr_buf_append(out, "\x01", 1); /* LR__CODEC_VERSION */
  if (rc != 0)
    no_memory(&e);
  else
    rc = encode_value(&e, lua_absindex(L, idx), 0);
  if (rc != 0) out->len = len0;
  if (e.recs != e.inline_recs) free(e.recs);
  lua_settop(L, top);
  return rc;
}
