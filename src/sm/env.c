/* The entry envelope (see sm.h for the layout). */
#include "sm/bytes.h"
#include "sm/sm.h"

int lr_env_encode_header(const struct lr_env *e, struct lr_buf *out) {
  int has_session = e->client != NULL;
  if (has_session && e->client_len > LR_ENV_CLIENT_MAX) return -1;
  if (e->cmd_len > UINT32_MAX) return -1;
  if (lr_buf_reserve(out, LR_ENV_HEADER_MAX) != 0) return -1;
  char *p = out->data + out->len, *start = p;
  lr__put8(p, LR_ENV_VERSION);
  lr__put8(p + 1, (uint8_t)((has_session ? 1 : 0) | (e->kind == LR_ENV_DIGEST ? 2 : 0)));
  lr__put64(p + 2, e->origin);
  lr__put64(p + 10, e->req);
  lr__put64(p + 18, e->time_ms);
  p += 26;
  if (has_session) {
    lr__put16(p, (uint16_t)e->client_len);
    memcpy(p + 2, e->client, e->client_len);
    p += 2 + e->client_len;
    lr__put64(p, e->seq);
    p += 8;
  }
  lr__put32(p, (uint32_t)e->cmd_len);
  p += 4;
  out->len += (size_t)(p - start);
  return 0;
}

int lr_env_encode(const struct lr_env *e, struct lr_buf *out) {
  size_t len = out->len;
  if (lr_env_encode_header(e, out) != 0) return -1;
  if (lr_buf_append(out, e->cmd, e->cmd_len) != 0) {
    out->len = len;
    return -1;
  }
  return 0;
}

int lr_env_decode(const void *p, size_t n, struct lr_env *e) {
  struct lr__rd r;
  lr__rd_init(&r, p, n);
  memset(e, 0, sizeof *e);
  if (lr__getn(&r, 1) != LR_ENV_VERSION) return -1;
  uint64_t flags = lr__getn(&r, 1);
  if ((flags & ~(uint64_t)3) || flags == 3) return -1; /* a digest has no session */
  e->kind = (flags & 2) ? LR_ENV_DIGEST : LR_ENV_COMMAND;
  e->origin = lr__getn(&r, 8);
  e->req = lr__getn(&r, 8);
  e->time_ms = lr__getn(&r, 8);
  if (flags & 1) {
    e->client_len = (size_t)lr__getn(&r, 2);
    if (e->client_len > LR_ENV_CLIENT_MAX) return -1;
    e->client = lr__get(&r, e->client_len);
    e->seq = lr__getn(&r, 8);
    if (e->client == NULL || e->seq == 0) return -1;
  }
  e->cmd_len = (size_t)lr__getn(&r, 4);
  e->cmd = lr__get(&r, e->cmd_len);
  if (r.bad || r.n != 0) return -1;
  return 0;
}
