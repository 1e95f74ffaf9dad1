/* Error, message and role names: one X-macro table (raft.h) yields them. */
#include <stdio.h>
#include <stdlib.h>

#include "raft_int.h"

const char *raft_strerror(int rv) {
  switch (rv) {
  case 0:
    return "success";
#define X(name, code, api, msg)                                                                    \
  case code:                                                                                       \
    return msg;
    RAFT_ERRORS(X)
#undef X
  }
  return "unknown error";
}

const char *raft_errname(int rv) {
  switch (rv) {
  case 0:
    return "OK";
#define X(name, code, api, msg)                                                                    \
  case code:                                                                                       \
    return #name;
    RAFT_ERRORS(X)
#undef X
  }
  return "UNKNOWN";
}

const char *raft_errcode(int rv) {
  switch (rv) {
  case 0:
    return "ok";
#define X(name, code, api, msg)                                                                    \
  case code:                                                                                       \
    return api;
    RAFT_ERRORS(X)
#undef X
  }
  return "unknown";
}

static const char *const msg_names[] = {
    "NONE",           "APPEND",       "APPEND_RESP",   "VOTE",
    "VOTE_RESP",      "PRE_VOTE",     "PRE_VOTE_RESP", "HEARTBEAT",
    "HEARTBEAT_RESP", "SNAPSHOT",     "SNAPSHOT_RESP", "TIMEOUT_NOW",
    "PROPOSE",        "PROPOSE_RESP", "READ_INDEX",    "READ_INDEX_RESP",
};

const char *raft_msg_name(int type) {
  if (type < 1 || type > RAFT_MSG_TYPE_MAX) {
    return "UNKNOWN";
  }
  return msg_names[type];
}

const char *raft_role_name(int role) {
  switch (role) {
  case RAFT_FOLLOWER:
    return "follower";
  case RAFT_PRE_CANDIDATE:
    return "pre-candidate";
  case RAFT_CANDIDATE:
    return "candidate";
  case RAFT_LEADER:
    return "leader";
  }
  return "unknown";
}

void raft__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "luaraft core: assertion failed: %s (%s:%d)\n", expr, file, line);
  abort();
}
