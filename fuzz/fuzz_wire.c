/* libFuzzer target for the peer wire decoder: any bytes a peer may send.
 * lr_wire_fuzz_one decodes, re-encodes what decoded and aborts if the bytes
 * differ; a crash or sanitizer report is a bug. Run: scripts/fuzz 60 fuzz_wire
 *
 * Random bytes almost never carry a valid crc32, so the fuzzer would only
 * ever exercise the checksum check: each input is tried as it is, and again
 * with its header's length and crc fixed up (wire.h: len at 0, crc at 8 over
 * bytes 4..7 and the body), so mutations reach the body decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "net/wire.h"

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lr_wire_fuzz_one(data, size);
  if (size < LR_WIRE_HEADER_SIZE || size > (1u << 20)) return 0;
  uint8_t *fixed = malloc(size);
  if (fixed == NULL) return 0;
  memcpy(fixed, data, size);
  put_le32(fixed, (uint32_t)(size - LR_WIRE_HEADER_SIZE));
  uLong crc = crc32(0L, fixed + 4, 4);
  crc = crc32(crc, fixed + LR_WIRE_HEADER_SIZE, (uInt)(size - LR_WIRE_HEADER_SIZE));
  put_le32(fixed + 8, (uint32_t)crc);
  lr_wire_fuzz_one(fixed, size);
  free(fixed);
  return 0;
}
