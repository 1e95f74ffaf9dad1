/* libFuzzer target for the peer wire decoder: any bytes a peer may send.
 * lr_wire_fuzz_one decodes, re-encodes what decoded and aborts if the bytes
 * differ; a crash or sanitizer report is a bug. Run: scripts/fuzz 60 fuzz_wire */
#include <stddef.h>
#include <stdint.h>

#include "net/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lr_wire_fuzz_one(data, size);
  return 0;
}
