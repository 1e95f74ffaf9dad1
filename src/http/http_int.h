/* What the HTTP server's files share: a connection, the server, and the
 * calls the request parser (http_parse.c) makes into the connection's life
 * (http.c). */
#ifndef LUARAFT_HTTP_HTTP_INT_H
#define LUARAFT_HTTP_HTTP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <http_parser.h>

#include "http/http.h"
#include "tls/tls.h"

#define HEADER_VALUE_MAX 512
#define FIELD_MAX 32
#define REJECT_SLOTS 32u
/* While a request is being served we keep reading, so a client that goes
 * away is noticed, but only buffer up to PIPELINE_MAX bytes of what follows;
 * past that reading pauses. */
#define PIPELINE_MAX (64u << 10)

enum conn_state { CONN_READING = 1, CONN_WAITING, CONN_DONE, CONN_LINGER, CONN_CLOSING };
enum timer_kind { T_NONE, T_HEADER, T_BODY, T_IDLE, T_SEND, T_LINGER };
/* the headers we read; the order is the values[] index */
enum hdr { H_CONTENT_TYPE, H_CLIENT_ID, H_SEQ, H_AUTHORIZATION, H_EXPECT, H_COUNT, H_OTHER = -1 };
extern const char *const lr__http_hdr_names[H_COUNT];

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles; /* of tcp and timer still open; freed at 0 */
  struct lr_http_server *srv;
  http_parser parser;
  enum conn_state state;
  enum timer_kind timer_kind;
  uint32_t slot, gen;
  bool started; /* a byte of the current request arrived */
  bool keep_alive;
  bool peer_eof;   /* the client shut down its side */
  bool reading;    /* uv_read_start is in effect */
  bool shut;       /* uv_shutdown requested */
  uint32_t writes; /* uv_write requests in flight */
  uint64_t last_active;
  size_t header_bytes, lingered;
  char *url;
  size_t url_len, url_cap;
  char *body;
  size_t body_len, body_cap;
  /* header being read: its name is collected in field[] until the value
   * starts (a name may come in pieces), then classified */
  char field[FIELD_MAX];
  size_t field_len;
  bool field_long, in_value;
  int cur; /* enum hdr of the value being read */
  bool seen[H_COUNT];
  /* Problems found while the headers arrive are only acted on once they are
   * all there (on_headers_complete): by then http-parser has checked every
   * byte of them, so the answer does not depend on where TCP split the
   * request (fuzz/fuzz_http.c checks this at every byte). */
  bool too_big;      /* over max_header: the URL is no longer stored */
  int dup, long_hdr; /* the first header seen twice / over HEADER_VALUE_MAX, or H_OTHER */
  char values[H_COUNT][HEADER_VALUE_MAX];
  size_t value_len[H_COUNT];
  char *leftover; /* bytes read past a complete request, parsed after the reply */
  size_t leftover_len;
  struct lr_tls *tls;
};

struct lr_http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct lr_http_options o;
  lr_http_handler handler;
  void *data;
  struct conn **conns; /* max_conns + REJECT_SLOTS slots */
  uint32_t nslots, open;
  uint32_t open_handles; /* listener + connections not yet freed */
  bool closing;
  struct lr_http_stats stats;
  uint32_t gen_seq; /* generations are unique server-wide, not per connection */
  /* Every read lands here: what a connection keeps of it (body, pipelined
   * bytes, TLS input) is copied before the next read, so one buffer serves
   * them all and no read allocates. */
  char readbuf[64 << 10];
};

/* http_parse.c: the parser's callbacks, and the call that hands a complete
 * request to the handler */
extern const http_parser_settings lr__http_settings;
void lr__http_dispatch(struct conn *c);
/* http.c: what the parser asks of the connection */
void lr__http_reset_request(struct conn *c);
void lr__http_refuse(struct conn *c, int status, const char *code, const char *message);
void lr__http_arm(struct conn *c, enum timer_kind kind, uint32_t ms);
void lr__http_disarm(struct conn *c);
int lr__http_put(struct conn *c, const char *p, size_t n);

#endif
