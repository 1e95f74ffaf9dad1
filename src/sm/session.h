/* Client sessions (exactly-once proposals): client id -> last sequence
 * number, the result of that sequence number and the index that last used
 * the session. Replicated state: it only changes in apply, so every replica
 * holds the same table. Bounded: when full, the least recently used session
 * (the one with the oldest last-used index) expires. Sessions sit on a list
 * in last-used order, which is what snapshots write and restores rebuild, so
 * the order is replicated too. */
#ifndef LUARAFT_SM_SESSION_H
#define LUARAFT_SM_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct lr__sm_session {
  char *client;
  size_t client_len;
  uint64_t seq, last_index;
  int status;   /* LR_SM_OK / LR_SM_APPLY_ERROR / LR_SM_BAD_REQUEST */
  char *result; /* the saved result bytes or error message */
  size_t result_len;
  struct lr__sm_session *hnext;       /* hash chain */
  struct lr__sm_session *prev, *next; /* last-used order, oldest first */
};

struct lr__sm_sessions {
  struct lr__sm_session **buckets;
  size_t nbuckets;
  uint32_t count, max;
  struct lr__sm_session *oldest, *newest;
};

void lr__sm_sessions_init(struct lr__sm_sessions *t, uint32_t max);
void lr__sm_sessions_free(struct lr__sm_sessions *t);
struct lr__sm_session *lr__sm_sessions_get(struct lr__sm_sessions *t, const char *client,
                                           size_t len);
/* Moves s to the newest end with last_index = index. */
void lr__sm_sessions_touch(struct lr__sm_sessions *t, struct lr__sm_session *s, uint64_t index);
/* Records seq's result for client (creating the session, expiring the oldest
 * when full). -1: no memory. */
int lr__sm_sessions_put(struct lr__sm_sessions *t, const char *client, size_t len, uint64_t seq,
                        uint64_t index, int status, const char *res, size_t res_len);

#endif
