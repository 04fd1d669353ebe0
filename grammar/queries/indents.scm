; Indentation rules for VPL (nvim-treesitter capture names): blocks after a
; line ending in `:` are indented, and so are pipeline continuation lines and
; the contents of brackets.
[
  (function_declaration)
  (event_declaration)
  (config_block)
  (config_section)
  (config_connector)
  (config_map)
  (declaration_loop)
  (if_statement)
  (elif_clause)
  (else_clause)
  (for_statement)
  (while_statement)
  (stream_declaration)
  (pattern_declaration)
  (argument_list)
  (parameter_list)
  (array)
  (map)
  (config_declaration)
  (lambda_block)
] @indent.begin

(elif_clause "elif" @indent.branch)
(else_clause "else" @indent.branch)

[")" "]" "}"] @indent.branch @indent.end

[
  (return_statement)
  (break_statement)
  (continue_statement)
] @indent.dedent

(comment) @indent.auto
