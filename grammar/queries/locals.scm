; Scopes, definitions and references for VPL (local-variable highlighting and
; go-to-definition in editors that use tree-sitter locals).

; Scopes
[
  (function_declaration)
  (lambda)
  (block)
  (lambda_block)
  (stream_declaration)
  (inline_stream)
  (pattern_declaration)
  (declaration_loop)
] @local.scope

; Definitions
(parameter name: (identifier) @local.definition)
(lambda parameters: (identifier) @local.definition)
(lambda_parameters (identifier) @local.definition)
(variable_declaration name: (identifier) @local.definition)
(for_statement variable: (identifier) @local.definition)
(declaration_loop variable: (identifier) @local.definition)
(event_source alias: (identifier) @local.definition)
(sequence_step alias: (identifier) @local.definition)
(sequence_source_step alias: (identifier) @local.definition)
(pattern_event alias: (identifier) @local.definition)

; References
(identifier) @local.reference
