/* The decoder: bytes -> Lua value, strict (format in codec.c).
 *
 * It trusts nothing. Every read is bounds-checked; every declared length is
 * checked against the bytes left before anything is allocated; and it accepts
 * only the canonical encoding, so decode(x) re-encodes to exactly x.
 *
 * Allocation bound: `need` counts the bytes that the elements still promised
 * by the open tables will take at least (1 a value, 2 a pair). A table may
 * declare n elements only if its n (or 2n) bytes fit in what is left after
 * `need`, so every slot a table allocates is backed by its own input byte and
 * nested tables cannot promise the same bytes twice.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "codec/codec_int.h"

struct dec {
  lua_State *L;
  const unsigned char *p0, *p, *end;
  size_t need; /* bytes still promised to open tables, past the current element */
  int depth;
  char *err;
  size_t errlen;
};

static int decode_value(struct dec *d);

static int fail_at(struct dec *d, const unsigned char *at, const char *what) {
  if (d->errlen > 0) snprintf(d->err, d->errlen, "%s at byte %zu", what, (size_t)(at - d->p0));
  return -1;
}

static int truncated(struct dec *d) {
  return fail_at(d, d->end, "truncated input");
}

static inline size_t left(const struct dec *d) {
  return (size_t)(d->end - d->p);
}

/* A minimal unsigned LEB128 of at most 10 bytes. */
static int get_varint(struct dec *d, uint64_t *v) {
  const unsigned char *at = d->p;
  uint64_t r = 0;
  for (int i = 0; i < LR__VARINT_MAX; i++) {
    if (d->p >= d->end) return truncated(d);
    unsigned b = *d->p++;
    r |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      if (b == 0 && i > 0) return fail_at(d, at, "non-canonical varint");
      if (i == LR__VARINT_MAX - 1 && b > 1) return fail_at(d, at, "varint overflows 64 bits");
      *v = r;
      return 0;
    }
  }
  return fail_at(d, at, "varint longer than 10 bytes");
}

static int get_float(struct dec *d, const unsigned char *at) {
  if (left(d) < 8) return truncated(d);
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u |= (uint64_t)d->p[i] << (8 * i);
  d->p += 8;
  if ((u & UINT64_C(0x7ff0000000000000)) == UINT64_C(0x7ff0000000000000) &&
      (u & UINT64_C(0x000fffffffffffff)) != 0 && u != LR__NAN_BITS)
    return fail_at(d, at, "non-canonical NaN");
  double x;
  memcpy(&x, &u, sizeof x);
  lua_pushnumber(d->L, (lua_Number)x);
  return 0;
}

static int get_long_string(struct dec *d, const unsigned char *at) {
  uint64_t n;
  if (get_varint(d, &n) != 0) return -1;
  if (n <= LR__FIXSTR_MAX) return fail_at(d, at, "non-canonical string length");
  if (n > left(d)) return fail_at(d, at, "string longer than the input left");
  lua_pushlstring(d->L, (const char *)d->p, (size_t)n);
  d->p += n;
  return 0;
}

/* Reads a table header's count and checks it against the bytes left. */
static int open_table(struct dec *d, const unsigned char *at, uint64_t *n, unsigned per) {
  if (get_varint(d, n) != 0) return -1;
  if (d->depth >= LR_CODEC_DEPTH_MAX) {
    char what[64];
    snprintf(what, sizeof what, "tables nested deeper than %d", LR_CODEC_DEPTH_MAX);
    return fail_at(d, at, what);
  }
  size_t room = left(d) >= d->need ? left(d) - d->need : 0;
  if (*n > room / per)
    return fail_at(
        d, at, per == 1 ? "array longer than the input left" : "map longer than the input left");
  if (*n > INT_MAX) /* UNTESTED: needs an input of more than 2 GB */
    return fail_at(d, at, "table too large");
  if (!lua_checkstack(d->L, 4)) /* UNTESTED: the depth limit comes first */
    return fail_at(d, at, "Lua stack overflow");
  d->need += (size_t)*n * per;
  d->depth++;
  return 0;
}

static int get_array(struct dec *d, const unsigned char *at) {
  lua_State *L = d->L;
  uint64_t n;
  if (open_table(d, at, &n, 1) != 0) return -1;
  lua_createtable(L, (int)n, 0);
  for (uint64_t i = 1; i <= n; i++) {
    d->need -= 1;
    if (d->p < d->end && *d->p == LR__TAG_NIL) return fail_at(d, d->p, "nil in an array");
    if (decode_value(d) != 0) return -1;
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  d->depth--;
  return 0;
}

static int cmp_bytes(const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c != 0) return c;
  return an < bn ? -1 : an > bn;
}

/* A key Lua would store as it is: not NaN, and not a float with an integer
 * value (Lua would turn it into an integer key). */
static int check_key(struct dec *d, const unsigned char *at) {
  lua_State *L = d->L;
  if (lua_type(L, -1) != LUA_TNUMBER || lua_isinteger(L, -1)) return 0;
  double x = (double)lua_tonumber(L, -1);
  if (isnan(x)) return fail_at(d, at, "NaN map key");
  if (x == floor(x) && x >= -0x1p63 && x < 0x1p63)
    return fail_at(d, at, "float map key with an integer value");
  return 0;
}

static int get_map(struct dec *d, const unsigned char *at) {
  lua_State *L = d->L;
  uint64_t n;
  if (open_table(d, at, &n, 2) != 0) return -1;
  if (n == 0) return fail_at(d, at, "empty map (the empty table is an empty array)");
  lua_createtable(L, 0, (int)n);
  const unsigned char *pk = NULL, *pv = NULL;
  size_t pkn = 0, pvn = 0;
  int sequence = 1; /* so far every key is an integer in 1..n */
  for (uint64_t i = 0; i < n; i++) {
    d->need -= 1; /* the key; its value stays promised while the key decodes */
    const unsigned char *k = d->p;
    if (k < d->end && *k == LR__TAG_NIL) return fail_at(d, k, "nil map key");
    if (decode_value(d) != 0 || check_key(d, k) != 0) return -1;
    if (sequence &&
        !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && (uint64_t)lua_tointeger(L, -1) <= n))
      sequence = 0;
    const unsigned char *v = d->p;
    size_t kn = (size_t)(v - k);
    d->need -= 1;
    int c = pk == NULL ? 1 : cmp_bytes(k, kn, pk, pkn);
    if (c < 0) return fail_at(d, k, "map keys out of canonical order");
    /* Distinct keys have distinct bytes, except tables (equal contents). */
    if (c == 0 && *k != LR__TAG_ARRAY && *k != LR__TAG_MAP)
      return fail_at(d, k, "duplicate map key");
    if (v < d->end && *v == LR__TAG_NIL) return fail_at(d, v, "nil map value");
    if (decode_value(d) != 0) return -1;
    size_t vn = (size_t)(d->p - v);
    if (c == 0 && cmp_bytes(v, vn, pv, pvn) < 0)
      return fail_at(d, k, "map keys out of canonical order");
    lua_rawset(L, -3);
    pk = k, pkn = kn, pv = v, pvn = vn;
  }
  if (sequence) return fail_at(d, at, "sequence written as a map (must be an array)");
  d->depth--;
  return 0;
}

static int decode_value(struct dec *d) {
  lua_State *L = d->L;
  if (d->p >= d->end) return truncated(d);
  const unsigned char *at = d->p;
  unsigned tag = *d->p++;
  if (tag >= LR__TAG_FIXINT) {
    lua_pushinteger(L, (lua_Integer)(tag - LR__TAG_FIXINT));
    return 0;
  }
  if (tag >= LR__TAG_FIXSTR) {
    size_t n = tag - LR__TAG_FIXSTR;
    if (n > left(d)) return truncated(d);
    lua_pushlstring(L, (const char *)d->p, n);
    d->p += n;
    return 0;
  }
  switch (tag) {
  case LR__TAG_NIL:
    lua_pushnil(L);
    return 0;
  case LR__TAG_FALSE:
  case LR__TAG_TRUE:
    lua_pushboolean(L, tag == LR__TAG_TRUE);
    return 0;
  case LR__TAG_FLOAT:
    return get_float(d, at);
  case LR__TAG_INT: {
    uint64_t u;
    if (get_varint(d, &u) != 0) return -1;
    int64_t v = lr__unzigzag(u);
    if (v >= 0 && v <= LR__FIXINT_MAX) return fail_at(d, at, "non-canonical integer");
    lua_pushinteger(L, (lua_Integer)v);
    return 0;
  }
  case LR__TAG_STR:
    return get_long_string(d, at);
  case LR__TAG_ARRAY:
    return get_array(d, at);
  case LR__TAG_MAP:
    return get_map(d, at);
  default: {
    char what[32];
    snprintf(what, sizeof what, "unknown tag 0x%02x", tag);
    return fail_at(d, at, what);
  }
  }
}

int lr_decode_unprotected(lua_State *L, const char *p, size_t n, char *err, size_t errlen) {
  struct dec d = {L,
                  (const unsigned char *)p,
                  (const unsigned char *)p,
                  (const unsigned char *)p + n,
                  0,
                  0,
                  err,
                  errlen};
  int top = lua_gettop(L);
  int rc;
  if (n == 0) {
    rc = truncated(&d);
  } else if (*d.p != LR__CODEC_VERSION) {
    char what[64];
    snprintf(what, sizeof what, "unknown format version %u (expected %u)", *d.p, LR__CODEC_VERSION);
    rc = fail_at(&d, d.p, what);
  } else {
    d.p++;
    rc = lua_checkstack(L, 4) ? decode_value(&d) : fail_at(&d, d.p, "Lua stack overflow");
    if (rc == 0 && d.p != d.end) rc = fail_at(&d, d.p, "trailing bytes");
  }
  lua_settop(L, rc == 0 ? top + 1 : top);
  return rc;
}

/* lr_decode's protected body: a light userdata with the arguments. */
struct args {
  const char *p;
  size_t n;
  char *err;
  size_t errlen;
  int rc;
};

static int protected_decode(lua_State *L) {
  struct args *a = lua_touserdata(L, 1);
  lua_pop(L, 1);
  a->rc = lr_decode_unprotected(L, a->p, a->n, a->err, a->errlen);
  return a->rc == 0 ? 1 : 0;
}

int lr_decode(lua_State *L, const char *p, size_t n, char *err, size_t errlen) {
  struct args a = {p, n, err, errlen, -1};
  if (!lua_checkstack(L, 3)) {
    if (errlen > 0) snprintf(err, errlen, "Lua stack overflow");
    return -1;
  }
  int top = lua_gettop(L);
  lua_pushcfunction(L, protected_decode);
  lua_pushlightuserdata(L, &a);
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (status != LUA_OK) { /* out of memory, or a table Lua cannot size */
    if (errlen > 0) {
      const char *msg = lua_tostring(L, -1);
      snprintf(err, errlen, "%s", msg != NULL ? msg : "error while decoding");
    }
    lua_settop(L, top);
    return -1;
  }
  if (a.rc != 0) {
    lua_settop(L, top);
    return -1;
  }
  return 0;
}
