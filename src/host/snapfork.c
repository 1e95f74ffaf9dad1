/* Automatic snapshots off the loop thread: the state machine's snapshot()
 * runs in a forked child on a copy-on-write view of the process, and the
 * bytes come back over a pipe while the loop keeps serving. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/host_int.h"

/* ---- snapshots off the loop thread ----------------------------------------- */
/* The state machine's snapshot() runs in a forked child, on a copy-on-write
 * view of the state at the applied index, while this process keeps serving
 * and replicating (heartbeats go on however large the state is). Only the
 * forking thread lives in the child: it runs the Lua snapshot() (the state
 * machine's own Lua state, or the caller's: either is a copy there), writes
 * one status byte and the bytes (or the error) to a pipe, and _exits. It
 * touches no libuv, no SQLite, no stdio buffer. The loop reads the pipe;
 * at its end the child is reaped and the driver gets the bytes
 * (lr_drive_snapshot_made), which it writes as a batch as before.
 * LUARAFT_SNAPSHOT_FORK=0 keeps the synchronous path (and so does a failed
 * fork or pipe). */
static bool write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, len -= (size_t)w;
  }
  return true;
}

static void snapshot_child(struct lr_sm *sm, int fd) {
  /* Below the node's own threads: on a busy machine the loop (heartbeats,
   * replies) goes first, the snapshot takes what is left. */
  (void)setpriority(PRIO_PROCESS, 0, 10);
  struct lr_buf b;
  lr_buf_init(&b);
  char err[512];
  int rv = lr_sm_snapshot(sm, &b, err, sizeof err);
  /* the bytes (or the error), then one status byte: the parent hands its
   * buffer on as it is, the status byte past the end */
  bool ok = rv == 0 ? write_all(fd, b.data, b.len) && write_all(fd, "\0", 1)
                    : write_all(fd, err, strlen(err)) && write_all(fd, "\1", 1);
  _exit(ok ? 0 : 1);
}

static void snap_closed(uv_handle_t *h) {
  lr__node_handle_closed(h->data);
}

static void snap_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct lr_node *n = h->data;
  (void)hint;
  if (n->snap_cap - n->snap_len < 65536) {
    size_t cap = n->snap_cap ? n->snap_cap * 2 : 1 << 20;
    char *p = raft_realloc(n->snap_buf, cap);
    if (p == NULL) {
      *buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS in snap_read */
      return;
    }
    n->snap_buf = p, n->snap_cap = cap;
  }
  *buf = uv_buf_init(n->snap_buf + n->snap_len, 65536);
}

/* Reaps the child (it has closed the pipe: it is exiting) and hands the
 * result to the driver. */
static void snap_end(struct lr_node *n, int read_rv) {
  uv_read_stop((uv_stream_t *)&n->snap_pipe);
  uv_close((uv_handle_t *)&n->snap_pipe, snap_closed);
  int status = 0;
  pid_t pid = n->snap_pid;
  n->snap_pid = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  char *data = n->snap_buf;
  size_t len = n->snap_len;
  n->snap_buf = NULL, n->snap_len = n->snap_cap = 0;
  char why[600];
  const char *err = NULL;
  if (read_rv != UV_EOF) {
    snprintf(why, sizeof why, "reading the snapshot child's output: %s", uv_strerror(read_rv));
    err = why;
  } else if (!WIFEXITED(status) || len == 0) {
    snprintf(why, sizeof why, "the snapshot child ended abnormally (status %d)", status);
    err = why;
  } else if (data[len - 1] != 0) {
    snprintf(why, sizeof why, "%.*s", (int)(len - 1 < 512 ? len - 1 : 512), data);
    err = why;
  } else if (WEXITSTATUS(status) != 0) {
    snprintf(why, sizeof why, "the snapshot child could not write its output");
    err = why;
  }
  if (n->stopping) {
    raft_free(data);
    return;
  }
  LR__LOG(n, RAFT_LOG_INFO,
          "snapshot child %d: %zu bytes in %.1f ms (the fork held the loop %.2f ms)", (int)pid,
          len ? len - 1 : 0, (double)(uv_hrtime() - n->snap_start_ns) / 1e6,
          (double)n->snap_fork_ns / 1e6);
  if (err) {
    raft_free(data);
    data = NULL;
  }
  lr__callback_enter(n);
  lr_drive_snapshot_made(n->drive, err ? -1 : 0, data, len ? len - 1 : 0, err);
  lr__callback_leave(n);
}

static void snap_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct lr_node *n = s->data;
  (void)buf;
  if (nread > 0) {
    n->snap_len += (size_t)nread;
    return;
  }
  if (nread == 0) return;
  snap_end(n, (int)nread);
}

int lr__node_io_snapshot(void *data, struct lr_sm *sm, struct lr_buf *out, char *err,
                         size_t errlen) {
  struct lr_node *n = data;
  const char *env = getenv("LUARAFT_SNAPSHOT_FORK");
  if (n->stopping || n->snap_pid != 0 || (env && strcmp(env, "0") == 0))
    return lr_sm_snapshot(sm, out, err, errlen);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return lr_sm_snapshot(sm, out, err, errlen);
  uint64_t t0 = uv_hrtime();
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    snapshot_child(sm, fds[1]); /* does not return */
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    LR__LOG(n, RAFT_LOG_WARN, "fork for a snapshot failed (%s): taking it on the loop thread",
            strerror(errno));
    return lr_sm_snapshot(sm, out, err, errlen);
  }
  n->snap_pid = pid;
  n->snap_fork_ns = uv_hrtime() - t0;
  n->snap_start_ns = uv_hrtime();
  n->snap_buf = NULL, n->snap_len = n->snap_cap = 0;
  uv_pipe_init(n->loop, &n->snap_pipe, 0);
  n->snap_pipe.data = n;
  n->handles_open++;
  int opened = uv_pipe_open(&n->snap_pipe, fds[0]);
  int rv =
      opened == 0 ? uv_read_start((uv_stream_t *)&n->snap_pipe, snap_alloc, snap_read) : opened;
  if (rv != 0) { /* UNTESTED: the loop cannot read the pipe: synchronously then */
    if (opened != 0) close(fds[0]);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    n->snap_pid = 0;
    uv_close((uv_handle_t *)&n->snap_pipe, snap_closed);
    return lr_sm_snapshot(sm, out, err, errlen);
  }
  return 1;
}

/* A stopping node does not wait for its snapshot child. */
void lr__node_snapshot_abandon(struct lr_node *n) {
  if (n->snap_pid == 0) return;
  kill(n->snap_pid, SIGKILL);
  snap_end(n, UV_ECANCELED);
}
