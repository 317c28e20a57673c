// weft's CNI front end: the small static binary a container runtime executes as the "weft" plugin (docs/cni.md).
//
// VERSION is answered here. Every other command is forwarded to the node's weft agent over its unix socket as one JSON
// line, {"op":"cni","env":{CNI_*},"stdin":"<network config>"}, and the agent's one-line reply becomes stdout and the exit
// status. A runtime calls this on every Pod start and stop, so it must never hang and never crash on odd input: every
// buffer is fixed, every wait has a deadline, and every failure is a CNI error JSON on stdout (spec 1.1.0, "Error").
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "json.h"

#define DEFAULT_SOCKET "/run/weft/weft.sock"
#define DEFAULT_CNI_VERSION "1.1.0"
#define SUPPORTED_VERSIONS "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"

#define MAX_CONFIG_BYTES (1024 * 1024)
#define MAX_REPLY_BYTES (4 * 1024 * 1024)
#define CONNECT_TIMEOUT_MS 5000
#define DEFAULT_REPLY_TIMEOUT_MS 60000
#define MAX_REPLY_TIMEOUT_MS (60 * 60 * 1000)
#define TIMEOUT_ENV "WEFT_CNI_TIMEOUT_MS"

#define MAX_VERSION_BYTES 64
#define MAX_MESSAGE_BYTES 4096

// Well-known error codes of the CNI spec 1.1.0; 999 is "anything else".
enum {
  CNI_ERR_INVALID_ENV = 4,
  CNI_ERR_IO = 5,
  CNI_ERR_DECODE = 6,
  CNI_ERR_INVALID_CONFIG = 7,
  CNI_ERR_TRY_AGAIN_LATER = 11,
  CNI_ERR_NOT_AVAILABLE = 50,
  CNI_ERR_GENERIC = 999,
};

static const char *const FORWARDED_ENV[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};
static const char *const COMMANDS[] = {"ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))


// One byte more than each limit, to tell "exactly at the limit" from "over it".
static char config[MAX_CONFIG_BYTES + 1];
static char reply[MAX_REPLY_BYTES + 1];
static struct writer out = {.fd = STDOUT_FILENO, .deadline = NO_DEADLINE};
static struct writer request = {.fd = -1};

// What error JSON and VERSION report as their cniVersion: the config's, once it is known.
static char cni_version[MAX_VERSION_BYTES + 1] = DEFAULT_CNI_VERSION;

/* ------------------------------------------------------------------------------------------------------------- errors */

// Prints the CNI error JSON and exits 1. msg and details are plain text; they are escaped here.
__attribute__((format(printf, 3, 4))) static _Noreturn void fail(int code, const char *details, const char *fmt, ...) {
  char msg[MAX_MESSAGE_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char number[16];
  snprintf(number, sizeof number, "%d", code);
  writer_str(&out, "{\"cniVersion\":");
  writer_json_string(&out, cni_version, strlen(cni_version));
  writer_str(&out, ",\"code\":");
  writer_str(&out, number);
  writer_str(&out, ",\"msg\":");
  writer_json_string(&out, msg, strlen(msg));
  writer_str(&out, ",\"details\":");
  writer_json_string(&out, details, strlen(details));
  writer_str(&out, "}\n");
  writer_flush(&out);
  exit(1);
}

/* ------------------------------------------------------------------------------------------------- the network config */

struct config_keys {
  char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
  size_t socket_len;
  bool socket_found;
  bool socket_not_string;
  char version[MAX_VERSION_BYTES];
  size_t version_len;
  bool version_found;
};

// Records the top-level "socket" and "cniVersion" (the last of duplicates wins, as in the agent's JSON.parse).
static void on_config_member(const char *text, size_t key_at, size_t value_at, size_t value_end, void *ctx) {
  struct config_keys *c = ctx;
  char key[MAX_KEY_BYTES];
  struct sink k = {.out = key, .cap = sizeof key};
  struct json j = {.s = (char *)text, .n = value_end, .i = key_at};
  if (!parse_string(&j, &k)) return;
  bool is_socket = key_is(key, k.len, "socket"), is_version = key_is(key, k.len, "cniVersion");
  if (!(is_socket || is_version)) return;
  j.i = value_at;
  if (!peek(&j, '"')) {
    if (is_socket) c->socket_found = c->socket_not_string = true;
    if (is_version) c->version_found = false;
    return;
  }
  struct sink v = {.out = is_socket ? c->socket : c->version, .cap = is_socket ? sizeof c->socket : sizeof c->version};
  if (!parse_string(&j, &v)) return;
  if (is_socket) {
    c->socket_len = v.len;
    c->socket_found = true;
    c->socket_not_string = false;
  } else {
    c->version_len = v.len;
    c->version_found = true;
  }
}

// Reads the whole config as RFC 8259 JSON (json_check): false, with why in *parsed, when it is not. Its top-level
// "socket" and "cniVersion" are what the front end needs; deciding whether the rest is a valid network config is the
// agent's job. Error replies carry the config's cniVersion from here on, even when the text goes wrong after it (or is
// cut at the size limit): it only labels the error.
static bool read_config_keys(size_t len, struct config_keys *keys, struct json_check_result *parsed) {
  static unsigned char nesting[MAX_CONFIG_BYTES / 8 + 1];
  bool valid = json_check(config, len, nesting, sizeof nesting, on_config_member, keys, parsed);
  if (keys->version_found && keys->version_len > 0 && keys->version_len <= MAX_VERSION_BYTES) {
    memcpy(cni_version, keys->version, keys->version_len);
    cni_version[keys->version_len] = 0;
  }
  return valid;
}

// The agent's socket path from the config; the default only when the config has no "socket" at all. Checked only for
// commands that need the agent.
static const char *socket_path(struct config_keys *keys) {
  static const char *const where = "the network config's \"socket\" key names the weft agent's unix socket";
  if (keys->socket_not_string) fail(CNI_ERR_INVALID_CONFIG, where, "\"socket\" in the network config must be a string");
  if (!keys->socket_found) return DEFAULT_SOCKET;
  if (keys->socket_len == 0) fail(CNI_ERR_INVALID_CONFIG, where, "\"socket\" in the network config is empty");
  if (keys->socket_len >= sizeof keys->socket)
    fail(CNI_ERR_INVALID_CONFIG, where, "\"socket\" in the network config is %zu bytes long; a unix socket path has at most %zu",
         keys->socket_len, sizeof keys->socket - 1);
  if (memchr(keys->socket, 0, keys->socket_len))
    fail(CNI_ERR_INVALID_CONFIG, where, "\"socket\" in the network config contains a NUL character");
  keys->socket[keys->socket_len] = 0;
  return keys->socket;
}

// Reads all of stdin into config: 0, or an errno. *oversized when there is more than MAX_CONFIG_BYTES.
static int read_config(size_t *len, bool *oversized) {
  *len = 0;
  *oversized = false;
  while (*len < sizeof config) {
    ssize_t r = read(STDIN_FILENO, config + *len, sizeof config - *len);
    if (r == 0) return 0;
    if (r > 0) {
      *len += (size_t)r;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_ready(STDIN_FILENO, POLLIN, NO_DEADLINE) < 0) return errno;
    } else if (errno != EINTR) {
      return errno;
    }
  }
  *oversized = true;
  *len = MAX_CONFIG_BYTES;
  return 0;
}

/* ---------------------------------------------------------------------------------------------------- the environment */

static bool is_command(const char *command) {
  for (size_t i = 0; i < COUNT(COMMANDS); i++)
    if (strcmp(command, COMMANDS[i]) == 0) return true;
  return false;
}

// The agent gets the variables as JSON strings: a value that is not UTF-8 could only reach it altered (an interface or a
// path other than the runtime's), so it is refused here.
static void check_forwarded_env(void) {
  for (size_t i = 0; i < COUNT(FORWARDED_ENV); i++) {
    const unsigned char *value = (const unsigned char *)getenv(FORWARDED_ENV[i]);
    if (!value) continue;
    for (size_t at = 0, n = strlen((const char *)value); at < n;) {
      size_t len = utf8_sequence(value + at, n - at);
      if (len == 0)
        fail(CNI_ERR_INVALID_ENV, "the CNI_* variables weft reads must be UTF-8 text", "%s is not valid UTF-8 (byte %zu)",
             FORWARDED_ENV[i], at);
      at += len;
    }
  }
}

static int reply_timeout_ms(void) {
  const char *v = getenv(TIMEOUT_ENV);
  if (!v) return DEFAULT_REPLY_TIMEOUT_MS;
  long ms = 0;
  const char *p = v;
  for (; *p >= '0' && *p <= '9' && ms <= MAX_REPLY_TIMEOUT_MS; p++) ms = ms * 10 + (*p - '0');
  if (p == v || *p != 0 || ms < 1 || ms > MAX_REPLY_TIMEOUT_MS)
    fail(CNI_ERR_INVALID_ENV, "leave it unset for the default of 60000 ms", "%s=%s is not a whole number of milliseconds from 1 to %d",
         TIMEOUT_ENV, v, MAX_REPLY_TIMEOUT_MS);
  return (int)ms;
}

/* ------------------------------------------------------------------------------------------------------- the agent */

struct call {
  const char *command;
  const char *socket;
  int timeout_ms;
};

// Whatever keeps the agent from answering: the runtime should retry (11) — except for STATUS, whose question this answers:
// the plugin cannot serve ADD right now (50).
__attribute__((format(printf, 2, 3))) static _Noreturn void agent_unavailable(const struct call *c, const char *fmt, ...) {
  char reason[MAX_MESSAGE_BYTES], details[MAX_MESSAGE_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  snprintf(details, sizeof details, "is the weft agent running on this node? `weft status --socket %s` asks it", c->socket);
  bool status = strcmp(c->command, "STATUS") == 0;
  fail(status ? CNI_ERR_NOT_AVAILABLE : CNI_ERR_TRY_AGAIN_LATER, details, "%s%s", status ? "weft is not available: " : "", reason);
}

static int connect_agent(const struct call *c) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) agent_unavailable(c, "cannot create a unix socket: %s", strerror(errno));
  // A unix stream connect blocks only while the agent's listen backlog is full; SO_SNDTIMEO bounds that wait.
  int ms = c->timeout_ms < CONNECT_TIMEOUT_MS ? c->timeout_ms : CONNECT_TIMEOUT_MS;
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, c->socket, strlen(c->socket));
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    agent_unavailable(c, "cannot set a timeout on the socket: %s", strerror(errno));
  while (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EISCONN) {
    if (errno == EAGAIN) agent_unavailable(c, "the weft agent at %s did not accept the connection within %d ms", c->socket, ms);
    if (errno != EINTR) agent_unavailable(c, "cannot reach the weft agent at %s: %s", c->socket, strerror(errno));
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    agent_unavailable(c, "cannot make the socket non-blocking: %s", strerror(errno));
  return fd;
}

// The request line. No shutdown(SHUT_WR) after it: the agent's server closes its side as soon as ours ends, before it
// could reply; it reads up to the newline instead.
static void send_request(const struct call *c, int fd, size_t config_len, int64_t deadline) {
  request.fd = fd;
  request.deadline = deadline;
  writer_str(&request, "{\"op\":\"cni\",\"env\":{");
  bool first = true;
  for (size_t i = 0; i < COUNT(FORWARDED_ENV); i++) {
    const char *value = getenv(FORWARDED_ENV[i]);
    if (!value) continue;
    writer_str(&request, first ? "\"" : ",\"");
    writer_str(&request, FORWARDED_ENV[i]);
    writer_str(&request, "\":");
    writer_json_string(&request, value, strlen(value));
    first = false;
  }
  writer_str(&request, "},\"stdin\":");
  writer_json_string(&request, config, config_len);
  writer_str(&request, "}\n");
  writer_flush(&request);
  // A refused request can be closed before it is read in full (EPIPE/ECONNRESET); the reply may still say why.
  if (request.err == ETIMEDOUT) agent_unavailable(c, "the weft agent at %s did not read the request within %d ms", c->socket, c->timeout_ms);
  if (request.err != 0 && request.err != EPIPE && request.err != ECONNRESET)
    agent_unavailable(c, "cannot send the request to the weft agent at %s: %s", c->socket, strerror(request.err));
}

// Reads the reply line (up to its newline, or the end of the stream) into reply; returns its length.
static size_t read_reply(const struct call *c, int fd, int64_t deadline) {
  size_t len = 0;
  while (len < MAX_REPLY_BYTES) {
    ssize_t r = read(fd, reply + len, MAX_REPLY_BYTES - len);
    if (r > 0) {
      char *newline = memchr(reply + len, '\n', (size_t)r);
      len += (size_t)r;
      if (newline) return (size_t)(newline - reply);
    } else if (r == 0 || errno == ECONNRESET) {
      if (len == 0) agent_unavailable(c, "the weft agent at %s closed the connection without a reply", c->socket);
      return len;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_ready(fd, POLLIN, deadline) < 0) {
        if (errno == ETIMEDOUT) agent_unavailable(c, "the weft agent at %s did not answer within %d ms", c->socket, c->timeout_ms);
        agent_unavailable(c, "cannot read the weft agent's reply: %s", strerror(errno));
      }
    } else if (errno != EINTR) {
      agent_unavailable(c, "cannot read the reply of the weft agent at %s: %s", c->socket, strerror(errno));
    }
  }
  fail(CNI_ERR_IO, "the agent's reply is limited to 4 MiB", "the reply of the weft agent at %s is larger than %d bytes", c->socket,
       MAX_REPLY_BYTES);
}

struct agent_reply {
  bool ok, ok_found, result_found, code_found, result_code_found;
  int code, result_code;
  const char *error, *output;
  size_t error_len, output_len;
};

// Decodes a string value in place and records where it is.
static bool string_in_place(struct json *j, const char **at, size_t *len) {
  if (!peek(j, '"')) return false;
  struct sink k = {.out = j->s + j->i, .cap = SIZE_MAX};
  if (!parse_string(j, &k)) return false;
  *at = k.out;
  *len = k.len;
  return true;
}

static bool on_result_member(struct json *j, const char *key, size_t key_len, void *ctx) {
  struct agent_reply *r = ctx;
  if (key_is(key, key_len, "code")) return (r->result_code_found = parse_int(j, &r->result_code));
  if (key_is(key, key_len, "output")) return string_in_place(j, &r->output, &r->output_len);
  return skip_value(j, 2);
}

static bool on_reply_member(struct json *j, const char *key, size_t key_len, void *ctx) {
  struct agent_reply *r = ctx;
  if (key_is(key, key_len, "ok")) {
    r->ok = parse_literal(j, "true");
    return (r->ok_found = r->ok || parse_literal(j, "false"));
  }
  if (key_is(key, key_len, "result") && peek(j, '{')) return (r->result_found = walk_object(j, on_result_member, r, 1));
  if (key_is(key, key_len, "code")) return (r->code_found = parse_int(j, &r->code));
  if (key_is(key, key_len, "error")) return string_in_place(j, &r->error, &r->error_len);
  return skip_value(j, 1);
}

// Turns the reply into stdout and the exit status (see the top of this file).
static _Noreturn void finish(const struct call *c, size_t reply_len) {
  char details[MAX_MESSAGE_BYTES];
  struct agent_reply r = {.output = "", .error = ""};
  struct json j = {.s = reply, .n = reply_len};
  snprintf(details, sizeof details, "reported by the weft agent at %s", c->socket);
  if (!walk_object(&j, on_reply_member, &r, 0) || !r.ok_found)
    fail(CNI_ERR_DECODE, details, "the weft agent's reply is not the expected JSON");
  if (!r.ok) {
    int code = r.code_found && r.code > 0 ? r.code : CNI_ERR_GENERIC;
    if (r.error_len == 0) fail(code, details, "the weft agent failed without saying why");
    fail(code, details, "%.*s", (int)r.error_len, r.error);
  }
  if (!r.result_found || !r.result_code_found)
    fail(CNI_ERR_DECODE, details, "the weft agent's reply has no result code");
  if (r.result_code != 0 && r.output_len == 0)
    fail(CNI_ERR_GENERIC, details, "the weft agent reported a failure (code %d) without an error", r.result_code);
  if (write_all(STDOUT_FILENO, r.output, r.output_len, NO_DEADLINE) < 0) exit(1);
  exit(r.result_code == 0 ? 0 : 1);
}

/* --------------------------------------------------------------------------------------------------------------- main */

static _Noreturn void print_version(void) {
  writer_str(&out, "{\"cniVersion\":");
  writer_json_string(&out, cni_version, strlen(cni_version));
  writer_str(&out, ",\"supportedVersions\":" SUPPORTED_VERSIONS "}\n");
  writer_flush(&out);
  exit(out.err == 0 ? 0 : 1);
}

int main(void) {
  // A closed socket or stdout must surface as EPIPE from write, not as a silent death by signal.
  signal(SIGPIPE, SIG_IGN);
  const char *command = getenv("CNI_COMMAND");
  bool known = command && is_command(command);

  // Read the config before judging the command so that even that error carries the config's cniVersion; but a person
  // who runs the binary by hand with no CNI_COMMAND should get the error, not a terminal waiting for input.
  size_t config_len = 0;
  bool oversized = false;
  int read_error = known || !isatty(STDIN_FILENO) ? read_config(&config_len, &oversized) : 0;
  struct config_keys keys = {0};
  struct json_check_result parsed = {0};
  bool readable = read_error == 0 && read_config_keys(config_len, &keys, &parsed) && !oversized;
  if (read_error) fail(CNI_ERR_IO, "the runtime passes the network config on stdin", "cannot read the network config from stdin: %s", strerror(read_error));
  if (oversized) fail(CNI_ERR_INVALID_CONFIG, "weft accepts at most 1 MiB of network config", "the network config on stdin is larger than %d bytes", MAX_CONFIG_BYTES);

  static const char *const commands = "CNI_COMMAND must be one of ADD, DEL, CHECK, GC, STATUS, VERSION";
  if (!command) fail(CNI_ERR_INVALID_ENV, commands, "CNI_COMMAND is not set");
  if (!known) fail(CNI_ERR_INVALID_ENV, commands, "CNI_COMMAND=%s is not a CNI command", command);
  // VERSION needs nothing from the config (as the reference plugins' skel, it answers whatever stdin holds).
  if (strcmp(command, "VERSION") == 0) print_version();

  static const char *const as_json = "the runtime passes the network config on stdin as JSON text (RFC 8259)";
  if (!readable) fail(CNI_ERR_DECODE, as_json, "the network config on stdin is not valid JSON: %s at byte %zu", parsed.problem.what, parsed.problem.at);
  if (!parsed.root_is_object) fail(CNI_ERR_DECODE, as_json, "the network config on stdin must be a JSON object");
  check_forwarded_env();

  struct call c = {.command = command, .timeout_ms = reply_timeout_ms()};
  c.socket = socket_path(&keys);
  int fd = connect_agent(&c);
  int64_t deadline = now_ms() + c.timeout_ms;
  send_request(&c, fd, config_len, deadline);
  finish(&c, read_reply(&c, fd, deadline));
}
