/* The deterministic environment of a state machine (README "Deterministic
 * state machines"). A replica stays identical to the others only if apply()
 * computes the same thing from the same entries everywhere; Lua's standard
 * library reads the outside world (clock, environment, files), seeds
 * math.random and its string hash per process, so `pairs` order and random
 * numbers differ between replicas. This file closes those doors in the
 * node's Lua state before the script loads:
 *
 *   os      time/clock/getenv/execute/... raise, naming the function and what
 *           to use instead; os.date only as os.date("!fmt", t)
 *   io      every io.* raises (the io table is a proxy)
 *   pairs   pairs/next iterate in one canonical key order: booleans (false,
 *           true), then numbers (by value), then strings (bytewise); a key of
 *           any other type has no order common to all processes: an error
 *   random  math.random is seeded from the entry (runner: seed1/seed2) the
 *           first time a call uses it; math.randomseed() without a seed raises
 *   load    load() of text only; dofile/loadfile raise; require finds Lua
 *           files (text only) and preloads, never C libraries
 *   debug   only debug.traceback and debug.getinfo remain
 *   gc      collectgarbage("count") only
 *
 * Always, with no `unsafe` key: table.sort is a stable merge sort (Lua's own
 * picks a random pivot on big arrays, so tied elements could end up in an
 * order that differs between replicas).
 *
 * Each group is lifted by one key of the script's `unsafe` table, after the
 * script has loaded (its top level always runs guarded). The originals are
 * kept in the registry for that.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sm/sm_int.h"

#define STASH "luaraft.sandbox" /* registry: group bit -> { {lib, name, value}, ... } */

static const char *const group_names[] = {"os",   "io",    "pairs", "random",
                                          "load", "debug", "gc",    NULL};

/* ---- keeping the originals ------------------------------------------------ */
/* Pushes package.loaded[lib] ("_G" is the global table). */
static void push_lib(lua_State *L, const char *lib) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, lib);
  lua_remove(L, -2);
}

/* Records that lib[name] was the value on top (popped), for group g. */
static void stash(lua_State *L, int g, const char *lib, const char *name) {
  int v = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, STASH);
  lua_rawgeti(L, -1, g);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, g);
  }
  lua_createtable(L, 3, 0);
  lua_pushstring(L, lib);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, name);
  lua_rawseti(L, -2, 2);
  lua_pushvalue(L, v);
  lua_rawseti(L, -2, 3);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  lua_settop(L, v - 1);
}

/* Stashes lib[name] and sets lib[name] to the value on top (popped). */
static void swap_in(lua_State *L, int g, const char *lib, const char *name) {
  push_lib(L, lib);
  lua_getfield(L, -1, name);
  stash(L, g, lib, name);
  lua_insert(L, -2);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* Pushes the original lib[name] (before any swap). */
static void push_orig(lua_State *L, const char *lib, const char *name) {
  push_lib(L, lib);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

/* ---- forbidden functions ------------------------------------------------ */
static int forbidden(lua_State *L) {
  return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

static void forbid(lua_State *L, int g, const char *lib, const char *name, const char *why) {
  bool global = strcmp(lib, "_G") == 0;
  lua_pushfstring(L, "%s%s%s is not available in a state machine: %s", global ? "" : lib,
                  global ? "" : ".", name, why);
  lua_pushcclosure(L, forbidden, 1);
  swap_in(L, g, lib, name);
}

static const char *const WHY_TIME = "use meta.time (the leader's clock, the same on every replica)";
static const char *const WHY_WORLD =
    "it acts on the outside world, which differs between nodes; do that outside the state "
    "machine (in the code that calls raft.*)";

/* os.date("!fmt", t) is a pure function of t; anything else reads the clock
 * or the local time zone. */
static int det_date(lua_State *L) {
  const char *fmt = luaL_optstring(L, 1, "%c");
  if (fmt[0] != '!' || lua_type(L, 2) != LUA_TNUMBER)
    return luaL_error(L,
                      "os.date is not available in a state machine (only as os.date(\"!...\", "
                      "t) with an explicit time): %s",
                      WHY_TIME);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static void guard_os(lua_State *L) {
  forbid(L, LR__SM_G_OS, "os", "time", WHY_TIME);
  forbid(L, LR__SM_G_OS, "os", "clock",
         "use meta.time (the leader's clock, the same on every replica); CPU time differs "
         "between replicas");
  forbid(L, LR__SM_G_OS, "os", "getenv",
         "the environment differs between nodes; pass settings in commands or in the script");
  static const char *const world[] = {"execute", "remove",    "rename", "tmpname",
                                      "exit",    "setlocale", NULL};
  for (int i = 0; world[i]; i++)
    forbid(L, LR__SM_G_OS, "os", world[i], WHY_WORLD);
  push_orig(L, "os", "date");
  lua_pushcclosure(L, det_date, 1);
  swap_in(L, LR__SM_G_OS, "os", "date");
}

/* The io proxy: any field raises. */
static int io_index(lua_State *L) {
  return luaL_error(L,
                    "io.%s is not available in a state machine: files and streams differ "
                    "between nodes; keep the state in Lua tables and persist it with "
                    "snapshot/restore (raft.encode)",
                    luaL_optstring(L, 2, "?"));
}

static void guard_io(lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, io_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, io_index);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  swap_in(L, LR__SM_G_IO, "_G", "io");
  /* package.loaded.io too, so require "io" finds the proxy */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "io");
  stash(L, LR__SM_G_IO, LUA_LOADED_TABLE, "io");
  lua_insert(L, -2);
  lua_setfield(L, -2, "io");
  lua_pop(L, 1);
}

/* ---- load ---------------------------------------------------------------- */
static int det_load(lua_State *L) {
  int n = lua_gettop(L);
  const char *mode = luaL_optstring(L, 3, "t");
  if (strcmp(mode, "t") != 0)
    return luaL_error(L,
                      "load of binary chunks is not available in a state machine (mode \"%s\"): "
                      "bytecode can break the sandbox; load text only (mode \"t\")",
                      mode);
  if (n < 3) lua_settop(L, n = 3);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* package.searchers[2] for text files only. */
static int text_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) return 0;
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1; /* the message */
  const char *file = lua_tostring(L, -2);
  if (luaL_loadfilex(L, file, "t") != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                      lua_tostring(L, -1));
  lua_pushstring(L, file);
  return 2;
}

static void guard_load(lua_State *L) {
  push_orig(L, "_G", "load");
  lua_pushcclosure(L, det_load, 1);
  swap_in(L, LR__SM_G_LOAD, "_G", "load");
  static const char *const WHY_FILE =
      "it reads a file that may differ between nodes; put the code in the script or require "
      "it when the script loads";
  forbid(L, LR__SM_G_LOAD, "_G", "dofile", WHY_FILE);
  forbid(L, LR__SM_G_LOAD, "_G", "loadfile", WHY_FILE);
  forbid(L, LR__SM_G_LOAD, "package", "loadlib",
         "C libraries are not available in a state machine");
  /* searchers: preload, then Lua files as text */
  lua_createtable(L, 2, 0);
  push_orig(L, "package", "searchers");
  lua_rawgeti(L, -1, 1);
  lua_rawseti(L, -3, 1);
  lua_pop(L, 1);
  lua_pushcfunction(L, text_searcher);
  lua_rawseti(L, -2, 2);
  swap_in(L, LR__SM_G_LOAD, "package", "searchers");
}

/* ---- debug and gc -------------------------------------------------------- */
static void guard_debug(lua_State *L) {
  static const char *const names[] = {
      "debug",       "gethook",      "getlocal",       "getmetatable",
      "getregistry", "getupvalue",   "getuservalue",   "sethook",
      "setlocal",    "setmetatable", "setupvalue",     "setuservalue",
      "upvalueid",   "upvaluejoin",  "setcstacklimit", NULL};
  for (int i = 0; names[i]; i++) {
    push_orig(L, "debug", names[i]);
    bool present = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (present)
      forbid(L, LR__SM_G_DEBUG, "debug", names[i],
             "it can reach past the sandbox and the instruction budget; only debug.traceback "
             "and debug.getinfo are available");
  }
}

static int det_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") != 0)
    return luaL_error(L,
                      "collectgarbage(\"%s\") is not available in a state machine: "
                      "collection points differ between replicas (finalizers, weak tables); "
                      "only collectgarbage(\"count\") is",
                      opt);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushliteral(L, "count");
  lua_call(L, 1, 1);
  return 1;
}

static void guard_gc(lua_State *L) {
  push_orig(L, "_G", "collectgarbage");
  lua_pushcclosure(L, det_collectgarbage, 1);
  swap_in(L, LR__SM_G_GC, "_G", "collectgarbage");
}

/* ---- math.random ---------------------------------------------------------- */
/* upvalues: the original math.random and math.randomseed */
static int det_random(lua_State *L) {
  struct lr__sm_ctx *c = lr__sm_ctx_of(L);
  if (!c->seeded) {
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushinteger(L, c->seed1);
    lua_pushinteger(L, c->seed2);
    lua_call(L, 2, 0);
    c->seeded = true;
  }
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, 1);
  return 1;
}

static int det_randomseed(lua_State *L) {
  if (lua_gettop(L) == 0)
    return luaL_error(L, "math.randomseed() without a seed is not available in a state machine: "
                         "it seeds from the clock; math.random is already seeded from the entry "
                         "(the same on every replica), or pass a seed");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  lr__sm_ctx_of(L)->seeded = true;
  return lua_gettop(L);
}

static void guard_random(lua_State *L) {
  push_orig(L, "math", "random");
  push_orig(L, "math", "randomseed");
  lua_pushcclosure(L, det_random, 2);
  swap_in(L, LR__SM_G_RANDOM, "math", "random");
  push_orig(L, "math", "randomseed");
  lua_pushcclosure(L, det_randomseed, 1);
  swap_in(L, LR__SM_G_RANDOM, "math", "randomseed");
}

/* ---- ordered pairs and next ---------------------------------------------- */
struct okey {
  int type; /* 0 boolean, 1 number, 2 string */
  int isint;
  lua_Integer i;
  lua_Number f;
  const char *s;
  size_t len;
  lua_Integer idx; /* pairs: where the key sits in the keys table */
};

/* 0, or -1 when the key's type has no order common to all processes. */
static int classify(lua_State *L, int idx, struct okey *k) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN:
    k->type = 0;
    k->i = lua_toboolean(L, idx);
    return 0;
  case LUA_TNUMBER:
    k->type = 1;
    k->isint = lua_isinteger(L, idx);
    if (k->isint)
      k->i = lua_tointeger(L, idx);
    else
      k->f = lua_tonumber(L, idx);
    return 0;
  case LUA_TSTRING:
    k->type = 2;
    k->s = lua_tolstring(L, idx, &k->len);
    return 0;
  default:
    return -1;
  }
}

/* float a vs integer b, exactly */
static int cmp_float_int(lua_Number f, lua_Integer i) {
  if (f >= 0x1p63) return 1;
  if (f < -0x1p63) return -1;
  lua_Number fl = floor(f);
  lua_Integer fi = (lua_Integer)fl;
  if (fi != i) return fi < i ? -1 : 1;
  return f > fl ? 1 : 0;
}

static int okey_cmp(const struct okey *a, const struct okey *b) {
  if (a->type != b->type) return a->type < b->type ? -1 : 1;
  switch (a->type) {
  case 0:
    return (int)(a->i - b->i);
  case 1:
    if (a->isint && b->isint) return a->i < b->i ? -1 : a->i > b->i;
    if (!a->isint && !b->isint) return a->f < b->f ? -1 : a->f > b->f;
    if (a->isint) return -cmp_float_int(b->f, a->i);
    return cmp_float_int(a->f, b->i);
  default: {
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    if (c != 0) return c < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
  }
  }
}

static int okey_qcmp(const void *a, const void *b) {
  return okey_cmp(a, b);
}

static int unorderable(lua_State *L, const char *fn, int idx) {
  return luaL_error(L,
                    "%s: a key of type %s has no order that is the same on every replica "
                    "(it would iterate differently on each node); use string or number keys, "
                    "or relax the guard with unsafe = { pairs = \"raw\" }",
                    fn, luaL_typename(L, idx));
}

/* upvalues: keys table, sorted okey array (userdata), position, count */
static int opairs_iter(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer pos = lua_tointeger(L, lua_upvalueindex(3));
  lua_Integer n = lua_tointeger(L, lua_upvalueindex(4));
  const struct okey *r = lua_touserdata(L, lua_upvalueindex(2));
  while (pos < n) {
    lua_rawgeti(L, lua_upvalueindex(1), r[pos].idx);
    pos++;
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 1) != LUA_TNIL) { /* skip keys removed during the loop */
      lua_pushinteger(L, pos);
      lua_replace(L, lua_upvalueindex(3));
      return 2;
    }
    lua_pop(L, 2);
  }
  lua_pushinteger(L, pos);
  lua_replace(L, lua_upvalueindex(3));
  lua_pushnil(L);
  return 1;
}

/* pairs(t): __pairs as usual; else the keys sorted once, at the start of
 * the loop (O(n log n)), then O(1) a step. */
static int det_pairs(lua_State *L) {
  luaL_checkany(L, 1);
  if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
    lua_pushvalue(L, 1);
    lua_call(L, 1, 3);
    return 3;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    n++;
  }
  lua_createtable(L, (int)n, 0);                                             /* 2: the keys */
  struct okey *r = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *r, 0); /* 3 */
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (classify(L, -1, &r[i]) != 0) return unorderable(L, "pairs", -1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 2, i + 1);
    r[i].idx = i + 1;
    i++;
  }
  qsort(r, (size_t)n, sizeof *r, okey_qcmp);
  lua_pushinteger(L, 0);
  lua_pushinteger(L, n);
  lua_pushcclosure(L, opairs_iter, 4);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* next(t, k): the smallest key greater than k, by one scan (O(n) a call, so
 * a whole loop of next() is O(n^2): use pairs). */
static int det_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  struct okey k, best, cur;
  bool have_k = !lua_isnil(L, 2), have_best = false;
  if (have_k && classify(L, 2, &k) != 0) return unorderable(L, "next", 2);
  lua_pushnil(L); /* 3: the best key so far */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (classify(L, 4, &cur) != 0) return unorderable(L, "next", 4);
    if ((!have_k || okey_cmp(&cur, &k) > 0) && (!have_best || okey_cmp(&cur, &best) < 0)) {
      best = cur;
      have_best = true;
      lua_pushvalue(L, 4);
      lua_replace(L, 3);
    }
  }
  if (!have_best) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 3);
  lua_rawget(L, 1);
  return 2;
}

static void guard_pairs(lua_State *L) {
  lua_pushcfunction(L, det_pairs);
  swap_in(L, LR__SM_G_PAIRS, "_G", "pairs");
  lua_pushcfunction(L, det_next);
  swap_in(L, LR__SM_G_PAIRS, "_G", "next");
}

/* ---- table.sort: deterministic and stable --------------------------------
 * Lua 5.4's sort randomises its pivot (clock() and time()) for arrays over
 * 100 elements whose partitions go unbalanced, so elements a comparator calls
 * equal can land in an order that differs per replica. This one is a
 * bottom-up merge sort: the same comparisons, in the same order, everywhere,
 * and stable (equal elements keep their order). Same signature and argument
 * errors as table.sort; it reads and writes the array through lua_geti and
 * lua_seti (metamethods are honoured as there), once per element each way.
 * Comparator calls run as ordinary Lua calls, so they count toward the
 * instruction budget; an error in the comparator (or comparing values `<`
 * cannot compare) propagates. An inconsistent comparator gives some
 * permutation, the same on every replica, instead of Lua's "invalid order
 * function for sorting": merging never reads out of bounds. Uses n extra
 * slots in two scratch tables (counted in memory_max). */
#define SORT_RUN 8 /* insertion-sorted runs before merging */

/* a < b for the values at stack indices ia, ib (absolute). */
static bool sort_less(lua_State *L, int ia, int ib, bool has_cmp) {
  if (!has_cmp) return lua_compare(L, ia, ib, LUA_OPLT);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, ia);
  lua_pushvalue(L, ib);
  lua_call(L, 2, 1);
  bool r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* Stable insertion sort of a[lo..hi] (table at stack index a). */
static void sort_run(lua_State *L, int a, lua_Integer lo, lua_Integer hi, bool has_cmp) {
  for (lua_Integer i = lo + 1; i <= hi; i++) {
    lua_rawgeti(L, a, i); /* x */
    int x = lua_gettop(L);
    lua_Integer j = i - 1;
    for (; j >= lo; j--) {
      lua_rawgeti(L, a, j);
      if (!sort_less(L, x, x + 1, has_cmp)) {
        lua_pop(L, 1);
        break;
      }
      lua_rawseti(L, a, j + 1); /* shift a[j] up */
    }
    lua_rawseti(L, a, j + 1); /* x */
  }
}

/* Pushes src[i], or nil once the run is over (i > last). */
static void push_head(lua_State *L, int src, lua_Integer i, lua_Integer last) {
  if (i <= last)
    lua_rawgeti(L, src, i);
  else
    lua_pushnil(L);
}

/* Merges src[lo..mid] and src[mid+1..hi] into dst; takes from the right
 * only when strictly less, which keeps the sort stable. */
static void sort_merge(lua_State *L, int src, int dst, lua_Integer lo, lua_Integer mid,
                       lua_Integer hi, bool has_cmp) {
  lua_Integer i = lo, j = mid + 1, k = lo;
  int top = lua_gettop(L);
  push_head(L, src, i, mid); /* top + 1: left head */
  push_head(L, src, j, hi);  /* top + 2: right head */
  while (i <= mid && j <= hi) {
    bool right = sort_less(L, top + 2, top + 1, has_cmp);
    int head = right ? top + 2 : top + 1;
    lua_pushvalue(L, head);
    lua_rawseti(L, dst, k++);
    if (right)
      push_head(L, src, ++j, hi);
    else
      push_head(L, src, ++i, mid);
    lua_replace(L, head);
  }
  lua_settop(L, top);
  for (; i <= mid; i++, k++) {
    lua_rawgeti(L, src, i);
    lua_rawseti(L, dst, k);
  }
  for (; j <= hi; j++, k++) {
    lua_rawgeti(L, src, j);
    lua_rawseti(L, dst, k);
  }
}

static int det_sort(lua_State *L) {
  /* the argument checks of ltablib.c's sort */
  if (lua_type(L, 1) != LUA_TTABLE) {
    bool ok = false;
    if (lua_getmetatable(L, 1)) {
      ok = lua_getfield(L, -1, "__index") != LUA_TNIL;
      ok = lua_getfield(L, -2, "__newindex") != LUA_TNIL && ok;
      ok = lua_getfield(L, -3, "__len") != LUA_TNIL && ok;
      lua_pop(L, 4);
    }
    if (!ok) luaL_checktype(L, 1, LUA_TTABLE);
  }
  lua_Integer n = luaL_len(L, 1);
  if (n <= 1) return 0;
  luaL_argcheck(L, n < INT_MAX, 1, "array too big");
  bool has_cmp = !lua_isnoneornil(L, 2);
  if (has_cmp) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaL_checkstack(L, 8, "table.sort");
  lua_createtable(L, (int)n, 0); /* 3: a */
  lua_createtable(L, (int)n, 0); /* 4: b */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    lua_rawseti(L, 3, i);
  }
  for (lua_Integer lo = 1; lo <= n; lo += SORT_RUN)
    sort_run(L, 3, lo, lo + SORT_RUN - 1 < n ? lo + SORT_RUN - 1 : n, has_cmp);
  int src = 3, dst = 4;
  for (lua_Integer w = SORT_RUN; w < n; w *= 2) {
    for (lua_Integer lo = 1; lo <= n; lo += 2 * w) {
      lua_Integer mid = lo + w - 1, hi = lo + 2 * w - 1;
      if (hi > n) hi = n;
      if (mid >= hi) { /* a lone run: copy it over */
        for (lua_Integer i = lo; i <= hi; i++) {
          lua_rawgeti(L, src, i);
          lua_rawseti(L, dst, i);
        }
      } else {
        sort_merge(L, src, dst, lo, mid, hi, has_cmp);
      }
    }
    int t = src;
    src = dst;
    dst = t;
  }
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, src, i);
    lua_seti(L, 1, i);
  }
  return 0;
}

static void install_sort(lua_State *L) {
  push_lib(L, LUA_TABLIBNAME);
  lua_pushcfunction(L, det_sort);
  lua_setfield(L, -2, "sort");
  lua_pop(L, 1);
}

/* ---- install and relax ---------------------------------------------------- */
void lr__sm_sandbox_install(lua_State *L) {
  guard_os(L);
  guard_io(L);
  guard_load(L);
  guard_debug(L);
  guard_gc(L);
  guard_random(L);
  guard_pairs(L);
  install_sort(L);
}

static void relax_group(lua_State *L, int g) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, STASH);
  lua_rawgeti(L, -1, g);
  lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -1, 1);
    const char *lib = lua_tostring(L, -1);
    if (strcmp(lib, LUA_LOADED_TABLE) == 0)
      luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    else
      push_lib(L, lib);
    lua_rawgeti(L, -3, 2);
    lua_rawgeti(L, -4, 3);
    lua_settable(L, -3);
    lua_pop(L, 3);
  }
  lua_pop(L, 2);
}

static int group_bit(const char *name) {
  for (int i = 0; group_names[i]; i++)
    if (strcmp(group_names[i], name) == 0) return 1 << i;
  return 0;
}

int lr__sm_sandbox_relax(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int off = 0;
  lua_getfield(L, idx, "unsafe");
  if (lua_isnil(L, -1)) {
    /* nothing to lift */
  } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
    off = lua_toboolean(L, -1) ? LR__SM_G_ALL : 0;
  } else if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      int bit = lua_type(L, -2) == LUA_TSTRING ? group_bit(lua_tostring(L, -2)) : 0;
      if (bit == 0)
        luaL_error(L, "unsafe: unknown guard %s (known: os, io, pairs, random, load, debug, gc)",
                   lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
      if (bit == LR__SM_G_PAIRS) {
        if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "raw") == 0)
          off |= bit;
        else if (lua_toboolean(L, -1))
          luaL_error(L, "unsafe.pairs must be \"raw\" (or false)");
      } else if (lua_toboolean(L, -1)) {
        off |= bit;
      }
      lua_pop(L, 1);
    }
  } else {
    luaL_error(L, "unsafe must be a table such as { os = true, pairs = \"raw\" } (or true)");
  }
  lua_pop(L, 1);
  for (int i = 0; group_names[i]; i++)
    if (off & (1 << i)) relax_group(L, 1 << i);
  return LR__SM_G_ALL & ~off;
}
