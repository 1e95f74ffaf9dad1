#include "lib/tmpfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tmp_file_write(const char *suffix, const char *content, char *path, size_t n) {
  const char *dir = getenv("TMPDIR");
  if (dir == NULL || *dir == '\0') dir = "/tmp";
  int len = snprintf(path, n, "%s/luaraft-test-XXXXXX%s", dir, suffix);
  if (len < 0 || (size_t)len >= n) return -1;
  int fd = mkstemps(path, (int)strlen(suffix));
  if (fd < 0) return -1;
  size_t left = strlen(content);
  const char *p = content;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w <= 0) {
      close(fd);
      unlink(path);
      return -1;
    }
    p += w;
    left -= (size_t)w;
  }
  return close(fd);
}
