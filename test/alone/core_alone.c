/* The core on its own: this program is linked with the core's shared object
 * (built with -Wl,--no-undefined) and libc, nothing else, and drives one
 * node from bootstrap to a committed proposal with its own fake host.
 * It proves the core needs no other layer to run (STYLE.md: layers the
 * build enforces). Exit 0 on success. */
#include <stdio.h>
#include <string.h>

#include "raft.h"

#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "core_alone: check failed: %s (line %d)\n", #c, __LINE__);                   \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(void) {
  struct raft_member m = {.id = 1, .role = RAFT_VOTER, .address = ""};
  struct raft_config conf = {.members = &m, .n = 1};
  struct raft_entry boot_entry;
  CHECK(raft_bootstrap_entry(&conf, &boot_entry) == 0);
  struct raft_options o = {.id = 1, .election_ms = 100, .heartbeat_ms = 10, .seed = 42};
  char err[128];
  CHECK(raft_options_check(&o, err, sizeof err) == 0);
  struct raft_boot boot = {.entries = &boot_entry, .n_entries = 1};
  struct raft *r;
  uint64_t now = 0;
  CHECK(raft_new(&o, &boot, now, &r) == 0);
  raft_entry_free_data(&boot_entry);

  raft_index want = 0, committed = 0;
  for (int step = 0; step < 1000 && committed < want + (want == 0); step++) {
    now = raft_deadline(r);
    CHECK(raft_tick(r, now) == 0);
    struct raft_status st;
    raft_status(r, &st);
    if (st.role == RAFT_LEADER && want == 0) {
      raft_index idx;
      raft_term term;
      CHECK(raft_propose(r, now, "hello", 5, 0, &idx, &term) == 0);
      want = idx;
    }
    while (raft_has_update(r)) {
      struct raft_update u;
      raft_update_take(r, &u);
      /* a host with an instant, always-durable disk */
      for (uint32_t i = 0; i < u.n_committed; i++)
        if (u.committed[i].index == want && want != 0) {
          CHECK(u.committed[i].len == 5 && memcmp(u.committed[i].data, "hello", 5) == 0);
          committed = want;
        }
      if (u.ack_index != 0) raft_persisted(r, now, u.ack_index, u.ack_term);
    }
  }
  CHECK(want != 0 && committed == want);
  raft_free_node(r);
  printf("core_alone: one node elected itself and committed entry %llu\n",
         (unsigned long long)committed);
  return 0;
}
