/* libFuzzer target for the decoder: any input either fails to decode with a
 * message, or decodes to a value that re-encodes to exactly the input (the
 * encoding is canonical). A crash, a sanitizer report, or a round trip that
 * changes the bytes (abort) is a bug. Seeds: fuzz/corpus/decode/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "codec/codec.h"

static lua_State *L;
static struct lr_buf out;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  if (L == NULL) {
    L = luaL_newstate();
    if (L == NULL) abort();
    lr_buf_init(&out);
  }
  if (lr_decode(L, (const char *)data, size, err, sizeof err) == 0) {
    if (lua_gettop(L) != 1) abort();
    out.len = 0;
    if (lr_encode(L, -1, &out, err, sizeof err) != 0) {
      fprintf(stderr, "decoded value does not re-encode: %s\n", err);
      abort();
    }
    if (out.len != size || memcmp(out.data, data, size) != 0) {
      fprintf(stderr, "round trip changed the bytes (%zu in, %zu out)\n", size, out.len);
      abort();
    }
  } else if (lua_gettop(L) != 0 || err[0] == '\0') {
    fprintf(stderr, "bad failure: top %d, message %s\n", lua_gettop(L), err);
    abort();
  }
  /* Free this input's values now, so every run frees what it allocated and
   * LeakSanitizer has nothing to chase between runs. */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
