// The front end's reading of the network config (see json.h, json_check): the whole text is checked against RFC 8259
// before any of it is used, at any depth of nesting (one bit of stack per level, no recursion), and the members of the
// top-level object are reported as they end, so a key after a deep value is found like any other.
#include <string.h>

#include "json.h"

enum { IN_ARRAY = 0, IN_OBJECT = 1 };

struct checker {
  const unsigned char *s;
  size_t n, i;
  unsigned char *stack;  // one bit per open container: IN_OBJECT or IN_ARRAY
  size_t stack_bits, depth;
  struct json_problem *problem;
};

static bool problem(struct checker *c, const char *what) {
  c->problem->at = c->i;
  c->problem->what = what;
  return false;
}

static void skip_space(struct checker *c) {
  while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r')) c->i++;
}

static bool push(struct checker *c, int kind) {
  if (c->depth == c->stack_bits) return problem(c, "nesting deeper than the config is long");
  size_t byte = c->depth / 8, bit = c->depth % 8;
  c->stack[byte] = (unsigned char)((c->stack[byte] & ~(1u << bit)) | (unsigned)kind << bit);
  c->depth++;
  return true;
}

static int top(const struct checker *c) { return c->stack[(c->depth - 1) / 8] >> ((c->depth - 1) % 8) & 1; }

static bool is_hex(unsigned char b) { return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }
static bool is_digit(unsigned char b) { return b >= '0' && b <= '9'; }

static bool check_string(struct checker *c) {
  c->i++;  // the opening quote
  while (c->i < c->n) {
    unsigned char b = c->s[c->i];
    if (b == '"') {
      c->i++;
      return true;
    }
    if (b == 0) return problem(c, "a NUL byte");
    if (b < 0x20) return problem(c, "a control character inside a string (it must be escaped)");
    if (b == '\\') {
      if (c->i + 1 >= c->n) break;
      unsigned char e = c->s[c->i + 1];
      if (e == 'u') {
        for (size_t k = 2; k < 6; k++)
          if (c->i + k >= c->n || !is_hex(c->s[c->i + k])) return problem(c, "a \\u escape without four hex digits");
        c->i += 6;
      } else if (e != 0 && strchr("\"\\/bfnrt", e)) {
        c->i += 2;
      } else {
        return problem(c, "an invalid escape in a string");
      }
      continue;
    }
    size_t len = utf8_sequence(c->s + c->i, c->n - c->i);
    if (len == 0) return problem(c, "bytes that are not UTF-8");
    c->i += len;
  }
  return problem(c, "a string that does not end");
}

static bool check_digits(struct checker *c) {
  size_t start = c->i;
  while (c->i < c->n && is_digit(c->s[c->i])) c->i++;
  return c->i > start;
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
static bool check_number(struct checker *c) {
  if (c->s[c->i] == '-') c->i++;
  if (c->i < c->n && c->s[c->i] == '0') {
    c->i++;
  } else if (!check_digits(c)) {
    return problem(c, "a malformed number");
  }
  if (c->i < c->n && c->s[c->i] == '.') {
    c->i++;
    if (!check_digits(c)) return problem(c, "a malformed number (no digits after '.')");
  }
  if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
    c->i++;
    if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-')) c->i++;
    if (!check_digits(c)) return problem(c, "a malformed number (no digits in the exponent)");
  }
  return true;
}

static bool check_literal(struct checker *c, const char *word) {
  size_t len = strlen(word);
  if (c->n - c->i < len || memcmp(c->s + c->i, word, len) != 0) return problem(c, "an unexpected character");
  c->i += len;
  return true;
}

// A member's key: a string, then ':'. Leaves the cursor at the value.
static bool check_key(struct checker *c, size_t *key_at) {
  skip_space(c);
  if (c->i >= c->n) return problem(c, "the text ends where a key should be");
  if (c->s[c->i] != '"') return problem(c, c->s[c->i] == 0 ? "a NUL byte" : "an object key that is not a string");
  *key_at = c->i;
  if (!check_string(c)) return false;
  skip_space(c);
  if (c->i >= c->n || c->s[c->i] != ':') return problem(c, "a key without ':'");
  c->i++;
  return true;
}

// A value that is not a container, or the opening of one (pushed).
static bool check_value_start(struct checker *c) {
  skip_space(c);
  if (c->i >= c->n) return problem(c, c->depth == 0 ? "no JSON value" : "the text ends where a value should be");
  unsigned char b = c->s[c->i];
  switch (b) {
    case '{':
    case '[':
      c->i++;
      return push(c, b == '{' ? IN_OBJECT : IN_ARRAY);
    case '"':
      return check_string(c);
    case 't':
      return check_literal(c, "true");
    case 'f':
      return check_literal(c, "false");
    case 'n':
      return check_literal(c, "null");
    case 0:
      return problem(c, "a NUL byte");
    default:
      if (b == '-' || is_digit(b)) return check_number(c);
      return problem(c, "an unexpected character");
  }
}

bool json_check(const char *text, size_t n, unsigned char *stack, size_t stack_bytes, top_member_fn on_member, void *ctx,
                struct json_check_result *out) {
  struct checker c = {.s = (const unsigned char *)text, .n = n, .stack = stack, .stack_bits = stack_bytes * 8, .problem = &out->problem};
  out->root_is_object = false;
  if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) return problem(&c, "a UTF-8 byte order mark, which JSON text must not start with");
  skip_space(&c);
  if (c.i == n) return problem(&c, "no JSON value (the config is empty)");
  out->root_is_object = c.s[c.i] == '{';
  size_t key_at = 0, value_at = 0, nested_key_at;
  bool expect_value = true;  // else: a value just ended
  for (;;) {
    if (expect_value) {
      if (c.depth == 1 && out->root_is_object) value_at = c.i;
      size_t depth_before = c.depth;
      if (!check_value_start(&c)) return false;
      bool opened = c.depth > depth_before;
      if (opened) {
        skip_space(&c);
        char closer = top(&c) == IN_OBJECT ? '}' : ']';
        if (c.i < n && c.s[c.i] == closer) {
          c.i++;
          c.depth--;
        } else if (top(&c) == IN_OBJECT) {
          if (!check_key(&c, c.depth == 1 ? &key_at : &nested_key_at)) return false;
          continue;
        } else {
          continue;
        }
      }
      expect_value = false;
    }
    // A value ended at c.i.
    if (c.depth == 0) break;
    if (c.depth == 1 && out->root_is_object && on_member) on_member(text, key_at, value_at, c.i, ctx);
    skip_space(&c);
    if (c.i >= n) return problem(&c, "the text ends inside an object or array");
    unsigned char b = c.s[c.i];
    int kind = top(&c);
    if (b == ',') {
      c.i++;
      if (kind == IN_OBJECT && !check_key(&c, c.depth == 1 ? &key_at : &nested_key_at)) return false;
      expect_value = true;
    } else if (b == (kind == IN_OBJECT ? '}' : ']')) {
      c.i++;
      c.depth--;
    } else {
      return problem(&c, b == 0 ? "a NUL byte" : kind == IN_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  skip_space(&c);
  if (c.i < n) return problem(&c, c.s[c.i] == 0 ? "a NUL byte" : "more text after the JSON value");
  return true;
}
