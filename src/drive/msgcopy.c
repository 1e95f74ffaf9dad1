/* Deep copies of what a raft_update points to, for the parts kept past the
 * next raft_* call: held msgs_after, messages in flight in the simulated
 * network, committed entries waiting behind a received snapshot, and that
 * snapshot. The one message copy of luaraft. */
#include <stdlib.h>
#include <string.h>

#include "drive/drive.h"

static void *dup_bytes(const void *p, size_t n) {
  void *q = malloc(n ? n : 1);
  if (q && n) memcpy(q, p, n);
  return q;
}

/* One allocation: the message, its entries (aligned right after it), their
 * data and the snapshot chunk. */
struct lr_msg_copy *lr_msg_copy(const struct raft_message *m) {
  size_t size = sizeof(struct lr_msg_copy) + (size_t)m->n_entries * sizeof(struct raft_entry);
  for (uint32_t i = 0; i < m->n_entries; i++)
    size += m->entries[i].len;
  size += m->chunk_len;
  struct lr_msg_copy *c = malloc(size);
  if (c == NULL) return NULL;
  c->m = *m;
  c->has_config = false;
  c->shares = NULL;
  c->batch = NULL;
  c->refs = 1;
  char *p = c->tail;
  if (m->n_entries > 0) {
    c->m.entries = (struct raft_entry *)p;
    p += (size_t)m->n_entries * sizeof(struct raft_entry);
    for (uint32_t i = 0; i < m->n_entries; i++) {
      c->m.entries[i] = m->entries[i];
      c->m.entries[i].data = (uint8_t *)p;
      if (m->entries[i].len) memcpy(p, m->entries[i].data, m->entries[i].len);
      p += m->entries[i].len;
    }
  } else {
    c->m.entries = NULL;
  }
  if (m->chunk_len > 0) {
    memcpy(p, m->chunk, m->chunk_len);
    c->m.chunk = (const uint8_t *)p;
  } else {
    c->m.chunk = NULL;
  }
  memset(&c->m.snap.config, 0, sizeof c->m.snap.config);
  if (m->snap.config.n > 0) {
    if (raft_config_copy(&m->snap.config, &c->m.snap.config) != 0) {
      free(c); /* UNTESTED */
      return NULL;
    }
    c->has_config = true;
  }
  return c;
}

/* The copy of an APPEND's header (no chunk, no config) with `tail` bytes
 * after it; the caller sets the entries and what owns their bytes. */
static struct lr_msg_copy *append_header(const struct raft_message *m, size_t tail) {
  struct lr_msg_copy *c = malloc(sizeof *c + tail);
  if (c == NULL) return NULL;
  c->m = *m;
  c->m.chunk = NULL;
  memset(&c->m.snap.config, 0, sizeof c->m.snap.config);
  c->has_config = false;
  c->shares = NULL;
  c->batch = NULL;
  c->refs = 1;
  return c;
}

struct lr_msg_copy *lr_msg_copy_sharing(const struct raft_message *m, struct lr_msg_copy *with) {
  if (m->chunk_len > 0 || m->snap.config.n > 0) return lr_msg_copy(m); /* not an APPEND */
  struct lr_msg_copy *c = append_header(m, 0);
  if (c == NULL) return NULL;
  c->m.entries = with->m.entries;
  c->shares = with;
  with->refs++;
  return c;
}

struct lr_msg_copy *lr_msg_copy_in_batch(const struct raft_message *m, struct lr_store_batch *b) {
  struct lr_store_batch_view v;
  lr_store_batch_view(b, &v);
  struct lr_msg_copy *c = append_header(m, (size_t)m->n_entries * sizeof(struct raft_entry));
  if (c == NULL) return NULL;
  c->m.entries = (struct raft_entry *)c->tail;
  for (uint32_t i = 0; i < m->n_entries; i++) {
    c->m.entries[i] = m->entries[i];
    c->m.entries[i].data = v.entries[m->entries[i].index - v.entries[0].index].data;
  }
  c->batch = b;
  lr_store_batch_hold(b);
  return c;
}

bool lr_msg_same_entries(const struct raft_message *a, const struct raft_message *b) {
  uint32_t n = a->n_entries;
  return n > 0 && n == b->n_entries && a->entries[0].index == b->entries[0].index &&
         a->entries[0].term == b->entries[0].term &&
         a->entries[n - 1].term == b->entries[n - 1].term;
}

void lr_msg_copy_free(struct lr_msg_copy *c) {
  if (c == NULL || --c->refs > 0) return;
  if (c->has_config) raft_config_free(&c->m.snap.config);
  lr_msg_copy_free(c->shares);
  lr_store_batch_free(c->batch);
  free(c);
}

int lr_snapshot_copy(const struct raft_snapshot *src, struct raft_snapshot **out) {
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

void lr_snapshot_free(struct raft_snapshot *s) {
  if (s == NULL) return;
  free((void *)s->data);
  raft_config_free(&s->meta.config);
  free(s);
}
