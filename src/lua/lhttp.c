/* Lua binding of the HTTP server (src/http):
 *   srv = core.http_listen(addr, handler, { max_body = n, max_conns = n })
 *   handler(req): req = { id, method, path, query, body, content_type,
 *                         client_id, seq }; it may answer at once or later:
 *   srv:respond(id, status, content_type, body) -> true | false (gone)
 *   srv:port(), srv:stats(), srv:close()
 * The server runs on luaraft__loop(L): the default loop, or luv's after raft.use_luv().
 */
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "lua/lraft.h"

#define SERVER_MT "raft.http_server"

struct lhttp {
  struct lr_http_server *srv; /* NULL once closed */
  lua_State *L;               /* the main thread */
  int handler_ref;
};

static void set_str(lua_State *L, const char *k, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void on_request(void *data, const struct lr_http_request *req) {
  struct lhttp *h = data;
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->handler_ref);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)req->id);
  lua_setfield(L, -2, "id");
  set_str(L, "method", req->method);
  set_str(L, "path", req->path);
  set_str(L, "query", req->query);
  lua_pushlstring(L, req->body, req->body_len);
  lua_setfield(L, -2, "body");
  set_str(L, "content_type", req->content_type);
  set_str(L, "client_id", req->client_id);
  set_str(L, "seq", req->seq);
  if (luaraft__pcall(L, 1, 0) != LUA_OK) {
    fprintf(stderr, "luaraft: HTTP handler failed: %s\n", lua_tostring(L, -1));
    static const char body[] = "{\"error\":\"internal\",\"message\":\"handler failed\"}";
    if (h->srv) lr_http_respond(h->srv, req->id, 500, "application/json", body, sizeof body - 1);
  }
  lua_settop(L, top);
}

static struct lhttp *check_open(lua_State *L) {
  struct lhttp *h = luaL_checkudata(L, 1, SERVER_MT);
  if (h->srv == NULL) luaL_error(L, "HTTP server is closed");
  return h;
}

static int l_listen(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct lr_http_options o = {0};
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "max_body");
    o.max_body = (size_t)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 3, "max_conns");
    o.max_conns = (uint32_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 2);
  }
  struct lhttp *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->handler_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_MT);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  char err[256];
  int rv = lr_http_listen(luaraft__loop(L), addr, &o, on_request, h, &h->srv, err, sizeof err);
  if (rv < 0) {
    h->srv = NULL;
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushvalue(L, 2);
  h->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_respond(lua_State *L) {
  struct lhttp *h = check_open(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  int status = (int)luaL_checkinteger(L, 3);
  const char *ctype = luaL_optstring(L, 4, "application/json");
  size_t len = 0;
  const char *body = luaL_optlstring(L, 5, "", &len);
  lua_pushboolean(L, lr_http_respond(h->srv, (uint64_t)id, status, ctype, body, len) == 0);
  return 1;
}

static int l_port(lua_State *L) {
  struct lhttp *h = check_open(L);
  lua_pushinteger(L, lr_http_port(h->srv));
  return 1;
}

static int l_stats(lua_State *L) {
  struct lhttp *h = check_open(L);
  struct lr_http_stats st;
  lr_http_stats(h->srv, &st);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)st.requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)st.bad_requests);
  lua_setfield(L, -2, "bad_requests");
  lua_pushinteger(L, (lua_Integer)st.too_large);
  lua_setfield(L, -2, "too_large");
  lua_pushinteger(L, (lua_Integer)st.connections);
  lua_setfield(L, -2, "connections");
  return 1;
}

static int l_close(lua_State *L) {
  struct lhttp *h = luaL_checkudata(L, 1, SERVER_MT);
  if (h->srv) {
    lr_http_close(h->srv);
    h->srv = NULL;
  }
  if (h->handler_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->handler_ref);
    h->handler_ref = LUA_NOREF;
  }
  return 0;
}

void luaraft__http_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"respond", l_respond}, {"port", l_port}, {"stats", l_stats}, {"close", l_close},
      {NULL, NULL}};
  if (luaL_newmetatable(L, SERVER_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "http_listen");
}
