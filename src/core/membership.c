/* Membership changes, one server at a time (thesis 4.1, 4.2, 4.4).
 *
 * "The new configuration takes effect on each server as soon as it is added
 * to that server's log" (4.1), so a truncated CONFIG entry reverts to the
 * previous configuration: the newest CONFIG entry still in the log, or the
 * configuration at the log's offset (from the snapshot). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "raft_int.h"

int raft__config_set(struct raft *r, const struct raft_config *c, raft_index index) {
  struct raft_config copy;
  int rv = raft_config_copy(c, &copy);
  if (rv != 0) {
    return rv;
  }
  struct raft_config old = r->config;
  raft_index old_index = r->config_index;
  r->config = copy;
  r->config_index = index; /* the rebuild looks at it (removed members) */
  rv = raft__progress_rebuild(r);
  if (rv != 0) {
    r->config = old; /* UNTESTED: out of memory */
    r->config_index = old_index;
    raft_config_free(&copy);
    return rv;
  }
  raft_config_free(&old);
  r->conf_dirty = true;
  if ((r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE) && !raft__is_voter(r, r->o.id)) {
    raft__become_follower(r, r->term, 0);
  }
  return 0;
}

int raft__config_apply_entry(struct raft *r, const struct raft_entry *e) {
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
static raft_index find_config(const struct raft *r, raft_index upto) {
  for (raft_index i = upto; i > r->log.offset; i--) {
    const struct raft_entry *e = raft__log_get(&r->log, i);
    if (e != NULL && e->type == RAFT_ENTRY_CONFIG) {
      return i;
    }
  }
  return 0;
}

void raft__config_on_truncate(struct raft *r, raft_index from) {
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
                    raft_index *config_index) {
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
void raft__config_on_compact(struct raft *r, raft_index upto) {
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
 * (returns to follower state) once the Cnew entry is committed". Before it
 * does, it sends the new commit index to every member, so they apply the
 * removal now rather than after the next election, and TIMEOUT_NOW to a
 * voter whose log is complete (thesis 3.10), so that election starts at
 * once instead of after an election timeout. */
void raft__config_on_commit(struct raft *r) {
  if (r->role != RAFT_LEADER || r->config_index > r->commit || raft__is_voter(r, r->o.id)) {
    return;
  }
  raft__bcast_append(r);
  raft_index last = raft__log_last(&r->log);
  for (uint32_t i = 0; i < r->n_prs; i++) {
    const struct raft__progress *p = &r->prs[i];
    if (p->id != r->o.id && p->role == RAFT_VOTER && p->match == last && raft__reach(r, p) == 1) {
      raft__send(r, RAFT_MSG_TIMEOUT_NOW, p->id, false);
      break;
    }
  }
  raft__become_follower(r, r->term, 0);
}

static int say(char *why, size_t whylen, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int say(char *why, size_t whylen, int rv, const char *fmt, ...) {
  if (why != NULL && whylen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return rv;
}

#define ULL(x) ((unsigned long long)(x))

static int build(const struct raft *r, int kind, raft_id id, const char *address,
                 struct raft_config *out) {
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
  int rv = raft_config_copy(&c, out); /* deep: addresses are borrowed */
  raft_free(c.members);
  return rv;
}

/* The core treats an address as opaque text, but it is stored in every
 * configuration entry and shown to operators: bounded, printable, and not
 * shared by two members (etcd: ErrPeerURLexist). */
static int check_address(const struct raft *r, const char *a, char *why, size_t whylen) {
  size_t len = strlen(a);
  if (len > RAFT_ADDRESS_MAX) {
    return say(why, whylen, RAFT_EADDRESS, "address is %llu bytes long, at most %d allowed",
               ULL(len), RAFT_ADDRESS_MAX);
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)a[i];
    if (ch < 0x20 || ch == 0x7f) {
      return say(why, whylen, RAFT_EADDRESS,
                 "address contains a control character (byte %u at offset %llu)", ch, ULL(i));
    }
  }
  for (uint32_t i = 0; len > 0 && i < r->config.n; i++) {
    if (strcmp(r->config.members[i].address, a) == 0) {
      return say(why, whylen, RAFT_EBADCONF, "address %s is already used by member %llu", a,
                 ULL(r->config.members[i].id));
    }
  }
  return 0;
}

static int validate(const struct raft *r, int kind, raft_id id, const char *address, char *why,
                    size_t whylen) {
  const struct raft_member *m = raft_config_get(&r->config, id);
  switch (kind) {
  case RAFT_ADD_VOTER:
  case RAFT_ADD_LEARNER:
    if (m != NULL) {
      return say(why, whylen, RAFT_EBADCONF, "node %llu is already a %s", ULL(id),
                 m->role == RAFT_VOTER ? "voter" : "learner");
    }
    return check_address(r, address ? address : "", why, whylen);
  case RAFT_PROMOTE:
    if (m == NULL) return say(why, whylen, RAFT_EBADCONF, "node %llu is not a member", ULL(id));
    if (m->role != RAFT_LEARNER) {
      return say(why, whylen, RAFT_EBADCONF, "node %llu is already a voter", ULL(id));
    }
    return 0;
  case RAFT_REMOVE:
    if (m == NULL) return say(why, whylen, RAFT_EBADCONF, "node %llu is not a member", ULL(id));
    if (m->role == RAFT_VOTER && raft__voters(r) == 1) {
      return say(why, whylen, RAFT_EBADCONF, "node %llu is the last voter", ULL(id));
    }
    return 0;
  }
  return say(why, whylen, RAFT_EINVAL, "unknown kind of membership change %d", kind);
}

/* etcd isLearnerReady, with the window made explicit: heard from within
 * election_ms, served from the log (no snapshot pending), and at most
 * max_promote_lag entries behind the leader's last index. */
static int caught_up(const struct raft *r, struct raft__progress *p, char *why, size_t whylen) {
  raft_index last = raft__log_last(&r->log);
  int reach = raft__reach(r, p);
  if (reach < 0) {
    return say(why, whylen, RAFT_ENOTREADY,
               "the new leader has not heard from learner %llu yet; retry shortly", ULL(p->id));
  }
  bool behind = p->match + r->o.max_promote_lag < last;
  if (reach == 1 && !behind && p->state != RAFT_PROGRESS_SNAPSHOT && p->match >= r->log.offset) {
    return 0;
  }
  if (!p->heard) {
    return say(why, whylen, RAFT_ENOTCAUGHTUP,
               "learner %llu is not caught up: match %llu of %llu, never heard from", ULL(p->id),
               ULL(p->match), ULL(last));
  }
  return say(why, whylen, RAFT_ENOTCAUGHTUP,
             "learner %llu is not caught up: match %llu of %llu (at most %u behind), "
             "last heard %llu ms ago (at most %u)%s",
             ULL(p->id), ULL(p->match), ULL(last), r->o.max_promote_lag, ULL(r->now - p->last_resp),
             r->o.election_ms,
             p->state == RAFT_PROGRESS_SNAPSHOT || p->match < r->log.offset ? ", needs a snapshot"
                                                                            : "");
}

static void add_id(char *list, size_t cap, size_t *used, raft_id id, const char *note) {
  if (*used + 1 >= cap) return;
  int k = snprintf(list + *used, cap - *used, "%s%llu%s", *used ? ", " : "", ULL(id), note);
  if (k > 0) *used += (size_t)k < cap - *used ? (size_t)k : cap - *used - 1;
}

/* etcd IsReadyToAddVotingMember / IsReadyToRemoveVotingMember, with
 * "started" read as "heard from within election_ms": the voters of the
 * configuration after the change that are reachable must form its quorum,
 * or the cluster stops at the first failure (or at once). */
static int quorum_safe(struct raft *r, int kind, raft_id id, char *why, size_t whylen) {
  uint32_t voters = 0, yes = 0, unknown = 0;
  char list[128] = "";
  size_t used = 0;
  for (uint32_t i = 0; i < r->config.n; i++) {
    const struct raft_member *m = &r->config.members[i];
    bool voter = m->role == RAFT_VOTER || (kind == RAFT_PROMOTE && m->id == id);
    if (!voter || (kind == RAFT_REMOVE && m->id == id)) continue;
    voters++;
    int reach = raft__reach(r, raft__progress_get(r, m->id));
    yes += reach == 1;
    unknown += reach < 0;
    if (reach == 0) {
      add_id(list, sizeof list, &used, m->id, "");
    }
  }
  if (kind == RAFT_ADD_VOTER) {
    voters++; /* not a member yet: nothing heard from it counts */
    add_id(list, sizeof list, &used, id, " (new)");
  }
  uint32_t quorum = voters / 2 + 1;
  if (yes >= quorum) {
    return 0;
  }
  if (yes + unknown >= quorum) {
    return say(why, whylen, RAFT_ENOTREADY,
               "the new leader has not heard from every voter yet; retry shortly");
  }
  return say(why, whylen, RAFT_EUNSAFE,
             "after this change %u of %u voters would be reachable, fewer than a quorum of %u "
             "(unreachable: %s); bring them back, add a learner first, or force",
             yes, voters, quorum, used ? list : "none");
}

/* Thesis 4.1: one server at a time, and "a leader ... must not begin a new
 * change until the previous one is committed"; thesis 4.1 footnote
 * (the bug fix in raft-dev): a new leader first commits an entry of its own
 * term, or two changes from different leaders could overlap. */
int raft_change_ex(struct raft *r, uint64_t now, int kind, raft_id id, const char *address,
                   unsigned flags, raft_index *index, char *why, size_t whylen) {
  raft__begin(r, now);
  if (why != NULL && whylen > 0) why[0] = '\0';
  if (r->role != RAFT_LEADER) return RAFT_ENOTLEADER;
  if (r->transfer_to != 0) return RAFT_ETRANSFER;
  if (id == 0) return say(why, whylen, RAFT_EBADCONF, "node id 0 is not valid");
  if (!raft__committed_own_term(r)) {
    return say(why, whylen, RAFT_ENOTREADY,
               "leader since %llu ms, entry %llu of its term %llu not committed yet",
               ULL(r->now - r->leader_since), ULL(r->term_start), ULL(r->term));
  }
  if (r->config_index > r->commit) {
    return say(why, whylen, RAFT_ECONFPENDING,
               "the change at index %llu is not committed yet (commit %llu)", ULL(r->config_index),
               ULL(r->commit));
  }
  int rv = validate(r, kind, id, address, why, whylen);
  if (rv != 0) return rv;
  if (!(flags & RAFT_CHANGE_FORCE)) {
    if (kind == RAFT_PROMOTE) {
      rv = caught_up(r, raft__progress_get(r, id), why, whylen);
    }
    bool voters_change = kind == RAFT_ADD_VOTER || kind == RAFT_PROMOTE ||
                         (kind == RAFT_REMOVE && raft__is_voter(r, id));
    if (rv == 0 && voters_change) {
      rv = quorum_safe(r, kind, id, why, whylen);
    }
    if (rv != 0) return rv;
  }
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

int raft_change(struct raft *r, uint64_t now, int kind, raft_id id, const char *address,
                raft_index *index) {
  return raft_change_ex(r, now, kind, id, address, 0, index, NULL, 0);
}

int raft_change_force(struct raft *r, uint64_t now, int kind, raft_id id, const char *address,
                      raft_index *index) {
  return raft_change_ex(r, now, kind, id, address, RAFT_CHANGE_FORCE, index, NULL, 0);
}
