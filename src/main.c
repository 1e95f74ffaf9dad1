/* luaraft: Lua 5.4 with the `raft` module preloaded.
 *
 *   luaraft SCRIPT.lua [args]        runs a script, `arg` set as lua5.4 does
 *   luaraft run|cluster|ctl|bench|trace    the host commands (lua/raft/cli.lua)
 *   luaraft --help | --version
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/lraft.h"

int luaopen_raft(lua_State *L);

static const char usage[] =
    "usage: luaraft SCRIPT.lua [args]       run a Lua 5.4 script with `raft` loaded\n"
    "       luaraft run [flags] SCRIPT.lua   run one cluster node\n"
    "       luaraft cluster [flags] SCRIPT.lua  run a local dev cluster\n"
    "       luaraft ctl [--http ADDR] COMMAND   talk to a running node\n"
    "       luaraft bench [flags]            benchmark a running cluster\n"
    "       luaraft trace INPUT -o OUT.html  draw a simulator or cluster trace\n"
    "       luaraft --help | --version\n"
    "Run `luaraft run --help` (and cluster/ctl/bench/trace) for their flags.\n";

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "luaraft: %s\n", msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* arg[0] = script, arg[1..] = its arguments, arg[-1] = the interpreter. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script - 1, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int open_state(lua_State **out) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "luaraft: cannot create a Lua state: not enough memory\n");
    return -1;
  }
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_raft);
  lua_setfield(L, -2, "raft");
  lua_pop(L, 1);
  /* `raft` is also a global, as in the state machine example of API.md. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "raft");
  if (report(L, luaraft__pcall(L, 1, 1)) != LUA_OK) {
    lua_close(L);
    return -1;
  }
  lua_setglobal(L, "raft");
  *out = L;
  return 0;
}

static int run_script(lua_State *L, char **argv, int argc, int script) {
  create_arg_table(L, argv, argc, script);
  if (report(L, luaL_loadfile(L, argv[script])) != LUA_OK) return 1;
  int n = argc - script - 1;
  luaL_checkstack(L, n, "too many arguments");
  for (int i = script + 1; i < argc; i++)
    lua_pushstring(L, argv[i]);
  return report(L, luaraft__pcall(L, n, 0)) == LUA_OK ? 0 : 1;
}

/* Host commands live in Lua: raft.cli.main(command, args...) -> exit code. */
static int run_command(lua_State *L, char **argv, int argc) {
  create_arg_table(L, argv, argc, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "raft.cli");
  if (report(L, luaraft__pcall(L, 1, 1)) != LUA_OK) return 1;
  lua_getfield(L, -1, "main");
  for (int i = 1; i < argc; i++)
    lua_pushstring(L, argv[i]);
  if (report(L, luaraft__pcall(L, argc - 1, 1)) != LUA_OK) return 1;
  return lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0) {
    printf("luaraft %s (%s)\n", LUARAFT_VERSION, LUA_RELEASE);
    return 0;
  }
  if (argv[1][0] == '-') {
    fprintf(stderr, "luaraft: unknown option %s (try luaraft --help)\n", argv[1]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  lua_State *L;
  if (open_state(&L) != 0) return 1;
  int rc;
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0 || strcmp(cmd, "cluster") == 0 || strcmp(cmd, "ctl") == 0 ||
      strcmp(cmd, "bench") == 0 || strcmp(cmd, "trace") == 0)
    rc = run_command(L, argv, argc);
  else
    rc = run_script(L, argv, argc, 1);
  lua_close(L);
  return rc;
}
