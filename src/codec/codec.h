/* The luaraft codec: deterministic binary encoding of Lua values.
 *
 * Every command, result, snapshot and client session goes through it, so the
 * same value gives the same bytes in every process (a table's bytes do not
 * depend on insertion order), and the decoder trusts nothing: truncated input,
 * trailing bytes, unknown tags, absurd lengths or depths are errors, never
 * crashes, and it never allocates more than the input justifies.
 */
#ifndef LUARAFT_CODEC_H
#define LUARAFT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#define LR_CODEC_DEPTH_MAX 100 /* nesting of tables, both ways */

/* The encoding of nil (format version, nil tag): apply's usual result, which
 * callers can hand out without setting up the encoder. Checked against the
 * format's constants in codec.c. */
#define LR_CODEC_NIL "\x01\x00"
#define LR_CODEC_NIL_LEN 2

/* A growable byte buffer (also used by other layers for framing). */
struct lr_buf {
  char *data;
  size_t len, cap;
};
void lr_buf_init(struct lr_buf *b);
void lr_buf_free(struct lr_buf *b);
int lr_buf_reserve(struct lr_buf *b, size_t extra); /* 0 or -1 (no memory) */
int lr_buf_append(struct lr_buf *b, const void *p, size_t n);

/* Appends the encoding of the value at stack index idx to out. Returns 0, or
 * -1 with a message in err ("cannot encode a function at a.b[3]"). Never
 * raises a Lua error (it may use up to LR_CODEC_DEPTH_MAX + a few stack slots
 * and calls lua_checkstack). */
int lr_encode(lua_State *L, int idx, struct lr_buf *out, char *err, size_t errlen);

/* Decodes exactly n bytes and pushes the value. Returns 0, or -1 with a
 * message in err and nothing pushed. Never raises. */
int lr_decode(lua_State *L, const char *p, size_t n, char *err, size_t errlen);

/* Like lr_decode without the protected call around it, for bindings that run
 * inside Lua already: malformed input still returns -1 with a message, but
 * running out of memory raises a Lua error as any lua_push* would. */
int lr_decode_unprotected(lua_State *L, const char *p, size_t n, char *err, size_t errlen);

/* Sets `encode` and `decode` (the Lua functions raft.encode/raft.decode) in
 * the table on top of the stack. May raise (out of memory). */
void lr_codec_open(lua_State *L);

#endif
