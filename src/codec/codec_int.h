/* Internal to the codec: the wire constants shared by encode.c and decode.c.
 * The format itself is described at the top of codec.c. */
#ifndef LUARAFT_CODEC_INT_H
#define LUARAFT_CODEC_INT_H

#include <stdint.h>
#include <string.h>

#include "codec/codec.h"

#define LR__CODEC_VERSION 0x01

enum {
  LR__TAG_NIL = 0x00,
  LR__TAG_FALSE = 0x01,
  LR__TAG_TRUE = 0x02,
  LR__TAG_FLOAT = 0x03,  /* 8 bytes, IEEE 754 binary64, little-endian */
  LR__TAG_INT = 0x04,    /* zigzag varint; only for integers outside 0..127 */
  LR__TAG_STR = 0x05,    /* varint length >= 64, then the bytes */
  LR__TAG_ARRAY = 0x06,  /* varint n >= 0, then n values (never nil) */
  LR__TAG_MAP = 0x07,    /* varint n >= 1, then n key/value pairs, canonical order */
  LR__TAG_FIXSTR = 0x40, /* 0x40 + length, for strings of 0..63 bytes */
  LR__TAG_FIXINT = 0x80, /* 0x80 + value, for integers 0..127 */
};

#define LR__FIXSTR_MAX 63
#define LR__FIXINT_MAX 127
#define LR__VARINT_MAX 10 /* bytes in the longest 64-bit varint */

/* The one NaN the codec writes and accepts, so equal values give equal bytes
 * whichever operation produced the NaN. */
#define LR__NAN_BITS UINT64_C(0x7ff8000000000000)

static inline uint64_t lr__zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t lr__unzigzag(uint64_t u) {
  return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

#endif
