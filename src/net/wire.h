/* The peer wire format: how raft messages and handshakes travel over TCP.
 *
 * A connection carries frames. Every frame is a 12-byte header and a body:
 *
 *   offset size  field
 *   0      4     len       body bytes that follow the header (LE)
 *   4      1     version   LR_WIRE_VERSION
 *   5      1     type      1..RAFT_MSG_TYPE_MAX: a raft message;
 *                          LR_WIRE_HELLO/AUTH/REFUSE: the handshake
 *   6      2     reserved  0
 *   8      4     crc       crc32 (zlib) of bytes 4..7 and the body (LE)
 *
 * Integers are little-endian. A raft message body is (see wire.c for the
 * exact layout): a fixed part (ids, term, indexes, hints, context, flags,
 * n_entries), the entries (index, term, type, len, data), and for
 * SNAPSHOT/SNAPSHOT_RESP the snapshot meta (with its configuration), the
 * chunk position and the chunk bytes. A body must be consumed exactly.
 *
 * The decoder trusts nothing: it checks every length against the bytes that
 * remain before it allocates, so arbitrary input costs at most O(input)
 * memory and never crashes; errors are RAFT_E* codes (core/raft.h) with a message.
 */
#ifndef LUARAFT_NET_WIRE_H
#define LUARAFT_NET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/raft.h"

#define LR_WIRE_VERSION 1
#define LR_WIRE_HEADER_SIZE 12
#define LR_WIRE_FRAME_MAX_DEFAULT (64u * 1024 * 1024) /* body bytes */

enum {
  LR_WIRE_HELLO = 0x40,  /* handshake: identities, nonce, proof */
  LR_WIRE_AUTH = 0x41,   /* handshake: the dialer's proof */
  LR_WIRE_REFUSE = 0x42, /* handshake refused: a reason for the log */
};

/* The frame header as laid out on the wire (encoded field by field, LE). */
struct lr_wire_header {
  uint32_t len;
  uint8_t version;
  uint8_t type;
  uint16_t reserved;
  uint32_t crc;
};

/* A growable byte buffer that frames are appended to. */
struct lr_wire_buf {
  uint8_t *data;
  size_t len, cap;
};
void lr_wire_buf_free(struct lr_wire_buf *b);

/* Reusable allocations for decoded messages (entry and member arrays,
 * addresses). Zero-initialize; free with lr_wire_scratch_free. */
struct lr_wire_scratch {
  struct raft_entry *entries;
  uint32_t entries_cap;
  struct raft_member *members;
  uint32_t members_cap;
  char *strs;
  size_t strs_cap;
};
void lr_wire_scratch_free(struct lr_wire_scratch *s);

/* Appends one frame holding m to out. 0, RAFT_ENOMEM, or
 * RAFT_EMALFORMED for a message that cannot be framed (bad type, an
 * address longer than 65535 bytes). */
int lr_wire_encode(const struct raft_message *m, struct lr_wire_buf *out);

/* Reads a header from the first LR_WIRE_HEADER_SIZE bytes of p: 0 with *h
 * filled, or RAFT_EVERSION / RAFT_ETOOBIG (len > max_body). */
int lr_wire_header_read(const uint8_t *p, size_t max_body, struct lr_wire_header *h);

/* Decodes exactly one whole frame (header + body, len bytes) holding a raft
 * message. Pointers in m (entries[i].data, chunk) point into p; arrays and
 * addresses live in scratch. Both must outlive m's use. */
int lr_wire_decode(const uint8_t *p, size_t len, struct raft_message *m,
                   struct lr_wire_scratch *scratch);

/* ---- handshake frames ----------------------------------------------------------- */
#define LR_WIRE_MAGIC 0x504E524Cu /* "LRNP" */
/* 2: HELLO carries the sender's advertised peer address, so a listener can
 * accept (and dial back) an authenticated node it has not heard of yet, a
 * node that joins with --join. Version 1 peers are refused ("unsupported
 * protocol version"): upgrade every node of a cluster together. */
#define LR_WIRE_PROTO 2
#define LR_WIRE_NONCE 32
#define LR_WIRE_MAC 32
#define LR_WIRE_ADDR_MAX 255
enum { LR_WIRE_HELLO_AUTH = 1 }; /* hello flags */

struct lr_wire_hello {
  uint32_t magic;
  uint16_t proto;
  uint16_t flags;
  uint64_t cluster_id;
  raft_id from, to;
  uint8_t nonce[LR_WIRE_NONCE];
  uint8_t mac[LR_WIRE_MAC];        /* zero unless the sender proves the key */
  char addr[LR_WIRE_ADDR_MAX + 1]; /* the sender's peer address, "" if none */
};
/* Body: the fixed part (LR_WIRE_HELLO_SIZE bytes), then addr_len (u16) and
 * the address bytes (at most LR_WIRE_ADDR_MAX, printable ASCII). */
#define LR_WIRE_HELLO_SIZE 96 /* fixed body bytes */
#define LR_WIRE_REASON_MAX 200

int lr_wire_hello_encode(const struct lr_wire_hello *h, struct lr_wire_buf *out);
int lr_wire_auth_encode(const uint8_t mac[LR_WIRE_MAC], struct lr_wire_buf *out);
int lr_wire_refuse_encode(const char *reason, struct lr_wire_buf *out);
/* Decode a whole frame of the named type; the reason is NUL-terminated into
 * a buffer of LR_WIRE_REASON_MAX + 1 bytes. */
int lr_wire_hello_decode(const uint8_t *p, size_t len, struct lr_wire_hello *h);
int lr_wire_auth_decode(const uint8_t *p, size_t len, uint8_t mac[LR_WIRE_MAC]);
int lr_wire_refuse_decode(const uint8_t *p, size_t len, char *reason);

/* For a libFuzzer target: decodes arbitrary bytes as a frame of any type,
 * and re-encodes what decoded, checking the bytes are identical (aborts if
 * not). Returns 0 (libFuzzer's convention). */
int lr_wire_fuzz_one(const uint8_t *data, size_t size);

#endif
