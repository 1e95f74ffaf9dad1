/* Fixtures for the transport tests (test_net_*.c): messages of every type
 * with checkable contents, deep comparison, and a loop runner. */
#ifndef LUARAFT_TEST_NET_UTIL_H
#define LUARAFT_TEST_NET_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "net/net.h"

/* A message of `type` whose fields derive from seed; `entries` entries of
 * `entry_len` bytes each; snapshot types carry a 3-member configuration and
 * a chunk of chunk_len bytes. Free with net_msg_free. */
void net_msg_make(struct raft_message *m, uint8_t type, uint64_t seed, uint32_t entries,
                  uint32_t entry_len, uint32_t chunk_len);
void net_msg_free(struct raft_message *m);
/* Fails the test unless a and b are equal field by field (deeply). */
void net_msg_check(const struct raft_message *a, const struct raft_message *b);
/* Recomputes the crc of a whole frame after a test changed its body. */
void net_frame_fix_crc(uint8_t *frame, size_t len);
/* Runs the loop until *flag becomes true or timeout_ms passes; returns *flag. */
bool net_run_until(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms);
bool net_run_until_fn(uv_loop_t *loop, bool (*fn)(void *), void *arg, uint64_t timeout_ms);

#endif
