/* The luaraft codec: format, and the byte buffer it writes into.
 *
 * FORMAT (version 1)
 *
 *   encoding := version value           version is the byte 0x01; a decoder
 *                                       rejects any other version byte
 *   value    := one tag byte, then what the tag says:
 *
 *   tag        meaning               payload
 *   0x00       nil                   -
 *   0x01       false                 -
 *   0x02       true                  -
 *   0x03       float                 8 bytes, IEEE 754 binary64, little-endian
 *   0x04       integer               zigzag varint; only outside 0..127
 *   0x05       string                varint length (>= 64), then the bytes
 *   0x06       array                 varint n (>= 0), then n values
 *   0x07       map                   varint n (>= 1), then n key, value pairs
 *   0x08-0x3f  reserved              (a decoder rejects them)
 *   0x40-0x7f  short string          0..63 bytes follow (length = tag - 0x40)
 *   0x80-0xff  small integer         value = tag - 0x80 (0..127)
 *
 *   varint: unsigned LEB128, 7 bits a byte, least significant group first,
 *   high bit set on every byte but the last; at most 10 bytes, and minimal
 *   (no redundant trailing zero groups). zigzag maps 0, -1, 1, -2, ... to
 *   0, 1, 2, 3, ... so small negative integers stay short.
 *
 * Integers and floats have different tags, so math.type survives a round
 * trip (1.0 stays a float; -0.0, inf and nan survive). Every NaN is written as
 * 0x7ff8000000000000, the only NaN a decoder accepts.
 *
 * CANONICAL FORM: every value has exactly one encoding, and the decoder
 * accepts only that one, so decode(x) re-encodes to exactly x:
 *   - the shortest form wins: integers 0..127 and strings of 0..63 bytes use
 *     the one-byte tags, varints are minimal;
 *   - a table whose keys are exactly 1..n (n >= 0, so the empty table too) is
 *     an array; any other table is a map;
 *   - arrays hold no nil; maps hold no nil value and no nil or NaN key, and no
 *     float key with an integral value (Lua turns those into integer keys);
 *   - map pairs are sorted by the bytes of the encoded key (memcmp, and a
 *     shorter encoding first when one is a prefix of the other); keys that
 *     are tables may encode equally, and then the pair with the smaller
 *     encoded value comes first. Any other equal keys are duplicates.
 * This order is total and depends neither on insertion order nor on the hash
 * seed, so the same table gives the same bytes in every process.
 *
 * LIMITS: tables nest at most LR_CODEC_DEPTH_MAX deep (the root table is at
 * depth 1). A decoder checks every declared length against the bytes left
 * before it allocates: a string of n bytes needs n bytes, an array of n
 * values n bytes, a map of n pairs 2n bytes.
 *
 * Encoding a table reads its raw contents (lua_next, lua_rawgeti): no
 * metamethod is ever called. A table reached twice through different paths is
 * written twice; a table reached from inside itself is a cycle, an error.
 */
#include <stdlib.h>
#include <string.h>

#include "codec/codec_int.h"

void lr_buf_init(struct lr_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void lr_buf_free(struct lr_buf *b) {
  free(b->data);
  lr_buf_init(b);
}

int lr_buf_reserve(struct lr_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t cap = b->cap < 64 ? 64 : b->cap;
  while (cap - b->len < extra)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int lr_buf_append(struct lr_buf *b, const void *p, size_t n) {
  if (lr_buf_reserve(b, n) != 0) return -1;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

_Static_assert(LR__CODEC_VERSION == 0x01 && LR__TAG_NIL == 0x00 && LR_CODEC_NIL_LEN == 2,
               "LR_CODEC_NIL in codec.h must be the format version then the nil tag");
