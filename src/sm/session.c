/* Client session table (see session.h). */
#include <stdlib.h>
#include <string.h>

#include "core/raft.h"
#include "sm/session.h"

static uint64_t hash(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h;
}

void lr__sm_sessions_init(struct lr__sm_sessions *t, uint32_t max) {
  memset(t, 0, sizeof *t);
  t->max = max;
}

static void session_free(struct lr__sm_session *s) {
  raft_free(s->client);
  raft_free(s->result);
  raft_free(s);
}

void lr__sm_sessions_free(struct lr__sm_sessions *t) {
  struct lr__sm_session *s = t->oldest;
  while (s != NULL) {
    struct lr__sm_session *next = s->next;
    session_free(s);
    s = next;
  }
  raft_free(t->buckets);
  uint32_t max = t->max;
  lr__sm_sessions_init(t, max);
}

struct lr__sm_session *lr__sm_sessions_get(struct lr__sm_sessions *t, const char *client,
                                           size_t len) {
  if (t->nbuckets == 0) return NULL;
  struct lr__sm_session *s = t->buckets[hash(client, len) & (t->nbuckets - 1)];
  for (; s != NULL; s = s->hnext)
    if (s->client_len == len && memcmp(s->client, client, len) == 0) return s;
  return NULL;
}

static void list_unlink(struct lr__sm_sessions *t, struct lr__sm_session *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    t->oldest = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    t->newest = s->prev;
  s->prev = s->next = NULL;
}

static void list_append(struct lr__sm_sessions *t, struct lr__sm_session *s) {
  s->prev = t->newest;
  s->next = NULL;
  if (t->newest)
    t->newest->next = s;
  else
    t->oldest = s;
  t->newest = s;
}

void lr__sm_sessions_touch(struct lr__sm_sessions *t, struct lr__sm_session *s, uint64_t index) {
  s->last_index = index;
  if (t->newest == s) return;
  list_unlink(t, s);
  list_append(t, s);
}

static void hash_remove(struct lr__sm_sessions *t, struct lr__sm_session *s) {
  struct lr__sm_session **pp = &t->buckets[hash(s->client, s->client_len) & (t->nbuckets - 1)];
  while (*pp != s)
    pp = &(*pp)->hnext;
  *pp = s->hnext;
}

static int grow(struct lr__sm_sessions *t) {
  size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
  struct lr__sm_session **b = raft_malloc(n * sizeof *b);
  if (b == NULL) return -1;
  memset(b, 0, n * sizeof *b);
  for (struct lr__sm_session *s = t->oldest; s != NULL; s = s->next) {
    size_t i = hash(s->client, s->client_len) & (n - 1);
    s->hnext = b[i];
    b[i] = s;
  }
  raft_free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
  return 0;
}

int lr__sm_sessions_put(struct lr__sm_sessions *t, const char *client, size_t len, uint64_t seq,
                        uint64_t index, int status, const char *res, size_t res_len) {
  char *copy = raft_malloc(res_len ? res_len : 1);
  if (copy == NULL) return -1;
  memcpy(copy, res, res_len);
  struct lr__sm_session *s = lr__sm_sessions_get(t, client, len);
  if (s == NULL) {
    if (t->count >= t->max && t->oldest != NULL) {
      /* Full: the session used longest ago expires (deterministic: the order
       * is the replicated last-used order). */
      struct lr__sm_session *old = t->oldest;
      hash_remove(t, old);
      list_unlink(t, old);
      session_free(old);
      t->count--;
    }
    if ((size_t)t->count + 1 > t->nbuckets / 2 && grow(t) != 0) goto nomem;
    s = raft_malloc(sizeof *s);
    if (s == NULL) goto nomem;
    memset(s, 0, sizeof *s);
    s->client = raft_malloc(len ? len : 1);
    if (s->client == NULL) {
      raft_free(s);
      goto nomem;
    }
    memcpy(s->client, client, len);
    s->client_len = len;
    size_t i = hash(client, len) & (t->nbuckets - 1);
    s->hnext = t->buckets[i];
    t->buckets[i] = s;
    list_append(t, s);
    t->count++;
  }
  raft_free(s->result);
  s->result = copy;
  s->result_len = res_len;
  s->status = status;
  s->seq = seq;
  lr__sm_sessions_touch(t, s, index);
  return 0;
nomem:
  raft_free(copy);
  return -1;
}
