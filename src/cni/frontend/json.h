// A small JSON reader for the front end: just enough to scan the network config for two keys and to read the agent's
// reply. No allocation: strings decode into caller buffers, or in place.
#ifndef WEFT_JSON_H
#define WEFT_JSON_H
#include <stdbool.h>
#include <stddef.h>

#define MAX_JSON_DEPTH 64
#define MAX_KEY_BYTES 32

// A cursor over JSON text. Strings can be decoded into a separate buffer or in place (the decoded form is never longer
// than the escaped one, so writing at or behind the cursor never overtakes it).
struct json {
  char *s;
  size_t n;
  size_t i;
};

// Where a decoded string goes.
struct sink {
  char *out;   // NULL: decode and discard
  size_t cap;  // bytes out can hold
  size_t len;  // bytes decoded, including any that did not fit
};

typedef bool (*member_fn)(struct json *j, const char *key, size_t key_len, void *ctx);

void skip_ws(struct json *j);
bool peek(struct json *j, char c);
bool eat(struct json *j, char c);
bool parse_string(struct json *j, struct sink *k);
bool skip_string(struct json *j);
bool parse_int(struct json *j, int *value);
bool parse_literal(struct json *j, const char *word);
bool skip_value(struct json *j, int depth);
bool walk_object(struct json *j, member_fn on_member, void *ctx, int depth);
bool key_is(const char *key, size_t key_len, const char *want);

// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, surrogates or values past U+10FFFF), or 0.
size_t utf8_sequence(const unsigned char *p, size_t n);

// Where and why a text is not RFC 8259 JSON.
struct json_problem {
  size_t at;
  const char *what;
};

struct json_check_result {
  bool root_is_object;
  struct json_problem problem;
};

// A member of the top-level object: its key (a string) at key_at, its value from value_at (maybe after whitespace) to
// value_end. Called in document order, duplicates included.
typedef void (*top_member_fn)(const char *text, size_t key_at, size_t value_at, size_t value_end, void *ctx);

// Checks that text is one RFC 8259 JSON value (UTF-8, no byte order mark, nesting as deep as the text allows: stack needs
// one bit per level), calling on_member for each member of a top-level object. False with out->problem set otherwise.
bool json_check(const char *text, size_t n, unsigned char *stack, size_t stack_bytes, top_member_fn on_member, void *ctx,
                struct json_check_result *out);

#endif
