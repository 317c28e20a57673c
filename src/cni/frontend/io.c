// The front end's I/O (see io.h).
#define _GNU_SOURCE
#include "io.h"

#include "json.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Waits until fd is ready for `events`: 0, or -1 with errno (ETIMEDOUT once the deadline has passed).
int wait_ready(int fd, short events, int64_t deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline != NO_DEADLINE) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
      }
      timeout = left > INT_MAX ? INT_MAX : (int)left;
    }
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, timeout);
    if (r > 0) return 0;  // readiness includes POLLERR/POLLHUP: the read or write that follows reports them
    if (r < 0 && errno != EINTR) return -1;
  }
}

int write_all(int fd, const char *p, size_t n, int64_t deadline) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_ready(fd, POLLOUT, deadline) < 0) return -1;
    } else {
      if (w == 0) errno = EIO;
      return -1;
    }
  }
  return 0;
}

void writer_flush(struct writer *w) {
  if (w->err == 0 && w->len > 0 && write_all(w->fd, w->buf, w->len, w->deadline) < 0) w->err = errno;
  w->len = 0;
}

void writer_bytes(struct writer *w, const char *p, size_t n) {
  while (n > 0 && w->err == 0) {
    if (w->len == sizeof w->buf) writer_flush(w);
    size_t room = sizeof w->buf - w->len;
    size_t take = n < room ? n : room;
    memcpy(w->buf + w->len, p, take);
    w->len += take;
    p += take;
    n -= take;
  }
}

void writer_str(struct writer *w, const char *s) { writer_bytes(w, s, strlen(s)); }

// Writes s as a JSON string. Bytes that are not UTF-8 become U+FFFD here rather than in the agent's decoder, so what goes
// on the wire is always valid JSON text, and the only raw newline is the one that ends the request.
void writer_json_string(struct writer *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  writer_bytes(w, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      writer_bytes(w, e, 2);
      i++;
    } else if (c < 0x20) {
      const char *short_form = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
      char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF], 0};
      writer_str(w, short_form ? short_form : e);
      i++;
    } else {
      size_t len = utf8_sequence(p + i, n - i);
      if (len == 0) {
        writer_str(w, "\\ufffd");
        i++;
      } else {
        writer_bytes(w, s + i, len);
        i += len;
      }
    }
  }
  writer_bytes(w, "\"", 1);
}

