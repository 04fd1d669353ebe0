//! The arguments of `.forecast(...)` (docs/LANGUAGE.md#forecast): the
//! presets and the reading of literal arguments, shared by the checker
//! (which reports the problems) and the lowering (which takes the values).

use varpulis_syntax::ast::{Arg, Expr, ExprKind, UnaryOp};
use varpulis_syntax::Span;

/// Named arguments `.forecast` accepts.
pub const PARAMS: &[&str] = &[
    "mode",
    "confidence",
    "horizon",
    "warmup",
    "max_depth",
    "hawkes",
    "conformal",
];

/// The presets, by `mode:` name.
pub const MODES: &[&str] = &["fast", "balanced", "accurate"];

/// The fields a forecast record starts with, and their types' names.
pub const FIELDS: &[(&str, &str)] = &[
    ("forecast_probability", "float"),
    ("forecast_confidence", "float"),
    ("forecast_time", "int"),
    ("forecast_state", "str"),
    ("forecast_context_depth", "int"),
    ("forecast_lower", "float"),
    ("forecast_upper", "float"),
];

/// Longest context a forecast may use.
pub const MAX_DEPTH: i64 = 8;
/// Most events a horizon may count.
pub const MAX_HORIZON_EVENTS: i64 = 64;

/// How far ahead to predict, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Horizon {
    /// `horizon: 10` events.
    Events(u32),
    /// `horizon: 5m`.
    Time(u64),
}

/// The settings of one `.forecast`.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The preset.
    pub mode: &'static str,
    /// Emission threshold.
    pub confidence: f64,
    /// `None`: the sequence's `.within`, else as many events as it has steps.
    pub horizon: Option<Horizon>,
    /// Events before the first prediction.
    pub warmup: u64,
    /// Longest context.
    pub max_depth: u8,
    /// Hawkes timing.
    pub hawkes: bool,
    /// Conformal intervals.
    pub conformal: bool,
}

impl Settings {
    /// The preset `mode` (one of [`MODES`]; anything else is `balanced`).
    pub fn preset(mode: &str) -> Settings {
        let (mode, warmup, max_depth, on) = match mode {
            "fast" => ("fast", 50, 3, false),
            "accurate" => ("accurate", 200, 5, true),
            _ => ("balanced", 100, 3, true),
        };
        Settings {
            mode,
            confidence: 0.5,
            horizon: None,
            warmup,
            max_depth,
            hawkes: on,
            conformal: on,
        }
    }
}

/// A problem with one argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The argument's value.
    pub span: Span,
    /// What is wrong (lowercase, no full stop).
    pub message: String,
    /// The label under the value.
    pub label: String,
    /// A fix.
    pub help: String,
    /// A replacement for the value (did-you-mean).
    pub suggestion: Option<String>,
}

fn problem(e: &Expr, message: impl Into<String>, label: &str, help: impl Into<String>) -> Problem {
    Problem {
        span: e.span,
        message: message.into(),
        label: label.to_string(),
        help: help.into(),
        suggestion: None,
    }
}

/// Reads the arguments: the preset of `mode:` (default `balanced`), then
/// the other named arguments over it. Arguments with a problem keep the
/// preset's value. Positional arguments and unknown names are the
/// capability table's business.
pub fn settings(args: &[Arg]) -> (Settings, Vec<Problem>) {
    let mut problems = Vec::new();
    let named = |n: &str| {
        args.iter()
            .find(|a| a.name.as_ref().is_some_and(|x| x.name == n))
            .map(|a| &a.value)
    };
    let mut s = Settings::preset("balanced");
    if let Some(e) = named("mode") {
        let m = match &e.kind {
            ExprKind::Ident(i) => Some(i.name.as_str()),
            ExprKind::Str(t) => Some(t.as_str()),
            _ => None,
        };
        match m {
            Some(m) if MODES.contains(&m) => s = Settings::preset(m),
            Some(m) => {
                let mut p = problem(
                    e,
                    format!("unknown forecast mode `{m}`"),
                    "not a mode",
                    "the modes are `fast`, `balanced` (the default) and `accurate`",
                );
                if let Some(h) = crate::suggest::did_you_mean(m, MODES.iter().copied()) {
                    p.help = format!("did you mean `{h}`?");
                    p.suggestion = Some(h.to_string());
                }
                problems.push(p);
            }
            None if matches!(e.kind, ExprKind::Error) => {}
            None => problems.push(problem(
                e,
                "`mode:` must be `fast`, `balanced` or `accurate`",
                "not a mode name",
                "write `mode: balanced`",
            )),
        }
    }
    if let Some(e) = named("confidence") {
        match number(e) {
            Some(c) if (0.0..=1.0).contains(&c) => s.confidence = c,
            Some(_) => problems.push(problem(
                e,
                "`confidence:` must be between 0 and 1",
                "out of range",
                "write a probability such as `confidence: 0.8`",
            )),
            None if matches!(e.kind, ExprKind::Error) => {}
            None => problems.push(problem(
                e,
                "`confidence:` must be a number literal",
                "not a number",
                "write a probability such as `confidence: 0.8`",
            )),
        }
    }
    if let Some(e) = named("horizon") {
        match &e.kind {
            ExprKind::Duration(d) if *d > 0 && i64::try_from(*d).is_ok() => {
                s.horizon = Some(Horizon::Time(*d));
            }
            ExprKind::Int(n) if (1..=MAX_HORIZON_EVENTS).contains(n) => {
                s.horizon = Some(Horizon::Events(u32::try_from(*n).unwrap_or(1)));
            }
            ExprKind::Error => {}
            _ => problems.push(problem(
                e,
                format!(
                    "`horizon:` must be a positive duration or a number of events from 1 to {MAX_HORIZON_EVENTS}"
                ),
                "not a horizon",
                "write `horizon: 5m` (event time) or `horizon: 10` (events)",
            )),
        }
    }
    if let Some(e) = named("warmup") {
        match &e.kind {
            ExprKind::Int(n) if *n >= 0 => s.warmup = n.unsigned_abs(),
            ExprKind::Error => {}
            _ => problems.push(problem(
                e,
                "`warmup:` must be a non-negative integer literal",
                "not a number of events",
                "write the events to learn from first, e.g. `warmup: 100`",
            )),
        }
    }
    if let Some(e) = named("max_depth") {
        match &e.kind {
            ExprKind::Int(n) if (1..=MAX_DEPTH).contains(n) => {
                s.max_depth = u8::try_from(*n).unwrap_or(3);
            }
            ExprKind::Error => {}
            _ => problems.push(problem(
                e,
                format!("`max_depth:` must be an integer literal from 1 to {MAX_DEPTH}"),
                "not a context depth",
                "write `max_depth: 3`",
            )),
        }
    }
    for (name, slot) in [("hawkes", &mut s.hawkes), ("conformal", &mut s.conformal)] {
        if let Some(e) = named(name) {
            match &e.kind {
                ExprKind::Bool(b) => *slot = *b,
                ExprKind::Ident(i) if i.name == "on" => *slot = true,
                ExprKind::Ident(i) if i.name == "off" => *slot = false,
                ExprKind::Error => {}
                _ => problems.push(problem(
                    e,
                    format!("`{name}:` must be `true` or `false`"),
                    "not a boolean",
                    format!("write `{name}: true`"),
                )),
            }
        }
    }
    (s, problems)
}

/// A number literal (a leading `-` included).
fn number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Int(n) => Some(*n as f64),
        ExprKind::Float(f) => Some(f.0),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => number(expr).map(|v| -v),
        ExprKind::Paren(inner) => number(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_language_reference() {
        let f = Settings::preset("fast");
        assert_eq!(
            (f.warmup, f.max_depth, f.hawkes, f.conformal),
            (50, 3, false, false)
        );
        let b = Settings::preset("balanced");
        assert_eq!(
            (b.warmup, b.max_depth, b.hawkes, b.conformal),
            (100, 3, true, true)
        );
        let a = Settings::preset("accurate");
        assert_eq!(
            (a.warmup, a.max_depth, a.hawkes, a.conformal),
            (200, 5, true, true)
        );
        assert_eq!(b.confidence, 0.5);
    }
}
