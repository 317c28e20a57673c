// The front end's JSON reader (see json.h).
#include "json.h"

#include <stdint.h>
#include <string.h>

void skip_ws(struct json *j) {
  while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r')) j->i++;
}

bool peek(struct json *j, char c) {
  skip_ws(j);
  return j->i < j->n && j->s[j->i] == c;
}

bool eat(struct json *j, char c) {
  if (!peek(j, c)) return false;
  j->i++;
  return true;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the four hex digits of a \u escape whose backslash is at j->i.
static bool read_u_escape(struct json *j, size_t at, uint32_t *unit) {
  if (at + 6 > j->n || j->s[at] != '\\' || j->s[at + 1] != 'u') return false;
  uint32_t v = 0;
  for (size_t k = at + 2; k < at + 6; k++) {
    int h = hex_value(j->s[k]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  *unit = v;
  return true;
}


static void sink_byte(struct sink *k, unsigned char b) {
  if (k->out && k->len < k->cap) k->out[k->len] = (char)b;
  k->len++;
}

static void sink_code_point(struct sink *k, uint32_t cp) {
  if (cp < 0x80) {
    sink_byte(k, (unsigned char)cp);
  } else if (cp < 0x800) {
    sink_byte(k, (unsigned char)(0xC0 | cp >> 6));
    sink_byte(k, (unsigned char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    sink_byte(k, (unsigned char)(0xE0 | cp >> 12));
    sink_byte(k, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
    sink_byte(k, (unsigned char)(0x80 | (cp & 0x3F)));
  } else {
    sink_byte(k, (unsigned char)(0xF0 | cp >> 18));
    sink_byte(k, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
    sink_byte(k, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
    sink_byte(k, (unsigned char)(0x80 | (cp & 0x3F)));
  }
}

// Decodes the \u escape at j->i (one, or a surrogate pair) into k. A lone surrogate becomes U+FFFD, as it would when the
// agent's JavaScript string is written out as UTF-8.
static bool decode_u_escape(struct json *j, struct sink *k) {
  uint32_t unit, low;
  if (!read_u_escape(j, j->i, &unit)) return false;
  j->i += 6;
  if (unit >= 0xD800 && unit <= 0xDBFF && read_u_escape(j, j->i, &low) && low >= 0xDC00 && low <= 0xDFFF) {
    j->i += 6;
    sink_code_point(k, 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
  } else {
    sink_code_point(k, unit >= 0xD800 && unit <= 0xDFFF ? 0xFFFD : unit);
  }
  return true;
}

// Decodes the string at the cursor into k (see struct sink). Raw control characters are invalid JSON and rejected.
bool parse_string(struct json *j, struct sink *k) {
  if (!eat(j, '"')) return false;
  while (j->i < j->n) {
    unsigned char c = (unsigned char)j->s[j->i];
    if (c == '"') {
      j->i++;
      return true;
    }
    if (c < 0x20) return false;
    if (c != '\\') {
      sink_byte(k, c);
      j->i++;
      continue;
    }
    if (j->i + 1 >= j->n) return false;
    static const char escaped[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    char e = j->s[j->i + 1];
    const char *simple = e == 0 ? NULL : strchr(escaped, e);
    if (e == 'u') {
      if (!decode_u_escape(j, k)) return false;
    } else if (simple) {
      sink_byte(k, (unsigned char)decoded[simple - escaped]);
      j->i += 2;
    } else {
      return false;
    }
  }
  return false;
}

bool skip_string(struct json *j) {
  struct sink discard = {0};
  return parse_string(j, &discard);
}

// An integer that fits in an int; fractions and exponents are not integers.
bool parse_int(struct json *j, int *value) {
  skip_ws(j);
  bool negative = j->i < j->n && j->s[j->i] == '-';
  if (negative) j->i++;
  int v = 0, digits = 0;
  for (; j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9'; j->i++) {
    if (++digits > 9) return false;
    v = v * 10 + (j->s[j->i] - '0');
  }
  if (digits == 0 || (j->i < j->n && j->s[j->i] != 0 && strchr(".eE", j->s[j->i]))) return false;
  *value = negative ? -v : v;
  return true;
}

bool parse_literal(struct json *j, const char *word) {
  size_t len = strlen(word);
  skip_ws(j);
  if (j->n - j->i < len || memcmp(j->s + j->i, word, len) != 0) return false;
  j->i += len;
  return true;
}


static bool skip_member(struct json *j, const char *key, size_t key_len, void *ctx);

bool skip_value(struct json *j, int depth) {
  if (depth > MAX_JSON_DEPTH) return false;
  skip_ws(j);
  if (j->i >= j->n) return false;
  switch (j->s[j->i]) {
    case '"':
      return skip_string(j);
    case '{': {
      int inner = depth + 1;
      return walk_object(j, skip_member, &inner, inner);
    }
    case '[':
      j->i++;
      if (eat(j, ']')) return true;
      do {
        if (!skip_value(j, depth + 1)) return false;
      } while (eat(j, ','));
      return eat(j, ']');
    case 't':
      return parse_literal(j, "true");
    case 'f':
      return parse_literal(j, "false");
    case 'n':
      return parse_literal(j, "null");
    default: {
      size_t start = j->i;
      while (j->i < j->n && j->s[j->i] != 0 && strchr("+-0123456789.eE", j->s[j->i])) j->i++;
      return j->i > start;
    }
  }
}

static bool skip_member(struct json *j, const char *key, size_t key_len, void *ctx) {
  (void)key;
  (void)key_len;
  return skip_value(j, *(int *)ctx);
}

// Walks the object at the cursor: for each member, decodes its key and calls on_member with the cursor at the value,
// which on_member must consume. Keys longer than MAX_KEY_BYTES are passed truncated with their full length (no match).
bool walk_object(struct json *j, member_fn on_member, void *ctx, int depth) {
  if (depth > MAX_JSON_DEPTH || !eat(j, '{')) return false;
  if (eat(j, '}')) return true;
  do {
    char key[MAX_KEY_BYTES];
    struct sink k = {.out = key, .cap = sizeof key};
    if (!parse_string(j, &k) || !eat(j, ':')) return false;
    if (!on_member(j, key, k.len, ctx)) return false;
  } while (eat(j, ','));
  return eat(j, '}');
}

bool key_is(const char *key, size_t key_len, const char *want) {
  return key_len == strlen(want) && key_len <= MAX_KEY_BYTES && memcmp(key, want, key_len) == 0;
}

// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, surrogates or values past U+10FFFF), or 0.
size_t utf8_sequence(const unsigned char *p, size_t n) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t len;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return len;
}
