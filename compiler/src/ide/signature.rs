//! Signature help: the signature of the call or operator whose argument list
//! holds the cursor, and which argument the cursor is in.

use varpulis_syntax::{Token, TokenKind};

use super::view::FileView;
use crate::builtins;
use crate::capabilities::{self, Op, OpInfo};
use crate::host::Compiler;
use crate::model::ItemModel;

/// A signature with its parameters located in the label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHelp {
    /// The whole signature, e.g. `avg(x: number) -> float`.
    pub label: String,
    /// Byte ranges of each parameter inside `label`.
    pub params: Vec<(u32, u32)>,
    /// Index of the argument holding the cursor.
    pub active: usize,
    /// A one-line description.
    pub doc: Option<String>,
}

/// Conventional names of operators' positional arguments.
fn positional_names(op: Op) -> &'static [&'static str] {
    match op {
        Op::Where | Op::Filter | Op::Having | Op::On | Op::Any | Op::All => &["condition"],
        Op::PartitionBy | Op::OrderBy => &["key"],
        Op::Window => &["size"],
        Op::To | Op::Enrich => &["connector"],
        Op::Within | Op::AllowedLateness => &["duration"],
        Op::Limit => &["n"],
        Op::Context => &["context"],
        Op::Distinct => &["expr"],
        Op::Not => &["Type where condition"],
        Op::Policy
        | Op::LimitRuns
        | Op::Process
        | Op::Pattern
        | Op::Select
        | Op::Emit
        | Op::Aggregate
        | Op::TrendAggregate
        | Op::Late
        | Op::Timeouts
        | Op::Print
        | Op::Log
        | Op::First
        | Op::Watermark
        | Op::Tap
        | Op::Concurrent
        | Op::Forecast
        | Op::Score
        | Op::Map
        | Op::Collect
        | Op::OnError
        | Op::Fork => &[],
    }
}

/// The signature line of an operator, e.g. `.window(size, sliding: _)`.
pub(super) fn operator_label(op: &OpInfo) -> String {
    let mut params: Vec<String> = Vec::new();
    if op.op == Op::Pattern {
        params.push("name: events => condition".to_string());
    } else if op.max_positional == usize::MAX {
        match positional_names(op.op) {
            [one] => params.push(format!("{one}, ...")),
            _ => params.push("name: expr, ...".to_string()),
        }
    } else {
        let names = positional_names(op.op);
        for i in 0..op.max_positional {
            params.push(
                names
                    .get(i)
                    .map_or(format!("arg{}", i + 1), |n| n.to_string()),
            );
        }
    }
    if let Some(named) = op.named {
        params.extend(named.iter().map(|n| format!("{n}: _")));
    }
    format!(".{}({})", op.name, params.join(", "))
}

/// Splits the parameter list of `label` (between its first `(` and the
/// matching `)`) at top-level commas.
fn param_ranges(label: &str) -> Vec<(u32, u32)> {
    let Some(open) = label.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = open + 1;
    for (i, ch) in label.char_indices().skip_while(|(i, _)| *i <= open) {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                if i > start {
                    out.push((start as u32, i as u32));
                }
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push((start as u32, i as u32));
                start = i + 2;
            }
            _ => {}
        }
    }
    out
}

/// The callee of the innermost open argument list before `rel` in `tokens`:
/// its name, whether it is an operator (after a dot), and the index of the
/// argument holding the position.
pub(super) fn enclosing_call<'t>(
    text: &'t str,
    tokens: &[Token],
    rel: u32,
) -> Option<(&'t str, bool, usize)> {
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for (k, t) in tokens.iter().enumerate() {
        if t.span.start >= rel {
            break;
        }
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => stack.push((k, 0)),
            TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                stack.pop();
            }
            TokenKind::Comma => {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
            }
            _ => {}
        }
    }
    let &(open, commas) = stack.last()?;
    if tokens.get(open)?.kind != TokenKind::LParen {
        return None;
    }
    let callee = tokens.get(open.checked_sub(1)?)?;
    if callee.kind != TokenKind::Ident {
        return None;
    }
    let after_dot = open
        .checked_sub(2)
        .and_then(|k| tokens.get(k))
        .is_some_and(|t| matches!(t.kind, TokenKind::Dot | TokenKind::QuestionDot));
    Some((text.get(callee.span.range())?, after_dot, commas))
}

/// Signature help at byte `offset` of `path`.
pub fn signature_help(c: &Compiler, path: &str, offset: u32) -> Option<SignatureHelp> {
    let view = FileView::new(c, path)?;
    let i = view.item_at(offset)?;
    let rel = view.relative(i, offset)?;
    let text = view.item_text(i);
    let tokens = view.item_tokens(i);
    let (name, is_op, active) = enclosing_call(text, &tokens, rel)?;
    let (label, doc) = if is_op {
        let op = capabilities::operator(name)?;
        (operator_label(op), Some(op.summary.to_string()))
    } else if let Some(&item) = view.decl_items.get(name) {
        let ItemModel::Fn(sig) = &view.items.get(item)?.analysis.model else {
            return None;
        };
        let params: Vec<String> = sig
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect();
        (
            format!("{name}({}) -> {}", params.join(", "), sig.ret),
            None,
        )
    } else if let Some(b) = builtins::builtin(name) {
        let doc = builtins::aggregate(name).map(|a| format!("as an aggregate: {}", a.signature));
        (b.signature.to_string(), doc)
    } else {
        let a = builtins::aggregate(name)?;
        (
            a.signature.to_string(),
            Some("aggregate function".to_string()),
        )
    };
    let params = param_ranges(&label);
    // A variadic last parameter (`...`) absorbs the extra arguments.
    let active = if params.is_empty() {
        0
    } else {
        active.min(params.len() - 1)
    };
    Some(SignatureHelp {
        label,
        params,
        active,
        doc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, marker: &str) -> Option<(String, usize)> {
        let mut c = Compiler::new();
        let off = text.find(marker).expect("marker present") as u32;
        c.set_file("t.vpl", text.replacen(marker, "", 1));
        signature_help(&c, "t.vpl", off).map(|s| {
            let (a, b) = s.params[s.active];
            (s.label[a as usize..b as usize].to_string(), s.active)
        })
    }

    #[test]
    fn builtin_second_argument() {
        let src = "event R:\n    x: float\nstream S = R\n    .where(pow(x, $|) > 1)\n";
        assert_eq!(check(src, "$|"), Some(("y: number".to_string(), 1)));
    }

    #[test]
    fn operator_argument() {
        let src = "event R:\n    x: float\nstream S = R\n    .where($|)\n";
        assert_eq!(check(src, "$|"), Some(("condition".to_string(), 0)));
    }

    #[test]
    fn no_call_no_help() {
        assert_eq!(check("event R:\n    x: float$|\n", "$|"), None);
    }
}
