//! Checking the supported pipeline operators one by one: their arguments,
//! their placement rules (one window, one aggregate, `.having` after
//! `.aggregate`, ...) and the schema they produce.

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, Expr, ExprKind, Ident, Op, StreamDecl};

use super::stream::Pipeline;
use super::{AggMode, Checker};
use crate::capabilities::Op as Operator;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::{OutputItem, StageKind, WindowSpec};
use crate::resolve::DeclKind;
use crate::suggest;
use crate::types::{Field, Schema, Type};

/// Most engine shards `.concurrent(workers: N)` may ask for (the host's
/// limit too).
const MAX_WORKERS: i64 = 64;

impl Checker<'_> {
    pub(super) fn supported_op(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let same = input.clone();
        let scope = p.scope(input);
        let first = args.first().map(|a| &a.value);
        let Some(which) = Operator::from_name(&name.name) else {
            return (StageKind::Invalid, same);
        };
        let kind = match which {
            Operator::Where | Operator::Filter => {
                let e = first.expect("arity checked: one argument");
                self.condition(e, &scope, "a filter");
                StageKind::Where(e.span)
            }
            Operator::Having => {
                let e = first.expect("arity checked: one argument");
                if p.aggregate.is_none() {
                    self.report(
                        Diagnostic::new(codes::HAVING_BEFORE_AGGREGATE, "`.having` before `.aggregate`", name.span)
                            .with_label("there is no aggregate to filter yet")
                            .with_help("move `.having(...)` after `.aggregate(...)`, or use `.where(...)` to filter events"),
                    );
                }
                self.condition(e, &scope, "a `.having` condition");
                StageKind::Having(e.span)
            }
            Operator::On => {
                let e = first.expect("arity checked: one argument");
                if !p.is_join {
                    self.report(
                        Diagnostic::new(codes::ON_WITHOUT_JOIN, "`.on` outside a join", name.span)
                            .with_label("this stream's source is not `join(...)`")
                            .with_help(
                                "use `.where(...)` to filter, or make the source `join(A, B)`",
                            ),
                    );
                } else if p.on {
                    self.report(
                        Diagnostic::new(
                            codes::JOIN_WITHOUT_ON,
                            "the join already has a `.on` condition",
                            name.span,
                        )
                        .with_label("second condition")
                        .with_help("combine the conditions with `and` in one `.on(...)`"),
                    );
                }
                p.on = true;
                self.condition(e, &scope, "a join condition");
                StageKind::On(e.span)
            }
            Operator::Select => {
                let items = self.output_items(args, &scope, "select");
                let schema = items_schema(&p.stream, &items);
                return (StageKind::Select(items), Arc::new(schema));
            }
            Operator::Window => return self.window(op, name, args, input, p),
            Operator::PartitionBy => {
                let e = first.expect("arity checked: one argument");
                let key = match &e.kind {
                    ExprKind::Ident(i) => {
                        // A sequence is partitioned on a field that its
                        // steps' events share (docs/LANGUAGE.md#partition_by); any step may carry it.
                        let in_steps = p.is_sequence
                            && p.bound
                                .iter()
                                .any(|b| b.schema.open || b.schema.field(&i.name).is_some());
                        if in_steps && input.field(&i.name).is_none() {
                            let res = crate::model::Resolution::DynamicField {
                                name: i.name.clone(),
                            };
                            self.exprs.insert(
                                e.span,
                                crate::model::ExprInfo {
                                    ty: Type::Any,
                                    resolution: Some(res),
                                },
                            );
                        } else {
                            self.expr(e, &scope);
                        }
                        i.name.clone()
                    }
                    ExprKind::Error => String::new(),
                    _ => {
                        self.report(
                            Diagnostic::new(codes::INVALID_PARTITION_KEY, "the partition key must be a field name", e.span)
                                .with_label("not a field name")
                                .with_help("compute the key with `.select(key: ...)` first, then `.partition_by(key)`"),
                        );
                        String::new()
                    }
                };
                if let Some(w) = p.window {
                    self.report(
                        Diagnostic::new(
                            codes::PARTITION_AFTER_WINDOW,
                            "`.partition_by` after `.window` does not partition the window",
                            name.span,
                        )
                        .with_label("written after the window")
                        .with_secondary(w, "the window is shared by all keys")
                        .with_help("move `.partition_by(...)` before `.window(...)`"),
                    );
                }
                p.partition = Some(key.clone());
                let bounded = self.state_bound(args, "max_keys", !p.is_sequence);
                if !bounded && !p.is_sequence {
                    p.unbounded_partition = Some(name.span);
                }
                StageKind::PartitionBy(key)
            }
            Operator::Aggregate => return self.aggregate(op, name, args, input, p),
            Operator::TrendAggregate => {
                self.trend_shape(s, name, p);
                return self.trend_aggregate(name, args, input, p);
            }
            Operator::Forecast => return self.forecast(s, name, args, input, p),
            Operator::Late => {
                if !s.ops.first().is_some_and(|o| std::ptr::eq(o, op)) {
                    self.report(
                        Diagnostic::new(
                            codes::INVALID_LATE_STREAM,
                            "`.late()` must be the first operator",
                            name.span,
                        )
                        .with_label("after other operators")
                        .with_help(
                            "declare a late stream: `stream LateReadings = Readings.late()`",
                        ),
                    );
                }
                StageKind::Late
            }
            Operator::Timeouts => {
                if !s.ops.first().is_some_and(|o| std::ptr::eq(o, op)) {
                    self.report(
                        Diagnostic::new(
                            codes::INVALID_TIMEOUT_STREAM,
                            "`.timeouts()` must be the first operator",
                            name.span,
                        )
                        .with_label("after other operators")
                        .with_help("declare a timeout stream: `stream Late = Seq.timeouts()`"),
                    );
                }
                StageKind::Timeouts
            }
            Operator::Within => {
                let e = first.expect("arity checked: one argument");
                if !p.is_sequence {
                    self.outside_sequence(name.span, "within");
                }
                p.within = true;
                StageKind::Within(self.duration_arg(e, "`.within`").unwrap_or(0))
            }
            Operator::Policy => {
                let e = first.expect("arity checked: one argument");
                if !p.is_sequence {
                    self.outside_sequence(name.span, "policy");
                }
                let policy = match &e.kind {
                    ExprKind::Ident(i) => i.name.clone(),
                    _ => String::new(),
                };
                self.selection_policy(&policy, e.span);
                StageKind::Policy(policy)
            }
            Operator::LimitRuns => self.limit_runs(name, args, p),
            Operator::To => {
                let c = self.connector_args(op.span, &scope, args, "to");
                StageKind::To {
                    connector: c.unwrap_or_default(),
                }
            }
            Operator::Print => {
                for a in args {
                    self.expr(&a.value, &scope);
                }
                StageKind::Print
            }
            Operator::Log => {
                for a in args {
                    let t = self.expr(&a.value, &scope);
                    let n = a.name.as_ref().map_or("", |n| n.name.as_str());
                    if (n == "level" || n == "message") && !t.fits(&Type::Str) {
                        self.report(
                            Diagnostic::new(
                                codes::ARGUMENT_TYPE,
                                format!("`{n}` must be a string, found `{t}`"),
                                a.value.span,
                            )
                            .with_label(format!("this is `{t}`")),
                        );
                    }
                }
                StageKind::Log
            }
            Operator::Distinct => {
                self.state_bound(args, "max", true);
                let first = args.iter().find(|a| a.name.is_none()).map(|a| &a.value);
                if let Some(e) = first {
                    self.expr(e, &scope);
                }
                StageKind::Distinct(first.map(|e| e.span))
            }
            Operator::Limit => {
                let e = first.expect("arity checked: one argument");
                match &e.kind {
                    ExprKind::Int(n) if *n >= 0 => StageKind::Limit(*n as u64),
                    ExprKind::Error => StageKind::Invalid,
                    _ => {
                        let t = self.expr(e, &scope);
                        self.report(
                            Diagnostic::new(
                                codes::ARGUMENT_TYPE,
                                "`.limit` needs a non-negative integer literal",
                                e.span,
                            )
                            .with_label(format!("this is `{t}`"))
                            .with_help("write the number of events, e.g. `.limit(10)`"),
                        );
                        StageKind::Invalid
                    }
                }
            }
            Operator::First => StageKind::First,
            Operator::Enrich => return self.enrich(op, name, args, input, &scope),
            Operator::Score => return self.score(name, args, input, p),
            Operator::Process => {
                return self.process(first.expect("arity checked: one argument"), &scope, input)
            }
            Operator::Watermark => {
                let v = args
                    .first()
                    .and_then(|a| self.duration_arg(&a.value, "`out_of_order`"));
                StageKind::Watermark(v.unwrap_or(0))
            }
            Operator::AllowedLateness => {
                let e = first.expect("arity checked: one argument");
                StageKind::AllowedLateness(self.duration_arg(e, "`.allowed_lateness`").unwrap_or(0))
            }
            Operator::Pattern => return self.window_pattern(s, op, name, args, input, p),
            Operator::Concurrent => self.concurrent(name, args, p),
            Operator::Map => return self.map_op(name, args, input, p),
            Operator::OnError => self.on_error(s, op, name, args, &scope),
            Operator::OrderBy | Operator::Collect | Operator::Any | Operator::All => {
                return self.group_op(s, op, name, args, input, p)
            }
            Operator::Context => {
                let e = first.expect("arity checked: one argument");
                StageKind::Context(self.context_ref(e).unwrap_or_default())
            }
            // Not run by the engine (`call_op` reported them already) or
            // parsed as their own syntax (`.emit`, `.not(...)`). Reaching here
            // is a compiler bug, reported rather than panicking.
            Operator::Emit | Operator::Not | Operator::Tap | Operator::Fork => {
                self.report(
                    Diagnostic::new(
                        codes::UNSUPPORTED_OPERATOR,
                        format!("operator `.{which}` is not supported yet"),
                        name.span,
                    )
                    .with_label("not supported yet"),
                );
                StageKind::Invalid
            }
        };
        let _ = s;
        (kind, same)
    }

    /// `.concurrent(workers: N)`: needs a partition key before it (the
    /// shards split the partitions) and a literal worker count.
    fn concurrent(&mut self, name: &Ident, args: &[Arg], p: &Pipeline) -> StageKind {
        if p.partition.is_none() {
            self.report(
                Diagnostic::new(
                    codes::INVALID_PARTITION_KEY,
                    "`.concurrent` without `.partition_by`",
                    name.span,
                )
                .with_label("no partition key to split the work by")
                .with_help("write `.partition_by(field).concurrent(workers: 4)`"),
            );
        }
        let workers = args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "workers"));
        let Some(workers) = workers else {
            self.report(
                Diagnostic::new(
                    codes::WRONG_ARITY,
                    "`.concurrent` needs `workers: N`",
                    name.span,
                )
                .with_label("how many engine shards?")
                .with_help("write `.concurrent(workers: 4)`"),
            );
            return StageKind::Invalid;
        };
        match &workers.value.kind {
            ExprKind::Int(n) if (1..=MAX_WORKERS).contains(n) => StageKind::Concurrent(*n as u32),
            ExprKind::Error => StageKind::Invalid,
            _ => {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`workers:` must be an integer literal from 1 to {MAX_WORKERS}"),
                        workers.value.span,
                    )
                    .with_label("not a worker count")
                    .with_help("write a number, e.g. `workers: 4`"),
                );
                StageKind::Invalid
            }
        }
    }

    /// Resolves a context name.
    fn context_ref(&mut self, e: &Expr) -> Option<String> {
        let ExprKind::Ident(c) = &e.kind else {
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_CONTEXT,
                    "expected the name of a context",
                    e.span,
                )
                .with_label("not a context name"),
            );
            return None;
        };
        if self.env.decl(&c.name) == Some(DeclKind::Context) {
            return Some(c.name.clone());
        }
        let declare = format!("declare it with `context {}`", c.name);
        self.unknown_decl(
            codes::UNKNOWN_CONTEXT,
            "context",
            |k| k == DeclKind::Context,
            c,
            declare,
        );
        None
    }

    /// Reports an unknown name of one declaration kind (context, connector)
    /// with a did-you-mean fix among the declared ones, or how to declare it.
    pub(super) fn unknown_decl(
        &mut self,
        code: &'static str,
        what: &str,
        is_kind: fn(DeclKind) -> bool,
        name: &Ident,
        declare_help: String,
    ) {
        let cands = self.env.names(is_kind);
        let help =
            suggest::did_you_mean(&name.name, cands.iter().map(String::as_str)).map(str::to_string);
        let d = Diagnostic::new(code, format!("unknown {what} `{}`", name.name), name.span)
            .with_label("not declared");
        let d = match help {
            Some(h) => d
                .with_help(format!("did you mean `{h}`?"))
                .with_suggestion(name.span, h),
            None => d.with_help(declare_help),
        };
        self.report(d);
    }

    /// Checks a duration argument; returns its value in nanoseconds when it is
    /// a literal.
    pub(super) fn duration_arg(&mut self, e: &Expr, what: &str) -> Option<u64> {
        match &e.kind {
            ExprKind::Duration(ns) => {
                self.exprs.insert(
                    e.span,
                    crate::model::ExprInfo {
                        ty: Type::Duration,
                        resolution: None,
                    },
                );
                Some(*ns)
            }
            ExprKind::Error => None,
            _ => {
                let t = self.expr(e, &super::Scope::default());
                if t != Type::Error {
                    let help = match &e.kind {
                        ExprKind::Int(n) => format!("add a unit, e.g. `{n}s` or `{n}m`"),
                        _ => "write a duration literal such as `30s`, `5m` or `1h`".to_string(),
                    };
                    let mut d = Diagnostic::new(
                        codes::EXPECTED_DURATION,
                        format!("{what} needs a duration literal, found `{t}`"),
                        e.span,
                    )
                    .with_label("not a duration")
                    .with_help(help);
                    if let ExprKind::Int(n) = &e.kind {
                        d = d.with_suggestion(e.span, format!("{n}s"));
                    }
                    self.report(d);
                }
                None
            }
        }
    }

    fn window(
        &mut self,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        if let Some(first) = p.window {
            self.report(
                Diagnostic::new(
                    codes::DUPLICATE_WINDOW,
                    "a stream can have only one `.window`",
                    name.span,
                )
                .with_label("second window")
                .with_secondary(first, "first window here")
                .with_help("split the pipeline into two streams, the second consuming the first"),
            );
        } else {
            p.window = Some(name.span);
        }
        let positional: Vec<&Expr> = args
            .iter()
            .filter(|a| a.name.is_none())
            .map(|a| &a.value)
            .collect();
        let named = |n: &str| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|x| x.name == n))
                .map(|a| &a.value)
        };
        let (session, sliding) = (named("session"), named("sliding"));
        if let Some(pol) = named("policy") {
            self.expr(pol, &p.scope(input));
        }
        let spec = match (positional.first(), session) {
            (None, Some(gap)) => match &gap.kind {
                ExprKind::Duration(ns) => Some(WindowSpec::Session { gap: *ns }),
                _ => self.bad_window(gap, "a session gap must be a duration, e.g. `session: 5m`"),
            },
            (Some(_), Some(gap)) => self.bad_window(gap, "a session window takes only `session: gap`, without a size"),
            (None, None) => {
                self.report(
                    Diagnostic::new(codes::INVALID_WINDOW, "`.window` needs a size", op.span)
                        .with_label("no size given")
                        .with_help("write `.window(5m)` for a time window or `.window(100)` for a count window"),
                );
                None
            }
            (Some(size), None) => match &size.kind {
                ExprKind::Duration(ns) => {
                    let slide = match sliding.map(|s| &s.kind) {
                        None => Some(None),
                        Some(ExprKind::Duration(d)) => Some(Some(*d)),
                        Some(_) => None,
                    };
                    match slide {
                        Some(slide) => Some(WindowSpec::Time { size: *ns, slide }),
                        None => self.bad_window(sliding.expect("checked above"), "the slide of a time window must be a duration too"),
                    }
                }
                ExprKind::Int(n) if *n > 0 => {
                    let slide = match sliding.map(|s| &s.kind) {
                        None => Some(None),
                        Some(ExprKind::Int(m)) if *m > 0 => Some(Some(*m as u64)),
                        Some(_) => None,
                    };
                    match slide {
                        Some(slide) => Some(WindowSpec::Count { size: *n as u64, slide }),
                        None => self.bad_window(sliding.expect("checked above"), "the slide of a count window must be a positive integer too"),
                    }
                }
                ExprKind::Int(_) => self.bad_window(size, "a count window needs a positive number of events"),
                ExprKind::Error => None,
                _ => self.bad_window(size, "a window size must be a duration literal (time window) or an integer literal (count window)"),
            },
        };
        if let (Some(WindowSpec::Count { .. }), Some(at)) = (&spec, p.unbounded_partition) {
            self.report(
                Diagnostic::new(
                    codes::UNBOUNDED_PARTITION,
                    "every key keeps an open count window: state grows with the number of keys",
                    at,
                )
                .with_label("no `max_keys:` or `idle:`")
                .with_secondary(name.span, "a count window stays open until its n-th event")
                .with_help("bound the keys, e.g. `.partition_by(user, max_keys: 100000)` or `.partition_by(user, idle: 30m)`"),
            );
        }
        if let Some(max) = named("max_events") {
            self.max_events(max, spec.as_ref());
        }
        let kind = spec.map_or(StageKind::Invalid, StageKind::Window);
        (kind, input.clone())
    }

    /// Checks `.window(..., max_events: n)` (docs/LANGUAGE.md#bounded-state):
    /// a positive integer literal, on a window that keeps a growing number
    /// of events (not a count window, which holds at most its size).
    fn max_events(&mut self, max: &Expr, spec: Option<&WindowSpec>) {
        match (&max.kind, spec) {
            (ExprKind::Error, _) => {}
            (ExprKind::Int(n), Some(WindowSpec::Count { size, .. })) if *n > 0 => self.report(
                Diagnostic::new(
                    codes::INVALID_STATE_BOUND,
                    "`max_events:` does not apply to a count window",
                    max.span,
                )
                .with_label(format!("the window already holds at most {size} events"))
                .with_help("remove `max_events:`, or lower the window's size"),
            ),
            (ExprKind::Int(n), _) if *n > 0 => {}
            _ => self.report(
                Diagnostic::new(
                    codes::INVALID_STATE_BOUND,
                    "`max_events:` must be a positive integer literal",
                    max.span,
                )
                .with_label("not allowed here")
                .with_help("e.g. `max_events: 100000`"),
            ),
        }
    }

    /// Checks the state-bound arguments (`max` = `max_keys` or `max`,
    /// `evict:`, `idle:`; docs/LANGUAGE.md#bounded-state) and returns whether
    /// a bound is set. `allowed` is false where the state belongs to a
    /// sequence, whose runs `.limit_runs` bounds instead.
    fn state_bound(&mut self, args: &[Arg], max: &str, allowed: bool) -> bool {
        let mut bounded = false;
        for a in args {
            let Some(n) = &a.name else { continue };
            let n = n.name.as_str();
            if n != max && n != "evict" && n != "idle" {
                continue;
            }
            if !allowed {
                self.report(
                    Diagnostic::new(
                        codes::INVALID_STATE_BOUND,
                        format!("`{n}:` does not apply to a sequence's partitions"),
                        a.value.span,
                    )
                    .with_label("the sequence owns this partition")
                    .with_help("bound a sequence's runs with `.limit_runs(per_key, total: n)`; partitions without runs are freed"),
                );
                continue;
            }
            let ok = match (n, &a.value.kind) {
                (_, ExprKind::Error) => true,
                ("evict", ExprKind::Ident(i)) => {
                    varpulis_program::Evict::from_name(&i.name).is_some()
                }
                ("idle", ExprKind::Duration(d)) => {
                    bounded = true;
                    *d > 0
                }
                ("evict" | "idle", _) => false,
                (_, ExprKind::Int(k)) => {
                    bounded = true;
                    *k > 0
                }
                _ => false,
            };
            if !ok {
                let want = match n {
                    "evict" => "`lru` or `fifo`",
                    "idle" => "a positive duration, e.g. `30m`",
                    _ => "a positive integer literal",
                };
                self.report(
                    Diagnostic::new(
                        codes::INVALID_STATE_BOUND,
                        format!("`{n}:` must be {want}"),
                        a.value.span,
                    )
                    .with_label("not allowed here")
                    .with_help(format!(
                        "e.g. `{n}: {}`",
                        match n {
                            "evict" => "lru",
                            "idle" => "30m",
                            _ => "100000",
                        }
                    )),
                );
            }
        }
        bounded
    }

    fn bad_window(&mut self, e: &Expr, why: &str) -> Option<WindowSpec> {
        if matches!(e.kind, ExprKind::Error) {
            return None;
        }
        let t = self.expr(e, &super::Scope::default());
        let help = match &e.kind {
            ExprKind::Str(s) => format!("write the literal without quotes: `{s}`"),
            ExprKind::Int(n) if why.contains("duration") => format!("add a unit, e.g. `{n}s`"),
            ExprKind::Duration(_) if why.contains("integer") => "write a number of events, e.g. `10`".to_string(),
            ExprKind::Float(_) => "write a duration such as `30s` or a whole number of events".to_string(),
            _ => "e.g. `.window(5m)`, `.window(5m, sliding: 30s)`, `.window(100)` or `.window(session: 2m)`".to_string(),
        };
        self.report(
            Diagnostic::new(codes::INVALID_WINDOW, why.to_string(), e.span)
                .with_label(if t.is_unknown() {
                    "invalid here".to_string()
                } else {
                    format!("this is `{t}`")
                })
                .with_help(help),
        );
        None
    }

    fn aggregate(
        &mut self,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        if let Some(first) = p.aggregate {
            self.report(
                Diagnostic::new(codes::DUPLICATE_AGGREGATE, "a stream can have only one `.aggregate`", name.span)
                    .with_label("second aggregate")
                    .with_secondary(first, "first aggregate here")
                    .with_help("merge the items into one `.aggregate(...)`, or aggregate again in a derived stream"),
            );
        } else {
            p.aggregate = Some(name.span);
        }
        if p.window.is_none() && !p.is_sequence {
            self.report(
                Diagnostic::new(
                    codes::AGGREGATE_WITHOUT_WINDOW,
                    "`.aggregate` without a `.window`",
                    name.span,
                )
                .with_label("each event is aggregated on its own")
                .with_help("add a window before it, e.g. `.window(1m)` or `.window(100)`"),
            );
        }
        let mut scope = p.scope(input);
        scope.agg = AggMode::Inside;
        let mut items = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        for a in args {
            let Some(n) = &a.name else {
                self.take_saw_aggregate();
                let t = self.expr(&a.value, &scope);
                let _ = t;
                let help = match &a.value.kind {
                    ExprKind::Call { callee, .. } => match &callee.kind {
                        ExprKind::Ident(f) => format!("name it, e.g. `{}: ...`", f.name),
                        _ => "name it: `name: aggregate(...)`".to_string(),
                    },
                    _ => "name it: `name: aggregate(...)`".to_string(),
                };
                self.report(
                    Diagnostic::new(
                        codes::UNNAMED_OUTPUT,
                        "aggregate items must be named",
                        a.value.span,
                    )
                    .with_label("no name")
                    .with_help(help),
                );
                continue;
            };
            self.take_saw_aggregate();
            let before = self.diags.len();
            let t = self.expr(&a.value, &scope);
            let saw = self.take_saw_aggregate();
            if !saw && self.diags.len() == before && !matches!(a.value.kind, ExprKind::Error) {
                self.report(
                    Diagnostic::new(
                        codes::NOT_AN_AGGREGATE,
                        format!("`{}` is not computed by an aggregate function", n.name),
                        a.value.span,
                    )
                    .with_label("no aggregate function here")
                    .with_help(
                        "use an aggregate such as `count()`, `sum(x)`, `avg(x)` or `last(x)`",
                    ),
                );
            }
            if fields.iter().any(|f| f.name == n.name) {
                self.duplicate_field(n, "aggregate");
                continue;
            }
            fields.push(Field::new(n.name.clone(), t.clone()));
            items.push(OutputItem {
                name: n.name.clone(),
                expr: a.value.span,
                ty: t,
            });
        }
        // docs/LANGUAGE.md#partition_by: the partition key under its own name, plus `_partition`.
        if let Some(k) = p.partition.clone().filter(|k| !k.is_empty()) {
            let ty = input.field(&k).map_or(Type::Any, |(_, f)| f.ty.clone());
            if fields.iter().all(|f| f.name != k) {
                fields.push(Field::new(k.clone(), ty));
            }
            if fields.iter().all(|f| f.name != "_partition") {
                fields.push(Field::new("_partition", Type::Str));
            }
        }
        let _ = op;
        let schema = Schema::new(p.stream.clone(), fields);
        (
            StageKind::Aggregate {
                items,
                partition: p.partition.clone().filter(|k| !k.is_empty()),
            },
            Arc::new(schema),
        )
    }

    pub(super) fn duplicate_field(&mut self, n: &Ident, what: &str) {
        self.report(
            Diagnostic::new(
                codes::DUPLICATE_FIELD,
                format!("field `{}` is produced twice by `.{what}`", n.name),
                n.span,
            )
            .with_label("already produced")
            .with_help("give each output field its own name"),
        );
    }

    /// Items of `.select` / `.emit`: `field` or `name: expr`.
    pub(super) fn output_items(
        &mut self,
        args: &[Arg],
        scope: &super::Scope,
        what: &str,
    ) -> Vec<OutputItem> {
        let mut items: Vec<OutputItem> = Vec::new();
        for a in args {
            let t = self.expr(&a.value, scope);
            let name = match (&a.name, &a.value.kind) {
                (Some(n), _) => n.clone(),
                (None, ExprKind::Ident(i)) => i.clone(),
                (None, ExprKind::Member { name, .. }) => name.clone(),
                (None, ExprKind::Error) => continue,
                (None, _) => {
                    self.report(
                        Diagnostic::new(
                            codes::UNNAMED_OUTPUT,
                            format!("`.{what}` items must be named"),
                            a.value.span,
                        )
                        .with_label("no name for this value")
                        .with_help("write `name: expression`"),
                    );
                    continue;
                }
            };
            if items.iter().any(|i| i.name == name.name) {
                self.duplicate_field(&name, what);
                continue;
            }
            items.push(OutputItem {
                name: name.name.clone(),
                expr: a.value.span,
                ty: t,
            });
        }
        items
    }

    pub(super) fn emit(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        as_type: Option<&Ident>,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let _ = op;
        if let Some(t) = as_type {
            let n = &t.name;
            if !matches!(self.env.decl(n), Some(DeclKind::Event)) && *n != s.name.name {
                let cands = self.env.names(|k| k == DeclKind::Event);
                let help = suggest::help(n, cands.iter().map(String::as_str));
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_TYPE,
                        format!("unknown event type `{n}` after `.emit as`"),
                        t.span,
                    )
                    .with_label("not an event type")
                    .with_help(help.unwrap_or_else(|| {
                        format!("declare it with `event {n}:` or remove `as {n}`")
                    })),
                );
            }
        }
        let scope = p.scope(input);
        let mut context = None;
        let fields: Vec<Arg> = args
            .iter()
            .filter(|a| {
                if a.name.as_ref().is_some_and(|n| n.name == "context") {
                    context = Some(a.value.clone());
                    false
                } else {
                    true
                }
            })
            .cloned()
            .collect();
        let context = context.and_then(|e| self.context_ref(&e));
        if fields.is_empty() {
            // docs/LANGUAGE.md#emit: `.emit()` passes every field through.
            let mut out = (**input).clone();
            out.name = s.name.name.clone();
            return (
                StageKind::Emit {
                    items: Vec::new(),
                    context,
                },
                Arc::new(out),
            );
        }
        let items = self.output_items(&fields, &scope, "emit");
        if let Some(t) = as_type {
            let types: Vec<Type> = items.iter().map(|i| i.ty.clone()).collect();
            let named: Vec<&Arg> = fields
                .iter()
                .filter(|a| a.name.is_some() || matches!(a.value.kind, ExprKind::Ident(_)))
                .collect();
            self.fields_of_event(t, &named, &types);
        }
        let schema = items_schema(&s.name.name, &items);
        (StageKind::Emit { items, context }, Arc::new(schema))
    }

    /// Checks the fields given to `emit T(...)` / `.emit as T(...)` against
    /// the declared event type `T`: each must be one of its fields, with a
    /// value of its type.
    pub(super) fn fields_of_event(&mut self, t: &Ident, args: &[&Arg], types: &[Type]) {
        if self.env.decl(&t.name) != Some(DeclKind::Event) {
            return;
        }
        let Some(schema) = self.env.event_schema(&t.name) else {
            return;
        };
        if schema.open {
            return;
        }
        for (a, ty) in args.iter().zip(types) {
            let name = match (&a.name, &a.value.kind) {
                (Some(n), _) => n,
                (None, ExprKind::Ident(i)) => i,
                _ => continue,
            };
            match schema.field(&name.name) {
                None => {
                    let help = suggest::help(&name.name, schema.field_names());
                    let d = Diagnostic::new(
                        codes::UNKNOWN_FIELD,
                        format!("unknown field `{}` on `{}`", name.name, t.name),
                        name.span,
                    )
                    .with_label(format!("`{}` has no field `{}`", t.name, name.name));
                    let d = match help {
                        Some(h) => d.with_help(h),
                        None => d.with_note(format!(
                            "`{}` has fields {}",
                            t.name,
                            super::expr::list(schema.field_names())
                        )),
                    };
                    self.report(d);
                }
                Some((_, f)) if !ty.fits(&f.ty) => self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!(
                            "field `{}` of `{}` is `{}`, but this value is `{ty}`",
                            name.name, t.name, f.ty
                        ),
                        a.value.span,
                    )
                    .with_label(format!("this is `{ty}`")),
                ),
                Some(_) => {}
            }
        }
    }
}

/// Trend aggregation functions of `.trend_aggregate` (docs/LANGUAGE.md#trend_aggregate): name, number
/// of arguments, result type.
const TREND_FNS: &[(&str, usize, Type)] = &[
    ("count_trends", 0, Type::Int),
    ("count_events", 1, Type::Int),
    ("sum_trends", 1, Type::Float),
    ("avg_trends", 1, Type::Float),
    ("min_trends", 1, Type::Float),
    ("max_trends", 1, Type::Float),
];

impl Checker<'_> {
    /// What `.trend_aggregate` needs from its stream, checked here so that
    /// `check` rejects what the lowering cannot run (same codes): a sequence
    /// with a Kleene step and a `.within`, not a named pattern, no `.select`.
    fn trend_shape(&mut self, s: &StreamDecl, name: &Ident, p: &Pipeline) {
        if !p.is_sequence {
            return; // Reported as an operator outside a sequence.
        }
        let from_pattern =
            matches!(
                &s.source.kind,
                varpulis_syntax::ast::SourceKind::Named { name: src, .. }
                    if self.env.decl(&src.name) == Some(crate::resolve::DeclKind::Pattern)
            ) || matches!(s.source.kind, varpulis_syntax::ast::SourceKind::Sequence(_));
        let unsupported = |c: &mut Self, msg: &str, span: varpulis_syntax::Span, help: &str| {
            c.report(
                Diagnostic::new(codes::UNSUPPORTED_CONSTRUCT, msg, span)
                    .with_label("the engine cannot run this yet")
                    .with_help(help),
            );
        };
        if from_pattern {
            unsupported(
                self,
                "`.trend_aggregate` on a named pattern or `sequence(...)` source is not supported yet",
                name.span,
                "write the sequence in the stream with `->` steps",
            );
            return;
        }
        if !p.bound.iter().any(|a| a.kleene) {
            unsupported(
                self,
                "`.trend_aggregate` needs an `all` (or `+`) step in the sequence",
                name.span,
                "make the repeated step Kleene: `-> all Tick where ... as ticks`",
            );
        }
        let has_within = s
            .ops
            .iter()
            .any(|o| matches!(&o.kind, varpulis_syntax::ast::OpKind::Call { name, .. } if name.name == "within"));
        if !has_within {
            unsupported(
                self,
                "`.trend_aggregate` needs a `.within(d)` on the sequence",
                name.span,
                "add `.within(d)`: trends are aggregated per run, which must end",
            );
        }
        if let Some(sel) = s
            .ops
            .iter()
            .find(|o| matches!(&o.kind, varpulis_syntax::ast::OpKind::Call { name, .. } if name.name == "select"))
        {
            unsupported(
                self,
                "`.select` in a stream with `.trend_aggregate` is not supported yet",
                sel.span,
                "use `.emit(...)` after `.trend_aggregate(...)`",
            );
        }
    }

    fn trend_aggregate(
        &mut self,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        if !p.is_sequence {
            self.outside_sequence(name.span, "trend_aggregate");
        }
        let scope = p.scope(input);
        let mut items: Vec<OutputItem> = Vec::new();
        for a in args {
            let Some(n) = &a.name else {
                self.report(
                    Diagnostic::new(
                        codes::UNNAMED_OUTPUT,
                        "trend aggregate items must be named",
                        a.value.span,
                    )
                    .with_label("no name")
                    .with_help("write `name: count_trends()`"),
                );
                continue;
            };
            let call = match &a.value.kind {
                ExprKind::Call {
                    callee,
                    args: cargs,
                } => match &callee.kind {
                    ExprKind::Ident(f) => TREND_FNS
                        .iter()
                        .find(|(t, _, _)| *t == f.name)
                        .map(|t| (f, t, cargs)),
                    _ => None,
                },
                _ => None,
            };
            let Some((f, (_, arity, ty), cargs)) = call else {
                if !matches!(a.value.kind, ExprKind::Error) {
                    self.report(
                        Diagnostic::new(codes::NOT_AN_AGGREGATE, format!("`{}` is not computed by a trend aggregate", n.name), a.value.span)
                            .with_label("not a trend aggregate")
                            .with_note("trend aggregates: `count_trends()`, `count_events(alias)`, `sum_trends(alias.f)`, `avg_trends`, `min_trends`, `max_trends`"),
                    );
                }
                continue;
            };
            for x in cargs.iter() {
                self.expr(&x.value, &scope);
            }
            if cargs.len() != *arity {
                self.arity(
                    a.value.span,
                    f,
                    cargs.len(),
                    *arity,
                    *arity,
                    "count_trends() / count_events(alias) / sum_trends(alias.field)",
                );
            }
            let res = crate::model::Resolution::Aggregate {
                name: f.name.clone(),
            };
            self.exprs.insert(
                a.value.span,
                crate::model::ExprInfo {
                    ty: ty.clone(),
                    resolution: Some(res),
                },
            );
            if items.iter().any(|i| i.name == n.name) {
                self.duplicate_field(n, "trend_aggregate");
                continue;
            }
            items.push(OutputItem {
                name: n.name.clone(),
                expr: a.value.span,
                ty: ty.clone(),
            });
        }
        let mut schema = items_schema(&p.stream, &items);
        // `is_final`: every output is final for its match (PATTERNS.md,
        // Trend aggregation).
        if !items.iter().any(|i| i.name == "is_final") {
            schema
                .fields
                .push(Field::new("is_final".to_string(), Type::Bool));
        }
        (StageKind::TrendAggregate(items), Arc::new(schema))
    }
}

impl Checker<'_> {
    /// `.process(f(args))`: calls a user function per event; the events it
    /// creates with `emit T(...)` replace the current ones.
    fn process(
        &mut self,
        e: &Expr,
        scope: &super::Scope,
        input: &Arc<Schema>,
    ) -> (StageKind, Arc<Schema>) {
        self.expr(e, scope);
        let callee = match &e.kind {
            ExprKind::Call { callee, .. } => match &callee.kind {
                ExprKind::Ident(f) if self.env.decl(&f.name) == Some(DeclKind::Fn) => Some(f),
                _ => None,
            },
            _ => None,
        };
        let Some(f) = callee else {
            if !matches!(e.kind, ExprKind::Error) {
                self.report(
                    Diagnostic::new(codes::ARGUMENT_TYPE, "`.process` needs a call of a user function", e.span)
                        .with_label("not a call of a `fn`")
                        .with_help("declare `fn handle(...)` that creates events with `emit T(...)`, and write `.process(handle(...))`"),
                );
            }
            return (StageKind::Invalid, input.clone());
        };
        let emits = self
            .env
            .fn_sig(&f.name)
            .map(|s| s.emits)
            .unwrap_or_default();
        let schema = match emits.as_slice() {
            [one] => self
                .env
                .event_schema(one)
                .unwrap_or_else(|| Arc::new(Schema::open(one.clone()))),
            _ => Arc::new(Schema::open(input.name.clone())),
        };
        (
            StageKind::Process {
                function: f.name.clone(),
                emits,
            },
            schema,
        )
    }
}

fn items_schema(name: &str, items: &[OutputItem]) -> Schema {
    Schema::new(
        name,
        items
            .iter()
            .map(|i| Field::new(i.name.clone(), i.ty.clone()))
            .collect(),
    )
}

impl Checker<'_> {
    /// `policy NAME` / `.policy(NAME)` must name a known selection policy.
    pub(super) fn selection_policy(&mut self, name: &str, span: varpulis_syntax::Span) {
        if crate::capabilities::SELECTION_POLICIES.contains(&name) {
            return;
        }
        let help = suggest::help(
            name,
            crate::capabilities::SELECTION_POLICIES.iter().copied(),
        );
        self.report(
            Diagnostic::new(
                codes::UNSUPPORTED_CONSTRUCT,
                format!("unknown selection policy `{name}`"),
                span,
            )
            .with_label(format!(
                "expected one of {}",
                crate::capabilities::SELECTION_POLICIES.join(", ")
            ))
            .with_help_opt(help),
        );
    }
}
