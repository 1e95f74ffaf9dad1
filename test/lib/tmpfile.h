/* Temporary files for tests: unique names under $TMPDIR (default /tmp),
 * never a fixed path, so two runs of a test never meet. */
#ifndef LUARAFT_TEST_TMPFILE_H
#define LUARAFT_TEST_TMPFILE_H

#include <stddef.h>

/* Creates a new file named like "<TMPDIR>/luaraft-test-XXXXXX<suffix>"
 * holding `content`, writes its name to path (size n) and returns 0, or -1. */
int tmp_file_write(const char *suffix, const char *content, char *path, size_t n);

#endif
