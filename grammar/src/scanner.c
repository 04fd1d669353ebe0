/*
 * External scanner for tree-sitter-vpl.
 *
 * It produces the tokens a context-free lexer cannot:
 *
 * - INDENT / DEDENT for the layout of `fn`, `if`/`elif`/`else`, `for`,
 *   `while`, `config:` and `event` field blocks (docs/LANGUAGE.md#layout-and-indentation). Both are
 *   zero-width and placed where the scan started, so a line that closes
 *   several blocks is simply scanned again for each DEDENT. Newlines are
 *   otherwise plain whitespace: statements and pipelines continue freely
 *   across lines, as in the reference parser. Tabs count as one column.
 * - the `.` that starts a pipeline operator (`.where(`, `.emit as T (`): it
 *   is told apart from member access (`o.id`) by looking ahead for the `(`,
 *   so a sequence-step filter stops before `.within(...)` (docs/LANGUAGE.md#sequence-steps). A separate
 *   token marks the `.from(` of a connector source.
 * - number and duration literals (`42`, `1.5e3`, `5m`, `100ms`), which must
 *   end at a word boundary (docs/LANGUAGE.md#names-and-keywords): `5min` is neither a duration nor `5m`
 *   followed by `in`, and `2x` is not `2` followed by `x`. The internal lexer
 *   has no number tokens, so such text is a syntax error.
 */

#include "tree_sitter/alloc.h"
#include "tree_sitter/array.h"
#include "tree_sitter/parser.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum TokenType {
  INDENT,
  DEDENT,
  OPERATOR_DOT,
  FROM_DOT,
  DURATION,
  INTEGER,
  FLOAT,
};

/* The columns of the open blocks; the bottom entry is always 0. */
typedef struct {
  Array(uint16_t) indents;
} Scanner;

static inline void skip(TSLexer *lexer) { lexer->advance(lexer, true); }

static inline void advance(TSLexer *lexer) { lexer->advance(lexer, false); }

static inline bool is_digit(int32_t c) { return c >= '0' && c <= '9'; }

static inline bool is_letter(int32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Identifier characters; `{` and `}` belong to declaration-loop placeholders. */
static inline bool is_word_start(int32_t c) { return is_letter(c) || c == '{'; }

static inline bool is_word_char(int32_t c) { return is_word_start(c) || is_digit(c) || c == '}'; }

/* Consumes a comment that starts at the lookahead, if there is one. */
static bool consume_comment(TSLexer *lexer) {
  if (lexer->lookahead == '#') {
    while (lexer->lookahead != '\n' && !lexer->eof(lexer)) advance(lexer);
    return true;
  }
  if (lexer->lookahead != '/') return false;
  advance(lexer);
  if (lexer->lookahead == '/') {
    while (lexer->lookahead != '\n' && !lexer->eof(lexer)) advance(lexer);
    return true;
  }
  if (lexer->lookahead != '*') return false;
  advance(lexer);
  bool star = false;
  while (!lexer->eof(lexer)) {
    if (star && lexer->lookahead == '/') {
      advance(lexer);
      return true;
    }
    star = lexer->lookahead == '*';
    advance(lexer);
  }
  return true;
}

/*
 * At a `.`: is it the start of a pipeline operator, i.e. `.name(` or
 * `.emit as`? Sets *is_from for `.from(`. The token is the dot alone.
 */
static bool scan_operator_dot(TSLexer *lexer, bool *is_from) {
  advance(lexer);
  lexer->mark_end(lexer);
  char word[5] = {0};
  size_t length = 0;
  if (!is_word_start(lexer->lookahead)) return false;
  while (is_word_char(lexer->lookahead)) {
    if (length < 4) word[length] = (char)lexer->lookahead;
    length++;
    advance(lexer);
  }
  while (lexer->lookahead == ' ' || lexer->lookahead == '\t') advance(lexer);
  bool four = length == 4;
  if (lexer->lookahead == '(') {
    *is_from = four && memcmp(word, "from", 4) == 0;
    return true;
  }
  if (four && memcmp(word, "emit", 4) == 0 && lexer->lookahead == 'a') {
    advance(lexer);
    if (lexer->lookahead != 's') return false;
    advance(lexer);
    return !is_word_char(lexer->lookahead);
  }
  return false;
}

static inline bool is_word_boundary(int32_t c) { return !is_letter(c) && !is_digit(c); }

/* After the digits of a number: a duration unit `ns|us|ms|s|m|h|d`? */
static bool scan_duration_unit(TSLexer *lexer) {
  switch (lexer->lookahead) {
    case 'n':
    case 'u':
      advance(lexer);
      if (lexer->lookahead != 's') return false;
      advance(lexer);
      return true;
    case 'm':
      advance(lexer);
      if (lexer->lookahead == 's') advance(lexer);
      return true;
    case 's':
    case 'h':
    case 'd':
      advance(lexer);
      return true;
    default:
      return false;
  }
}

/*
 * At a digit: `[0-9]+` (integer), `[0-9]+.[0-9]+([eE][+-]?[0-9]+)?` (float)
 * or `[0-9]+unit` (duration), ending at a word boundary. `1..5` is an integer
 * followed by `..`.
 */
static bool scan_number(TSLexer *lexer, const bool *valid) {
  while (is_digit(lexer->lookahead)) advance(lexer);
  lexer->mark_end(lexer);
  if (lexer->lookahead == '.') {
    advance(lexer);
    if (!is_digit(lexer->lookahead)) {
      lexer->result_symbol = INTEGER;
      return valid[INTEGER];
    }
    while (is_digit(lexer->lookahead)) advance(lexer);
    lexer->mark_end(lexer);
    if (lexer->lookahead == 'e' || lexer->lookahead == 'E') {
      advance(lexer);
      if (lexer->lookahead == '+' || lexer->lookahead == '-') advance(lexer);
      if (!is_digit(lexer->lookahead)) return false;
      while (is_digit(lexer->lookahead)) advance(lexer);
      lexer->mark_end(lexer);
    }
    lexer->result_symbol = FLOAT;
    return valid[FLOAT] && is_word_boundary(lexer->lookahead);
  }
  if (is_letter(lexer->lookahead)) {
    if (!scan_duration_unit(lexer)) return false;
    lexer->mark_end(lexer);
    lexer->result_symbol = DURATION;
    return valid[DURATION] && is_word_boundary(lexer->lookahead);
  }
  lexer->result_symbol = INTEGER;
  return valid[INTEGER] && is_word_boundary(lexer->lookahead);
}

static bool scan(Scanner *scanner, TSLexer *lexer, const bool *valid) {
  /* Layout tokens are zero-width at the position where the scan started. */
  lexer->mark_end(lexer);

  bool found_newline = false;
  bool crossed_comment = false;
  uint32_t column = 0;
  for (;;) {
    int32_t c = lexer->lookahead;
    if (lexer->eof(lexer)) {
      found_newline = true;
      column = 0;
      break;
    }
    if (c == '\n') {
      found_newline = true;
      column = 0;
      skip(lexer);
    } else if (c == ' ' || c == '\t') {
      column++;
      skip(lexer);
    } else if (c == '\r' || c == '\f' || c == '\v') {
      skip(lexer);
    } else if (found_newline && (c == '#' || c == '/')) {
      /* A comment line does not decide the layout: look past it. */
      if (!consume_comment(lexer)) return false;
      crossed_comment = true;
    } else {
      break;
    }
  }

  /*
   * During error recovery every symbol is "valid". The layout is reported all
   * the same: it lets the parser close the block that holds the error instead
   * of wrapping the rest of the file in it.
   */
  if (found_newline) {
    uint16_t current = *array_back(&scanner->indents);
    if (valid[DEDENT] && column < current && scanner->indents.size > 1) {
      (void)array_pop(&scanner->indents);
      lexer->result_symbol = DEDENT;
      return true;
    }
    if (valid[INDENT] && column > current && !lexer->eof(lexer)) {
      array_push(&scanner->indents, (uint16_t)column);
      lexer->result_symbol = INDENT;
      return true;
    }
  }

  /* Comments are the internal lexer's job; come back after them. */
  if (crossed_comment) return false;

  if ((valid[OPERATOR_DOT] || valid[FROM_DOT]) && lexer->lookahead == '.') {
    bool is_from = false;
    if (!scan_operator_dot(lexer, &is_from)) return false;
    if (is_from && valid[FROM_DOT]) {
      lexer->result_symbol = FROM_DOT;
      return true;
    }
    if (!valid[OPERATOR_DOT]) return false;
    lexer->result_symbol = OPERATOR_DOT;
    return true;
  }

  if ((valid[INTEGER] || valid[FLOAT] || valid[DURATION]) && is_digit(lexer->lookahead)) {
    return scan_number(lexer, valid);
  }

  return false;
}

void *tree_sitter_vpl_external_scanner_create(void) {
  Scanner *scanner = ts_calloc(1, sizeof(Scanner));
  array_init(&scanner->indents);
  array_push(&scanner->indents, 0);
  return scanner;
}

void tree_sitter_vpl_external_scanner_destroy(void *payload) {
  Scanner *scanner = (Scanner *)payload;
  array_delete(&scanner->indents);
  ts_free(scanner);
}

unsigned tree_sitter_vpl_external_scanner_serialize(void *payload, char *buffer) {
  Scanner *scanner = (Scanner *)payload;
  unsigned size = 0;
  /* The bottom 0 is implicit. Deeper stacks than the buffer holds are cut. */
  for (uint32_t i = 1; i < scanner->indents.size; i++) {
    if (size + sizeof(uint16_t) > TREE_SITTER_SERIALIZATION_BUFFER_SIZE) break;
    uint16_t column = *array_get(&scanner->indents, i);
    memcpy(&buffer[size], &column, sizeof(uint16_t));
    size += sizeof(uint16_t);
  }
  return size;
}

void tree_sitter_vpl_external_scanner_deserialize(void *payload, const char *buffer,
                                                  unsigned length) {
  Scanner *scanner = (Scanner *)payload;
  array_clear(&scanner->indents);
  array_push(&scanner->indents, 0);
  for (unsigned offset = 0; offset + sizeof(uint16_t) <= length; offset += sizeof(uint16_t)) {
    uint16_t column;
    memcpy(&column, &buffer[offset], sizeof(uint16_t));
    array_push(&scanner->indents, column);
  }
}

bool tree_sitter_vpl_external_scanner_scan(void *payload, TSLexer *lexer,
                                           const bool *valid_symbols) {
  return scan((Scanner *)payload, lexer, valid_symbols);
}
