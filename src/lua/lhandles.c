/* The loop binding's handles (on luaraft__loop(L), lloop.c):
 *
 *   core.timer(ms, fn) -> timer  (one shot; timer:stop(), __gc, __close)
 *   core.signal(name, fn) -> sig ("SIGINT", "SIGTERM", ...; sig:close())
 *   core.log(level, threshold, id, message) one log line in the host's format
 *   core.wall_ms() -> integer    the wall clock in ms
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "lua/lraft.h"

#define TIMER_MT "raft.timer"
#define SIGNAL_MT "raft.signal"

/* ---- timers -------------------------------------------------------------- */
struct ltimer {
  uv_timer_t h;
  lua_State *L;
  int fn_ref;
  struct ltimer **owner; /* the userdata's pointer, cleared on close */
};

static void timer_closed(uv_handle_t *h) {
  free(h->data);
}

static void timer_release(lua_State *L, struct ltimer *t) {
  if (t->owner) *t->owner = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
  t->h.data = t;
  uv_close((uv_handle_t *)&t->h, timer_closed);
}

static void timer_fired(uv_timer_t *h) {
  struct ltimer *t = (struct ltimer *)h;
  lua_State *L = t->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
  timer_release(L, t);
  luaraft__call_main(L, 0, "a timer callback");
}

static int l_timer(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct ltimer **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, TIMER_MT);
  struct ltimer *t = calloc(1, sizeof *t);
  if (t == NULL) return luaL_error(L, "out of memory");
  uv_timer_init(luaraft__loop(L), &t->h);
  t->L = luaraft__main_thread(L);
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->owner = ud;
  *ud = t;
  uv_timer_start(&t->h, timer_fired, ms <= 0 ? 0 : (uint64_t)ms, 0);
  return 1;
}

static int l_timer_stop(lua_State *L) {
  struct ltimer **ud = luaL_checkudata(L, 1, TIMER_MT);
  if (*ud) timer_release(L, *ud);
  return 0;
}

/* A timer whose userdata was collected still fires (its callback may be
 * the only thing holding a coroutine): only forget the userdata. */
static int l_timer_gc(lua_State *L) {
  struct ltimer **ud = luaL_checkudata(L, 1, TIMER_MT);
  if (*ud) (*ud)->owner = NULL;
  *ud = NULL;
  return 0;
}

/* ---- signals ------------------------------------------------------------- */
struct lsignal {
  uv_signal_t h;
  lua_State *L;
  int fn_ref;
  bool closed;
};

static void signal_fired(uv_signal_t *h, int signum) {
  struct lsignal *s = h->data;
  lua_State *L = s->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
  lua_pushstring(L, signum == SIGINT    ? "SIGINT"
                    : signum == SIGTERM ? "SIGTERM"
                    : signum == SIGHUP  ? "SIGHUP"
                                        : "signal");
  luaraft__call_main(L, 1, "a signal handler");
}

static void signal_closed(uv_handle_t *h) {
  free(h->data);
}

static int l_signal(lua_State *L) {
  static const char *const names[] = {"SIGINT", "SIGTERM", "SIGHUP", NULL};
  static const int nums[] = {SIGINT, SIGTERM, SIGHUP};
  int i = luaL_checkoption(L, 1, NULL, names);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct lsignal **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, SIGNAL_MT);
  struct lsignal *s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "out of memory");
  uv_signal_init(luaraft__loop(L), &s->h);
  s->h.data = s;
  s->L = luaraft__main_thread(L);
  lua_pushvalue(L, 2);
  s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_signal_start(&s->h, signal_fired, nums[i]);
  uv_unref((uv_handle_t *)&s->h); /* a signal watch alone keeps no loop alive */
  *ud = s;
  return 1;
}

static int l_signal_close(lua_State *L) {
  struct lsignal **ud = luaL_checkudata(L, 1, SIGNAL_MT);
  if (*ud) {
    luaL_unref(L, LUA_REGISTRYINDEX, (*ud)->fn_ref);
    uv_close((uv_handle_t *)&(*ud)->h, signal_closed);
    *ud = NULL;
  }
  return 0;
}

static int l_wall_ms(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lr_wall_ms());
  return 1;
}

static int l_log(lua_State *L) {
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  int threshold = luaL_checkoption(L, 2, "info", levels);
  lua_Integer id = luaL_optinteger(L, 3, 0);
  const char *msg = luaL_checkstring(L, 4);
  lr_log(threshold, (raft_id)id, level, "%s", msg);
  return 0;
}

void luaraft__handles_open(lua_State *L) {
  static const luaL_Reg timer_methods[] = {{"stop", l_timer_stop}, {NULL, NULL}};
  static const luaL_Reg signal_methods[] = {{"close", l_signal_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"timer", l_timer},
                                   {"signal", l_signal},
                                   {"log", l_log},
                                   {"wall_ms", l_wall_ms},
                                   {NULL, NULL}};
  luaraft__new_metatable(L, TIMER_MT, timer_methods, l_timer_gc);
  luaL_getmetatable(L, TIMER_MT); /* leaving a scope stops the timer */
  lua_pushcfunction(L, l_timer_stop);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaraft__new_metatable(L, SIGNAL_MT, signal_methods, l_signal_close);
  luaL_setfuncs(L, funcs, 0);
}
