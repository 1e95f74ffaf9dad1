/* What real nodes (lnode.c) and simulated ones (lsim.c) share in the
 * binding: node:metrics() (the keys lua/raft/http_api.lua exports as
 * /metrics) and the true | nil, code, message result of a call. */
#include "drive/drive.h"
#include "lua/lraft.h"

void luaraft__set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* A latency histogram as Prometheus-style cumulative buckets:
 * { {le_seconds, count}, ..., {"+Inf", count} }; n counts include +Inf. */
static void push_buckets(lua_State *L, const uint64_t *counts, const double *bounds_ms, int n) {
  lua_createtable(L, n, 0);
  uint64_t cum = 0;
  for (int i = 0; i < n; i++) {
    cum += counts[i];
    lua_createtable(L, 2, 0);
    if (i < n - 1)
      lua_pushnumber(L, bounds_ms[i] / 1000.0);
    else
      lua_pushliteral(L, "+Inf");
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)cum);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
}

void luaraft__push_metrics(lua_State *L, const struct lr_drive_metrics *m,
                           const struct luaraft_net_counts *net,
                           const struct raft_progress_info *pi, uint32_t np) {
  lua_createtable(L, 0, 24);
  luaraft__set_int(L, "proposals", m->proposals);
  luaraft__set_int(L, "proposals_failed", m->proposals_failed);
  luaraft__set_int(L, "elections", m->elections);
  luaraft__set_int(L, "leader_changes", m->leader_changes);
  luaraft__set_int(L, "applied_entries", m->applied_entries);
  luaraft__set_int(L, "snapshots_taken", m->snapshots_taken);
  luaraft__set_int(L, "snapshots_restored", m->snapshots_restored);
  luaraft__set_int(L, "batches", m->batches);
  luaraft__set_int(L, "batches_failed", m->batches_failed);
  luaraft__set_int(L, "batches_merged", m->batches_merged);
  luaraft__set_int(L, "fsyncs", m->fsyncs);
  luaraft__set_int(L, "entries_persisted", m->entries_persisted);
  luaraft__set_int(L, "peer_msgs_sent", m->peer_msgs_sent);
  luaraft__set_int(L, "peer_msgs_recv", m->peer_msgs_recv);
  luaraft__set_int(L, "net_bad_frames", net->bad_frames);
  luaraft__set_int(L, "net_handshake_failures", net->handshake_failures);
  luaraft__set_int(L, "net_frames_dropped", net->frames_dropped);
  luaraft__set_int(L, "peers", net->peers);
  luaraft__set_int(L, "peers_up", net->peers_up);
  lua_pushnumber(L, m->fsync_sum_ms / 1000.0);
  lua_setfield(L, -2, "fsync_seconds_sum");
  push_buckets(L, m->fsync_buckets, lr_fsync_bounds_ms, LR_FSYNC_BUCKETS);
  lua_setfield(L, -2, "fsync_buckets");
  /* per-stage latency (drive.h): stages[name] = { count, sum_seconds,
   * buckets = cumulative { le_seconds, count } } */
  lua_createtable(L, 0, LR_STAGES);
  for (int s = 0; s < LR_STAGES; s++) {
    const struct lr_drive_stage *st = &m->stages[s];
    lua_createtable(L, 0, 3);
    luaraft__set_int(L, "count", st->count);
    lua_pushnumber(L, st->sum_ms / 1000.0);
    lua_setfield(L, -2, "sum_seconds");
    push_buckets(L, st->buckets, lr_stage_bounds_ms, LR_STAGE_BUCKETS);
    lua_setfield(L, -2, "buckets");
    lua_setfield(L, -2, lr_stage_names[s]);
  }
  lua_setfield(L, -2, "stages");
  /* leader only: replication progress per member */
  lua_createtable(L, (int)np, 0);
  for (uint32_t i = 0; i < np; i++) {
    lua_createtable(L, 0, 4);
    luaraft__set_int(L, "id", pi[i].id);
    luaraft__set_int(L, "match", pi[i].match);
    luaraft__set_int(L, "next", pi[i].next);
    lua_pushboolean(L, pi[i].active);
    lua_setfield(L, -2, "active");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "progress");
}

int luaraft__push_rv(lua_State *L, int rv) {
  if (rv == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, raft_errcode(rv));
  lua_pushstring(L, raft_strerror(rv));
  return 3;
}
