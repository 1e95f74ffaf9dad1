/* Runner internals shared by sm.c (the runner), sandbox.c (the deterministic
 * environment) and digest.c (divergence detection). */
#ifndef LUARAFT_SM_SM_INT_H
#define LUARAFT_SM_SM_INT_H

#include <lua.h>

#include "codec/codec.h"
#include "sm/session.h"
#include "sm/sm.h"

/* ---- memory: one counting allocator per Lua state ------------------------
 * `used` counts the bytes Lua asked for. A request that would go over `max`
 * is refused; Lua then collects garbage and asks once more with the same
 * arguments. `hard` counts refusals of that second ask: a memory error that
 * reaches the script. */
/* Blocks of up to LR__SM_POOL_MAX bytes come from a pool: one free list per
 * 16-byte size class, carved from 64 KiB slabs that go back to the heap only
 * with the state (lr__sm_mem_free). Lua always passes a block's exact size,
 * so the size tells a pooled block from a heap one. `used` is unchanged by
 * the pool: it counts the bytes Lua asked for, exactly. Under AddressSanitizer
 * the pool is off, so every block is its own heap allocation, checked. */
#if defined(__SANITIZE_ADDRESS__)
#define LR__SM_POOL_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LR__SM_POOL_MAX 0
#endif
#endif
#ifndef LR__SM_POOL_MAX
#define LR__SM_POOL_MAX 256
#endif
#define LR__SM_POOL_CLASSES 16 /* 16, 32, ..., 256 bytes */
#define LR__SM_POOL_SLAB ((size_t)64 * 1024)

struct lr__sm_mem {
  size_t used, max;
  uint64_t refused, hard;
  const void *last_ptr; /* the last refused request, to spot Lua's retry */
  size_t last_nsize;
  void *free[LR__SM_POOL_CLASSES]; /* free pooled blocks, by class */
  void *slabs;                     /* every slab, linked through its first word */
  char *bump;                      /* unused rest of the newest slab */
  size_t bump_left;
};
void *lr__sm_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Frees the allocator and its slabs, once its Lua state is closed. */
void lr__sm_mem_free(struct lr__sm_mem *m);

/* ---- per-runner context, reachable from any of its Lua states and
 * coroutines through lua_getextraspace (a pointer to it) ------------------ */
struct lr__sm_ctx {
  /* math.random: the seed of the current call (apply: index, term), planted
   * lazily by the first math.random of the call */
  bool seeded;
  lua_Integer seed1, seed2;
  /* the instruction budget of the current call */
  bool budget_on, budget_hit;
  uint64_t budget, spent, chunk;
};
static inline struct lr__sm_ctx *lr__sm_ctx_of(lua_State *L) {
  return *(struct lr__sm_ctx **)lua_getextraspace(L);
}

/* ---- the sandbox (sandbox.c) ----------------------------------------------
 * Guards, each relaxed by one `unsafe` key of the state machine table. */
enum {
  LR__SM_G_OS = 1 << 0,     /* os.time, os.clock, os.getenv, ... */
  LR__SM_G_IO = 1 << 1,     /* io.* */
  LR__SM_G_PAIRS = 1 << 2,  /* pairs/next in canonical key order */
  LR__SM_G_RANDOM = 1 << 3, /* math.random seeded from the entry */
  LR__SM_G_LOAD = 1 << 4,   /* load text only; no dofile/loadfile; no C modules */
  LR__SM_G_DEBUG = 1 << 5,  /* debug.* but traceback and getinfo */
  LR__SM_G_GC = 1 << 6,     /* collectgarbage("count") only */
  LR__SM_G_ALL = (1 << 7) - 1
};
/* Installs every guard in L (after luaL_openlibs, before the script runs).
 * Raises on no memory (call it in protected mode). */
void lr__sm_sandbox_install(lua_State *L);
/* Reads the `unsafe` field of the state machine table at idx and lifts the
 * guards it names. Returns the guards still on; raises on a bad `unsafe`. */
int lr__sm_sandbox_relax(lua_State *L, int idx);

/* ---- digests (digest.c) ------------------------------------------------- */
#define LR__SM_CKPTS 8        /* checkpoints remembered (reports and own digests) */
#define LR__SM_REPORTS_MAX 64 /* reports kept per checkpoint */

struct lr__sm_digest {
  uint8_t len;
  char d[LR_SM_DIGEST_MAX];
};
struct lr__sm_report {
  uint64_t node;
  struct lr__sm_digest d;
};
struct lr__sm_ckpt {
  raft_index index; /* 0: free slot */
  bool has_own, decided;
  struct lr__sm_digest own;
  uint32_t n;
  struct lr__sm_report r[LR__SM_REPORTS_MAX];
};

struct lr__sm_digests {
  struct lr__sm_ckpt ck[LR__SM_CKPTS];
  uint64_t voter[LR__SM_REPORTS_MAX]; /* ids, from the applied configuration */
  uint32_t voters;                    /* 0: unknown, no decisions */
  bool due;                           /* an own digest waits to be proposed */
  raft_index due_index;
  uint64_t taken, matched, mismatches;
  bool diverged;
  raft_index div_index;
  struct lr__sm_digest div_mine, div_majority;
};

/* Makes a digest from digest()'s string: itself up to LR_SM_DIGEST_MAX
 * bytes, else "#" and a 64-bit hash in hex. */
void lr__sm_digest_make(struct lr__sm_digest *d, const char *p, size_t n);
/* Records this node's digest at index (and marks it due for proposing). */
void lr__sm_digest_own(struct lr__sm_digests *t, raft_index index, const struct lr__sm_digest *d);
/* Records a reported digest (an applied DIGEST entry). Returns true when it
 * made this node diverged. */
bool lr__sm_digest_report(struct lr__sm_digests *t, raft_index index, uint64_t node,
                          const struct lr__sm_digest *d);
/* Takes the voters of c (a CONFIG entry applied, or a snapshot's config). */
void lr__sm_digest_config(struct lr__sm_digests *t, const struct raft_config *c);

/* ---- the runner itself (sm.c), shared with sm_snapshot.c ------------------ */
/* The node's Lua state keeps these at fixed stack slots for the whole life of
 * the state, so the per-entry path never touches the registry. */
enum {
  S_HANDLER = 1,
  S_TABLE,
  S_APPLY,
  S_META,
  S_QUERY,
  S_DIGEST,
  S_KINDEX,
  S_KTERM,
  S_KTIME,
  S_TOP = S_KTIME
};

/* Request ids per origin node: the last one applied and a window of the 64
 * before it. A proposal travels to the leader in a message the network may
 * deliver twice, so the same envelope can be appended twice; its second copy
 * (or one older than the window) is skipped, the same way on every replica. */
struct lr__sm_origin {
  uint64_t origin, last, window; /* bit i: last - 1 - i was applied */
};
#define LR__SM_ORIGINS_MAX 4096

#define LR__SM_SNAP_MAGIC "LRSN"
#define LR__SM_SNAP_VERSION 1

struct lr_sm {
  lua_State *L;  /* own mode: the node's state; in-state mode: our thread */
  bool in_state; /* in-state mode (sm.h): the caller's table, no sandbox */
  void *outer;   /* in-state mode: the call marker this call replaced */
  struct lr_sm_options o;
  char *path, *chunk, *chunkname; /* owned copies */
  raft_index applied;
  raft_term applied_term;
  struct lr__sm_sessions sessions;
  struct lr__sm_origin *origins; /* replicated: forwarded-duplicate filter */
  uint32_t n_origins;
  bool can_snapshot;
  struct lr_buf out; /* result bytes, reused */
  /* determinism guards */
  struct lr__sm_ctx ctx;   /* seeds and budget of the current call */
  struct lr__sm_mem *mem;  /* the allocator of L */
  uint64_t budget;         /* LR_SM_BUDGET_OFF: none */
  uint32_t digest_entries; /* LR_SM_DIGEST_OFF: none */
  size_t max_result;       /* LR_SM_RESULT_OFF: none */
  int guards;
  bool halted, mem_exceeded;
  char reason[512];
  uint64_t budget_hits;
  struct lr__sm_digests dg;
  char status_buf[2][2 * LR_SM_DIGEST_MAX + 8];
};

/* Halts the runner (applies nothing more) with a reason; logs it once. */
void lr__sm_halt(struct lr_sm *sm, bool memory, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A fresh Lua state for sm with the script loaded (restore builds the new
 * state aside and swaps it in only once restore() succeeded). */
lua_State *lr__sm_new_state(struct lr_sm *sm, struct lr__sm_mem **memp, char *err, size_t errlen);
void lr__sm_close_state(lua_State *L, struct lr__sm_mem *mem);
/* Around every call into the script: the call marker, seeds and budget. */
void lr__sm_mark_enter(struct lr_sm *sm);
/* A call into the state machine starts: budget hook, deterministic seeds */
void lr__sm_call_begin(struct lr_sm *sm, lua_State *L, lua_Integer seed1, lua_Integer seed2);
void lr__sm_call_end(struct lr_sm *sm, lua_State *L, struct lr__sm_mem *mem, uint64_t hard, int rc);

/* sm.c: a loud line (halts, divergence) to the runner's log */
void lr__sm_log(struct lr_sm *sm, int level, const char *msg);
/* digest.c: take our digest at index; compare a replicated one */
void lr__sm_take_digest(struct lr_sm *sm, raft_index index);
void lr__sm_apply_digest(struct lr_sm *sm, const struct lr_env *env);

#endif
