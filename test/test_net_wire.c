/* The wire format: every raft message type round-trips exactly, and the
 * decoder survives every truncation, random bit flips (with and without a
 * recomputed checksum) and lying counts without crashing or over-allocating. */
#include <stdlib.h>
#include <string.h>

#include "lib/net_util.h"

static void round_trip(uint8_t type, uint64_t seed, uint32_t entries, uint32_t elen,
                       uint32_t clen) {
  struct raft_message m, d;
  net_msg_make(&m, type, seed, entries, elen, clen);
  struct lr_wire_buf b = {0};
  assert_int_equal(lr_wire_encode(&m, &b), 0);
  struct lr_wire_scratch s = {0};
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), 0);
  net_msg_check(&m, &d);
  lr_wire_scratch_free(&s);
  lr_wire_buf_free(&b);
  net_msg_free(&m);
}

/* Every message type, with and without entries, round-trips field by field. */
static void test_wire_round_trips_every_type(void **state) {
  for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++)
    for (uint64_t seed = 0; seed < 4; seed++)
      round_trip(t, seed, (uint32_t)seed * 2, (uint32_t)seed * 10, (uint32_t)seed * 100);
}

/* Big entries and big snapshot chunks go through whole. */
static void test_wire_round_trips_big_payloads(void **state) {
  round_trip(RAFT_MSG_APPEND, 9, 3, 1 << 20, 0);
  round_trip(RAFT_MSG_SNAPSHOT, 9, 0, 0, 4 << 20);
}

/* Several frames appended to one buffer each decode alone. */
static void test_wire_frames_concatenate(void **state) {
  struct raft_message a, c, d;
  net_msg_make(&a, RAFT_MSG_VOTE, 1, 0, 0, 0);
  net_msg_make(&c, RAFT_MSG_APPEND, 2, 2, 5, 0);
  struct lr_wire_buf b = {0};
  assert_int_equal(lr_wire_encode(&a, &b), 0);
  size_t first = b.len;
  assert_int_equal(lr_wire_encode(&c, &b), 0);
  struct lr_wire_header h;
  assert_int_equal(lr_wire_header_read(b.data, 1 << 20, &h), 0);
  assert_int_equal(h.len + LR_WIRE_HEADER_SIZE, first);
  assert_int_equal(h.type, RAFT_MSG_VOTE);
  struct lr_wire_scratch s = {0};
  assert_int_equal(lr_wire_decode(b.data + first, b.len - first, &d, &s), 0);
  net_msg_check(&c, &d);
  assert_int_equal(lr_wire_header_read(b.data, 10, &h), RAFT_ETOOBIG);
  lr_wire_scratch_free(&s);
  lr_wire_buf_free(&b);
  net_msg_free(&a);
  net_msg_free(&c);
}

/* Every proper prefix of a valid frame, and every frame with a byte added,
 * is refused. */
static void test_wire_refuses_every_truncation(void **state) {
  for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
    struct raft_message m, d;
    net_msg_make(&m, t, 3, 2, 7, 20);
    struct lr_wire_buf b = {0};
    assert_int_equal(lr_wire_encode(&m, &b), 0);
    struct lr_wire_scratch s = {0};
    for (size_t n = 0; n < b.len; n++)
      assert_true(lr_wire_decode(b.data, n, &d, &s) < 0);
    /* Truncated bodies with a matching length and checksum: the body parser
     * itself must see the truncation. */
    uint8_t *copy = malloc(b.len + 1);
    for (size_t n = LR_WIRE_HEADER_SIZE; n < b.len; n++) {
      memcpy(copy, b.data, n);
      uint32_t body = (uint32_t)(n - LR_WIRE_HEADER_SIZE);
      for (int i = 0; i < 4; i++)
        copy[i] = (uint8_t)(body >> (8 * i));
      net_frame_fix_crc(copy, n);
      assert_int_equal(lr_wire_decode(copy, n, &d, &s), RAFT_EMALFORMED);
    }
    memcpy(copy, b.data, b.len);
    copy[b.len] = 0;
    uint32_t body = (uint32_t)(b.len + 1 - LR_WIRE_HEADER_SIZE);
    for (int i = 0; i < 4; i++)
      copy[i] = (uint8_t)(body >> (8 * i));
    net_frame_fix_crc(copy, b.len + 1);
    assert_int_equal(lr_wire_decode(copy, b.len + 1, &d, &s), RAFT_EMALFORMED);
    free(copy);
    lr_wire_scratch_free(&s);
    lr_wire_buf_free(&b);
    net_msg_free(&m);
  }
}

/* Random bit flips: with the checksum left alone the frame is refused; with
 * it recomputed the decoder either refuses or decodes something that
 * re-encodes to the same bytes (lr_wire_fuzz_one checks that). */
static void test_wire_survives_bit_flips(void **state) {
  uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 3000; round++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint8_t t = (uint8_t)(1 + x % RAFT_MSG_TYPE_MAX);
    struct raft_message m, d;
    net_msg_make(&m, t, x >> 40, (uint32_t)(x >> 8) % 4, (uint32_t)(x >> 16) % 40,
                 (uint32_t)(x >> 24) % 300);
    struct lr_wire_buf b = {0};
    assert_int_equal(lr_wire_encode(&m, &b), 0);
    struct lr_wire_scratch s = {0};
    int flips = 1 + (int)((x >> 32) % 4);
    for (int i = 0; i < flips; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t at = (size_t)(x % (b.len * 8));
      b.data[at / 8] ^= (uint8_t)(1u << (at % 8));
    }
    int rv = lr_wire_decode(b.data, b.len, &d, &s);
    assert_true(rv < 0); /* crc32 detects up to 3 flipped bits; 4 almost surely */
    if (b.len > LR_WIRE_HEADER_SIZE) net_frame_fix_crc(b.data, b.len);
    lr_wire_fuzz_one(b.data, b.len);
    lr_wire_scratch_free(&s);
    lr_wire_buf_free(&b);
    net_msg_free(&m);
  }
}

/* Lying counts (4 billion entries or members in a small frame) are refused
 * before anything is allocated for them. */
static void test_wire_refuses_lying_counts(void **state) {
  struct raft_message m, d;
  net_msg_make(&m, RAFT_MSG_SNAPSHOT, 5, 1, 4, 8);
  struct lr_wire_buf b = {0};
  assert_int_equal(lr_wire_encode(&m, &b), 0);
  struct lr_wire_scratch s = {0};
  size_t n_entries_at = LR_WIRE_HEADER_SIZE + 73;
  memset(b.data + n_entries_at, 0xff, 4);
  net_frame_fix_crc(b.data, b.len);
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), RAFT_EMALFORMED);
  assert_int_equal(s.entries_cap, 0);
  memset(b.data + n_entries_at, 0, 4);
  b.data[n_entries_at] = 1;
  size_t n_members_at = LR_WIRE_HEADER_SIZE + 77 + 21 + 4 + 40;
  memset(b.data + n_members_at, 0xff, 4);
  net_frame_fix_crc(b.data, b.len);
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), RAFT_EMALFORMED);
  assert_int_equal(s.members_cap, 0);
  /* Unknown flags, entry types, roles and message types are refused too. */
  memset(b.data + n_members_at, 0, 4);
  b.data[n_members_at] = 3;
  net_frame_fix_crc(b.data, b.len);
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), 0);
  b.data[LR_WIRE_HEADER_SIZE + 72] |= 4;
  net_frame_fix_crc(b.data, b.len);
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), RAFT_EMALFORMED);
  b.data[LR_WIRE_HEADER_SIZE + 72] &= 3;
  b.data[5] = 0; /* message type 0 */
  net_frame_fix_crc(b.data, b.len);
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), RAFT_ETYPE);
  b.data[5] = RAFT_MSG_SNAPSHOT;
  b.data[4] = 2; /* version */
  assert_int_equal(lr_wire_decode(b.data, b.len, &d, &s), RAFT_EVERSION);
  lr_wire_scratch_free(&s);
  lr_wire_buf_free(&b);
  net_msg_free(&m);
}

/* Handshake frames round-trip, and are not raft messages. */
static void test_wire_handshake_frames(void **state) {
  struct lr_wire_hello h, g;
  memset(&h, 0, sizeof h);
  memset(&g, 0, sizeof g);
  h.magic = LR_WIRE_MAGIC, h.proto = LR_WIRE_PROTO, h.flags = 1, h.cluster_id = 9;
  h.from = 2, h.to = 3;
  strcpy(h.addr, "127.0.0.1:7004");
  for (int i = 0; i < LR_WIRE_NONCE; i++)
    h.nonce[i] = (uint8_t)i, h.mac[i] = (uint8_t)(255 - i);
  struct lr_wire_buf b = {0};
  assert_int_equal(lr_wire_hello_encode(&h, &b), 0);
  assert_int_equal(b.len, LR_WIRE_HEADER_SIZE + LR_WIRE_HELLO_SIZE + 2 + 14);
  assert_int_equal(lr_wire_hello_decode(b.data, b.len, &g), 0);
  assert_memory_equal(&h, &g, sizeof h);
  /* the address is checked: a space in it is malformed */
  struct lr_wire_buf bad = {0};
  strcpy(h.addr, "127.0.0.1 7004");
  assert_int_equal(lr_wire_hello_encode(&h, &bad), 0);
  assert_int_equal(lr_wire_hello_decode(bad.data, bad.len, &g), RAFT_EMALFORMED);
  lr_wire_buf_free(&bad);
  struct raft_message m;
  struct lr_wire_scratch s = {0};
  assert_int_equal(lr_wire_decode(b.data, b.len, &m, &s), RAFT_ETYPE);
  b.len = 0;
  assert_int_equal(lr_wire_refuse_encode("wrong cluster id\n", &b), 0);
  char reason[LR_WIRE_REASON_MAX + 1];
  assert_int_equal(lr_wire_refuse_decode(b.data, b.len, reason), 0);
  assert_string_equal(reason, "wrong cluster id?");
  uint8_t mac[LR_WIRE_MAC];
  assert_int_equal(lr_wire_auth_decode(b.data, b.len, mac), RAFT_ETYPE);
  b.len = 0;
  assert_int_equal(lr_wire_auth_encode(h.mac, &b), 0);
  assert_int_equal(lr_wire_auth_decode(b.data, b.len, mac), 0);
  assert_memory_equal(mac, h.mac, LR_WIRE_MAC);
  lr_wire_buf_free(&b);
  lr_wire_scratch_free(&s);
}

/* Random garbage of every small length never crashes the decoders. */
static void test_wire_survives_garbage(void **state) {
  uint64_t x = 12345;
  uint8_t buf[512];
  for (int round = 0; round < 20000; round++) {
    size_t n = (size_t)(round % sizeof buf);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[i] = (uint8_t)x;
    }
    if (n >= LR_WIRE_HEADER_SIZE && (round & 1)) {
      /* Make the header plausible so the body parser runs. */
      uint32_t body = (uint32_t)(n - LR_WIRE_HEADER_SIZE);
      for (int i = 0; i < 4; i++)
        buf[i] = (uint8_t)(body >> (8 * i));
      buf[4] = LR_WIRE_VERSION;
      buf[5] = (uint8_t)(1 + x % (RAFT_MSG_TYPE_MAX + 3));
      buf[6] = buf[7] = 0;
      net_frame_fix_crc(buf, n);
    }
    lr_wire_fuzz_one(buf, n);
  }
}

/* Messages that cannot be framed are refused by the encoder. */
static void test_wire_encoder_refuses_bad_messages(void **state) {
  struct raft_message m;
  net_msg_make(&m, RAFT_MSG_VOTE, 1, 0, 0, 0);
  struct lr_wire_buf b = {0};
  m.type = 0;
  assert_int_equal(lr_wire_encode(&m, &b), RAFT_EMALFORMED);
  m.type = RAFT_MSG_TYPE_MAX + 1;
  assert_int_equal(lr_wire_encode(&m, &b), RAFT_EMALFORMED);
  assert_int_equal(b.len, 0);
  assert_string_equal(raft_strerror(RAFT_ECHECKSUM), "frame checksum mismatch");
  lr_wire_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wire_round_trips_every_type),
      cmocka_unit_test(test_wire_round_trips_big_payloads),
      cmocka_unit_test(test_wire_frames_concatenate),
      cmocka_unit_test(test_wire_refuses_every_truncation),
      cmocka_unit_test(test_wire_survives_bit_flips),
      cmocka_unit_test(test_wire_refuses_lying_counts),
      cmocka_unit_test(test_wire_handshake_frames),
      cmocka_unit_test(test_wire_survives_garbage),
      cmocka_unit_test(test_wire_encoder_refuses_bad_messages),
  };
  return cmocka_run_group_tests_name("net_wire", tests, NULL, NULL);
}
