/* Events for the binding. They are queued and delivered at the end of the
 * loop callback that produced them, or by a zero timer when a call from Lua
 * produced them, so the binding never sees an event from inside one of its
 * own calls (a coroutine cannot be resumed while it is still running). */
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"

void lr__event_push(struct lr_node *n, const struct lr_event *ev) {
  struct lr__event_q *q = &n->events;
  if (n->stopping) return;
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    struct lr_event *e = realloc(q->ev, cap * sizeof *e);
    if (e == NULL) return; /* UNTESTED: out of memory drops the event */
    q->ev = e;
    char **b = realloc(q->bufs, cap * sizeof *b);
    if (b == NULL) return; /* UNTESTED: */
    q->bufs = b;
    q->cap = cap;
  }
  q->ev[q->n] = *ev;
  q->bufs[q->n] = NULL;
  if (ev->has_data) {
    char *copy = malloc(ev->len ? ev->len : 1);
    if (copy == NULL) return; /* UNTESTED: */
    memcpy(copy, ev->data, ev->len);
    q->bufs[q->n] = copy;
    q->ev[q->n].data = copy;
  }
  q->n++;
  if (n->in_callback == 0 && n->flush.data != NULL && !uv_is_active((uv_handle_t *)&n->flush))
    uv_timer_start(&n->flush, lr__events_flush_cb, 0, 0);
}

void lr__events_flush(struct lr_node *n) {
  struct lr__event_q *q = &n->events;
  /* Delivering may queue more (a handler calls into the node): take the
   * batch first, deliver it, and loop. */
  while (q->n > 0 && !n->stopping) {
    struct lr__event_q batch = *q;
    memset(q, 0, sizeof *q);
    for (size_t i = 0; i < batch.n; i++) {
      if (!n->stopping) n->cb(n->cbdata, &batch.ev[i]);
      free(batch.bufs[i]);
    }
    free(batch.ev);
    free(batch.bufs);
  }
}

void lr__events_flush_cb(uv_timer_t *t) {
  struct lr_node *n = t->data;
  lr__callback_enter(n);
  lr__callback_leave(n);
}

void lr__events_free(struct lr_node *n) {
  struct lr__event_q *q = &n->events;
  for (size_t i = 0; i < q->n; i++)
    free(q->bufs[i]);
  free(q->ev);
  free(q->bufs);
  memset(q, 0, sizeof *q);
}

void lr__callback_enter(struct lr_node *n) {
  n->in_callback++;
}

/* The end of a loop callback: deliver what it queued. The node may be
 * stopped by a handler; lr_node_stop defers the free to the close
 * callbacks, so n stays valid here. */
void lr__callback_leave(struct lr_node *n) {
  if (n->in_callback == 1) lr__events_flush(n);
  n->in_callback--;
}
