/* Lua binding of the HTTP server (src/http):
 *   srv = core.http_listen(addr, handler, { max_body = n, max_conns = n,
 *           fd_reserve = n, header_timeout_ms = n, body_timeout_ms = n,
 *           idle_timeout_ms = n, send_timeout_ms = n, linger_ms = n,
 *           tls_cert = FILE, tls_key = FILE, tls_ca = FILE,
 *           tls_client_certs = bool })   -> srv | nil, message
 *   handler(req): req = { id, method, path, query, body, content_type,
 *                         client_id, seq, authorization, peer_cert };
 *                 it may answer at once or later:
 *   srv:respond(id, status, content_type, body [, headers]) -> true | false (gone)
 *     headers: extra header lines, each "Name: value\r\n"
 *   srv:port(), srv:stats(), srv:close()
 * The server runs on luaraft__loop(L): the default loop, or luv's after raft.use_luv().
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "http/http.h"
#include "lua/lraft.h"
#include "tls/tls.h"

#define SERVER_MT "raft.http_server"

struct lhttp {
  struct lr_http_server *srv; /* NULL once closed */
  struct lr_tls_ctx *tls;     /* HTTPS: its sessions hold references (OpenSSL
                                 counts them), so freeing it at close is safe */
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
  set_str(L, "authorization", req->authorization);
  set_str(L, "peer_cert", req->peer_cert);
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

/* opts[k]: a non-negative integer up to max, or 0 when absent. */
static lua_Integer opt_count(lua_State *L, const char *k, lua_Integer max) {
  lua_getfield(L, 3, k);
  lua_Integer v = luaL_optinteger(L, -1, 0);
  lua_pop(L, 1);
  if (v < 0 || v > max) luaL_error(L, "http_listen: %s must be between 0 and %I", k, max);
  return v;
}

/* opts[k] as a string kept alive by the options table, or NULL. */
static const char *opt_str(lua_State *L, const char *k) {
  lua_getfield(L, 3, k);
  const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);
  return v;
}

static int l_listen(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct lr_http_options o = {0};
  struct lr_tls_ctx_options t = {0};
  bool client_certs = false;
  if (lua_istable(L, 3)) {
    o.max_body = (size_t)opt_count(L, "max_body", UINT32_MAX);
    o.max_conns = (uint32_t)opt_count(L, "max_conns", 1u << 20);
    o.fd_reserve = (uint32_t)opt_count(L, "fd_reserve", 1u << 20);
    o.header_timeout_ms = (uint32_t)opt_count(L, "header_timeout_ms", 86400000);
    o.body_timeout_ms = (uint32_t)opt_count(L, "body_timeout_ms", 86400000);
    o.idle_timeout_ms = (uint32_t)opt_count(L, "idle_timeout_ms", 86400000);
    o.send_timeout_ms = (uint32_t)opt_count(L, "send_timeout_ms", 86400000);
    o.linger_ms = (uint32_t)opt_count(L, "linger_ms", 86400000);
    t.cert_file = opt_str(L, "tls_cert");
    t.key_file = opt_str(L, "tls_key");
    t.ca_file = opt_str(L, "tls_ca");
    lua_getfield(L, 3, "tls_client_certs");
    client_certs = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  struct lhttp *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->handler_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_MT);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  char err[512];
  if (t.cert_file || t.key_file) {
    if (t.cert_file == NULL || t.key_file == NULL) {
      lua_pushnil(L);
      lua_pushstring(L, "HTTPS needs both tls_cert and tls_key");
      return 2;
    }
    if (client_certs && t.ca_file == NULL) {
      lua_pushnil(L);
      lua_pushstring(L, "requiring client certificates needs tls_ca");
      return 2;
    }
    /* the CA only matters when client certificates are asked for */
    if (!client_certs) t.ca_file = NULL;
    t.verify_peer = client_certs;
    if (lr_tls_ctx_new(&t, &h->tls, err, sizeof err) != 0) {
      lua_pushnil(L);
      lua_pushstring(L, err);
      return 2;
    }
    o.tls = h->tls;
  }
  int rv = lr_http_listen(luaraft__loop(L), addr, &o, on_request, h, &h->srv, err, sizeof err);
  if (rv < 0) {
    h->srv = NULL;
    lr_tls_ctx_free(h->tls);
    h->tls = NULL;
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
  const char *headers = luaL_optstring(L, 6, NULL);
  lua_pushboolean(L,
                  lr_http_respond_h(h->srv, (uint64_t)id, status, ctype, headers, body, len) == 0);
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
  const struct {
    const char *k;
    uint64_t v;
  } f[] = {{"requests", st.requests},   {"bad_requests", st.bad_requests},
           {"too_large", st.too_large}, {"connections", st.connections},
           {"timeouts", st.timeouts},   {"rejected", st.rejected},
           {"evicted", st.evicted},     {"tls_failures", st.tls_failures},
           {"open", st.open},           {"max_conns", st.max_conns}};
  lua_createtable(L, 0, sizeof f / sizeof f[0]);
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    luaraft__set_int(L, f[i].k, f[i].v);
  return 1;
}

static int l_close(lua_State *L) {
  struct lhttp *h = luaL_checkudata(L, 1, SERVER_MT);
  if (h->srv) {
    lr_http_close(h->srv);
    h->srv = NULL;
  }
  lr_tls_ctx_free(h->tls);
  h->tls = NULL;
  if (h->handler_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->handler_ref);
    h->handler_ref = LUA_NOREF;
  }
  return 0;
}

/* core.token_equal(a, b) -> boolean, in time that depends on neither
 * content nor length: both are hashed to 32 bytes first (BLAKE2b), then
 * compared with sodium_memcmp, so a client timing 401s learns nothing about
 * how much of a token it guessed right, nor its length. */
static int l_token_equal(lua_State *L) {
  size_t na, nb;
  const char *a = luaL_checklstring(L, 1, &na);
  const char *b = luaL_checklstring(L, 2, &nb);
  if (sodium_init() < 0) return luaL_error(L, "libsodium cannot start");
  unsigned char ha[32], hb[32];
  crypto_generichash(ha, sizeof ha, (const unsigned char *)a, na, NULL, 0);
  crypto_generichash(hb, sizeof hb, (const unsigned char *)b, nb, NULL, 0);
  lua_pushboolean(L, sodium_memcmp(ha, hb, sizeof ha) == 0);
  return 1;
}

void luaraft__http_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"respond", l_respond},
                                     {"port", l_port},
                                     {"stats", l_stats},
                                     {"close", l_close},
                                     {NULL, NULL}};
  luaraft__new_metatable(L, SERVER_MT, methods, l_close);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "http_listen");
  lua_pushcfunction(L, l_token_equal);
  lua_setfield(L, -2, "token_equal");
}
