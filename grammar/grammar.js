/**
 * tree-sitter grammar for VPL, the Varpulis Pipeline Language.
 *
 * Follows the language as docs/LANGUAGE.md describes it, with the decisions of
 * docs/DESIGN.md. Layout tokens (INDENT/DEDENT), the dot that
 * starts a pipeline operator, and number and duration literals come from
 * src/scanner.c; its header comment says why.
 *
 * @file VPL grammar for tree-sitter
 * @license Apache-2.0
 */

/// <reference types="tree-sitter-cli/dsl" />
// @ts-check

// Operator precedence, loosest first (docs/LANGUAGE.md#operators-and-precedence). The loose levels
// (range, or, and, not, comparison) are also stratified by rule so that
// comparisons stay non-associative; the numbers settle the remaining
// shift/reduce choices.
const PREC = {
  if_else: -1,
  lambda: 1,
  range: 2,
  or: 3,
  and: 4,
  not: 5,
  compare: 6,
  bit_or: 7,
  bit_xor: 8,
  bit_and: 9,
  shift: 10,
  additive: 11,
  multiplicative: 12,
  power: 13,
  unary: 14,
  postfix: 15,
};

// Pattern operators inside `pattern` declarations, loosest first.
const PATTERN_PREC = {
  arrow: 1,
  or: 2,
  and: 3,
  not: 4,
};

/**
 * Zero or more `rule`, separated by commas, with an optional trailing comma.
 * @param {RuleOrLiteral} rule
 * @returns {Rule}
 */
function commaSep(rule) {
  return optional(commaSep1(rule));
}

/**
 * One or more `rule`, separated by commas, with an optional trailing comma.
 * @param {RuleOrLiteral} rule
 * @returns {Rule}
 */
function commaSep1(rule) {
  return seq(rule, repeat(seq(',', rule)), optional(','));
}

module.exports = grammar({
  name: 'vpl',

  externals: $ => [
    $._indent,
    $._dedent,
    $._operator_dot,
    $._from_dot,
    $.duration,
    $.integer,
    $.float,
  ],

  extras: $ => [/\s/, $.comment],

  word: $ => $.identifier,

  supertypes: $ => [
    $._declaration,
    $._statement,
    $._expression,
    $._type,
    $._stream_source,
    $._stream_operator,
    $._pattern_expression,
  ],

  conflicts: $ => [
    // `for z in 1..=2:` at the top level is a declaration loop (docs/LANGUAGE.md#declaration-loops); the
    // same text is also a `for` statement. Dynamic precedence picks the loop.
    [$.declaration_loop, $._primary_expression],
    // `(a)` is a parenthesised expression until `=>` makes it lambda parameters.
    [$._primary_expression, $.lambda_parameters],
  ],

  rules: {
    source_file: $ => repeat($._top_level_item),

    _top_level_item: $ => choice($._declaration, $._statement),

    // ------------------------------------------------------------------
    // Top-level declarations (docs/LANGUAGE.md#declarations)
    // ------------------------------------------------------------------

    _declaration: $ => choice(
      $.event_declaration,
      $.type_alias_declaration,
      $.function_declaration,
      $.stream_declaration,
      $.pattern_declaration,
      $.connector_declaration,
      $.context_declaration,
      $.config_declaration,
      $.config_block,
      $.import_declaration,
      $.declaration_loop,
    ),

    // event Reading:            event Ping: seq: int
    //     pump: str
    event_declaration: $ => seq(
      'event',
      field('name', $.identifier),
      optional(seq('extends', field('parent', $.identifier))),
      ':',
      field('fields', $.field_list),
    ),

    field_list: $ => choice(
      seq($._indent, repeat1($.event_field), $._dedent),
      // Fields on the same line as `event` are whitespace-separated; keep
      // taking fields while they come.
      prec.right(repeat1($.event_field)),
    ),

    event_field: $ => seq(
      field('name', $.identifier),
      ':',
      field('type', $._type),
    ),

    type_alias_declaration: $ => seq(
      'type',
      field('name', alias($.identifier, $.type_identifier)),
      '=',
      field('type', $._type),
    ),

    function_declaration: $ => seq(
      'fn',
      field('name', $.identifier),
      field('parameters', $.parameter_list),
      optional(seq('->', field('return_type', $._type))),
      ':',
      field('body', $.block),
    ),

    parameter_list: $ => seq('(', commaSep($.parameter), ')'),

    parameter: $ => seq(
      field('name', $.identifier),
      ':',
      field('type', $._type),
    ),

    // stream Name [: Stream<T>] = source op*
    stream_declaration: $ => prec.right(seq(
      'stream',
      field('name', $.identifier),
      optional(seq(':', field('type', $._type))),
      '=',
      field('source', $._stream_source),
      repeat(field('operator', $._stream_operator)),
    )),

    // The clauses may come in any order; the compiler reports duplicates.
    pattern_declaration: $ => prec.right(seq(
      'pattern',
      field('name', $.identifier),
      '=',
      field('pattern', $._pattern_expression),
      repeat(choice($.within_clause, $.partition_clause, $.policy_clause)),
    )),

    within_clause: $ => seq('within', field('duration', $.duration)),

    partition_clause: $ => seq('partition', 'by', field('key', $.identifier)),

    // Event-selection strategy (docs/LANGUAGE.md#policy), e.g. `policy skip_till_next_match`.
    policy_clause: $ => seq('policy', field('name', $.identifier)),

    // connector Out = kafka (brokers: "x", topic: "t")
    connector_declaration: $ => prec.right(seq(
      'connector',
      field('name', $.identifier),
      '=',
      field('kind', $.identifier),
      optional(field('parameters', $.argument_list)),
    )),

    // context ingest (cores: [0, 1])
    context_declaration: $ => prec.right(seq(
      'context',
      field('name', $.identifier),
      optional(field('parameters', $.argument_list)),
    )),

    // Legacy: config mqtt { broker: "localhost", port: 1883 }
    config_declaration: $ => seq(
      'config',
      field('name', $.identifier),
      '{',
      repeat(seq($.config_entry, optional(','))),
      '}',
    ),

    // config: with `sources:` / `sinks:` sections declaring connectors, and
    // legacy indented `key: value` lines.
    config_block: $ => seq(
      'config',
      ':',
      $._indent,
      repeat1(choice($.config_section, $.config_entry)),
      $._dedent,
    ),

    // sources: (or sinks:) with one connector per indented line.
    config_section: $ => seq(
      field('role', choice('sources', 'sinks')),
      ':',
      $._indent,
      repeat1($.config_connector),
      $._dedent,
    ),

    // name: { type: kind, key: value, ... }, or name: with indented
    // `key: value` lines.
    config_connector: $ => seq(
      field('name', $.identifier),
      ':',
      choice(
        field('parameters', $.config_map),
        seq($._indent, repeat1($.config_entry), $._dedent),
      ),
    ),

    config_map: $ => seq('{', commaSep($.config_pair), '}'),

    config_pair: $ => seq(
      field('key', choice($.identifier, $.string)),
      ':',
      field('value', $._config_value),
    ),

    // A hyphenated name given as a connector parameter (`group_id: rules-prod`).
    bare_word: _ => token(/[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)+/),

    config_entry: $ => seq(
      field('key', $.identifier),
      ':',
      field('value', $._config_value),
    ),

    _config_value: $ => choice(
      $.string,
      $.integer,
      $.float,
      $.duration,
      $.timestamp,
      $.true,
      $.false,
      $.null,
      $.identifier,
      $.negative_number,
      $.config_array,
      $.config_map,
      $.bare_word,
    ),

    negative_number: $ => seq('-', choice($.integer, $.float)),

    config_array: $ => seq('[', commaSep($._config_value), ']'),

    import_declaration: $ => prec.right(seq(
      'import',
      field('path', $.string),
      optional(seq('as', field('alias', $.identifier))),
    )),

    // for z in 1..=2: at the top level, expanded before parsing (docs/LANGUAGE.md#declaration-loops).
    declaration_loop: $ => prec.dynamic(1, seq(
      'for',
      field('variable', $.identifier),
      'in',
      field('start', $.integer),
      field('operator', choice('..', '..=')),
      field('end', $.integer),
      ':',
      field('body', alias($._declaration_block, $.block)),
    )),

    _declaration_block: $ => seq($._indent, repeat1($._top_level_item), $._dedent),

    // ------------------------------------------------------------------
    // Stream sources (docs/LANGUAGE.md#stream-sources)
    // ------------------------------------------------------------------

    _stream_source: $ => choice(
      $.event_source,
      $.connector_source,
      $.merge_source,
      $.join_source,
      $.sequence_source,
      $.timer_source,
    ),

    // Name | Name as a | all Name [as a]
    event_source: $ => prec.right(seq(
      optional(field('all', 'all')),
      field('type', $.identifier),
      optional(seq('as', field('alias', $.identifier))),
    )),

    // Type.from(Conn, topic: "t")
    connector_source: $ => seq(
      field('type', $.identifier),
      alias($._from_dot, '.'),
      'from',
      field('arguments', $.argument_list),
    ),

    merge_source: $ => seq(
      'merge',
      '(',
      commaSep1(choice($.identifier, $.inline_stream)),
      ')',
    ),

    join_source: $ => seq(
      'join',
      '(',
      commaSep1(choice($.identifier, $.inline_stream)),
      ')',
    ),

    // stream S = Type[.where(e)] inside merge(...) / join(...); the documented
    // join form `stream B = T on A.k == B.k` is accepted too (docs/LANGUAGE.md#join).
    inline_stream: $ => seq(
      'stream',
      field('name', $.identifier),
      '=',
      field('source', $._stream_source),
      repeat(field('operator', $._stream_operator)),
      optional(seq('on', field('condition', $._expression))),
    ),

    // sequence(a: A, b: B where e .within(d), ...)
    sequence_source: $ => seq(
      'sequence',
      '(',
      commaSep1($.sequence_source_step),
      ')',
    ),

    sequence_source_step: $ => seq(
      field('alias', $.identifier),
      ':',
      field('type', $.identifier),
      optional(seq('where', field('filter', $._expression))),
      repeat(field('operator', $._stream_operator)),
    ),

    timer_source: $ => seq('timer', field('arguments', $.argument_list)),

    // ------------------------------------------------------------------
    // Stream operators (docs/LANGUAGE.md#operators)
    // ------------------------------------------------------------------

    _stream_operator: $ => choice(
      $.operator_call,
      $.negation_operator,
      $.sequence_step,
    ),

    // .where(e), .window(5m, sliding: 30s), .emit as Alert (x: 1), ...
    operator_call: $ => seq(
      alias($._operator_dot, '.'),
      field('name', $.identifier),
      optional(seq('as', field('type', $.identifier))),
      field('arguments', $.argument_list),
    ),

    // .not(Cancelled where order == o.id)
    negation_operator: $ => seq(
      alias($._operator_dot, '.'),
      'not',
      '(',
      field('type', $.identifier),
      optional(seq('where', field('filter', $._expression))),
      ')',
    ),

    // -> [all] Type [where e] [as a]
    sequence_step: $ => prec.right(seq(
      '->',
      optional(field('all', 'all')),
      field('type', $.identifier),
      optional(seq('where', field('filter', $._expression))),
      optional(seq('as', field('alias', $.identifier))),
    )),

    // ------------------------------------------------------------------
    // Named patterns (docs/LANGUAGE.md#named-patterns, docs/LANGUAGE.md#pattern-shorthand)
    // ------------------------------------------------------------------

    _pattern_expression: $ => choice(
      $.pattern_binary,
      $.pattern_not,
      $.pattern_sequence,
      $.pattern_call,
      $.pattern_parenthesized,
      $.pattern_event,
    ),

    pattern_binary: $ => choice(
      prec.left(PATTERN_PREC.arrow, seq(
        field('left', $._pattern_expression),
        field('operator', '->'),
        field('right', $._pattern_expression),
      )),
      prec.left(PATTERN_PREC.or, seq(
        field('left', $._pattern_expression),
        field('operator', 'OR'),
        field('right', $._pattern_expression),
      )),
      prec.left(PATTERN_PREC.and, seq(
        field('left', $._pattern_expression),
        field('operator', 'AND'),
        field('right', $._pattern_expression),
      )),
    ),

    // NOT p, and the call spelling NOT(p)
    pattern_not: $ => prec(PATTERN_PREC.not, seq(
      'NOT',
      field('operand', $._pattern_expression),
    )),

    pattern_sequence: $ => seq(
      'SEQ',
      '(',
      commaSep1($._pattern_expression),
      ')',
    ),

    // AND(A, B), OR(A, B)
    pattern_call: $ => seq(
      field('operator', choice('AND', 'OR')),
      '(',
      commaSep1($._pattern_expression),
      ')',
    ),

    pattern_parenthesized: $ => seq('(', $._pattern_expression, ')'),

    // Type[pred] (+|*|?) where e as a
    pattern_event: $ => prec.right(seq(
      field('type', $.identifier),
      optional(seq('[', field('predicate', $._expression), ']')),
      optional(field('quantifier', choice('+', '*', '?'))),
      optional(seq('where', field('filter', $._expression))),
      optional(seq('as', field('alias', $.identifier))),
    )),

    // ------------------------------------------------------------------
    // Statements (docs/LANGUAGE.md#variables-let-var-const, docs/LANGUAGE.md#functions-fn)
    // ------------------------------------------------------------------

    _statement: $ => choice(
      $.variable_declaration,
      $.assignment,
      $.if_statement,
      $.for_statement,
      $.while_statement,
      $.break_statement,
      $.continue_statement,
      $.return_statement,
      $.emit_statement,
      $.expression_statement,
    ),

    block: $ => seq($._indent, repeat1($._statement), $._dedent),

    variable_declaration: $ => seq(
      field('kind', choice('let', 'var', 'const')),
      field('name', $.identifier),
      optional(seq(':', field('type', $._type))),
      '=',
      field('value', $._expression),
    ),

    assignment: $ => seq(
      field('left', $.identifier),
      ':=',
      field('right', $._expression),
    ),

    if_statement: $ => seq(
      'if',
      field('condition', $._expression),
      ':',
      field('consequence', $.block),
      repeat(field('alternative', $.elif_clause)),
      optional(field('alternative', $.else_clause)),
    ),

    elif_clause: $ => seq(
      'elif',
      field('condition', $._expression),
      ':',
      field('consequence', $.block),
    ),

    else_clause: $ => seq('else', ':', field('body', $.block)),

    for_statement: $ => seq(
      'for',
      field('variable', $.identifier),
      'in',
      field('iterable', $._expression),
      ':',
      field('body', $.block),
    ),

    while_statement: $ => seq(
      'while',
      field('condition', $._expression),
      ':',
      field('body', $.block),
    ),

    break_statement: _ => 'break',

    continue_statement: _ => 'continue',

    // Like the reference parser, `return` takes the expression that follows
    // if there is one.
    return_statement: $ => prec.right(seq(
      'return',
      optional(field('value', $._expression)),
    )),

    // emit Alert(zone: z, level: 2)
    emit_statement: $ => seq(
      'emit',
      field('type', $.identifier),
      field('arguments', $.argument_list),
    ),

    expression_statement: $ => $._expression,

    // ------------------------------------------------------------------
    // Expressions (docs/LANGUAGE.md#operators-and-precedence)
    // ------------------------------------------------------------------

    _expression: $ => choice(
      $.lambda,
      $.range_expression,
      $._range_operand,
    ),

    // x => e, (a, b) => e, (a) => { stmt* e }
    lambda: $ => prec.right(PREC.lambda, seq(
      field('parameters', choice($.identifier, $.lambda_parameters)),
      '=>',
      field('body', choice($._expression, $.lambda_block)),
    )),

    lambda_parameters: $ => seq('(', commaSep($.identifier), ')'),

    lambda_block: $ => seq('{', repeat1($._statement), '}'),

    // a..b and a..=b are non-associative.
    range_expression: $ => prec(PREC.range, seq(
      field('start', $._range_operand),
      field('operator', choice('..', '..=')),
      field('end', $._range_operand),
    )),

    _range_operand: $ => choice(
      $.boolean_expression,
      $._not_operand,
    ),

    boolean_expression: $ => choice(
      prec.left(PREC.or, seq(
        field('left', $._range_operand),
        field('operator', 'or'),
        field('right', $._range_operand),
      )),
      prec.left(PREC.and, seq(
        field('left', $._range_operand),
        field('operator', 'and'),
        field('right', $._range_operand),
      )),
    ),

    // `not` applies to a whole comparison: `not a == b` is `not (a == b)`.
    not_expression: $ => prec(PREC.not, seq('not', field('operand', $._not_operand))),

    _not_operand: $ => choice(
      $.not_expression,
      $.comparison_expression,
      $._comparison_operand,
    ),

    // Non-associative: `a < b < c` is a syntax error.
    comparison_expression: $ => prec(PREC.compare, seq(
      field('left', $._comparison_operand),
      field('operator', choice('==', '!=', '<', '<=', '>', '>=', 'in', 'is', $.not_in)),
      field('right', $._comparison_operand),
    )),

    not_in: _ => seq('not', 'in'),

    _comparison_operand: $ => choice(
      $.binary_expression,
      $.unary_expression,
      $._postfix_expression,
    ),

    binary_expression: $ => {
      const table = [
        [prec.left, PREC.bit_or, '|'],
        [prec.left, PREC.bit_xor, '^'],
        [prec.left, PREC.bit_and, '&'],
        [prec.left, PREC.shift, choice('<<', '>>')],
        [prec.left, PREC.additive, choice('+', '-')],
        [prec.left, PREC.multiplicative, choice('*', '/', '%')],
        [prec.right, PREC.power, '**'],
      ];
      return choice(...table.map(([assoc, level, operator]) =>
        // @ts-ignore: the table mixes prec.left and prec.right.
        assoc(level, seq(
          field('left', $._comparison_operand),
          // @ts-ignore
          field('operator', operator),
          field('right', $._comparison_operand),
        )),
      ));
    },

    // One prefix `-` or `~`, tighter than `**`.
    unary_expression: $ => prec(PREC.unary, seq(
      field('operator', choice('-', '~')),
      field('operand', $._postfix_expression),
    )),

    _postfix_expression: $ => choice(
      $.member_expression,
      $.index_expression,
      $.slice_expression,
      $.call_expression,
      $._primary_expression,
    ),

    member_expression: $ => prec(PREC.postfix, seq(
      field('object', $._postfix_expression),
      field('operator', choice('.', '?.')),
      field('property', $.identifier),
    )),

    index_expression: $ => prec(PREC.postfix, seq(
      field('object', $._postfix_expression),
      '[',
      field('index', $._expression),
      ']',
    )),

    slice_expression: $ => prec(PREC.postfix, seq(
      field('object', $._postfix_expression),
      '[',
      optional(field('start', $._expression)),
      ':',
      optional(field('end', $._expression)),
      ']',
    )),

    call_expression: $ => prec(PREC.postfix, seq(
      field('function', $._postfix_expression),
      field('arguments', $.argument_list),
    )),

    argument_list: $ => seq(
      '(',
      commaSep(choice($._expression, $.named_argument)),
      ')',
    ),

    named_argument: $ => seq(
      field('name', $.identifier),
      ':',
      field('value', $._expression),
    ),

    _primary_expression: $ => choice(
      $.if_expression,
      $.identifier,
      $.integer,
      $.float,
      $.duration,
      $.timestamp,
      $.string,
      $.true,
      $.false,
      $.null,
      $.array,
      $.map,
      $.parenthesized_expression,
    ),

    // The `else` branch extends as far as it can, as in the reference parser.
    if_expression: $ => prec.right(PREC.if_else, seq(
      'if',
      field('condition', $._expression),
      'then',
      field('consequence', $._expression),
      'else',
      field('alternative', $._expression),
    )),

    parenthesized_expression: $ => seq('(', $._expression, ')'),

    array: $ => seq('[', commaSep($._expression), ']'),

    map: $ => seq('{', commaSep($.map_entry), '}'),

    map_entry: $ => seq(
      field('key', choice($.identifier, $.string)),
      ':',
      field('value', $._expression),
    ),

    // ------------------------------------------------------------------
    // Types (docs/LANGUAGE.md#types)
    // ------------------------------------------------------------------

    _type: $ => choice(
      alias($.identifier, $.type_identifier),
      $.array_type,
      $.map_type,
      $.tuple_type,
      $.generic_type,
      $.optional_type,
    ),

    array_type: $ => seq('[', field('element', $._type), ']'),

    map_type: $ => seq('{', field('key', $._type), ':', field('value', $._type), '}'),

    tuple_type: $ => seq('(', commaSep1($._type), ')'),

    // Stream<T>
    generic_type: $ => seq(
      field('name', alias($.identifier, $.type_identifier)),
      '<',
      commaSep1($._type),
      '>',
    ),

    optional_type: $ => prec.left(seq(field('type', $._type), '?')),

    // ------------------------------------------------------------------
    // Lexical elements (docs/LANGUAGE.md#lexical-structure, docs/LANGUAGE.md#literals)
    // ------------------------------------------------------------------

    // Identifiers may contain `{var}` placeholders, which declaration loops
    // replace before parsing (docs/LANGUAGE.md#declaration-loops): `HotZone{z}`, or `{z}` on its own.
    identifier: _ => /([A-Za-z_]|\{[A-Za-z_][A-Za-z0-9_]*\})([A-Za-z0-9_]|\{[A-Za-z_][A-Za-z0-9_]*\})*/,

    // @2024-01-01, @2024-01-01T00:00:00Z, @2024-01-01T00:00:00+02:00
    timestamp: _ => /@[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?)?/,

    // "double" and 'single' quoted (docs/LANGUAGE.md#strings), with backslash escapes.
    string: _ => token(choice(
      seq('"', repeat(choice(/[^"\\\n]/, /\\./)), '"'),
      seq('\'', repeat(choice(/[^'\\\n]/, /\\./)), '\''),
    )),

    true: _ => 'true',
    false: _ => 'false',
    null: _ => 'null',

    // `#` and `//` to end of line (docs/LANGUAGE.md#comments), `/* */` not nested.
    comment: _ => token(choice(
      seq('#', /.*/),
      seq('//', /.*/),
      seq('/*', /[^*]*\*+([^/*][^*]*\*+)*/, '/'),
    )),
  },
});
