#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lib/net_util.h"

static uint8_t byte_of(uint64_t seed, size_t i) {
  return (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

void net_msg_make(struct raft_message *m, uint8_t type, uint64_t seed, uint32_t entries,
                  uint32_t entry_len, uint32_t chunk_len) {
  memset(m, 0, sizeof *m);
  m->type = type;
  m->from = seed % 7 + 1;
  m->to = seed % 5 + 1;
  m->term = seed * 3 + 1;
  m->log_term = seed * 2;
  m->index = seed * 11;
  m->commit = seed * 5;
  m->reject = seed & 1;
  m->hint_index = seed * 13;
  m->hint_term = UINT64_MAX - seed;
  m->context = seed << 32 | 0xabcd;
  m->done = (seed >> 1) & 1;
  m->n_entries = entries;
  m->entries = entries ? calloc(entries, sizeof *m->entries) : NULL;
  for (uint32_t i = 0; i < entries; i++) {
    struct raft_entry *e = &m->entries[i];
    e->index = m->index + 1 + i;
    e->term = m->term;
    e->type = (uint8_t)(1 + (i % 3));
    e->len = entry_len;
    e->data = malloc(entry_len ? entry_len : 1);
    for (uint32_t k = 0; k < entry_len; k++)
      e->data[k] = byte_of(seed + i, k);
  }
  if (type == RAFT_MSG_SNAPSHOT || type == RAFT_MSG_SNAPSHOT_RESP) {
    m->snap.index = seed * 100;
    m->snap.term = seed + 2;
    m->snap.config_index = seed * 90;
    m->snap.config.n = 3;
    m->snap.config.members = calloc(3, sizeof *m->snap.config.members);
    const char *addrs[3] = {"127.0.0.1:7001", "", "[::1]:7003"};
    for (uint32_t i = 0; i < 3; i++) {
      m->snap.config.members[i].id = i + 1;
      m->snap.config.members[i].role = i == 1 ? RAFT_LEARNER : RAFT_VOTER;
      m->snap.config.members[i].address = strdup(addrs[i]);
    }
    m->offset = seed * 4096;
    m->total = m->offset + chunk_len + seed;
    m->chunk_len = chunk_len;
    uint8_t *c = malloc(chunk_len ? chunk_len : 1);
    for (uint32_t k = 0; k < chunk_len; k++)
      c[k] = byte_of(~seed, k);
    m->chunk = c;
  }
}

void net_msg_free(struct raft_message *m) {
  for (uint32_t i = 0; i < m->n_entries; i++)
    free(m->entries[i].data);
  free(m->entries);
  for (uint32_t i = 0; i < m->snap.config.n; i++)
    free(m->snap.config.members[i].address);
  free(m->snap.config.members);
  free((void *)m->chunk);
  memset(m, 0, sizeof *m);
}

void net_msg_check(const struct raft_message *a, const struct raft_message *b) {
  assert_int_equal(a->type, b->type);
  assert_int_equal(a->from, b->from);
  assert_int_equal(a->to, b->to);
  assert_int_equal(a->term, b->term);
  assert_int_equal(a->log_term, b->log_term);
  assert_int_equal(a->index, b->index);
  assert_int_equal(a->commit, b->commit);
  assert_int_equal(a->reject, b->reject);
  assert_int_equal(a->hint_index, b->hint_index);
  assert_int_equal(a->hint_term, b->hint_term);
  assert_int_equal(a->context, b->context);
  assert_int_equal(a->n_entries, b->n_entries);
  for (uint32_t i = 0; i < a->n_entries; i++) {
    assert_int_equal(a->entries[i].index, b->entries[i].index);
    assert_int_equal(a->entries[i].term, b->entries[i].term);
    assert_int_equal(a->entries[i].type, b->entries[i].type);
    assert_int_equal(a->entries[i].len, b->entries[i].len);
    assert_memory_equal(a->entries[i].data, b->entries[i].data, a->entries[i].len);
  }
  if (a->type != RAFT_MSG_SNAPSHOT && a->type != RAFT_MSG_SNAPSHOT_RESP) return;
  assert_int_equal(a->done, b->done);
  assert_int_equal(a->snap.index, b->snap.index);
  assert_int_equal(a->snap.term, b->snap.term);
  assert_int_equal(a->snap.config_index, b->snap.config_index);
  assert_int_equal(a->snap.config.n, b->snap.config.n);
  for (uint32_t i = 0; i < a->snap.config.n; i++) {
    assert_int_equal(a->snap.config.members[i].id, b->snap.config.members[i].id);
    assert_int_equal(a->snap.config.members[i].role, b->snap.config.members[i].role);
    assert_string_equal(a->snap.config.members[i].address, b->snap.config.members[i].address);
  }
  assert_int_equal(a->offset, b->offset);
  assert_int_equal(a->total, b->total);
  assert_int_equal(a->chunk_len, b->chunk_len);
  assert_memory_equal(a->chunk, b->chunk, a->chunk_len);
}

void net_frame_fix_crc(uint8_t *f, size_t len) {
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, f + 4, 4);
  c = crc32_z(c, f + LR_WIRE_HEADER_SIZE, len - LR_WIRE_HEADER_SIZE);
  for (int i = 0; i < 4; i++)
    f[8 + i] = (uint8_t)(c >> (8 * i));
}

static void on_deadline(uv_timer_t *t) {
  *(bool *)t->data = true;
}

bool net_run_until_fn(uv_loop_t *loop, bool (*fn)(void *), void *arg, uint64_t timeout_ms) {
  bool expired = false;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &expired;
  uv_timer_start(&t, on_deadline, timeout_ms, 0);
  while (!fn(arg) && !expired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return fn(arg);
}

static bool flag_set(void *arg) {
  return *(const bool *)arg;
}

bool net_run_until(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms) {
  return net_run_until_fn(loop, flag_set, (void *)flag, timeout_ms);
}
