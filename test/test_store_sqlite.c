/* The SQLite store: the shared cases, plus what only a disk has: crash
 * safety (also across WAL checkpoints), corruption and foreign-database
 * refusal, a full disk, a bounded file under endless writes, a WAL that is
 * reused rather than regrown, checkpoints off the commit path, and writes run
 * on libuv's thread pool. */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "lib/store_util.h"

#define KIND ((void *)(intptr_t)LR_STORE_SQLITE)
#define CASE(f) cmocka_unit_test_prestate(f, KIND)

static int open_err(const char *dir, raft_id id, uint64_t cluster, char *err, size_t n) {
  struct lr_store_options o = {
      .kind = LR_STORE_SQLITE, .dir = dir, .node_id = id, .cluster_id = cluster};
  struct lr_store *s = NULL;
  int rv = lr_store_open(&o, &s, err, n);
  if (rv == 0)
    lr_store_close(s);
  else
    assert_null(s);
  return rv;
}

static void raw_exec(const char *dir, const char *sql) {
  char path[512];
  snprintf(path, sizeof path, "%s/raft.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("raw sql: %s", msg);
  sqlite3_close(db);
}

/* A database is refused when it belongs to another node or cluster. */
static void test_sqlite_refuses_foreign_database(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 2, 7);
  assert_int_equal(store_append(s, 1, 2, 1, 3, 1, 4), 0);
  lr_store_close(s);
  char err[512], want[600];
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_EFOREIGN);
  snprintf(want, sizeof want, "%s/raft.db belongs to node 2, not node 1", dir);
  assert_string_equal(err, want);
  assert_int_equal(open_err(dir, 2, 8, err, sizeof err), RAFT_EFOREIGN);
  assert_non_null(strstr(err, "belongs to cluster 0000000000000007, not cluster 0000000000000008"));
  assert_int_equal(open_err(dir, 2, 7, err, sizeof err), 0);
  store_rmdir(dir);
}

/* A flipped byte in an entry's data is found at open, with the entry named. */
static void test_sqlite_detects_corrupted_entry(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  assert_int_equal(store_append(s, 1, 1, 1, 20, 1, 50), 0);
  lr_store_close(s);
  raw_exec(dir, "UPDATE entries SET data = "
                "substr(data, 1, 9) || x'ff' || substr(data, 11) WHERE idx = 17");
  char err[512];
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_ECORRUPT);
  assert_non_null(strstr(err, "entry 17 checksum mismatch: the database is corrupted; "
                              "restore it from a replica"));
  store_rmdir(dir);
}

/* A corrupted snapshot, a hole in the log and a missing metadata row are
 * refused too. */
static void test_sqlite_detects_other_corruption(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  assert_int_equal(store_append(s, 1, 1, 1, 20, 1, 5), 0);
  assert_int_equal(store_snapshot(s, 10, 1, 300), 0);
  lr_store_close(s);
  char err[512];
  raw_exec(dir, "UPDATE snapshot SET data = x'00' || substr(data, 2)");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_ECORRUPT);
  assert_non_null(strstr(err, "snapshot 10 checksum mismatch"));
  store_rmdir(dir);

  dir = store_tmpdir();
  s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  assert_int_equal(store_append(s, 1, 1, 1, 20, 1, 5), 0);
  lr_store_close(s);
  raw_exec(dir, "DELETE FROM entries WHERE idx = 12");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_ECORRUPT);
  assert_non_null(strstr(err, "entries 12 to 12 are missing"));
  raw_exec(dir, "DELETE FROM entries WHERE idx < 12");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_ECORRUPT);
  assert_non_null(strstr(err, "the log starts at entry 13"));
  raw_exec(dir, "DELETE FROM meta");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_ECORRUPT);
  store_rmdir(dir);
}

/* A file that is not a luaraft database (or not SQLite at all) is refused. */
static void test_sqlite_refuses_other_files(void **state) {
  char *dir = store_tmpdir();
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/raft.db", dir);
  FILE *fp = fopen(path, "w");
  for (int i = 0; i < 200; i++)
    fputs("this is not a database at all ", fp);
  fclose(fp);
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_EFORMAT);
  assert_non_null(strstr(err, "is not a luaraft database"));
  remove(path);
  raw_exec(dir, "CREATE TABLE t(x)");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_EFORMAT);
  remove(path);
  raw_exec(dir, "PRAGMA application_id = 1280460372; PRAGMA user_version = 9; CREATE TABLE t(x)");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_EFORMAT);
  assert_non_null(strstr(err, "has format version 9; this luaraft reads version 1"));
  store_rmdir(dir);
}

/* Two stores (or processes) cannot use one data dir at once. */
static void test_sqlite_refuses_second_opener(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  char err[512];
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), RAFT_EOPEN);
  assert_non_null(strstr(err, "in use by another process"));
  lr_store_close(s);
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), 0);
  store_rmdir(dir);
}

/* A process killed (SIGKILL) in the middle of a stream of writes loses
 * nothing it was told is durable. */
static void crash_run(int kill_it, uint32_t checkpoint_every) {
  char *dir = store_tmpdir();
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    struct lr_store_options o = {.kind = LR_STORE_SQLITE,
                                 .dir = dir,
                                 .node_id = 1,
                                 .cluster_id = 7,
                                 .checkpoint_every = checkpoint_every};
    struct lr_store *s;
    char err[256];
    if (lr_store_open(&o, &s, err, sizeof err) != 0) _exit(3);
    for (raft_index i = 1;; i++) {
      if (store_append(s, i, 1, i, 1, i, 200) != 0) _exit(4);
      uint64_t v = i;
      if (write(fds[1], &v, sizeof v) != sizeof v) _exit(5);
      /* Half the due checkpoints run idle, half before the next batch. */
      if (i % 2 == 0 && lr_store_idle(s) != 0) _exit(6);
      if (!kill_it && i == 300) _exit(0); /* no close, no checkpoint */
    }
  }
  close(fds[1]);
  uint64_t acked = 0, v;
  while (read(fds[0], &v, sizeof v) == sizeof v) {
    acked = v;
    if (kill_it && acked == 200) kill(pid, SIGKILL);
  }
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  if (kill_it)
    assert_true(WIFSIGNALED(status));
  else
    assert_int_equal(WEXITSTATUS(status), 0);
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  struct lr_store_state st;
  char err[256];
  assert_int_equal(lr_store_load(s, &st, err, sizeof err), 0);
  assert_true(st.n_entries >= acked);
  assert_true(st.term >= acked);
  for (uint32_t i = 0; i < st.n_entries; i++)
    store_entry_check(&st.entries[i], i + 1, i + 1, 200);
  lr_store_state_free(&st);
  lr_store_close(s);
  store_rmdir(dir);
}

static void test_sqlite_survives_sigkill_mid_stream(void **state) {
  crash_run(1, 0);
}

static void test_sqlite_survives_exit_without_close(void **state) {
  crash_run(0, 0);
}

/* The same with a checkpoint due every 7 batches, so the kill lands among
 * checkpoints and WAL restarts. */
static void test_sqlite_survives_sigkill_across_checkpoints(void **state) {
  crash_run(1, 7);
  crash_run(0, 7);
}

/* A full disk (simulated with max_page_count) fails the batch with
 * RAFT_EFULL, rolls it back, and writes work again when space returns;
 * everything acknowledged survives a reopen. */
static void test_sqlite_full_disk_fails_batch_cleanly(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  char err[256];
  assert_int_equal(store_append(s, 1, 1, 1, 10, 1, 1000), 0);
  assert_int_equal(lr_store_sqlite_exec(s, "PRAGMA max_page_count = 40", err, sizeof err), 0);
  raft_index next = 11;
  int rv = 0;
  for (int i = 0; i < 100 && rv == 0; i++) {
    rv = store_append(s, 0, 0, next, 4, 1, 3000);
    if (rv == 0) next += 4;
  }
  assert_int_equal(rv, RAFT_EFULL);
  /* The failed batch's message says what happened. */
  struct lr_store_batch *b;
  assert_int_equal(lr_store_batch_new(&b), 0);
  struct raft_entry e[4];
  store_entries_make(e, next, 4, 1, 3000);
  assert_int_equal(lr_store_batch_entries(b, e, 4), 0);
  store_entries_free(e, 4);
  lr_store_batch_hard_state(b, 99, 99);
  assert_int_equal(lr_store_batch_write(s, b), RAFT_EFULL);
  const char *msg;
  lr_store_batch_result(b, &msg, NULL, NULL);
  assert_non_null(strstr(msg, "disk full"));
  /* Space returns: the same batch now goes through. */
  assert_int_equal(lr_store_sqlite_exec(s, "PRAGMA max_page_count = 1000000", err, sizeof err), 0);
  assert_int_equal(lr_store_batch_write(s, b), 0);
  lr_store_batch_free(b);
  next += 4;
  assert_int_equal(store_append(s, 0, 0, next, 1, 1, 3000), 0);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  struct lr_store_state st;
  assert_int_equal(lr_store_load(s, &st, err, sizeof err), 0);
  assert_int_equal(st.term, 99);
  assert_int_equal(st.n_entries, next);
  for (uint32_t i = 10; i < st.n_entries; i++)
    store_entry_check(&st.entries[i], i + 1, 1, 3000);
  lr_store_state_free(&st);
  lr_store_close(s);
  store_rmdir(dir);
}

/* Under endless writes with periodic snapshots the database and its WAL stay
 * bounded. */
static void test_sqlite_file_bounded_under_endless_writes(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  uint64_t max_early = 0, max_late = 0;
  const raft_index total = 40000;
  for (raft_index i = 1; i <= total; i += 20) {
    assert_int_equal(store_append(s, 1, 1, i, 20, 1, 512), 0);
    if ((i + 19) % 2000 == 0) assert_int_equal(store_snapshot(s, i + 19, 1, 20000), 0);
    struct lr_store_stats ss;
    lr_store_stats(s, &ss);
    if (i > 10000 && i <= 20000 && ss.file_bytes > max_early) max_early = ss.file_bytes;
    if (i > 30000 && ss.file_bytes > max_late) max_late = ss.file_bytes;
  }
  /* At most 2000 + 100 entries of 512 bytes are live (~1.1 MB); the WAL
   * adds up to wal_autocheckpoint pages between truncations. */
  print_message("file bytes (db + wal): max %llu in 10k..20k, max %llu in 30k..40k\n",
                (unsigned long long)max_early, (unsigned long long)max_late);
  assert_true(max_late < 6 * 1024 * 1024);
  assert_true(max_late <= max_early + max_early / 4);
  lr_store_close(s);
  store_rmdir(dir);
}

static struct lr_store *open_every(const char *dir, uint32_t checkpoint_every) {
  struct lr_store_options o = {.kind = LR_STORE_SQLITE,
                               .dir = dir,
                               .node_id = 1,
                               .cluster_id = 7,
                               .checkpoint_every = checkpoint_every};
  struct lr_store *s;
  char err[256] = "";
  if (lr_store_open(&o, &s, err, sizeof err) != 0) fail_msg("lr_store_open: %s", err);
  return s;
}

static void load_ok(struct lr_store *s, struct lr_store_state *st) {
  char err[256] = "";
  if (lr_store_load(s, st, err, sizeof err) != 0) fail_msg("lr_store_load: %s", err);
}

/* 10,000 one-entry batches (what a leader writes at 1 client): the WAL is
 * checkpointed and then rewritten from its start, so after the first
 * checkpoint its file never shrinks (no TRUNCATE: a commit overwrites blocks
 * the file has instead of appending) and never outgrows one cycle of
 * LR_STORE_WAL_PAGES_MAX frames; everything reads back after a reopen. The
 * WAL's fsync is switched off here only to keep the test quick: when and how
 * SQLite reuses the WAL does not depend on it. */
static void test_sqlite_wal_reused_not_regrown(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  char err[256];
  assert_int_equal(lr_store_sqlite_exec(s, "PRAGMA synchronous = OFF", err, sizeof err), 0);
  const raft_index total = 10000;
  uint64_t wal_max = 0, frames_max = 0, prev = 0, shrinks = 0, idle_runs = 0, due = 0;
  for (raft_index i = 1; i <= total; i++) {
    assert_int_equal(store_append(s, i == 1 ? 1 : 0, 1, i, 1, 1, 150), 0);
    /* Every other due checkpoint is left to the next batch. */
    if (lr_store_idle_due(s) && due++ % 2 == 0) {
      assert_int_equal(lr_store_idle(s), 0);
      assert_false(lr_store_idle_due(s));
      idle_runs++;
    }
    struct lr_store_stats ss;
    lr_store_stats(s, &ss);
    if (ss.checkpoints > 0 && ss.wal_bytes < prev) shrinks++;
    prev = ss.wal_bytes;
    if (ss.wal_bytes > wal_max) wal_max = ss.wal_bytes;
    if (ss.wal_frames > frames_max) frames_max = ss.wal_frames;
  }
  struct lr_store_stats ss;
  lr_store_stats(s, &ss);
  print_message("WAL: max %llu bytes, %llu frames; %llu checkpoints (%llu idle)\n",
                (unsigned long long)wal_max, (unsigned long long)frames_max,
                (unsigned long long)ss.checkpoints, (unsigned long long)idle_runs);
  assert_int_equal(shrinks, 0);
  assert_true(ss.checkpoints >= 8); /* ~1 frame per batch, 1024 frames a cycle */
  assert_true(idle_runs > 0 && idle_runs < ss.checkpoints);
  assert_true(frames_max <= LR_STORE_WAL_PAGES_MAX + 4);
  assert_true(wal_max <= (LR_STORE_WAL_PAGES_MAX + 4) * (4096 + 24) + 32);
  assert_int_equal(ss.first_index, 1);
  assert_int_equal(ss.last_index, total);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  struct lr_store_state st;
  load_ok(s, &st);
  assert_int_equal(st.n_entries, total);
  for (uint32_t i = 0; i < st.n_entries; i++)
    store_entry_check(&st.entries[i], i + 1, 1, 150);
  lr_store_state_free(&st);
  lr_store_close(s);
  store_rmdir(dir);
}

/* A checkpoint becomes due after checkpoint_every batches (or after a
 * snapshot) and never runs inside the batch that made it due: lr_store_idle()
 * runs it, or else the next batch does before its own transaction. Data stays
 * readable after a reopen. */
static void test_sqlite_checkpoint_due_then_idle(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = open_every(dir, 10);
  struct lr_store_stats ss;
  for (raft_index i = 1; i <= 9; i++)
    assert_int_equal(store_append(s, 1, 1, i, 1, 1, 150), 0);
  assert_false(lr_store_idle_due(s));
  assert_int_equal(lr_store_idle(s), 0); /* nothing due: nothing done */
  lr_store_stats(s, &ss);
  assert_int_equal(ss.checkpoints, 0);
  assert_int_equal(store_append(s, 1, 1, 10, 1, 1, 150), 0);
  assert_true(lr_store_idle_due(s));
  lr_store_stats(s, &ss);
  assert_int_equal(ss.checkpoints, 0); /* not inside the batch */
  assert_true(ss.wal_frames >= 10);
  assert_int_equal(lr_store_idle(s), 0);
  assert_false(lr_store_idle_due(s));
  lr_store_stats(s, &ss);
  assert_int_equal(ss.checkpoints, 1);
  assert_int_equal(ss.wal_frames, 0); /* all of it is in the database now */
  /* Not called when idle: the next batch runs it first. */
  for (raft_index i = 11; i <= 20; i++)
    assert_int_equal(store_append(s, 1, 1, i, 1, 1, 150), 0);
  assert_true(lr_store_idle_due(s));
  assert_int_equal(store_append(s, 1, 1, 21, 1, 1, 150), 0);
  lr_store_stats(s, &ss);
  assert_int_equal(ss.checkpoints, 2);
  assert_false(lr_store_idle_due(s));
  assert_true(ss.wal_frames >= 1 && ss.wal_frames <= 3); /* the WAL started over */
  /* A snapshot makes one due at once. */
  assert_int_equal(store_snapshot(s, 15, 1, 5000), 0);
  assert_true(lr_store_idle_due(s));
  assert_int_equal(lr_store_idle(s), 0);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  struct lr_store_state st;
  load_ok(s, &st);
  assert_true(st.has_snapshot);
  assert_int_equal(st.snapshot.meta.index, 15);
  assert_int_equal(st.last_index, 21);
  assert_int_equal(st.n_entries, 6);
  for (uint32_t i = 0; i < st.n_entries; i++)
    store_entry_check(&st.entries[i], 16 + i, 1, 150);
  lr_store_state_free(&st);
  lr_store_close(s);
  /* A memory store has nothing to do. */
  struct lr_store *m = store_open(LR_STORE_MEMORY, NULL, 1, 7);
  assert_int_equal(store_append(m, 1, 1, 1, 1, 1, 150), 0);
  assert_false(lr_store_idle_due(m));
  assert_int_equal(lr_store_idle(m), 0);
  lr_store_close(m);
  store_rmdir(dir);
}

/* Term and vote are rewritten only when they change, and "what is on disk"
 * is what was committed: after a failed batch the same hard state is written
 * again, and a reopened store compares against what it read. */
static void test_sqlite_hard_state_written_when_changed(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  struct lr_store_state st;
  assert_int_equal(store_append(s, 5, 2, 1, 1, 5, 10), 0);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  assert_int_equal(store_append(s, 5, 2, 2, 1, 5, 10), 0); /* unchanged */
  assert_int_equal(store_append(s, 5, 3, 3, 1, 5, 10), 0); /* new vote, same term */
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  load_ok(s, &st);
  assert_int_equal(st.term, 5);
  assert_int_equal(st.vote, 3);
  assert_int_equal(st.n_entries, 3);
  lr_store_state_free(&st);
  /* A batch that fails leaves the old hard state on disk, and the same one
   * written next is not mistaken for unchanged. */
  lr_store_fail_next(s, 1, RAFT_ESTORAGE);
  assert_int_equal(store_append(s, 6, 1, 4, 1, 6, 10), RAFT_ESTORAGE);
  assert_int_equal(store_append(s, 6, 1, 4, 1, 6, 10), 0);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  load_ok(s, &st);
  assert_int_equal(st.term, 6);
  assert_int_equal(st.vote, 1);
  lr_store_state_free(&st);
  assert_int_equal(store_append(s, 7, 0, 5, 1, 7, 10), 0);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  load_ok(s, &st);
  assert_int_equal(st.term, 7);
  assert_int_equal(st.vote, 0);
  assert_int_equal(st.n_entries, 5);
  store_entry_check(&st.entries[3], 4, 6, 10);
  lr_store_state_free(&st);
  lr_store_close(s);
  store_rmdir(dir);
}

/* The log's bounds, kept in memory between batches, always match what a
 * reopen reads from the database: after appends, a failed batch, a
 * follower's truncation, a snapshot and a compaction; and a batch that would
 * leave a gap is still refused. */
static void expect_bounds(struct lr_store **s, const char *dir, raft_index first, raft_index last,
                          raft_index snap) {
  for (int pass = 0; pass < 2; pass++) {
    struct lr_store_stats ss;
    lr_store_stats(*s, &ss);
    assert_int_equal(ss.first_index, first);
    assert_int_equal(ss.last_index, last);
    assert_int_equal(ss.snapshot_index, snap);
    if (pass == 0) *s = store_reopen(*s, LR_STORE_SQLITE, dir);
  }
}

static void test_sqlite_bounds_follow_every_batch(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  char err[256];
  assert_int_equal(store_append(s, 1, 1, 1, 10, 1, 8), 0);
  expect_bounds(&s, dir, 1, 10, 0);
  lr_store_fail_next(s, 1, RAFT_ESTORAGE);
  assert_int_equal(store_append(s, 0, 0, 11, 10, 1, 8), RAFT_ESTORAGE);
  expect_bounds(&s, dir, 1, 10, 0);
  lr_store_fail_next(s, 1, RAFT_ESTORAGE);
  assert_int_equal(store_append(s, 0, 0, 11, 10, 1, 8), RAFT_ESTORAGE);
  assert_int_equal(store_append(s, 0, 0, 21, 1, 1, 8), RAFT_EINVAL); /* gap */
  assert_int_equal(store_append(s, 0, 0, 11, 10, 1, 8), 0);
  assert_int_equal(store_append(s, 2, 0, 15, 2, 2, 8), 0);           /* truncates 15..20 */
  assert_int_equal(store_append(s, 0, 0, 18, 1, 2, 8), RAFT_EINVAL); /* gap */
  expect_bounds(&s, dir, 1, 16, 0);
  assert_int_equal(store_append(s, 0, 0, 17, 4, 2, 8), 0);
  assert_int_equal(store_snapshot(s, 12, 1, 100), 0);
  expect_bounds(&s, dir, 1, 20, 12); /* 100 trailing entries kept */
  assert_int_equal(lr_store_compact(s, 10, err, sizeof err), 0);
  expect_bounds(&s, dir, 11, 20, 12);
  assert_int_equal(store_append(s, 0, 0, 21, 1, 2, 8), 0);
  expect_bounds(&s, dir, 11, 21, 12);
  /* A snapshot the log does not hold discards the log. */
  assert_int_equal(store_snapshot(s, 40, 3, 100), 0);
  expect_bounds(&s, dir, 0, 0, 40);
  assert_int_equal(store_append(s, 0, 0, 40, 1, 3, 8), RAFT_EINVAL);
  assert_int_equal(store_append(s, 0, 0, 41, 2, 3, 8), 0);
  expect_bounds(&s, dir, 41, 42, 40);
  lr_store_close(s);
  store_rmdir(dir);
}

/* Batch writes run on libuv's thread pool, one at a time, in order; the loop
 * thread learns each outcome in the after-callback. */
struct pool {
  struct lr_store *s;
  uv_work_t req;
  struct lr_store_batch *q[8];
  int n, next, done, failed;
  raft_index acked;
};

static void pool_work(uv_work_t *req) {
  struct pool *p = req->data;
  lr_store_batch_write(p->s, p->q[p->next]);
}

static void pool_after(uv_work_t *req, int status) {
  struct pool *p = req->data;
  raft_index li;
  raft_term lt;
  if (lr_store_batch_result(p->q[p->next], NULL, &li, &lt) == 0)
    p->acked = li;
  else
    p->failed++;
  p->done++;
  if (++p->next < p->n)
    assert_int_equal(uv_queue_work(req->loop, &p->req, pool_work, pool_after), 0);
}

static void test_sqlite_writes_on_thread_pool(void **state) {
  char *dir = store_tmpdir();
  struct pool p = {.s = store_open(LR_STORE_SQLITE, dir, 1, 7), .n = 8};
  p.req.data = &p;
  for (int i = 0; i < p.n; i++) {
    struct raft_entry e[10];
    store_entries_make(e, (raft_index)i * 10 + 1, 10, 3, 64);
    assert_int_equal(lr_store_batch_new(&p.q[i]), 0);
    lr_store_batch_hard_state(p.q[i], 3, 1);
    assert_int_equal(lr_store_batch_entries(p.q[i], e, 10), 0);
    store_entries_free(e, 10);
  }
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_queue_work(&loop, &p.req, pool_work, pool_after), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(p.done, 8);
  assert_int_equal(p.failed, 0);
  assert_int_equal(p.acked, 80);
  for (int i = 0; i < p.n; i++)
    lr_store_batch_free(p.q[i]);
  p.s = store_reopen(p.s, LR_STORE_SQLITE, dir);
  struct lr_store_state st;
  char err[256];
  assert_int_equal(lr_store_load(p.s, &st, err, sizeof err), 0);
  assert_int_equal(st.n_entries, 80);
  lr_store_state_free(&st);
  lr_store_close(p.s);
  store_rmdir(dir);
}

/* The store creates missing parent directories and reports its path. */
static void test_sqlite_creates_data_dir(void **state) {
  char *dir = store_tmpdir();
  char sub[512];
  snprintf(sub, sizeof sub, "%s/data/1", dir);
  struct lr_store *s = store_open(LR_STORE_SQLITE, sub, 1, 7);
  char want[600];
  snprintf(want, sizeof want, "%s/raft.db", sub);
  assert_string_equal(lr_store_path(s), want);
  lr_store_close(s);
  store_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(store_case_fresh),
      CASE(store_case_round_trip),
      CASE(store_case_truncate),
      CASE(store_case_prepare_from_update),
      CASE(store_case_snapshot_compacts),
      CASE(store_case_snapshot_divergent),
      CASE(store_case_snapshot_ahead),
      CASE(store_case_gap_refused),
      CASE(store_case_injected_fault),
      CASE(store_case_compact_clamped),
      cmocka_unit_test(test_sqlite_refuses_foreign_database),
      cmocka_unit_test(test_sqlite_detects_corrupted_entry),
      cmocka_unit_test(test_sqlite_detects_other_corruption),
      cmocka_unit_test(test_sqlite_refuses_other_files),
      cmocka_unit_test(test_sqlite_refuses_second_opener),
      cmocka_unit_test(test_sqlite_survives_sigkill_mid_stream),
      cmocka_unit_test(test_sqlite_survives_exit_without_close),
      cmocka_unit_test(test_sqlite_survives_sigkill_across_checkpoints),
      cmocka_unit_test(test_sqlite_full_disk_fails_batch_cleanly),
      cmocka_unit_test(test_sqlite_file_bounded_under_endless_writes),
      cmocka_unit_test(test_sqlite_wal_reused_not_regrown),
      cmocka_unit_test(test_sqlite_checkpoint_due_then_idle),
      cmocka_unit_test(test_sqlite_hard_state_written_when_changed),
      cmocka_unit_test(test_sqlite_bounds_follow_every_batch),
      cmocka_unit_test(test_sqlite_writes_on_thread_pool),
      cmocka_unit_test(test_sqlite_creates_data_dir),
  };
  return cmocka_run_group_tests_name("store_sqlite", tests, NULL, NULL);
}
