//! Expressions, types and arguments, printed on one line.
//!
//! Expressions are reprinted token by token with canonical spacing; `Paren`
//! nodes keep the author's parentheses, so the printed tokens parse back to
//! the same tree. Literals are copied from the source (the tree keeps only
//! their value), except that single-quoted strings get double quotes.
//! Only block lambdas span lines; their bodies are indented from `indent`.

use super::printer::Fmt;
use super::INDENT;
use crate::ast::{
    Arg, Block, Expr, ExprKind, Ident, LambdaBody, Stmt, StmtKind, TypeExpr, TypeKind, UnaryOp,
    VarDecl, VarKind,
};

/// A string literal as written, with double quotes.
pub(super) fn string_literal(text: &str) -> String {
    let Some(body) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .filter(|_| text.len() >= 2)
    else {
        return text.to_string();
    };
    // Keep every escape as written (a `\'` decodes to `'` either way) and
    // escape the double quotes the single-quoted body may hold.
    let mut out = String::with_capacity(body.len() + 2);
    out.push('"');
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Fmt<'_> {
    /// An identifier or a map key as written (a string key keeps its quotes).
    fn key(&self, id: &Ident) -> String {
        let written = self.slice(id.span);
        if written.starts_with(['"', '\'']) {
            string_literal(written)
        } else {
            id.name.clone()
        }
    }

    /// One expression; block lambdas break lines, indented from `indent`.
    pub fn expr(&self, e: &Expr, indent: usize) -> String {
        match &e.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Duration(_)
            | ExprKind::Timestamp(_)
            | ExprKind::Error => self.slice(e.span).to_string(),
            ExprKind::Str(_) => string_literal(self.slice(e.span)),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Null => "null".to_string(),
            ExprKind::Array(items) => {
                let items: Vec<String> = items.iter().map(|i| self.expr(i, indent)).collect();
                format!("[{}]", items.join(", "))
            }
            ExprKind::Map(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", self.key(k), self.expr(v, indent)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            ExprKind::Ident(id) => id.name.clone(),
            ExprKind::Member {
                base,
                name,
                optional,
            } => {
                let dot = if *optional { "?." } else { "." };
                format!("{}{dot}{}", self.expr(base, indent), name.name)
            }
            ExprKind::Index { base, index } => {
                format!("{}[{}]", self.expr(base, indent), self.expr(index, indent))
            }
            ExprKind::Slice { base, start, end } => {
                let part = |p: &Option<Box<Expr>>| {
                    p.as_ref().map_or(String::new(), |e| self.expr(e, indent))
                };
                format!("{}[{}:{}]", self.expr(base, indent), part(start), part(end))
            }
            ExprKind::Call { callee, args } => {
                format!("{}({})", self.expr(callee, indent), self.args(args, indent))
            }
            ExprKind::Unary { op, expr } => {
                let inner = self.expr(expr, indent);
                match op {
                    UnaryOp::Neg => format!("-{inner}"),
                    UnaryOp::BitNot => format!("~{inner}"),
                    UnaryOp::Not => format!("not {inner}"),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => format!(
                "{} {} {}",
                self.expr(lhs, indent),
                op.as_str(),
                self.expr(rhs, indent)
            ),
            ExprKind::If {
                cond,
                then_branch,
                else_branch,
            } => format!(
                "if {} then {} else {}",
                self.expr(cond, indent),
                self.expr(then_branch, indent),
                self.expr(else_branch, indent)
            ),
            ExprKind::Lambda { params, body } => {
                let params: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                let head = if params.len() == 1 {
                    params[0].to_string()
                } else {
                    format!("({})", params.join(", "))
                };
                let body = match body.as_ref() {
                    LambdaBody::Expr(e) => self.expr(e, indent),
                    LambdaBody::Block(b) => {
                        let pad = " ".repeat(indent);
                        format!("{{\n{}{pad}}}", self.block_text(b, indent + INDENT))
                    }
                };
                format!("{head} => {body}")
            }
            ExprKind::Range {
                start,
                end,
                inclusive,
            } => {
                let op = if *inclusive { "..=" } else { ".." };
                format!("{}{op}{}", self.expr(start, indent), self.expr(end, indent))
            }
            ExprKind::Paren(inner) => format!("({})", self.expr(inner, indent)),
        }
    }

    /// One argument: `value` or `name: value`.
    pub fn arg(&self, a: &Arg, indent: usize) -> String {
        match &a.name {
            Some(name) => format!("{}: {}", name.name, self.expr(&a.value, indent)),
            None => self.expr(&a.value, indent),
        }
    }

    /// Arguments separated by `, `.
    pub fn args(&self, args: &[Arg], indent: usize) -> String {
        let args: Vec<String> = args.iter().map(|a| self.arg(a, indent)).collect();
        args.join(", ")
    }

    /// Arguments with their spans in the original text, for [`Fmt::list`].
    pub fn arg_items(&self, args: &[Arg], indent: usize) -> Vec<(String, crate::span::Span)> {
        args.iter()
            .map(|a| (self.arg(a, indent), self.abs(a.span)))
            .collect()
    }

    /// A written type.
    pub fn ty(&self, t: &TypeExpr) -> String {
        match &t.kind {
            TypeKind::Named(id) => id.name.clone(),
            TypeKind::Array(inner) => format!("[{}]", self.ty(inner)),
            TypeKind::Map(k, v) => format!("{{{}: {}}}", self.ty(k), self.ty(v)),
            TypeKind::Tuple(items) => {
                let items: Vec<String> = items.iter().map(|i| self.ty(i)).collect();
                format!("({})", items.join(", "))
            }
            TypeKind::Stream(inner) => format!("Stream<{}>", self.ty(inner)),
            TypeKind::Optional(inner) => {
                // `T??` would lex as the reserved `??` operator.
                let inner = self.ty(inner);
                let gap = if inner.ends_with('?') { " " } else { "" };
                format!("{inner}{gap}?")
            }
            TypeKind::Error => self.slice(t.span).to_string(),
        }
    }

    /// `let|var|const name[: T] = value`.
    pub fn var_decl(&self, d: &VarDecl, indent: usize) -> String {
        let kw = match d.kind {
            VarKind::Let => "let",
            VarKind::Var => "var",
            VarKind::Const => "const",
        };
        let ty =
            d.ty.as_ref()
                .map_or(String::new(), |t| format!(": {}", self.ty(t)));
        format!("{kw} {}{ty} = {}", d.name.name, self.expr(&d.value, indent))
    }

    /// A statement that is not a block opener, on one line.
    pub fn simple_stmt(&self, s: &Stmt, indent: usize) -> String {
        match &s.kind {
            StmtKind::Var(d) => self.var_decl(d, indent),
            StmtKind::Assign(a) => format!("{} := {}", a.target.name, self.expr(&a.value, indent)),
            StmtKind::Break => "break".to_string(),
            StmtKind::Continue => "continue".to_string(),
            StmtKind::Return(None) => "return".to_string(),
            StmtKind::Return(Some(e)) => format!("return {}", self.expr(e, indent)),
            StmtKind::Emit { ty, args } => format!("emit {}({})", ty.name, self.args(args, indent)),
            StmtKind::Expr(e) => self.expr(e, indent),
            StmtKind::If { .. } | StmtKind::For { .. } | StmtKind::While { .. } => self
                .block_text(
                    &Block {
                        stmts: vec![s.clone()],
                        span: s.span,
                    },
                    indent,
                )
                .trim()
                .to_string(),
        }
    }

    /// The statements of a block lambda, one per line at `indent`, each
    /// line ending in a line break. Comments inside were moved above the
    /// line holding the lambda.
    fn block_text(&self, b: &Block, indent: usize) -> String {
        let pad = " ".repeat(indent);
        let mut out = String::new();
        for s in &b.stmts {
            match &s.kind {
                StmtKind::If {
                    branches,
                    else_block,
                } => {
                    for (i, (cond, body)) in branches.iter().enumerate() {
                        let kw = if i == 0 { "if" } else { "elif" };
                        out.push_str(&format!("{pad}{kw} {}:\n", self.expr(cond, indent)));
                        out.push_str(&self.block_text(body, indent + INDENT));
                    }
                    if let Some(body) = else_block {
                        out.push_str(&format!("{pad}else:\n"));
                        out.push_str(&self.block_text(body, indent + INDENT));
                    }
                }
                StmtKind::For { var, iter, body } => {
                    let iter = self.expr(iter, indent);
                    out.push_str(&format!("{pad}for {} in {iter}:\n", var.name));
                    out.push_str(&self.block_text(body, indent + INDENT));
                }
                StmtKind::While { cond, body } => {
                    out.push_str(&format!("{pad}while {}:\n", self.expr(cond, indent)));
                    out.push_str(&self.block_text(body, indent + INDENT));
                }
                _ => {
                    out.push_str(&pad);
                    out.push_str(&self.simple_stmt(s, indent));
                    out.push('\n');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn single_quoted_strings_get_double_quotes() {
        assert_eq!(super::string_literal("'a\"b\\'c'"), "\"a\\\"b\\'c\"");
        assert_eq!(super::string_literal("\"x\""), "\"x\"");
    }
}
