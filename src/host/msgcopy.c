/* Deep copies of what a raft_update points to, for the parts the host keeps
 * past the next raft_* call (held msgs_after, committed entries waiting for
 * an earlier batch, a received snapshot waiting to be restored). */
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"

static void *dup_bytes(const void *p, size_t n) {
  void *q = malloc(n ? n : 1);
  if (q && n) memcpy(q, p, n);
  return q;
}

int lr__entries_copy(const struct raft_entry *src, uint32_t n, struct raft_entry **out) {
  *out = NULL;
  if (n == 0) return 0;
  struct raft_entry *e = calloc(n, sizeof *e);
  if (e == NULL) return -1;
  for (uint32_t i = 0; i < n; i++) {
    e[i] = src[i];
    e[i].data = dup_bytes(src[i].data, src[i].len);
    if (e[i].data == NULL) {
      lr__entries_free(e, i);
      return -1;
    }
  }
  *out = e;
  return 0;
}

void lr__entries_free(struct raft_entry *e, uint32_t n) {
  if (e == NULL) return;
  for (uint32_t i = 0; i < n; i++)
    free(e[i].data);
  free(e);
}

static void msg_free_one(struct raft_message *m) {
  lr__entries_free(m->entries, m->n_entries);
  free((void *)m->chunk);
  raft_config_free(&m->snap.config);
}

void lr__msgs_free(struct raft_message *m, uint32_t n) {
  if (m == NULL) return;
  for (uint32_t i = 0; i < n; i++)
    msg_free_one(&m[i]);
  free(m);
}

int lr__msgs_copy(const struct raft_message *src, uint32_t n, struct raft_message **out) {
  *out = NULL;
  if (n == 0) return 0;
  struct raft_message *m = calloc(n, sizeof *m);
  if (m == NULL) return -1;
  for (uint32_t i = 0; i < n; i++) {
    m[i] = src[i];
    m[i].entries = NULL;
    m[i].chunk = NULL;
    m[i].snap.config.members = NULL;
    m[i].snap.config.n = 0;
    if (lr__entries_copy(src[i].entries, src[i].n_entries, &m[i].entries) != 0) goto fail;
    if (src[i].chunk_len > 0 && (m[i].chunk = dup_bytes(src[i].chunk, src[i].chunk_len)) == NULL)
      goto fail;
    if (src[i].snap.config.n > 0 && raft_config_copy(&src[i].snap.config, &m[i].snap.config) != 0)
      goto fail;
    continue;
  fail:
    m[i].n_entries = m[i].entries ? m[i].n_entries : 0;
    lr__msgs_free(m, i + 1);
    return -1;
  }
  *out = m;
  return 0;
}

int lr__snapshot_copy(const struct raft_snapshot *src, struct raft_snapshot **out) {
  struct raft_snapshot *s = calloc(1, sizeof *s);
  if (s == NULL) return -1;
  s->meta = src->meta;
  s->meta.config.members = NULL;
  s->meta.config.n = 0;
  s->len = src->len;
  s->data = dup_bytes(src->data, src->len);
  if (s->data == NULL || raft_config_copy(&src->meta.config, &s->meta.config) != 0) {
    free((void *)s->data);
    free(s);
    return -1;
  }
  *out = s;
  return 0;
}

void lr__snapshot_free(struct raft_snapshot *s) {
  if (s == NULL) return;
  free((void *)s->data);
  raft_config_free(&s->meta.config);
  free(s);
}
