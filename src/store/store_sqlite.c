/* SQLite storage: one database per node, DIR/raft.db.
 *
 * Schema (format 1; PRAGMA application_id = 'LRFT', user_version = 1):
 *   meta(id = 1, format, cluster_id, node_id, term, vote)
 *   entries(idx PRIMARY KEY, term, type, data, crc)
 *   snapshot(id = 1, idx, term, config, config_index, data, crc)
 * crc is zlib's crc32 (see store.c for exactly which bytes it covers).
 *
 * Durability: WAL with synchronous=FULL, so a COMMIT returns only after the
 * WAL is fsynced; one transaction per batch. locking_mode=EXCLUSIVE keeps a
 * second process from opening the same data dir.
 *
 * The write path costs one WAL fsync per batch and, at 1-entry batches, one
 * WAL frame (the entries leaf page; the meta page only when term or vote
 * changed: SQLite leaves a page clean when an UPDATE writes the same bytes,
 * and we skip the statement too). Everything else is kept off it:
 *   - no checkpoint inside COMMIT (wal_autocheckpoint = 0): a PASSIVE
 *     checkpoint becomes due after `checkpoint_every` batches or
 *     LR_STORE_WAL_PAGES_MAX WAL frames (or a snapshot/compaction batch) and
 *     runs in lr_store_idle() when the host has nothing queued, else before
 *     the next batch;
 *   - the WAL is reused, not truncated and regrown: a complete checkpoint
 *     makes the next commit write from the WAL's start again, over blocks the
 *     file already has, so its fdatasync carries no size or allocation change
 *     (appending costs a journal commit on ext4 on top of the data);
 *     journal_size_limit trims it back only after an outsized batch (a large
 *     snapshot);
 *   - statements (BEGIN, COMMIT included) are prepared once; the log bounds
 *     are kept in memory and read back from the database only after a
 *     snapshot or compaction.
 */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/store_int.h"

#define APP_ID 0x4C524654 /* "LRFT" */
#define CORRUPT_HINT "the database is corrupted; restore it from a replica"

enum {
  ST_HARD,
  ST_TERM_AT,
  ST_DEL_BELOW,
  ST_DEL_FROM,
  ST_INSERT,
  ST_SNAP,
  ST_BOUNDS,
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_N
};

static const char *const SQL[ST_N] = {
    [ST_HARD] = "UPDATE meta SET term = ?, vote = ? WHERE id = 1",
    [ST_TERM_AT] = "SELECT term FROM entries WHERE idx = ?",
    [ST_DEL_BELOW] = "DELETE FROM entries WHERE idx < ?",
    [ST_DEL_FROM] = "DELETE FROM entries WHERE idx >= ?",
    [ST_INSERT] = "INSERT INTO entries(idx, term, type, data, crc) VALUES (?, ?, ?, ?, ?)",
    [ST_SNAP] = "INSERT OR REPLACE INTO snapshot(id, idx, term, config, config_index, data, crc) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
    /* One subquery each: SQLite answers a lone min() or max() from one end of
     * the b-tree, but `SELECT min(idx), max(idx) FROM entries` scans the
     * whole log (this ran twice per batch and cost a leader ~2 ms per commit
     * at 10,000 entries). */
    [ST_BOUNDS] = "SELECT (SELECT min(idx) FROM entries), (SELECT max(idx) FROM entries),"
                  " (SELECT term FROM entries ORDER BY idx DESC LIMIT 1),"
                  " (SELECT idx FROM snapshot WHERE id = 1)",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static const char SCHEMA[] =
    "CREATE TABLE meta(id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL,"
    " cluster_id INTEGER NOT NULL, node_id INTEGER NOT NULL, term INTEGER NOT NULL,"
    " vote INTEGER NOT NULL);"
    "CREATE TABLE entries(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
    " type INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL);"
    "CREATE TABLE snapshot(id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,"
    " term INTEGER NOT NULL, config BLOB NOT NULL, config_index INTEGER NOT NULL,"
    " data BLOB NOT NULL, crc INTEGER NOT NULL);";

struct sq {
  struct lr_store base;
  sqlite3 *db;
  sqlite3_stmt *st[ST_N];
  uint32_t checkpoint_every, since_checkpoint;
  int wal_frames;      /* frames in the WAL after the last commit (wal hook) */
  bool checkpoint_due; /* run it in lr_store_idle() or before the next batch */
  uint64_t checkpoints;
  raft_term hs_term; /* the durable hard state, to skip unchanged updates */
  raft_id hs_vote;
  raft_index first, last, snap_index; /* committed state */
  bool has_cached;                    /* the state read while verifying at open */
  struct lr_store_state cached;
};

static const uint8_t EMPTY[1];

static int map_rc(int rc) {
  switch (rc & 0xff) {
  case SQLITE_FULL:
    return RAFT_EFULL;
  case SQLITE_NOMEM:
    return RAFT_ENOMEM;
  default:
    return RAFT_ESTORAGE;
  }
}

static int mkdirs(const char *dir) {
  char tmp[512];
  if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -1;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* One integer from a one-row query; rc is an SQLite code. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    *out = 0;
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc;
}

static int bounds(struct sq *q, raft_index *first, raft_index *last, raft_term *last_term,
                  raft_index *snap) {
  sqlite3_stmt *st = q->st[ST_BOUNDS];
  sqlite3_reset(st);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) return rc;
  *first = (raft_index)sqlite3_column_int64(st, 0);
  *last = (raft_index)sqlite3_column_int64(st, 1);
  if (last_term != NULL) *last_term = (raft_term)sqlite3_column_int64(st, 2);
  *snap = (raft_index)sqlite3_column_int64(st, 3);
  sqlite3_reset(st);
  return SQLITE_OK;
}

/* ---- verification and loading --------------------------------------------------- */
static int load_snapshot(struct sq *q, struct lr_store_state *st, char *err, size_t errlen) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(
      q->db, "SELECT idx, term, config, config_index, data, crc FROM snapshot WHERE id = 1", -1, &s,
      NULL);
  if (rc != SQLITE_OK) goto sqlerr;
  rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) {
    sqlite3_finalize(s);
    return 0;
  }
  if (rc != SQLITE_ROW) goto sqlerr;
  struct raft_snapshot *sn = &st->snapshot;
  sn->meta.index = (raft_index)sqlite3_column_int64(s, 0);
  sn->meta.term = (raft_term)sqlite3_column_int64(s, 1);
  const void *conf = sqlite3_column_blob(s, 2);
  size_t conf_len = (size_t)sqlite3_column_bytes(s, 2);
  sn->meta.config_index = (raft_index)sqlite3_column_int64(s, 3);
  const void *data = sqlite3_column_blob(s, 4);
  size_t len = (size_t)sqlite3_column_bytes(s, 4);
  uint32_t crc = (uint32_t)sqlite3_column_int64(s, 5);
  if (crc != lr__store_snap_crc(sn->meta.index, sn->meta.term, sn->meta.config_index, conf,
                                conf_len, data, len)) {
    lr__store_errf(err, errlen, "%s: snapshot %llu checksum mismatch: " CORRUPT_HINT, q->base.path,
                   (unsigned long long)sn->meta.index);
    sqlite3_finalize(s);
    return RAFT_ECORRUPT;
  }
  if (raft_config_decode(conf != NULL ? conf : EMPTY, conf_len, &sn->meta.config) != 0) {
    lr__store_errf(err, errlen, "%s: snapshot %llu configuration does not decode: " CORRUPT_HINT,
                   q->base.path, (unsigned long long)sn->meta.index);
    sqlite3_finalize(s);
    return RAFT_ECORRUPT;
  }
  uint8_t *copy = raft_malloc(len > 0 ? len : 1);
  if (copy == NULL) {
    raft_config_free(&sn->meta.config);
    sqlite3_finalize(s);
    return RAFT_ENOMEM;
  }
  if (len > 0) memcpy(copy, data, len);
  sn->data = copy;
  sn->len = len;
  st->has_snapshot = true;
  sqlite3_finalize(s);
  return 0;
sqlerr:
  lr__store_errf(err, errlen, "%s: reading the snapshot: %s", q->base.path, sqlite3_errmsg(q->db));
  sqlite3_finalize(s);
  return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB ? RAFT_ECORRUPT
                                                                       : RAFT_ESTORAGE;
}

static int push_entry(struct lr_store_state *st, uint32_t *cap, raft_index idx, raft_term term,
                      uint8_t type, const void *data, size_t len) {
  if (st->n_entries == *cap) {
    uint32_t ncap = *cap ? *cap * 2 : 64;
    struct raft_entry *e = raft_realloc(st->entries, sizeof *e * ncap);
    if (e == NULL) return RAFT_ENOMEM;
    st->entries = e;
    *cap = ncap;
  }
  struct raft_entry *e = &st->entries[st->n_entries];
  e->data = raft_malloc(len > 0 ? len : 1);
  if (e->data == NULL) return RAFT_ENOMEM;
  if (len > 0) memcpy(e->data, data, len);
  e->index = idx;
  e->term = term;
  e->type = type;
  e->len = (uint32_t)len;
  st->n_entries++;
  return 0;
}

/* Reads everything, verifying every checksum and the shape of the log. */
static int scan(struct sq *q, struct lr_store_state *st, char *err, size_t errlen) {
  const char *path = q->base.path;
  int64_t v;
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(q->db, "SELECT term, vote FROM meta WHERE id = 1", -1, &s, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    st->term = (raft_term)sqlite3_column_int64(s, 0);
    st->vote = (raft_id)sqlite3_column_int64(s, 1);
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) {
    lr__store_errf(err, errlen, "%s: the metadata row is missing: " CORRUPT_HINT, path);
    return RAFT_ECORRUPT;
  }
  int r = load_snapshot(q, st, err, errlen);
  if (r != 0) return r;
  raft_index snap = st->has_snapshot ? st->snapshot.meta.index : 0;
  rc = sqlite3_prepare_v2(q->db, "SELECT idx, term, type, data, crc FROM entries ORDER BY idx", -1,
                          &s, NULL);
  if (rc != SQLITE_OK) goto sqlerr;
  uint32_t cap = 0;
  raft_index prev = 0, count = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    raft_index idx = (raft_index)sqlite3_column_int64(s, 0);
    raft_term term = (raft_term)sqlite3_column_int64(s, 1);
    int64_t type = sqlite3_column_int64(s, 2);
    const void *data = sqlite3_column_blob(s, 3);
    size_t len = (size_t)sqlite3_column_bytes(s, 3);
    uint32_t crc = (uint32_t)sqlite3_column_int64(s, 4);
    if (type < RAFT_ENTRY_NORMAL || type > RAFT_ENTRY_CONFIG ||
        crc != lr__store_entry_crc(idx, term, (uint8_t)type, data, len)) {
      lr__store_errf(err, errlen, "%s: entry %llu checksum mismatch: " CORRUPT_HINT, path,
                     (unsigned long long)idx);
      r = RAFT_ECORRUPT;
      goto fail;
    }
    if (count == 0 && idx > snap + 1) {
      lr__store_errf(
          err, errlen,
          "%s: the log starts at entry %llu but the snapshot ends at %llu: " CORRUPT_HINT, path,
          (unsigned long long)idx, (unsigned long long)snap);
      r = RAFT_ECORRUPT;
      goto fail;
    }
    if (count > 0 && idx != prev + 1) {
      lr__store_errf(err, errlen, "%s: entries %llu to %llu are missing: " CORRUPT_HINT, path,
                     (unsigned long long)prev + 1, (unsigned long long)idx - 1);
      r = RAFT_ECORRUPT;
      goto fail;
    }
    if (idx == snap && st->has_snapshot && term != st->snapshot.meta.term) {
      lr__store_errf(err, errlen,
                     "%s: entry %llu has term %llu but the snapshot says %llu: " CORRUPT_HINT, path,
                     (unsigned long long)idx, (unsigned long long)term,
                     (unsigned long long)st->snapshot.meta.term);
      r = RAFT_ECORRUPT;
      goto fail;
    }
    prev = idx;
    count++;
    st->last_index = idx;
    st->last_term = term;
    if (idx > snap && (r = push_entry(st, &cap, idx, term, (uint8_t)type, data, len)) != 0)
      goto fail;
  }
  if (rc != SQLITE_DONE) goto sqlerr;
  sqlite3_finalize(s);
  if (st->last_index <= snap && st->has_snapshot) {
    st->last_index = snap;
    st->last_term = st->snapshot.meta.term;
  }
  (void)v;
  st->fresh = st->term == 0 && st->vote == 0 && count == 0 && !st->has_snapshot;
  return 0;
sqlerr:
  lr__store_errf(err, errlen, "%s: reading the log: %s: " CORRUPT_HINT, path,
                 sqlite3_errmsg(q->db));
  r = (rc & 0xff) == SQLITE_NOMEM ? RAFT_ENOMEM : RAFT_ECORRUPT;
fail:
  sqlite3_finalize(s);
  lr_store_state_free(st);
  return r;
}

static int sq_load(struct lr_store *s, struct lr_store_state *st, char *err, size_t errlen) {
  struct sq *q = (struct sq *)s;
  if (q->has_cached) {
    *st = q->cached;
    q->has_cached = false;
    memset(&q->cached, 0, sizeof q->cached);
    return 0;
  }
  return scan(q, st, err, errlen);
}

/* ---- writing ------------------------------------------------------------------------------ */
static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* The log's bounds as a batch sees them: the committed ones at its start,
 * updated by each step of the batch; the store keeps them only on COMMIT. */
struct span {
  raft_index first, last, snap;
};

static int span_read(struct sq *q, struct span *sp) {
  return bounds(q, &sp->first, &sp->last, NULL, &sp->snap);
}

static int write_snapshot(struct sq *q, struct lr_store_batch *b, struct span *sp) {
  const struct raft_snapshot_meta *m = &b->snap;
  sqlite3_stmt *st = q->st[ST_TERM_AT];
  raft_term term_at = 0;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)m->index);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) term_at = (raft_term)sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  raft_index keep =
      lr__store_snap_keep_from(m->index, m->term, term_at, sp->last, q->base.trailing);
  st = q->st[ST_DEL_BELOW];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)keep);
  if ((rc = step_done(st)) != SQLITE_OK) return rc;
  uint8_t *conf = NULL;
  size_t conf_len = 0;
  if (raft_config_encode(&m->config, &conf, &conf_len) != 0) return SQLITE_NOMEM;
  uint32_t crc = lr__store_snap_crc(m->index, m->term, m->config_index, conf, conf_len,
                                    b->snap_data, b->snap_len);
  st = q->st[ST_SNAP];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)m->index);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)m->term);
  sqlite3_bind_blob(st, 3, conf_len ? conf : EMPTY, (int)conf_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)m->config_index);
  sqlite3_bind_blob64(st, 5, b->snap_len ? b->snap_data : EMPTY, b->snap_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, crc);
  rc = step_done(st);
  sqlite3_clear_bindings(st);
  raft_free(conf);
  /* Rare and large: read the new bounds back rather than derive them. */
  return rc != SQLITE_OK ? rc : span_read(q, sp);
}

static int write_entries(struct sq *q, struct lr_store_batch *b, struct span *sp) {
  raft_index from = b->entries[0].index;
  if (from <= sp->snap || from > (sp->last > sp->snap ? sp->last : sp->snap) + 1) {
    lr__store_errf(b->err, sizeof b->err,
                   "%s: entries from %llu do not follow the log (last %llu, snapshot %llu)",
                   q->base.path, (unsigned long long)from, (unsigned long long)sp->last,
                   (unsigned long long)sp->snap);
    return -1;
  }
  sqlite3_stmt *st;
  int rc = SQLITE_OK;
  if (sp->last >= from) { /* a follower overwriting a conflicting suffix */
    st = q->st[ST_DEL_FROM];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
    if ((rc = step_done(st)) != SQLITE_OK) return rc;
  }
  st = q->st[ST_INSERT];
  for (uint32_t i = 0; i < b->n_entries; i++) {
    const struct raft_entry *e = &b->entries[i];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)e->index);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)e->term);
    sqlite3_bind_int(st, 3, e->type);
    sqlite3_bind_blob(st, 4, e->len ? e->data : EMPTY, (int)e->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, lr__store_entry_crc(e->index, e->term, e->type, e->data, e->len));
    if ((rc = step_done(st)) != SQLITE_OK) break;
  }
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_OK) {
    /* What is left is [first, from) plus the new entries; an insert that
     * disagreed with these bounds would have failed on the primary key. */
    if (sp->first == 0 || sp->first > from) sp->first = from;
    sp->last = b->entries[b->n_entries - 1].index;
  }
  return rc;
}

static int write_compact(struct sq *q, raft_index index, struct span *sp) {
  if (index > sp->snap) index = sp->snap; /* never delete what no snapshot covers */
  sqlite3_stmt *st = q->st[ST_DEL_BELOW];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)index + 1);
  int rc = step_done(st);
  return rc != SQLITE_OK ? rc : span_read(q, sp);
}

/* SQLite calls this after every commit with the number of frames in the WAL
 * (it also keeps wal_autocheckpoint from running a checkpoint inside
 * COMMIT: one hook per connection). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
  (void)db, (void)name;
  ((struct sq *)arg)->wal_frames = frames;
  return SQLITE_OK;
}

/* A PASSIVE checkpoint copies the WAL's pages into the database and fsyncs
 * both; with the only connection (exclusive locking) nothing can hold it
 * back, so it completes and the next commit starts the WAL over from its
 * first frame. Never TRUNCATE: the WAL file keeps its blocks for reuse. */
static int checkpoint(struct sq *q) {
  int log = 0, done = 0;
  int rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  q->checkpoint_due = false;
  q->since_checkpoint = 0;
  if (rc != SQLITE_OK)
    return map_rc(rc); /* the WAL only stays longer; due again after more batches */
  q->wal_frames = log - done;
  q->checkpoints++;
  return 0;
}

static int sq_write(struct lr_store *s, struct lr_store_batch *b) {
  struct sq *q = (struct sq *)s;
  if (q->checkpoint_due) checkpoint(q); /* the host did not find an idle moment for it */
  struct span sp = {q->first, q->last, q->snap_index};
  bool hard = b->has_hard && (b->term != q->hs_term || b->vote != q->hs_vote);
  const char *what = "beginning a transaction";
  int rc = step_done(q->st[ST_BEGIN]);
  if (rc != SQLITE_OK) goto fail;
  if (hard) {
    what = "writing term and vote";
    sqlite3_stmt *st = q->st[ST_HARD];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)b->term);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)b->vote);
    if ((rc = step_done(st)) != SQLITE_OK) goto fail;
  }
  if (b->has_snap) {
    what = "writing the snapshot";
    if ((rc = write_snapshot(q, b, &sp)) != SQLITE_OK) goto fail;
  }
  if (b->n_entries > 0) {
    what = "writing entries";
    if ((rc = write_entries(q, b, &sp)) != SQLITE_OK) goto fail;
  }
  if (b->compact > 0) {
    what = "compacting the log";
    if ((rc = write_compact(q, b->compact, &sp)) != SQLITE_OK) goto fail;
  }
  int inj = lr__store_fail_hook(s);
  if (inj != 0) {
    step_done(q->st[ST_ROLLBACK]);
    lr__store_errf(b->err, sizeof b->err, "%s: injected write failure: %s", s->path,
                   raft_strerror(inj));
    return inj;
  }
  what = "committing";
  if ((rc = step_done(q->st[ST_COMMIT])) != SQLITE_OK) goto fail;
  q->first = sp.first;
  q->last = sp.last;
  q->snap_index = sp.snap;
  if (hard) {
    q->hs_term = b->term;
    q->hs_vote = b->vote;
  }
  if (++q->since_checkpoint >= q->checkpoint_every || q->wal_frames >= LR_STORE_WAL_PAGES_MAX ||
      b->compact > 0 || b->has_snap)
    q->checkpoint_due = true;
  return 0;
fail:;
  int r;
  if (rc == -1) {
    r = RAFT_EINVAL; /* message already in b->err */
  } else {
    r = map_rc(rc);
    lr__store_errf(b->err, sizeof b->err, "%s: %s%s (%s) %s: %s", s->path,
                   r == RAFT_EFULL ? "" : "write failed: ", raft_strerror(r), sqlite3_errstr(rc),
                   what, sqlite3_errmsg(q->db));
  }
  if (!sqlite3_get_autocommit(q->db)) step_done(q->st[ST_ROLLBACK]);
  return r;
}

/* ---- open / close ------------------------------------------------------------------------- */
static void sq_stats(struct lr_store *s, struct lr_store_stats *out) {
  struct sq *q = (struct sq *)s;
  out->first_index = q->first;
  out->last_index = q->last;
  out->snapshot_index = q->snap_index;
  struct stat sb;
  char wal[sizeof s->path + 8];
  snprintf(wal, sizeof wal, "%s-wal", s->path);
  if (stat(s->path, &sb) == 0) out->file_bytes += (uint64_t)sb.st_size;
  if (stat(wal, &sb) == 0) {
    out->file_bytes += (uint64_t)sb.st_size;
    out->wal_bytes = (uint64_t)sb.st_size;
  }
  out->wal_frames = q->wal_frames > 0 ? (uint64_t)q->wal_frames : 0;
  out->checkpoints = q->checkpoints;
}

static void sq_close(struct lr_store *s) {
  struct sq *q = (struct sq *)s;
  for (int i = 0; i < ST_N; i++)
    sqlite3_finalize(q->st[i]);
  if (q->db != NULL) sqlite3_close_v2(q->db);
  if (q->has_cached) lr_store_state_free(&q->cached);
  raft_free(q);
}

static const struct lr__store_ops SQ_OPS = {sq_load, sq_write, sq_stats, sq_close};

int lr__store_sqlite_idle(struct lr_store *s) {
  struct sq *q = (struct sq *)s;
  return s->ops == &SQ_OPS && q->checkpoint_due ? checkpoint(q) : 0;
}

bool lr__store_sqlite_idle_due(const struct lr_store *s) {
  return s->ops == &SQ_OPS && ((const struct sq *)s)->checkpoint_due;
}

static int create_schema(struct sq *q, char *err, size_t errlen) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO meta VALUES (1, %d, %lld, %lld, 0, 0); PRAGMA application_id = %d;"
           " PRAGMA user_version = %d;",
           LR_STORE_FORMAT, (long long)q->base.cluster_id, (long long)q->base.node_id, APP_ID,
           LR_STORE_FORMAT);
  char *msg = NULL;
  int rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
  if (rc == SQLITE_OK) rc = sqlite3_exec(q->db, SCHEMA, NULL, NULL, &msg);
  if (rc == SQLITE_OK) rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
  if (rc == SQLITE_OK) rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    lr__store_errf(err, errlen, "%s: cannot create the database: %s", q->base.path,
                   msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    if (!sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return map_rc(rc);
  }
  return 0;
}

/* Says why a data folder cannot be used, before SQLite gets a chance to
 * call it something else: a read-only folder used to be reported as "not a
 * luaraft database", which invites deleting it. 0 when nothing is wrong. */
static int open_problem(const char *dir, const char *path, char *err, size_t errlen) {
  struct statvfs vfs;
  bool exists = access(path, F_OK) == 0;
  if (access(dir, W_OK | X_OK) != 0) {
    int e = errno;
    lr__store_errf(err, errlen,
                   "cannot write in the data directory %s (%s): luaraft creates raft.db-wal and "
                   "raft.db-shm next to raft.db; %s: fix the folder's owner or permissions, or "
                   "mount it read-write",
                   dir, strerror(e), exists ? "raft.db is intact" : "nothing was written");
    return RAFT_EOPEN;
  }
  if (exists && access(path, R_OK | W_OK) != 0) {
    int e = errno;
    lr__store_errf(err, errlen,
                   "cannot open %s for reading and writing (%s): fix its owner or permissions "
                   "(the file is intact)",
                   path, strerror(e));
    return RAFT_EOPEN;
  }
  if (statvfs(dir, &vfs) == 0 && vfs.f_bavail == 0) {
    lr__store_errf(err, errlen,
                   "the disk holding %s is full (no free blocks): free some space and start "
                   "again%s",
                   dir, exists ? " (raft.db is intact)" : "");
    return RAFT_EFULL;
  }
  return 0;
}

/* A failure while opening that is not about the file's contents. */
static bool not_contents(int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
  case SQLITE_FORMAT:
  case SQLITE_ERROR:
    return false;
  default:
    return true;
  }
}

/* Format, identity: is this our database? */
static int check_identity(struct sq *q, char *err, size_t errlen) {
  const char *path = q->base.path;
  int64_t app = 0, ver = 0, tables = 0, node = 0, cluster = 0, fmt = 0;
  int rc = query_int(q->db, "PRAGMA application_id", &app);
  if (rc == SQLITE_OK) rc = query_int(q->db, "PRAGMA user_version", &ver);
  if (rc == SQLITE_OK) rc = query_int(q->db, "SELECT count(*) FROM sqlite_master", &tables);
  if (rc != SQLITE_OK) {
    if (not_contents(rc)) {
      lr__store_errf(err, errlen, "cannot read %s: %s", path, sqlite3_errstr(rc));
      return (rc & 0xff) == SQLITE_FULL ? RAFT_EFULL : RAFT_EOPEN;
    }
    lr__store_errf(err, errlen, "%s is not a luaraft database (%s)", path, sqlite3_errstr(rc));
    return RAFT_EFORMAT;
  }
  if (app == 0 && ver == 0 && tables == 0) return create_schema(q, err, errlen);
  if (app != APP_ID) {
    lr__store_errf(err, errlen, "%s is not a luaraft database (application_id %lld)", path,
                   (long long)app);
    return RAFT_EFORMAT;
  }
  if (ver != LR_STORE_FORMAT) {
    lr__store_errf(err, errlen, "%s has format version %lld; this luaraft reads version %d", path,
                   (long long)ver, LR_STORE_FORMAT);
    return RAFT_EFORMAT;
  }
  sqlite3_stmt *s;
  rc = sqlite3_prepare_v2(q->db, "SELECT format, cluster_id, node_id FROM meta WHERE id = 1", -1,
                          &s, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    fmt = sqlite3_column_int64(s, 0);
    cluster = sqlite3_column_int64(s, 1);
    node = sqlite3_column_int64(s, 2);
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW || fmt != LR_STORE_FORMAT) {
    lr__store_errf(err, errlen, "%s: the metadata row is missing or wrong: " CORRUPT_HINT, path);
    return RAFT_ECORRUPT;
  }
  if ((raft_id)node != q->base.node_id) {
    lr__store_errf(err, errlen, "%s belongs to node %llu, not node %llu", path,
                   (unsigned long long)node, (unsigned long long)q->base.node_id);
    return RAFT_EFOREIGN;
  }
  /* 0 on either side: not known yet (a node that joins learns it) */
  if (cluster != 0 && q->base.cluster_id != 0 && (uint64_t)cluster != q->base.cluster_id) {
    lr__store_errf(err, errlen, "%s belongs to cluster %016llx, not cluster %016llx", path,
                   (unsigned long long)cluster, (unsigned long long)q->base.cluster_id);
    return RAFT_EFOREIGN;
  }
  if (cluster != 0) q->base.cluster_id = (uint64_t)cluster;
  return 0;
}

static int configure(struct sq *q, char *err, size_t errlen) {
  /* journal_size_limit: what a reset WAL is trimmed to. 8 MiB holds more
   * than the LR_STORE_WAL_PAGES_MAX frames (of 4 KiB + 24 bytes) a WAL
   * reaches between checkpoints plus an ordinary batch, so only an outsized
   * batch (a large snapshot) is ever trimmed and the steady-state WAL keeps
   * its blocks. wal_autocheckpoint = 0: no checkpoint inside COMMIT (the
   * wal hook installed below replaces it anyway). */
  static const char *const pragmas[] = {
      "PRAGMA locking_mode = EXCLUSIVE", "PRAGMA journal_mode = WAL",
      "PRAGMA synchronous = FULL",       "PRAGMA journal_size_limit = 8388608",
      "PRAGMA wal_autocheckpoint = 0",   "PRAGMA foreign_keys = OFF"};
  for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
    char *msg = NULL;
    int rc = sqlite3_exec(q->db, pragmas[i], NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
      int busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
      bool io = !busy && not_contents(rc);
      if (busy)
        lr__store_errf(err, errlen, "%s is in use by another process", q->base.path);
      else if (io)
        lr__store_errf(err, errlen, "cannot use %s: %s (%s)", q->base.path,
                       msg ? msg : sqlite3_errstr(rc), sqlite3_errstr(rc));
      else
        lr__store_errf(err, errlen, "%s is not a luaraft database (%s)", q->base.path,
                       msg ? msg : sqlite3_errstr(rc));
      sqlite3_free(msg);
      return busy || io ? ((rc & 0xff) == SQLITE_FULL ? RAFT_EFULL : RAFT_EOPEN) : RAFT_EFORMAT;
    }
  }
  int64_t dummy;
  /* Take the exclusive lock now, so a second process fails at open. */
  int rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE; COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    if (!sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    lr__store_errf(err, errlen, "%s is in use by another process (%s)", q->base.path,
                   sqlite3_errstr(rc));
    return RAFT_EOPEN;
  }
  (void)dummy;
  sqlite3_wal_hook(q->db, wal_hook, q);
  return 0;
}

int lr__store_sqlite_open(const struct lr_store_options *o, struct lr_store **out, char *err,
                          size_t errlen) {
  struct sq *q = raft_malloc(sizeof *q);
  if (q == NULL) return RAFT_ENOMEM;
  memset(q, 0, sizeof *q);
  lr__store_base_init(&q->base, &SQ_OPS, o);
  q->checkpoint_every = o->checkpoint_every ? o->checkpoint_every : LR_STORE_CHECKPOINT_DEFAULT;
  int r;
  if (snprintf(q->base.path, sizeof q->base.path, "%s/raft.db", o->dir) >=
      (int)sizeof q->base.path) {
    lr__store_errf(err, errlen, "storage: data directory path too long");
    r = RAFT_EINVAL;
    goto fail;
  }
  if (mkdirs(o->dir) != 0) {
    lr__store_errf(err, errlen, "cannot create data directory %s: %s", o->dir, strerror(errno));
    r = RAFT_EOPEN;
    goto fail;
  }
  if ((r = open_problem(o->dir, q->base.path, err, errlen)) != 0) goto fail;
  int rc =
      sqlite3_open_v2(q->base.path, &q->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK) {
    lr__store_errf(err, errlen, "cannot open %s: %s", q->base.path,
                   q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    r = RAFT_EOPEN;
    goto fail;
  }
  sqlite3_extended_result_codes(q->db, 1);
  if ((r = configure(q, err, errlen)) != 0 || (r = check_identity(q, err, errlen)) != 0) goto fail;
  for (int i = 0; i < ST_N; i++) {
    rc = sqlite3_prepare_v3(q->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL);
    if (rc != SQLITE_OK) {
      lr__store_errf(err, errlen, "%s: unexpected schema (%s): " CORRUPT_HINT, q->base.path,
                     sqlite3_errmsg(q->db));
      r = RAFT_ECORRUPT;
      goto fail;
    }
  }
  if ((r = scan(q, &q->cached, err, errlen)) != 0) goto fail;
  q->has_cached = true;
  q->hs_term = q->cached.term;
  q->hs_vote = q->cached.vote;
  raft_index snap;
  if (bounds(q, &q->first, &q->last, NULL, &snap) == SQLITE_OK) q->snap_index = snap;
  *out = &q->base;
  return 0;
fail:
  sq_close(&q->base);
  return r;
}

int lr__store_sqlite_set_cluster(struct lr_store *s, uint64_t id, char *err, size_t errlen) {
  char sql[96];
  snprintf(sql, sizeof sql, "UPDATE meta SET cluster_id = %lld WHERE id = 1", (long long)id);
  return lr_store_sqlite_exec(s, sql, err, errlen);
}

int lr_store_sqlite_exec(struct lr_store *s, const char *sql, char *err, size_t errlen) {
  if (s->ops != &SQ_OPS) {
    lr__store_errf(err, errlen, "not an sqlite store");
    return RAFT_EINVAL;
  }
  char *msg = NULL;
  int rc = sqlite3_exec(((struct sq *)s)->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    lr__store_errf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return map_rc(rc);
  }
  return 0;
}
