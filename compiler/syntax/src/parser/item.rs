//! Top-level declarations (docs/LANGUAGE.md#declarations).

use super::Parser;
use crate::ast::{
    Arg, BinaryOp, ConfigConnector, ConfigDecl, ConfigRole, ConfigSection, ConnectorDecl,
    ContextDecl, EventDecl, Expr, ExprKind, FieldDecl, FnDecl, Ident, ImportDecl, Item, Param,
    StmtKind, TypeAlias, TypeExpr, TypeKind,
};
use crate::codes;
use crate::error::SyntaxError;
use crate::lexer::TokenKind as K;
use crate::span::Span;

impl<'a> Parser<'a> {
    /// Parses the item; reports tokens left over after it.
    pub(super) fn item(&mut self) -> Item {
        if self.at_end() {
            return Item::Error(Span::default());
        }
        let start = self.here();
        let errors_before = self.errors.len();
        let item = self.item_kind();
        if !self.at_end() {
            if self.errors.len() == errors_before {
                let found = self.found();
                self.report(
                    SyntaxError::new(
                        codes::UNEXPECTED_TOKEN,
                        format!("unexpected {found} after the declaration"),
                        self.here(),
                    )
                    .with_label("expected a new declaration")
                    .with_help("start each declaration on its own line with a keyword such as `stream`, `event` or `let`"),
                );
            }
            self.pos = self.end;
        }
        match item {
            Some(item) => item,
            None => Item::Error(self.since(start)),
        }
    }

    fn item_kind(&mut self) -> Option<Item> {
        let word = if self.at(K::Ident) {
            self.nth_text(0)
        } else {
            ""
        };
        let next_is_ident = self.nth(1) == Some(K::Ident);
        Some(match word {
            "stream" => Item::Stream(self.stream_decl()),
            "event" => Item::Event(self.event_decl()),
            "pattern" => Item::Pattern(self.pattern_decl()),
            "fn" => Item::Fn(self.fn_decl()),
            "connector" => Item::Connector(self.connector_decl()),
            "context" => Item::Context(self.context_decl()),
            "config" => Item::Config(self.config_decl()),
            "import" => Item::Import(self.import_decl()),
            "type" if next_is_ident => Item::TypeAlias(self.type_alias()),
            "let" | "var" | "const" if next_is_ident => Item::Var(self.var_decl()),
            _ if !word.is_empty() && self.nth(1) == Some(K::ColonEq) => Item::Assign(self.assign()),
            "if" | "while" | "for" | "return" | "break" | "continue" | "emit" | "match" | "try"
            | "raise" | "catch" | "finally" => Item::Stmt(self.stmt()),
            _ if self.at(K::Ident) && next_is_ident => {
                let mut err = SyntaxError::new(
                    codes::UNEXPECTED_TOKEN,
                    format!("expected a declaration, found `{word}`"),
                    self.here(),
                )
                .with_label("not a declaration keyword");
                err = match closest_keyword(word) {
                    Some(k) => err.with_help(format!("did you mean `{k}`?")),
                    None => err.with_help(
                        "declarations start with `stream`, `event`, `pattern`, `fn`, `connector`, `context`, `config`, `type`, `import`, `let`, `var` or `const`",
                    ),
                };
                self.report(err);
                self.pos = self.end;
                return None;
            }
            _ if self.can_start_expr() => {
                let errors_before = self.errors.len();
                let stmt = self.stmt();
                let failed = self.errors.len() > errors_before
                    && matches!(
                        &stmt.kind,
                        StmtKind::Expr(Expr {
                            kind: ExprKind::Error,
                            ..
                        })
                    );
                if failed {
                    return None;
                }
                Item::Stmt(stmt)
            }
            _ => {
                let err = self
                    .expected_error(codes::UNEXPECTED_TOKEN, "a declaration")
                    .with_help(
                        "start each declaration with a keyword such as `stream`, `event` or `let`",
                    );
                self.report(err);
                self.pos = self.end;
                return None;
            }
        })
    }

    /// The current keyword's line indentation, then consumes it.
    fn keyword(&mut self) -> (Span, u32) {
        let tok = self.bump();
        (tok.span, tok.indent)
    }

    /// `event Name [extends Base][: fields]`.
    fn event_decl(&mut self) -> EventDecl {
        let (start, indent) = self.keyword();
        let name = self
            .ident("an event type name")
            .unwrap_or_else(|| self.missing_ident());
        let extends = if self.eat_word("extends") {
            self.ident("the parent event type")
        } else {
            None
        };
        let mut fields = Vec::new();
        if self.eat(K::Colon) {
            // Fields may follow on the same line (`event Ping: seq: int`).
            while !self.at_end() && !self.tok().bol {
                if !self.field(&mut fields) {
                    break;
                }
            }
            let found = self.block_lines(indent, |p| {
                while !p.at_end() {
                    if !p.field(&mut fields) {
                        break;
                    }
                }
            });
            if !found && fields.is_empty() {
                let err = self
                    .expected_error(codes::EXPECTED_BLOCK, "indented field declarations")
                    .with_label("the fields must follow on more-indented lines")
                    .with_help("declare fields as `name: type`, one per indented line");
                self.report(err);
            }
        }
        EventDecl {
            name,
            extends,
            fields,
            span: self.since(start),
        }
    }

    /// One `name: T` field; false (after reporting) when it is malformed, in
    /// which case the rest of the line is skipped.
    fn field(&mut self, fields: &mut Vec<FieldDecl>) -> bool {
        let start = self.here();
        if !self.at(K::Ident) {
            self.expected("a field name");
            self.skip_line();
            return false;
        }
        let name = self.take_ident();
        if !self.expect(K::Colon, "`:` and the field's type") {
            self.skip_line();
            return false;
        }
        let ty = self.type_expr();
        if matches!(ty.kind, TypeKind::Error) {
            self.skip_line();
        }
        fields.push(FieldDecl {
            name,
            ty,
            span: self.since(start),
        });
        true
    }

    /// Skips to the next token that begins a line.
    fn skip_line(&mut self) {
        while !self.at_end() {
            self.bump();
            if !self.at_end() && self.tok().bol {
                break;
            }
        }
    }

    /// `fn name(p: T, ...) [-> R]:` and the indented body.
    fn fn_decl(&mut self) -> FnDecl {
        let (start, indent) = self.keyword();
        let name = self
            .ident("a function name")
            .unwrap_or_else(|| self.missing_ident());
        let mut params = Vec::new();
        if self.at(K::LParen) {
            let open = self.bump().span;
            params = self.delimited(open, K::LParen, |p| {
                let name = p
                    .ident("a parameter name")
                    .unwrap_or_else(|| p.missing_ident());
                let ty = if p.eat(K::Colon) {
                    p.type_expr()
                } else {
                    if !name.name.is_empty() {
                        let n = name.name.clone();
                        p.report(
                            SyntaxError::new(
                                codes::UNEXPECTED_TOKEN,
                                format!("parameter `{n}` needs a type"),
                                name.span,
                            )
                            .with_label("no type")
                            .with_help(format!("write `{n}: float` (or the type it has)")),
                        );
                    }
                    TypeExpr {
                        kind: TypeKind::Error,
                        span: name.span,
                    }
                };
                Param { name, ty }
            });
        } else {
            self.expected("`(` and the parameter list");
        }
        let ret = if self.eat(K::Arrow) {
            Some(self.type_expr())
        } else {
            None
        };
        let body = self.block(indent);
        FnDecl {
            name,
            params,
            ret,
            body,
            span: self.since(start),
        }
    }

    /// `connector Name = kind (k: v, ...)`.
    fn connector_decl(&mut self) -> ConnectorDecl {
        let (start, _) = self.keyword();
        let name = self
            .ident("a connector name")
            .unwrap_or_else(|| self.missing_ident());
        self.expect(K::Eq, "`=` and the connector kind");
        let kind = self
            .ident("a connector kind such as `file`, `mqtt` or `kafka`")
            .unwrap_or_else(|| self.missing_ident());
        let params = if self.at(K::LParen) {
            self.call_args()
        } else {
            Vec::new()
        };
        ConnectorDecl {
            name,
            kind,
            params,
            span: self.since(start),
        }
    }

    /// `context Name [(k: v, ...)]`.
    fn context_decl(&mut self) -> ContextDecl {
        let (start, _) = self.keyword();
        let name = self
            .ident("a context name")
            .unwrap_or_else(|| self.missing_ident());
        let params = if self.at(K::LParen) {
            self.call_args()
        } else {
            Vec::new()
        };
        ContextDecl {
            name,
            params,
            span: self.since(start),
        }
    }

    /// `config name { k: v ... }`, `config:` or `config name:` with indented
    /// `k: v` lines.
    fn config_decl(&mut self) -> ConfigDecl {
        let (start, indent) = self.keyword();
        let name = if self.at(K::Ident) {
            Some(self.take_ident())
        } else {
            None
        };
        let mut entries = Vec::new();
        let mut sections = Vec::new();
        if self.at(K::LBrace) {
            let open = self.bump().span;
            let errors_before = self.errors.len();
            loop {
                if self.eat(K::RBrace) {
                    break;
                }
                if self.at_end() {
                    self.unclosed(open, K::LBrace, errors_before);
                    break;
                }
                let before = self.pos;
                if !self.config_entry(&mut entries) {
                    self.skip_until(|p| p.at(K::Comma) || p.tok().bol);
                }
                self.eat(K::Comma);
                if self.pos == before {
                    // The entry was rejected at a token recovery stops on
                    // (a line start, a stray closer): step over it so the
                    // loop always moves forward.
                    self.bump();
                }
            }
        } else if self.eat(K::Colon) {
            let found = self.block_lines(indent, |p| {
                if let Some(section) = p.config_section() {
                    sections.push(section);
                    return;
                }
                while !p.at_end() {
                    if !p.config_entry(&mut entries) {
                        p.skip_line();
                    }
                    p.eat(K::Comma);
                }
            });
            if !found {
                let err = self
                    .expected_error(codes::EXPECTED_BLOCK, "indented `key: value` lines")
                    .with_help("write one `key: value` per indented line");
                self.report(err);
            }
        } else {
            self.expected("`{` or `:` after `config`");
        }
        ConfigDecl {
            name,
            entries,
            sections,
            span: self.since(start),
        }
    }

    /// `sources:` or `sinks:` ending its line, then indented connector
    /// entries; `None` (nothing consumed) when the line is not a section.
    fn config_section(&mut self) -> Option<ConfigSection> {
        let role = match self.nth_text(0) {
            "sources" => ConfigRole::Sources,
            "sinks" => ConfigRole::Sinks,
            _ => return None,
        };
        // `sources: "x"` is a legacy flat entry: a section's `:` ends the line.
        let after = self.pos + 2;
        let ends_line = after >= self.end || self.toks.get(after).is_none_or(|t| t.bol);
        if !(self.at(K::Ident) && self.nth(1) == Some(K::Colon) && ends_line) {
            return None;
        }
        let indent = self.tok().indent;
        let keyword = self.take_ident();
        self.bump();
        let mut connectors = Vec::new();
        let found = self.block_lines(indent, |p| {
            while !p.at_end() {
                match p.config_connector() {
                    Some(c) => connectors.push(c),
                    None => p.skip_line(),
                }
                p.eat(K::Comma);
            }
        });
        if !found {
            let err = self
                .expected_error(
                    codes::EXPECTED_BLOCK,
                    &format!("indented `name: {{ type: ... }}` entries under `{}:`", role.keyword()),
                )
                .with_help("write one connector per indented line, e.g. `alerts: { type: file, path: \"alerts.jsonl\" }`");
            self.report(err);
        }
        Some(ConfigSection {
            role,
            span: self.since(keyword.span),
            keyword,
            connectors,
        })
    }

    /// `name: { k: v, ... }` or `name:` with indented `k: v` lines.
    fn config_connector(&mut self) -> Option<ConfigConnector> {
        let start = self.here();
        if !(self.at(K::Ident) && self.nth(1) == Some(K::Colon)) {
            let err = self
                .expected_error(
                    codes::UNEXPECTED_TOKEN,
                    "a connector entry `name: { type: ... }`",
                )
                .with_help("name the connector, then give its parameters in braces");
            self.report(err);
            return None;
        }
        let indent = self.tok().indent;
        let name = self.take_ident();
        self.bump();
        let mut params = Vec::new();
        if self.at(K::LBrace) {
            let open = self.bump().span;
            params = self.delimited(open, K::LBrace, |p| p.config_param());
        } else if self.at_end() || self.tok().bol {
            let found = self.block_lines(indent, |p| {
                while !p.at_end() {
                    if !p.config_entry(&mut params) {
                        p.skip_line();
                    }
                    p.eat(K::Comma);
                }
            });
            if !found {
                let err = self
                    .expected_error(codes::EXPECTED_BLOCK, "the connector's parameters")
                    .with_help(format!(
                        "write `{}: {{ type: file, path: \"out.jsonl\" }}` or indent `key: value` lines under it",
                        name.name
                    ));
                self.report(err);
            }
        } else {
            let err = self
                .expected_error(
                    codes::UNEXPECTED_TOKEN,
                    "`{` and the connector's parameters",
                )
                .with_help(format!(
                    "write `{}: {{ type: file, path: \"out.jsonl\" }}`",
                    name.name
                ));
            self.report(err);
            return None;
        }
        for p in &mut params {
            self.bare_word(&mut p.value);
        }
        Some(ConfigConnector {
            name,
            params,
            span: self.since(start),
        })
    }

    /// A hyphenated name written without spaces (`group_id: rules-prod`)
    /// parses as a subtraction; as a connector parameter it is one bare
    /// word: the string it spells.
    fn bare_word(&self, value: &mut Expr) {
        if !matches!(
            value.kind,
            ExprKind::Binary {
                op: BinaryOp::Sub,
                ..
            }
        ) {
            return;
        }
        let text = self.text.get(value.span.range()).unwrap_or("");
        let word = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && !text.ends_with('-')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if word {
            value.kind = ExprKind::Str(text.to_string());
        }
    }

    /// One `key: value` parameter inside braces; the key may be a string.
    fn config_param(&mut self) -> Arg {
        let start = self.here();
        let name = match self.nth(0) {
            Some(K::Ident) => self.take_ident(),
            Some(K::Str) => {
                let tok = self.bump();
                Ident {
                    name: super::expr::string_value(self.text.get(tok.span.range()).unwrap_or("")),
                    span: tok.span,
                }
            }
            _ => {
                self.expected("a parameter name");
                let value = self.error_expr();
                return Arg {
                    name: None,
                    value,
                    span: self.since(start),
                };
            }
        };
        let value = if self.expect(K::Colon, "`:` after the parameter name") {
            self.expr()
        } else {
            self.error_expr()
        };
        Arg {
            name: Some(name),
            value,
            span: self.since(start),
        }
    }

    /// One `key: value` config entry.
    fn config_entry(&mut self, entries: &mut Vec<Arg>) -> bool {
        let start = self.here();
        if !(self.at(K::Ident) && self.nth(1) == Some(K::Colon)) {
            self.expected("a `key: value` entry");
            return false;
        }
        let name = self.take_ident();
        self.bump();
        let value = self.expr();
        entries.push(Arg {
            name: Some(name),
            value,
            span: self.since(start),
        });
        true
    }

    /// `import "path" [as alias]`.
    fn import_decl(&mut self) -> ImportDecl {
        let (start, _) = self.keyword();
        let (path, path_span) = if self.at(K::Str) {
            let tok = self.bump();
            (
                super::expr::string_value(self.text.get(tok.span.range()).unwrap_or("")),
                tok.span,
            )
        } else {
            self.expected("a path string such as \"common.vpl\"");
            (String::new(), self.here())
        };
        let alias = if self.eat_word("as") {
            self.ident("an alias name")
        } else {
            None
        };
        ImportDecl {
            path,
            path_span,
            alias,
            span: self.since(start),
        }
    }

    /// `type Name = T`.
    fn type_alias(&mut self) -> TypeAlias {
        let (start, _) = self.keyword();
        let name = self.take_ident();
        let ty = if self.expect(K::Eq, "`=` and the aliased type") {
            self.type_expr()
        } else {
            TypeExpr {
                kind: TypeKind::Error,
                span: self.here(),
            }
        };
        TypeAlias {
            name,
            ty,
            span: self.since(start),
        }
    }
}

/// Declaration keywords, for suggestions.
const DECL_KEYWORDS: &[&str] = &[
    "stream",
    "event",
    "pattern",
    "fn",
    "connector",
    "context",
    "config",
    "type",
    "import",
    "let",
    "var",
    "const",
];

/// Levenshtein distance of two short ASCII words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The declaration keyword closest to a misspelling, if close enough.
fn closest_keyword(word: &str) -> Option<&'static str> {
    DECL_KEYWORDS
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
