/* libFuzzer target for the store's row decoding: each input is a list of
 * rows written straight into a fresh node database (DIR/raft.db, made by
 * lr_store_open), bypassing the store's own writer, then the store is
 * opened and loaded as a restarting node would. Rows: log entries (any
 * index, term, type, data; a checksum computed or taken from the input),
 * the snapshot row (its configuration blob arbitrary or valid, its data,
 * a checksum computed or taken), and the meta row's term and vote. The
 * store must refuse what is inconsistent with one sentence, load what is
 * consistent, and never crash or leak. Seeds: fuzz/corpus/store/ (made by
 * fuzz/make_corpus_store.py).
 *
 * Input: a sequence of records, each a tag byte then its fields (LE):
 *   tag & 3 == 0  entry:    u16 index, u8 term, u8 type, u8 len, data,
 *                           [u32 crc unless tag & 4: computed]
 *   tag & 3 == 1  snapshot: u16 index, u8 term, u16 config_index,
 *                           u8 config_len, config (raw; tag & 8: a valid
 *                           configuration of that many voters instead),
 *                           u8 data_len, data, [u32 crc unless tag & 4]
 *   tag & 3 == 2  meta:     u8 term, u8 vote */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

static char dir[64];

struct in {
  const uint8_t *p;
  size_t n;
};

static bool take(struct in *in, void *out, size_t k) {
  if (in->n < k) return false;
  memcpy(out, in->p, k);
  in->p += k;
  in->n -= k;
  return true;
}
static uint64_t u(struct in *in, size_t k, bool *ok) {
  uint8_t b[8] = {0};
  if (!take(in, b, k)) *ok = false;
  uint64_t v = 0;
  for (size_t i = 0; i < k; i++)
    v |= (uint64_t)b[i] << (8 * i);
  return v;
}

static void setup(void) {
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/luaraft-fuzz-store-XXXXXX", base);
  if (mkdtemp(dir) == NULL) abort();
}

static void fresh(void) {
  char path[128];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/raft.db%s", dir, sfx[i]);
    unlink(path);
  }
  struct lr_store_options o = {.kind = LR_STORE_SQLITE, .dir = dir, .node_id = 1, .cluster_id = 5};
  struct lr_store *s;
  char err[LR_STORE_ERR_MAX];
  if (lr_store_open(&o, &s, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    abort();
  }
  lr_store_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (dir[0] == 0) setup();
  fresh();
  char path[128];
  snprintf(path, sizeof path, "%s/raft.db", dir);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) abort();
  sqlite3_stmt *ins, *snap, *meta;
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", -1, &ins, NULL);
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?, ?, ?, ?, ?)", -1, &snap,
                     NULL);
  sqlite3_prepare_v2(db, "UPDATE meta SET term = ?, vote = ? WHERE id = 1", -1, &meta, NULL);
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  struct in in = {data, size};
  bool ok = true;
  for (int rows = 0; ok && in.n > 0 && rows < 64; rows++) {
    uint8_t tag = (uint8_t)u(&in, 1, &ok);
    uint8_t buf[256], conf[1024];
    if ((tag & 3) == 0) {
      uint64_t idx = u(&in, 2, &ok), term = u(&in, 1, &ok), type = u(&in, 1, &ok);
      size_t len = (size_t)u(&in, 1, &ok);
      if (!ok || !take(&in, buf, len)) break;
      uint32_t crc = (tag & 4) ? lr__store_entry_crc(idx, term, (uint8_t)type, buf, len)
                               : (uint32_t)u(&in, 4, &ok);
      sqlite3_bind_int64(ins, 1, (sqlite3_int64)idx);
      sqlite3_bind_int64(ins, 2, (sqlite3_int64)term);
      sqlite3_bind_int64(ins, 3, (sqlite3_int64)type);
      sqlite3_bind_blob(ins, 4, buf, (int)len, SQLITE_TRANSIENT);
      sqlite3_bind_int64(ins, 5, crc);
      sqlite3_step(ins);
      sqlite3_reset(ins);
    } else if ((tag & 3) == 1) {
      uint64_t idx = u(&in, 2, &ok), term = u(&in, 1, &ok), cidx = u(&in, 2, &ok);
      size_t clen = (size_t)u(&in, 1, &ok);
      size_t cbytes = clen;
      if (!ok) break;
      if (tag & 8) { /* a valid configuration of clen % 5 voters */
        struct raft_config c = {0};
        struct raft_member m[4];
        char addr[4][32];
        c.n = (uint32_t)(clen % 5);
        c.members = m;
        for (uint32_t i = 0; i < c.n; i++) {
          snprintf(addr[i], sizeof addr[i], "127.0.0.1:%u", 7001 + i);
          m[i] = (struct raft_member){.id = i + 1, .role = RAFT_VOTER, .address = addr[i]};
        }
        uint8_t *enc = NULL;
        size_t elen = 0;
        if (raft_config_encode(&c, &enc, &elen) != 0 || elen > sizeof conf) abort();
        memcpy(conf, enc, elen);
        raft_free(enc);
        cbytes = elen;
      } else if (!take(&in, conf, clen)) {
        break;
      }
      size_t dlen = (size_t)u(&in, 1, &ok);
      if (!ok || !take(&in, buf, dlen)) break;
      uint32_t crc = (tag & 4) ? lr__store_snap_crc(idx, term, cidx, conf, cbytes, buf, dlen)
                               : (uint32_t)u(&in, 4, &ok);
      sqlite3_bind_int64(snap, 1, (sqlite3_int64)idx);
      sqlite3_bind_int64(snap, 2, (sqlite3_int64)term);
      sqlite3_bind_blob(snap, 3, conf, (int)cbytes, SQLITE_TRANSIENT);
      sqlite3_bind_int64(snap, 4, (sqlite3_int64)cidx);
      sqlite3_bind_blob(snap, 5, buf, (int)dlen, SQLITE_TRANSIENT);
      sqlite3_bind_int64(snap, 6, crc);
      sqlite3_step(snap);
      sqlite3_reset(snap);
    } else if ((tag & 3) == 2) {
      uint64_t term = u(&in, 1, &ok), vote = u(&in, 1, &ok);
      sqlite3_bind_int64(meta, 1, (sqlite3_int64)term);
      sqlite3_bind_int64(meta, 2, (sqlite3_int64)vote);
      sqlite3_step(meta);
      sqlite3_reset(meta);
    }
  }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_finalize(ins);
  sqlite3_finalize(snap);
  sqlite3_finalize(meta);
  sqlite3_close(db);

  struct lr_store_options o = {.kind = LR_STORE_SQLITE, .dir = dir, .node_id = 1, .cluster_id = 5};
  struct lr_store *s;
  char err[LR_STORE_ERR_MAX] = "";
  if (lr_store_open(&o, &s, err, sizeof err) != 0) {
    if (err[0] == 0) abort(); /* a refusal always says why */
    return 0;
  }
  struct lr_store_state st;
  err[0] = 0;
  if (lr_store_load(s, &st, err, sizeof err) == 0) {
    /* what loads is a contiguous log after the snapshot */
    raft_index next = st.has_snapshot ? st.snapshot.meta.index + 1 : 0;
    for (uint32_t i = 0; i < st.n_entries; i++) {
      if (next != 0 && st.entries[i].index != next) abort();
      next = st.entries[i].index + 1;
    }
    lr_store_state_free(&st);
  } else if (err[0] == 0) {
    abort();
  }
  lr_store_close(s);
  return 0;
}
