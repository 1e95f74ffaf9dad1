/* raft.encode / raft.decode: the codec's Lua functions (format in
 * src/codec/encode.c). They live with the codec, not in the binding, so that
 * both the `raft` module (src/lua) and the state machine runner (src/sm),
 * which must not load the whole binding, register the same two functions.
 *
 * encode writes into one buffer kept as an upvalue and reset on every call,
 * so encoding a command allocates nothing but the result string. A buffer
 * grown past KEEP_MAX by a big snapshot is given back after the call.
 */
#include <lauxlib.h>

#include "codec/codec.h"

#define BUF_META "luaraft.codec_buf"
#define KEEP_MAX (1u << 20)
#define ERR_MAX 256

static int buf_gc(lua_State *L) {
  lr_buf_free(luaL_checkudata(L, 1, BUF_META));
  return 0;
}

static int l_encode(lua_State *L) {
  struct lr_buf *b = lua_touserdata(L, lua_upvalueindex(1));
  char err[ERR_MAX];
  luaL_checkany(L, 1);
  b->len = 0;
  if (lr_encode(L, 1, b, err, sizeof err) != 0) return luaL_error(L, "raft.encode: %s", err);
  lua_pushlstring(L, b->data, b->len);
  if (b->cap > KEEP_MAX) lr_buf_free(b);
  return 1;
}

static int l_decode(lua_State *L) {
  char err[ERR_MAX];
  size_t n;
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_typeerror(L, 1, "string");
  const char *p = lua_tolstring(L, 1, &n);
  if (lr_decode_unprotected(L, p, n, err, sizeof err) != 0)
    return luaL_error(L, "raft.decode: %s", err);
  return 1;
}

void lr_codec_open(lua_State *L) {
  struct lr_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  lr_buf_init(b);
  if (luaL_newmetatable(L, BUF_META)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, l_encode, 1);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
}
