// Deadline-aware I/O for the front end: poll-based waits, complete writes, and a buffered writer that can emit JSON
// strings (invalid UTF-8 becomes U+FFFD, so what it writes is always valid JSON).
#ifndef WEFT_IO_H
#define WEFT_IO_H
#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define WRITER_BUFFER_BYTES 65536
#define NO_DEADLINE (-1)

struct writer {
  int fd;
  int64_t deadline;  // CLOCK_MONOTONIC milliseconds, or NO_DEADLINE
  int err;           // first errno seen; later writes are dropped
  size_t len;
  char buf[WRITER_BUFFER_BYTES];
};

int64_t now_ms(void);
int wait_ready(int fd, short events, int64_t deadline);
int write_all(int fd, const char *p, size_t n, int64_t deadline);
void writer_flush(struct writer *w);
void writer_bytes(struct writer *w, const char *p, size_t n);
void writer_str(struct writer *w, const char *s);
void writer_json_string(struct writer *w, const char *s, size_t n);

#endif
