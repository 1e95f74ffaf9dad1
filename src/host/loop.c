/* The clocks and the log line format of the host. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "host/host.h"

uint64_t lr_now_ms(void) {
  return uv_hrtime() / 1000000u;
}

uint64_t lr_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int lr_log_level_parse(const char *name) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

const char *lr_log_level_name(int level) {
  return level >= 0 && level < 4 ? level_names[level] : "?";
}

void lr_log(int threshold, raft_id id, int level, const char *fmt, ...) {
  static const char *const tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
  if (level > threshold || level < 0 || level > RAFT_LOG_DEBUG) return;
  char line[1024], stamp[32];
  uint64_t ms = lr_wall_ms();
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* One write per line so lines of concurrent nodes do not interleave. */
  fprintf(stderr, "%s.%03uZ %s [%llu] %s\n", stamp, (unsigned)(ms % 1000), tags[level],
          (unsigned long long)id, line);
  fflush(stderr);
}
