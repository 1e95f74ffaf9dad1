/* Membership changes, one server at a time (thesis 4.1, 4.2, 4.4).
 *
 * "The new configuration takes effect on each server as soon as it is added
 * to that server's log" (4.1), so a truncated CONFIG entry reverts to the
 * previous configuration: the newest CONFIG entry still in the log, or the
 * configuration at the log's offset (from the snapshot). */
#include <string.h>

#include "raft_int.h"

int raft__config_set(struct raft *r, const struct raft_config *c, raft_index index)
{
  struct raft_config copy;
  int rv = raft_config_copy(c, &copy);
  if (rv != 0) {
    return rv;
  }
  struct raft_config old = r->config;
  r->config = copy;
  rv = raft__progress_rebuild(r);
  if (rv != 0) {
    r->config = old; /* UNTESTED: out of memory */
    raft_config_free(&copy);
    return rv;
  }
  raft_config_free(&old);
  r->config_index = index;
  r->conf_dirty = true;
  if ((r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE) &&
      !raft__is_voter(r, r->o.id)) {
    raft__become_follower(r, r->term, 0);
  }
  return 0;
}

int raft__config_apply_entry(struct raft *r, const struct raft_entry *e)
{
  struct raft_config c;
  int rv = raft_config_decode(e->data, e->len, &c);
  if (rv != 0) {
    r->n_malformed += rv == RAFT_EMALFORMED;
    return rv;
  }
  rv = raft__config_set(r, &c, e->index);
  raft_config_free(&c);
  return rv;
}

/* The newest CONFIG entry in (offset, upto], or 0. */
static raft_index find_config(const struct raft *r, raft_index upto)
{
  for (raft_index i = upto; i > r->log.offset; i--) {
    const struct raft_entry *e = raft__log_get(&r->log, i);
    if (e != NULL && e->type == RAFT_ENTRY_CONFIG) {
      return i;
    }
  }
  return 0;
}

void raft__config_on_truncate(struct raft *r, raft_index from)
{
  if (r->config_index < from) {
    return;
  }
  raft_index i = find_config(r, from - 1);
  if (i != 0) {
    raft__config_apply_entry(r, raft__log_get(&r->log, i));
  } else {
    raft__config_set(r, &r->base_config, r->base_config_index);
  }
}

int raft__config_at(const struct raft *r, raft_index index, struct raft_config *out,
                    raft_index *config_index)
{
  if (r->config_index <= index) {
    *config_index = r->config_index;
    return raft_config_copy(&r->config, out);
  }
  raft_index i = find_config(r, index);
  if (i == 0) {
    *config_index = r->base_config_index;
    return raft_config_copy(&r->base_config, out);
  }
  const struct raft_entry *e = raft__log_get(&r->log, i);
  *config_index = i;
  return raft_config_decode(e->data, e->len, out);
}

/* Before the log's offset moves to `upto`, remember the configuration in
 * effect there: it is what a truncation back to the offset reverts to. */
void raft__config_on_compact(struct raft *r, raft_index upto)
{
  struct raft_config c;
  raft_index ci;
  if (raft__config_at(r, upto, &c, &ci) != 0) {
    return; /* UNTESTED: keeps the older base, still a valid revert point */
  }
  raft_config_free(&r->base_config);
  r->base_config = c;
  r->base_config_index = ci;
}

/* Thesis 4.2.2: a leader removed from the configuration "steps down
 * (returns to follower state) once the Cnew entry is committed". */
void raft__config_on_commit(struct raft *r)
{
  if (r->role == RAFT_LEADER && r->config_index <= r->commit &&
      !raft__is_voter(r, r->o.id)) {
    raft__become_follower(r, r->term, 0);
  }
}

static int build(const struct raft *r, int kind, raft_id id, const char *address,
                 struct raft_config *out)
{
  const struct raft_member *m = raft_config_get(&r->config, id);
  struct raft_config c = {NULL, 0};
  c.members = raft_malloc((r->config.n + 1) * sizeof *c.members);
  if (c.members == NULL) {
    return RAFT_ENOMEM;
  }
  for (uint32_t i = 0; i < r->config.n; i++) {
    if (kind == RAFT_REMOVE && r->config.members[i].id == id) continue;
    c.members[c.n] = r->config.members[i];
    if (kind == RAFT_PROMOTE && c.members[c.n].id == id) c.members[c.n].role = RAFT_VOTER;
    c.n++;
  }
  if (kind == RAFT_ADD_VOTER || kind == RAFT_ADD_LEARNER) {
    c.members[c.n].id = id;
    c.members[c.n].role = kind == RAFT_ADD_VOTER ? RAFT_VOTER : RAFT_LEARNER;
    c.members[c.n].address = (char *)(address ? address : "");
    c.n++;
  }
  (void)m;
  int rv = raft_config_copy(&c, out); /* deep: addresses are borrowed */
  raft_free(c.members);
  return rv;
}

static int validate(const struct raft *r, int kind, raft_id id)
{
  const struct raft_member *m = raft_config_get(&r->config, id);
  switch (kind) {
  case RAFT_ADD_VOTER:
  case RAFT_ADD_LEARNER:
    return m == NULL ? 0 : RAFT_EBADCONF;
  case RAFT_PROMOTE:
    return m != NULL && m->role == RAFT_LEARNER ? 0 : RAFT_EBADCONF;
  case RAFT_REMOVE:
    if (m == NULL) return RAFT_EBADCONF;
    if (m->role == RAFT_VOTER && raft__voters(r) == 1) return RAFT_EBADCONF;
    return 0;
  }
  return RAFT_EINVAL;
}

/* Thesis 4.1: one server at a time, and "a leader ... must not begin a new
 * change until the previous one is committed"; thesis 4.1 footnote
 * (the bug fix in raft-dev): a new leader first commits an entry of its own
 * term, or two changes from different leaders could overlap. */
int raft_change(struct raft *r, uint64_t now, int kind, raft_id id,
                const char *address, raft_index *index)
{
  raft__begin(r, now);
  if (r->role != RAFT_LEADER) return RAFT_ENOTLEADER;
  if (r->transfer_to != 0) return RAFT_ETRANSFER;
  if (id == 0) return RAFT_EBADCONF;
  if (!raft__committed_own_term(r) || r->config_index > r->commit) {
    return RAFT_ECONFPENDING;
  }
  int rv = validate(r, kind, id);
  if (rv != 0) return rv;
  struct raft_config c;
  rv = build(r, kind, id, address, &c);
  if (rv != 0) return rv;
  uint8_t *data = NULL;
  size_t len = 0;
  struct raft_config prev;
  raft_index prev_index = r->config_index;
  rv = raft_config_encode(&c, &data, &len);
  if (rv == 0) rv = raft_config_copy(&r->config, &prev);
  if (rv == 0) {
    raft_index i = raft__log_last(&r->log) + 1;
    rv = raft__config_set(r, &c, i);
    if (rv == 0) rv = raft__append_local(r, RAFT_ENTRY_CONFIG, data, (uint32_t)len);
    if (rv != 0) {
      raft__config_set(r, &prev, prev_index); /* UNTESTED: out of memory */
    } else if (index != NULL) {
      *index = i;
    }
    raft_config_free(&prev);
    raft__maybe_commit(r);
  }
  raft_free(data);
  raft_config_free(&c);
  raft__check(r);
  return rv;
}
