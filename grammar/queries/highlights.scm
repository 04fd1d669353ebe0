; Syntax highlighting for VPL.
; Later patterns take precedence over earlier ones for the same node (the
; order of tree-sitter-highlight 0.25+, Neovim and Helix), so generic captures
; come first and specific ones after them.

(identifier) @variable

; Comments and literals
(comment) @comment
(string) @string
(timestamp) @string.special
(duration) @number
(integer) @number
(float) @number.float
[(true) (false)] @boolean
(null) @constant.builtin

; Parameters and fields
(parameter name: (identifier) @variable.parameter)
(lambda parameters: (identifier) @variable.parameter)
(lambda_parameters (identifier) @variable.parameter)
(declaration_loop variable: (identifier) @variable.parameter)
(named_argument name: (identifier) @property)
(map_entry key: (identifier) @property)
(member_expression property: (identifier) @property)

; Functions and operators of the pipeline
(function_declaration name: (identifier) @function)
(operator_call name: (identifier) @function.method)
(call_expression function: (identifier) @function.call)
(call_expression
  function: (member_expression property: (identifier) @function.method.call))

; Types
(type_identifier) @type
((type_identifier) @type.builtin
  (#any-of? @type.builtin "int" "float" "bool" "str" "timestamp" "duration" "Stream"))

; Events, streams and patterns
(event_declaration name: (identifier) @type.definition)
(event_declaration parent: (identifier) @type)
(event_field name: (identifier) @property)
(stream_declaration name: (identifier) @type.definition)
(inline_stream name: (identifier) @type.definition)
(pattern_declaration name: (identifier) @type.definition)
(event_source type: (identifier) @type)
(connector_source type: (identifier) @type)
(sequence_source_step type: (identifier) @type)
(sequence_step type: (identifier) @type)
(negation_operator type: (identifier) @type)
(pattern_event type: (identifier) @type)
(operator_call type: (identifier) @type)
(emit_statement type: (identifier) @type)
(merge_source (identifier) @type)
(join_source (identifier) @type)

; Aliases bound with `as` (and `sequence(a: A)` step names)
(event_source alias: (identifier) @label)
(sequence_step alias: (identifier) @label)
(pattern_event alias: (identifier) @label)
(sequence_source_step alias: (identifier) @label)

; Connectors, contexts, config, imports
(connector_declaration name: (identifier) @constant)
(connector_declaration kind: (identifier) @type.builtin)
(context_declaration name: (identifier) @module)
(config_declaration name: (identifier) @module)
(config_entry key: (identifier) @property)
(config_connector name: (identifier) @module)
(config_pair key: (identifier) @property)
(config_pair key: (string) @property)
(bare_word) @string
(import_declaration alias: (identifier) @module)
(partition_clause key: (identifier) @property)
(policy_clause name: (identifier) @constant)

; Declaration-loop placeholders such as `{z}`
((identifier) @constant.macro
  (#match? @constant.macro "^\\{[A-Za-z_][A-Za-z0-9_]*\\}$"))

; Keywords
[
  "event"
  "extends"
  "type"
  "let"
  "var"
  "const"
  "stream"
  "pattern"
  "connector"
  "context"
  "config"
  "sources"
  "sinks"
  "emit"
  "as"
  "all"
  "where"
  "within"
  "partition"
  "by"
  "policy"
  "from"
  "on"
  "merge"
  "join"
  "sequence"
  "timer"
] @keyword
"fn" @keyword.function
"return" @keyword.return
"import" @keyword.import
["if" "elif" "else" "then"] @keyword.conditional
["for" "while" (break_statement) (continue_statement)] @keyword.repeat
["and" "or" "not" "in" "is"] @keyword.operator
["SEQ" "AND" "OR" "NOT"] @keyword.operator
(negation_operator "not" @function.method)

; Operators and punctuation
[
  "="
  ":="
  "->"
  "=>"
  "=="
  "!="
  "<"
  "<="
  ">"
  ">="
  "+"
  "-"
  "*"
  "/"
  "%"
  "**"
  "|"
  "^"
  "&"
  "~"
  "<<"
  ">>"
  ".."
  "..="
  "?"
  "?."
] @operator
["(" ")" "[" "]" "{" "}"] @punctuation.bracket
["," ":" "."] @punctuation.delimiter
