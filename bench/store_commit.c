/* Where one commit's time goes at the store level, next to the disk's floor.
 *
 * Four ways of making one small write durable, measured in the same
 * directory, in alternating rounds (so a busy machine slows all of them
 * alike), each printed as p50 / p99 / mean per commit:
 *
 *   floor overwrite  pwrite 4 KiB + fdatasync into a preallocated, already
 *                    synced file (nothing but the data reaches the disk)
 *   floor append     the same, appending to a file that grows (the file size
 *                    changes, so the journal commits too)
 *   sqlite bare      SQLite alone: WAL, synchronous=FULL, exclusive locking,
 *                    one 150-byte row inserted and one row updated per
 *                    transaction, prepared statements
 *   lr_store         lr_store_batch_write() with 1-entry batches of 150-byte
 *                    entries (what a leader writes at 1 client)
 *   lr_store +hard   the same with the (unchanged) term and vote in every batch
 *
 * and, for the SQLite ones, the WAL size at the end (a WAL that is reused
 * stays small; one that is truncated and regrown is appended to).
 *
 * The SQLite ones start from a log of PREFILL entries (default 10,000: what
 * a leader holds between two snapshots at the default snapshot_entries),
 * because a write path whose cost grows with the log shows only then.
 *
 * Usage: store_commit [-d DIR] [-n COMMITS] [-r ROUNDS] [-p PREFILL] [-o ONLY]
 *   DIR: a new directory is made under it (default: the current one; the
 *   disk under test) and removed at the end; COMMITS per variant (default
 *   2000) are split over ROUNDS (default 5); ONLY (overwrite, append,
 *   sqlite, store or store_hard) runs just that one, e.g. under `strace -c`.
 *   scripts/bench store builds and runs it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define ENTRY_BYTES 150
#define BLOCK 4096

enum { V_OVERWRITE, V_APPEND, V_SQLITE, V_STORE, V_STORE_HARD, V_N };
static const char *const KEYS[V_N] = {"overwrite", "append", "sqlite", "store", "store_hard"};
static const char *const NAMES[V_N] = {
    "floor overwrite (4 KiB pwrite+fdatasync)", "floor append (4 KiB pwrite+fdatasync)",
    "sqlite bare (WAL, FULL, 1 insert + 1 update)", "lr_store_batch_write (1 x 150 B entry)",
    "lr_store_batch_write + hard state"};

struct variant {
  double *ms;
  int n;
  /* state kept across rounds */
  int fd;
  off_t off;
  sqlite3 *db;
  sqlite3_stmt *ins, *upd, *begin, *commit;
  struct lr_store *store;
  raft_index next;
  char path[768];
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "store_commit: %s: %s\n", what, why);
  exit(1);
}

static void setup_file(struct variant *v, const char *dir, const char *name, int commits) {
  snprintf(v->path, sizeof v->path, "%s/%s", dir, name);
  v->fd = open(v->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (v->fd < 0) die(v->path, strerror(errno));
  if (commits > 0) {
    /* Preallocate with real zeros (not fallocate, whose unwritten extents
     * would turn the first overwrite of each block into a metadata change). */
    static char zero[1 << 20];
    off_t want = (off_t)commits * BLOCK;
    for (off_t o = 0; o < want; o += (off_t)sizeof zero)
      if (pwrite(v->fd, zero, sizeof zero, o) != (ssize_t)sizeof zero)
        die(v->path, strerror(errno));
    if (fsync(v->fd) != 0) die(v->path, strerror(errno));
  }
}

static void run_file(struct variant *v, int n) {
  static char buf[BLOCK];
  for (int i = 0; i < n; i++) {
    memset(buf, (int)(v->off / BLOCK) & 0xff, sizeof buf);
    double t0 = now_ms();
    if (pwrite(v->fd, buf, BLOCK, v->off) != BLOCK || fdatasync(v->fd) != 0)
      die(v->path, strerror(errno));
    v->ms[v->n++] = now_ms() - t0;
    v->off += BLOCK;
  }
}

static void sql(sqlite3 *db, const char *s) {
  char *msg = NULL;
  if (sqlite3_exec(db, s, NULL, NULL, &msg) != SQLITE_OK) die(s, msg ? msg : "?");
}

static sqlite3_stmt *prep(sqlite3 *db, const char *s) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v3(db, s, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    die(s, sqlite3_errmsg(db));
  return st;
}

static void step(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("step", sqlite3_errstr(rc));
  sqlite3_reset(st);
}

static void setup_sqlite(struct variant *v, const char *dir, int prefill) {
  snprintf(v->path, sizeof v->path, "%s/bare.db", dir);
  if (sqlite3_open(v->path, &v->db) != SQLITE_OK) die(v->path, sqlite3_errmsg(v->db));
  sql(v->db, "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL;"
             " PRAGMA synchronous = FULL;"
             " CREATE TABLE entries(idx INTEGER PRIMARY KEY, term INTEGER, data BLOB);"
             " CREATE TABLE meta(id INTEGER PRIMARY KEY, term INTEGER, vote INTEGER);"
             " INSERT INTO meta VALUES (1, 0, 0)");
  v->ins = prep(v->db, "INSERT INTO entries VALUES (?, 1, ?)");
  v->upd = prep(v->db, "UPDATE meta SET term = ?, vote = 1 WHERE id = 1");
  v->begin = prep(v->db, "BEGIN IMMEDIATE");
  v->commit = prep(v->db, "COMMIT");
  v->next = 1;
  static char data[ENTRY_BYTES];
  sql(v->db, "BEGIN");
  for (; v->next <= (raft_index)prefill; v->next++) {
    sqlite3_bind_int64(v->ins, 1, (sqlite3_int64)v->next);
    sqlite3_bind_blob(v->ins, 2, data, sizeof data, SQLITE_STATIC);
    step(v->ins);
  }
  sql(v->db, "COMMIT; PRAGMA wal_checkpoint(PASSIVE)");
}

static void run_sqlite(struct variant *v, int n) {
  static char data[ENTRY_BYTES];
  for (int i = 0; i < n; i++) {
    memset(data, (int)v->next & 0xff, sizeof data);
    double t0 = now_ms();
    step(v->begin);
    sqlite3_bind_int64(v->ins, 1, (sqlite3_int64)v->next);
    sqlite3_bind_blob(v->ins, 2, data, sizeof data, SQLITE_STATIC);
    step(v->ins);
    sqlite3_bind_int64(v->upd, 1, (sqlite3_int64)v->next);
    step(v->upd);
    step(v->commit);
    v->ms[v->n++] = now_ms() - t0;
    v->next++;
  }
}

static void setup_store(struct variant *v, const char *dir, const char *sub, int prefill) {
  snprintf(v->path, sizeof v->path, "%s/%s", dir, sub);
  struct lr_store_options o = {.kind = LR_STORE_SQLITE, .dir = v->path, .node_id = 1};
  char err[LR_STORE_ERR_MAX];
  if (lr_store_open(&o, &v->store, err, sizeof err) != 0) die(v->path, err);
  struct lr_store_batch *b;
  if (lr_store_batch_new(&b) != 0) die("batch", "out of memory");
  lr_store_batch_hard_state(b, 1, 1);
  struct raft_entry *e = calloc((size_t)prefill + 1, sizeof *e);
  static uint8_t data[ENTRY_BYTES];
  if (e == NULL) die("prefill", "out of memory");
  for (int i = 0; i < prefill; i++)
    e[i] = (struct raft_entry){.index = (raft_index)i + 1,
                               .term = 1,
                               .type = RAFT_ENTRY_NORMAL,
                               .data = data,
                               .len = ENTRY_BYTES};
  if ((prefill > 0 && lr_store_batch_entries(b, e, (uint32_t)prefill) != 0) ||
      lr_store_batch_write(v->store, b) != 0)
    die(v->path, "writing the hard state and the prefill");
  lr_store_batch_free(b);
  free(e);
#ifdef LR_STORE_WAL_PAGES_MAX /* absent in a tree before lr_store_idle(), kept for comparisons */
  lr_store_idle(v->store);    /* the checkpoint the prefill made due */
#endif
  v->next = (raft_index)prefill + 1;
}

static void run_store(struct variant *v, int n, int with_hard) {
  static uint8_t data[ENTRY_BYTES];
  for (int i = 0; i < n; i++) {
    memset(data, (int)v->next & 0xff, sizeof data);
    struct raft_entry e = {
        .index = v->next, .term = 1, .type = RAFT_ENTRY_NORMAL, .data = data, .len = ENTRY_BYTES};
    struct lr_store_batch *b;
    /* Preparing (a copy on the loop thread) is not part of the commit. */
    if (lr_store_batch_new(&b) != 0 || lr_store_batch_entries(b, &e, 1) != 0)
      die("batch", "out of memory");
    if (with_hard) lr_store_batch_hard_state(b, 1, 1);
    double t0 = now_ms();
    if (lr_store_batch_write(v->store, b) != 0) {
      const char *msg;
      lr_store_batch_result(b, &msg, NULL, NULL);
      die(v->path, msg);
    }
    v->ms[v->n++] = now_ms() - t0;
    lr_store_batch_free(b);
    v->next++;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static void rm_rf(const char *dir) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "store_commit: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
  const char *dir = ".", *only_name = NULL;
  int commits = 2000, rounds = 5, prefill = 10000, only = -1, c;
  while ((c = getopt(argc, argv, "d:n:r:p:o:")) != -1) {
    switch (c) {
    case 'd':
      dir = optarg;
      break;
    case 'n':
      commits = atoi(optarg);
      break;
    case 'r':
      rounds = atoi(optarg);
      break;
    case 'p':
      prefill = atoi(optarg);
      break;
    case 'o':
      only_name = optarg;
      break;
    default:
      die("usage", "store_commit [-d DIR] [-n COMMITS] [-r ROUNDS] [-p PREFILL] [-o ONLY]");
    }
  }
  for (int i = 0; only_name != NULL && i < V_N; i++)
    if (strcmp(only_name, KEYS[i]) == 0) only = i;
  if (only_name != NULL && only < 0)
    die(only_name, "not one of overwrite, append, sqlite, store, store_hard");
  if (commits <= 0 || rounds <= 0 || commits < rounds || prefill < 0)
    die("usage", "COMMITS and ROUNDS must be positive, COMMITS >= ROUNDS, PREFILL >= 0");
  char own[512];
  snprintf(own, sizeof own, "%s/store_commit.XXXXXX", dir);
  if (mkdtemp(own) == NULL) die(own, strerror(errno));
  dir = own;
  struct variant v[V_N];
  memset(v, 0, sizeof v);
  for (int i = 0; i < V_N; i++)
    if ((v[i].ms = malloc(sizeof(double) * (size_t)commits)) == NULL)
      die("malloc", "out of memory");
  if (only < 0 || only == V_OVERWRITE) setup_file(&v[V_OVERWRITE], dir, "overwrite", commits);
  if (only < 0 || only == V_APPEND) setup_file(&v[V_APPEND], dir, "append", 0);
  if (only < 0 || only == V_SQLITE) setup_sqlite(&v[V_SQLITE], dir, prefill);
  if (only < 0 || only == V_STORE) setup_store(&v[V_STORE], dir, "store", prefill);
  if (only < 0 || only == V_STORE_HARD) setup_store(&v[V_STORE_HARD], dir, "store_hard", prefill);
  for (int r = 0; r < rounds; r++) {
    int n = commits / rounds + (r < commits % rounds);
    if (only < 0 || only == V_OVERWRITE) run_file(&v[V_OVERWRITE], n);
    if (only < 0 || only == V_APPEND) run_file(&v[V_APPEND], n);
    if (only < 0 || only == V_SQLITE) run_sqlite(&v[V_SQLITE], n);
    if (only < 0 || only == V_STORE) run_store(&v[V_STORE], n, 0);
    if (only < 0 || only == V_STORE_HARD) run_store(&v[V_STORE_HARD], n, 1);
  }
  printf("%d commits each in %d alternating rounds, in %s; SQLite logs prefilled with %d "
         "entries\n",
         commits, rounds, dir, prefill);
  printf("%-46s %8s %8s %8s %8s %10s\n", "ms per commit", "p50", "p90", "p99", "mean", "WAL bytes");
  for (int i = 0; i < V_N; i++) {
    if (v[i].n == 0) continue;
    qsort(v[i].ms, (size_t)v[i].n, sizeof(double), cmp);
    double sum = 0;
    for (int k = 0; k < v[i].n; k++)
      sum += v[i].ms[k];
    char wal[800];
    long long wal_bytes = -1;
    if (i == V_SQLITE)
      snprintf(wal, sizeof wal, "%.760s-wal", v[i].path);
    else if (i >= V_STORE)
      snprintf(wal, sizeof wal, "%.760s/raft.db-wal", v[i].path);
    if (i >= V_SQLITE) wal_bytes = file_size(wal);
    printf("%-46s %8.3f %8.3f %8.3f %8.3f ", NAMES[i], v[i].ms[v[i].n / 2],
           v[i].ms[v[i].n * 9 / 10], v[i].ms[v[i].n * 99 / 100], sum / v[i].n);
    if (wal_bytes >= 0)
      printf("%10lld\n", wal_bytes);
    else
      printf("%10s\n", "-");
  }
  if (v[V_OVERWRITE].fd > 0) close(v[V_OVERWRITE].fd);
  if (v[V_APPEND].fd > 0) close(v[V_APPEND].fd);
  if (v[V_SQLITE].db != NULL) sqlite3_close_v2(v[V_SQLITE].db);
  lr_store_close(v[V_STORE].store);
  lr_store_close(v[V_STORE_HARD].store);
  for (int i = 0; i < V_N; i++)
    free(v[i].ms);
  rm_rf(dir);
  return 0;
}
