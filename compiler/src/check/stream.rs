//! Checking streams: the source, the pipeline state machine (sequence steps,
//! window, partition, aggregate) and the stream's output schema.
//!
//! Operator placement around `->` follows docs/LANGUAGE.md#sequence-steps: operators before the
//! first step see the first step's event; operators after a step see the
//! match, whose unqualified fields are those of the last bound event and
//! whose aliases are all the aliases bound so far.

use std::sync::Arc;

use varpulis_syntax::ast::{Ident, InlineStream, Op, OpKind, SeqStep, SourceKind, StreamDecl};
use varpulis_syntax::Span;

use super::{Checker, Scope};
use crate::capabilities::{self, Op as Operator, Support};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::{BranchModel, SourceModel, Stage, StageKind, StreamModel};
use crate::resolve::DeclKind;
use crate::suggest;
use crate::types::{AliasBinding, Field, Schema};

/// Pipeline facts accumulated while walking the operators.
#[derive(Default)]
pub(super) struct Pipeline {
    /// The stream's name: events re-shaped by `.select` or `.aggregate` are
    /// named after it.
    pub stream: String,
    pub window: Option<Span>,
    pub aggregate: Option<Span>,
    pub partition: Option<String>,
    pub within: bool,
    pub is_sequence: bool,
    pub is_join: bool,
    pub on: bool,
    /// `.limit_runs(...)` bounds the sequence's runs.
    pub limited: bool,
    /// A `.partition_by` without `max_keys:` or `idle:` (W0112 if a count
    /// window follows).
    pub unbounded_partition: Option<Span>,
    /// Every alias of the stream with the span that binds it.
    pub all_aliases: Vec<(String, Span)>,
    /// Aliases bound so far.
    pub bound: Vec<AliasBinding>,
}

/// The texts of a source operator's shape errors.
struct SourceOpTexts {
    code: &'static str,
    /// The operator as written, e.g. `.late()`.
    op: &'static str,
    /// `late` / `timeout`, as in "a late stream".
    what: &'static str,
    /// What the source must be.
    needs: &'static str,
    name_label: &'static str,
    name_help: &'static str,
    alias_label: &'static str,
    alias_help: &'static str,
    steps_help: &'static str,
}

const LATE_HELP: &str =
    "write `stream LateReadings = Readings.late()` where `Readings` reads an event type or another stream";

const LATE_TEXTS: SourceOpTexts = SourceOpTexts {
    code: codes::INVALID_LATE_STREAM,
    op: ".late()",
    what: "late",
    needs: "a stream",
    name_label: "not a stream name",
    name_help: LATE_HELP,
    alias_label: "a late stream sees its source's input events",
    alias_help: LATE_HELP,
    steps_help: LATE_HELP,
};

const TIMEOUT_TEXTS: SourceOpTexts = SourceOpTexts {
    code: codes::INVALID_TIMEOUT_STREAM,
    op: ".timeouts()",
    what: "timeout",
    needs: "a sequence stream or pattern",
    name_label: "not a stream or pattern name",
    name_help: "write `stream Late = Orders.timeouts()` where `Orders` runs a sequence",
    alias_label: "a timeout stream sees the aliases of the sequence",
    alias_help: "remove `all` / `as ...` and read the sequence's aliases (`o.id`)",
    steps_help: "match on the timeout stream's output in another stream",
};

/// The source of a stream whose source could not be resolved: an open
/// schema named after the stream, so later operators are not blamed.
fn error_source(s: &StreamDecl) -> (SourceModel, Arc<Schema>) {
    (
        SourceModel::Error,
        Arc::new(Schema::open(s.name.name.clone())),
    )
}

impl Pipeline {
    /// Records alias `a` of the stream; a second binding of the same name
    /// gives the E0210 diagnostic (pointing at both places) instead.
    pub(super) fn bind_alias(&mut self, a: &Ident) -> Option<Diagnostic> {
        match self.all_aliases.iter().find(|(n, _)| *n == a.name) {
            Some((_, first)) => Some(
                Diagnostic::new(
                    codes::DUPLICATE_ALIAS,
                    format!("alias `{}` is bound twice", a.name),
                    a.span,
                )
                .with_label("bound again here")
                .with_secondary(*first, "first bound here")
                .with_help("give each step its own alias"),
            ),
            None => {
                self.all_aliases.push((a.name.clone(), a.span));
                None
            }
        }
    }

    /// A scope over `event` plus the aliases bound so far; aliases not yet
    /// bound are recorded for "unbound alias" diagnostics.
    pub fn scope(&self, event: &Arc<Schema>) -> Scope {
        let mut scope = Scope::over(event.clone());
        for a in &self.bound {
            if scope.aliases.iter().all(|b| b.name != a.name) {
                scope.aliases.push(a.clone());
            }
        }
        scope.later_aliases = self
            .all_aliases
            .iter()
            .filter(|(n, _)| scope.aliases.iter().all(|a| a.name != *n))
            .cloned()
            .collect();
        scope
    }
}

impl Checker<'_> {
    pub(super) fn stream(&mut self, s: &StreamDecl) -> StreamModel {
        if let Some(ty) = &s.ty {
            self.resolve_type(ty);
        }
        let mut p = Pipeline {
            stream: s.name.name.clone(),
            ..Pipeline::default()
        };
        self.collect_aliases(s, &mut p);
        p.is_sequence = s
            .ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::FollowedBy(_)))
            || matches!(
                &s.source.kind,
                SourceKind::Named { all: true, .. } | SourceKind::Sequence(_)
            );
        let (source, mut current) = if s.starts_with_op(Operator::Timeouts.name()) {
            self.timeout_source(s, &mut p)
        } else if s.starts_with_op(Operator::Late.name()) {
            self.late_source(s)
        } else {
            self.source(s, &mut p)
        };
        if matches!(source, SourceModel::Pattern { .. }) {
            p.is_sequence = true;
            p.within = true; // The pattern declares (or warns about) its own deadline.
        }
        let mut stages = Vec::with_capacity(s.ops.len());
        for (i, op) in s.ops.iter().enumerate() {
            let input = current.clone();
            let (kind, output) = self.op(s, op, &input, &mut p);
            current = output;
            stages.push(Stage {
                op: i,
                kind,
                input,
                output: current.clone(),
            });
        }
        if p.is_join && !p.on {
            self.report(
                Diagnostic::new(
                    codes::JOIN_WITHOUT_ON,
                    "`join` without a `.on(...)` condition",
                    s.source.span,
                )
                .with_label("which events belong together?")
                .with_help("add `.on(A.key == B.key)` after the join"),
            );
        }
        if p.is_sequence {
            self.stream_state_warnings(s, &p);
        }
        if p.is_sequence && !p.within {
            self.report(
                Diagnostic::new(
                    codes::UNBOUNDED_SEQUENCE,
                    format!("sequence in `{}` has no `.within(...)`", s.name.name),
                    s.name.span,
                )
                .with_label("partial matches of this stream never expire")
                .with_help(
                    "add a deadline such as `.within(5m)` so that unfinished matches are dropped",
                ),
            );
        }
        let mut output = (*current).clone();
        output.name = s.name.name.clone();
        StreamModel {
            name: s.name.name.clone(),
            source,
            stages,
            output: Arc::new(output),
            is_sequence: p.is_sequence,
        }
    }

    fn collect_aliases(&mut self, s: &StreamDecl, p: &mut Pipeline) {
        let mut add = |c: &mut Self, a: &Ident| {
            if let Some(d) = p.bind_alias(a) {
                c.report(d);
            }
        };
        match &s.source.kind {
            SourceKind::Named { alias: Some(a), .. } => add(self, a),
            SourceKind::Sequence(steps) => steps.iter().for_each(|st| add(self, &st.alias)),
            _ => {}
        }
        for op in &s.ops {
            if let OpKind::FollowedBy(SeqStep { alias: Some(a), .. }) = &op.kind {
                add(self, a);
            }
        }
    }

    /// Resolves a source name to its schema. `None` when reported.
    pub(super) fn source_schema(&mut self, name: &Ident) -> (Option<DeclKind>, Arc<Schema>) {
        let n = name.name.as_str();
        match self.env.decl(n) {
            Some(kind @ (DeclKind::Stream | DeclKind::Pattern | DeclKind::Event))
                if self.env.is_cyclic(n) =>
            {
                self.report(
                    Diagnostic::new(
                        codes::CYCLIC_DEFINITION,
                        format!("`{n}` depends on itself"),
                        name.span,
                    )
                    .with_label(format!("{} defined in terms of itself", kind.describe()))
                    .with_help("break the cycle: a stream cannot consume its own output"),
                );
                (Some(kind), Arc::new(Schema::open(n)))
            }
            Some(DeclKind::Event) => (
                Some(DeclKind::Event),
                self.env
                    .event_schema(n)
                    .unwrap_or_else(|| Arc::new(Schema::open(n))),
            ),
            Some(k @ (DeclKind::Stream | DeclKind::Pattern)) => (
                Some(k),
                self.env
                    .stream_schema(n)
                    .unwrap_or_else(|| Arc::new(Schema::open(n))),
            ),
            Some(kind) => {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_SOURCE,
                        format!("`{n}` is {}, not an event type or stream", kind.describe()),
                        name.span,
                    )
                    .with_label("expected an event type, stream or pattern"),
                );
                (Some(kind), Arc::new(Schema::open(n)))
            }
            None => {
                let cands = self
                    .env
                    .names(|k| matches!(k, DeclKind::Event | DeclKind::Stream | DeclKind::Pattern));
                match suggest::did_you_mean(n, cands.iter().map(String::as_str)) {
                    Some(h) => {
                        let h = h.to_string();
                        self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_SOURCE,
                                format!("unknown event type or stream `{n}`"),
                                name.span,
                            )
                            .with_label("not declared")
                            .with_help(format!("did you mean `{h}`?"))
                            .with_suggestion(name.span, h),
                        );
                    }
                    // One warning per undeclared name and item.
                    None if self.warned_undeclared.iter().any(|w| w == n) => {}
                    None => {
                        self.warned_undeclared.push(n.to_string());
                        self.report(
                            Diagnostic::new(
                                codes::UNDECLARED_EVENT_TYPE,
                                format!("event type `{n}` is not declared"),
                                name.span,
                            )
                            .with_label("its fields are not checked")
                            .with_help(format!(
                                "declare it, e.g. `event {n}:` followed by its fields"
                            )),
                        );
                    }
                }
                (None, Arc::new(Schema::open(n)))
            }
        }
    }

    fn source(&mut self, s: &StreamDecl, p: &mut Pipeline) -> (SourceModel, Arc<Schema>) {
        match &s.source.kind {
            SourceKind::Named { all, name, alias } => {
                let (kind, schema) = self.source_schema(name);
                if let Some(a) = alias {
                    p.bound.push(AliasBinding {
                        name: a.name.clone(),
                        schema: (*schema).clone(),
                        kleene: *all,
                    });
                }
                let alias = alias.as_ref().map(|a| a.name.clone());
                let model = match kind {
                    Some(DeclKind::Stream) => SourceModel::Stream {
                        name: name.name.clone(),
                        alias,
                        kleene: *all,
                    },
                    Some(DeclKind::Pattern) => SourceModel::Pattern {
                        name: name.name.clone(),
                    },
                    Some(DeclKind::Event) | None => SourceModel::Event {
                        name: name.name.clone(),
                        declared: kind.is_some(),
                        alias,
                        kleene: *all,
                    },
                    Some(_) => SourceModel::Error,
                };
                (model, schema)
            }
            SourceKind::From { ty, args } => {
                let (kind, schema) = self.source_schema(ty);
                let connector = self.connector_args(s.source.span, &Scope::default(), args, "from");
                let model = match (kind, connector) {
                    (Some(DeclKind::Event) | None, Some(c)) => SourceModel::From {
                        ty: ty.name.clone(),
                        connector: c,
                    },
                    _ => SourceModel::Error,
                };
                (model, schema)
            }
            SourceKind::Merge(items) => {
                let branches = self.branches(items, false);
                let mut merged = Schema::new("merge", Vec::new());
                for (i, b) in branches.iter().enumerate() {
                    merged.open |= b.schema.open;
                    for f in &b.schema.fields {
                        match merged.fields.iter_mut().find(|g| g.name == f.name) {
                            Some(g) => {
                                if g.ty != f.ty {
                                    g.ty = g.ty.join(&f.ty).unwrap_or(crate::types::Type::Any);
                                }
                            }
                            None => merged.fields.push(Field {
                                optional: f.optional || i > 0,
                                ..f.clone()
                            }),
                        }
                    }
                }
                // A field missing from some branch is optional.
                for f in &mut merged.fields {
                    if branches
                        .iter()
                        .any(|b| b.schema.field(&f.name).is_none() && !b.schema.open)
                    {
                        f.optional = true;
                    }
                }
                (SourceModel::Merge(branches), Arc::new(merged))
            }
            SourceKind::Join(items) => {
                p.is_join = true;
                let branches = self.branches(items, true);
                if items.iter().any(|i| matches!(i, InlineStream::Decl { ops, .. } if ops.iter().any(|o| is_call(o, Operator::On.name())))) {
                    p.on = true;
                }
                let mut joined = Schema::new("join", Vec::new());
                for b in &branches {
                    joined.open |= b.schema.open;
                    for f in &b.schema.fields {
                        joined.push_field(f.clone());
                    }
                    joined.aliases.push(AliasBinding {
                        name: b.name.clone(),
                        schema: (*b.schema).clone(),
                        kleene: false,
                    });
                    if b.source != b.name {
                        joined.aliases.push(AliasBinding {
                            name: b.source.clone(),
                            schema: (*b.schema).clone(),
                            kleene: false,
                        });
                    }
                }
                (SourceModel::Join(branches), Arc::new(joined))
            }
            SourceKind::Sequence(steps) => {
                let mut last = Arc::new(Schema::open("sequence"));
                let mut out = Vec::new();
                for st in steps {
                    let (_, schema) = self.source_schema(&st.ty);
                    if let Some(f) = &st.filter {
                        let scope = p.scope(&schema);
                        self.condition(f, &scope, "a step filter");
                    }
                    if let Some(w) = &st.within {
                        self.duration_arg(w, "`within`");
                    }
                    p.bound.push(AliasBinding {
                        name: st.alias.name.clone(),
                        schema: (*schema).clone(),
                        kleene: false,
                    });
                    out.push((st.alias.name.clone(), st.ty.name.clone()));
                    last = schema;
                }
                let mut m = (*last).clone();
                m.aliases = p.bound.clone();
                (SourceModel::Sequence(out), Arc::new(m))
            }
            SourceKind::Error => (
                SourceModel::Error,
                Arc::new(Schema::open(s.name.name.clone())),
            ),
            SourceKind::Timer(_) => {
                if capabilities::TIMER_SOURCE != Support::Supported {
                    self.report(
                        Diagnostic::new(
                            codes::UNSUPPORTED_CONSTRUCT,
                            "`timer(...)` sources are not supported yet",
                            s.source.span,
                        )
                        .with_label("not supported yet"),
                    );
                }
                (
                    SourceModel::Timer,
                    Arc::new(Schema::open(format!("Timer_{}", s.name.name))),
                )
            }
        }
    }

    /// The source name of a stream whose first operator is a source
    /// operator (`.late()`, `.timeouts()`): a bare stream or pattern name,
    /// without `all` or alias, and no `->` steps in the stream. Reports and
    /// returns `None` otherwise.
    fn source_op_name<'s>(&mut self, s: &'s StreamDecl, t: &SourceOpTexts) -> Option<&'s Ident> {
        let (msg, label, help) = match &s.source.kind {
            SourceKind::Named { all, alias, .. } if *all || alias.is_some() => (
                format!("the source of `{}` takes no `all` or alias", t.op),
                t.alias_label,
                t.alias_help,
            ),
            SourceKind::Named { name, .. } => {
                if !s
                    .ops
                    .iter()
                    .any(|o| matches!(o.kind, OpKind::FollowedBy(_)))
                {
                    return Some(name);
                }
                (
                    format!("a {} stream cannot add sequence steps", t.what),
                    "",
                    t.steps_help,
                )
            }
            _ => (
                format!("`{}` needs {} as source", t.op, t.needs),
                t.name_label,
                t.name_help,
            ),
        };
        let label = if label.is_empty() {
            format!("`{}` here", t.op)
        } else {
            label.to_string()
        };
        self.report(
            Diagnostic::new(t.code, msg, s.source.span)
                .with_label(label)
                .with_help(help),
        );
        None
    }

    /// `Name.late()`: `Name` must be a stream with a single plain input; the
    /// late stream sees the layout of that input.
    fn late_source(&mut self, s: &StreamDecl) -> (SourceModel, Arc<Schema>) {
        let fail = |c: &mut Self, msg: String, label: &str, span: Span| {
            c.report(
                Diagnostic::new(codes::INVALID_LATE_STREAM, msg, span)
                    .with_label(label)
                    .with_help(
                        "write `stream LateReadings = Readings.late()` where `Readings` reads an \
                         event type or another stream",
                    ),
            );
            error_source(s)
        };
        let Some(name) = self.source_op_name(s, &LATE_TEXTS) else {
            return error_source(s);
        };
        let n = &name.name;
        match self.env.late_input(n) {
            Some(schema) => (SourceModel::Late { name: n.clone() }, schema),
            None => fail(
                self,
                format!("`{n}` is not a stream with a single event type or stream as input"),
                "no late events to receive",
                name.span,
            ),
        }
    }

    /// `Name.timeouts()`: `Name` must run a sequence with a deadline; the
    /// stream sees its match layout with every alias (unbound ones read as
    /// no value at run time).
    fn timeout_source(&mut self, s: &StreamDecl, p: &mut Pipeline) -> (SourceModel, Arc<Schema>) {
        let fail = |c: &mut Self, msg: String, label: &str, help: &str, span: Span| {
            c.report(
                Diagnostic::new(codes::INVALID_TIMEOUT_STREAM, msg, span)
                    .with_label(label)
                    .with_help(help),
            );
            error_source(s)
        };
        let Some(name) = self.source_op_name(s, &TIMEOUT_TEXTS) else {
            return error_source(s);
        };
        let (kind, _) = self.source_schema(name);
        let n = &name.name;
        match kind {
            Some(DeclKind::Stream | DeclKind::Pattern) => {}
            _ => {
                return fail(
                    self,
                    format!("`{n}` is not a sequence stream or pattern"),
                    "no partial matches to time out",
                    "apply `.timeouts()` to a stream with `->` steps and `.within(...)`",
                    name.span,
                );
            }
        }
        match self.env.sequence_sig(n) {
            Some(sig) if sig.within => {
                p.bound.clone_from(&sig.schema.aliases);
                (SourceModel::Timeouts { name: n.clone() }, sig.schema)
            }
            Some(_) => fail(
                self,
                format!("`{n}` has no `.within(...)`, so its partial matches never time out"),
                "sequence without a deadline",
                "add `.within(d)` to the sequence",
                name.span,
            ),
            None => fail(
                self,
                format!("`{n}` runs no sequence"),
                "no partial matches to time out",
                "apply `.timeouts()` to a stream with `->` steps and `.within(...)`",
                name.span,
            ),
        }
    }

    fn branches(&mut self, items: &[InlineStream], join: bool) -> Vec<BranchModel> {
        let mut out: Vec<BranchModel> = Vec::new();
        for it in items {
            let (name, src) = match it {
                InlineStream::Ref(i) => (i, i),
                InlineStream::Decl { name, ty, .. } => (name, ty),
            };
            let (_, schema) = self.source_schema(src);
            if let InlineStream::Decl { ops, .. } = it {
                for op in ops {
                    match &op.kind {
                        OpKind::Call { name: opname, args }
                            if Operator::Where.is(&opname.name)
                                || (join && Operator::On.is(&opname.name)) =>
                        {
                            let scope = Scope::over(schema.clone());
                            match args.first() {
                                Some(a) if args.len() == 1 => {
                                    let what = if Operator::On.is(&opname.name) {
                                        "a join condition"
                                    } else {
                                        "a filter"
                                    };
                                    if Operator::On.is(&opname.name) {
                                        // Join conditions may mention the other branches.
                                        let mut sc = scope.clone();
                                        sc.event = Some(Arc::new(Schema::open(&schema.name)));
                                        self.condition(&a.value, &sc, what);
                                    } else {
                                        self.condition(&a.value, &scope, what);
                                    }
                                }
                                _ => self.arity(
                                    op.span,
                                    opname,
                                    args.len(),
                                    1,
                                    1,
                                    ".where(condition)",
                                ),
                            }
                        }
                        OpKind::Call { name: opname, .. } => self.report(
                            Diagnostic::new(
                                codes::UNSUPPORTED_CONSTRUCT,
                                format!(
                                    "`.{}` is not supported on a `{}` branch",
                                    opname.name,
                                    if join { "join" } else { "merge" }
                                ),
                                opname.span,
                            )
                            .with_label("only `.where` (and `.on` in joins) may follow a branch"),
                        ),
                        _ => self.report(
                            Diagnostic::new(
                                codes::UNSUPPORTED_CONSTRUCT,
                                "this operator is not supported on a branch",
                                op.span,
                            )
                            .with_label("only `.where` (and `.on` in joins) may follow a branch"),
                        ),
                    }
                }
            }
            if let Some(prev) = out.iter().find(|b| b.name == name.name) {
                let _ = prev;
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_ALIAS,
                        format!("branch `{}` appears twice", name.name),
                        name.span,
                    )
                    .with_label("repeated branch")
                    .with_help(
                        "name the inline streams differently: `stream A2 = Type.where(...)`",
                    ),
                );
            }
            out.push(BranchModel {
                name: name.name.clone(),
                source: src.name.clone(),
                schema,
            });
        }
        out
    }

    /// Checks `Conn, k: v, ...` arguments of `.from`/`.to`; returns the
    /// connector's name when it resolves.
    pub(super) fn connector_args(
        &mut self,
        span: Span,
        scope: &Scope,
        args: &[varpulis_syntax::ast::Arg],
        op: &str,
    ) -> Option<String> {
        let first = args.iter().find(|a| a.name.is_none());
        let Some(first) = first else {
            self.report(
                Diagnostic::new(codes::WRONG_ARITY, format!("`.{op}` needs a connector"), span)
                    .with_label("no connector given")
                    .with_help(format!("write `.{op}(MyConnector)` with a connector declared by `connector MyConnector = ...`")),
            );
            return None;
        };
        for a in args.iter().filter(|a| a.name.is_some()) {
            if let Some(n) = &a.name {
                let t = self.expr(&a.value, scope);
                if n.name == "topic" && !t.fits(&crate::types::Type::Str) {
                    self.report(
                        Diagnostic::new(
                            codes::CONNECTOR_PARAM_KIND,
                            format!("`topic` must be a string, found `{t}`"),
                            a.value.span,
                        )
                        .with_label(format!("this is `{t}`")),
                    );
                }
            }
        }
        let varpulis_syntax::ast::ExprKind::Ident(c) = &first.value.kind else {
            if !crate::resolve::walk::has_error(&first.value) {
                self.report(
                    Diagnostic::new(
                        codes::NOT_A_CONNECTOR,
                        format!("the first argument of `.{op}` must name a connector"),
                        first.value.span,
                    )
                    .with_label("not a connector name"),
                );
            }
            return None;
        };
        match self.env.decl(&c.name) {
            Some(DeclKind::Connector) => Some(c.name.clone()),
            Some(kind) => {
                self.report(
                    Diagnostic::new(codes::NOT_A_CONNECTOR, format!("`{}` is {}, not a connector", c.name, kind.describe()), c.span)
                        .with_label("not a connector")
                        .with_help(format!("declare a connector, e.g. `connector Out = file (path: \"out.jsonl\")`, and use `.{op}(Out)`")),
                );
                None
            }
            None => {
                let declare = format!(
                    "declare it, e.g. `connector {} = file (path: \"out.jsonl\")`",
                    c.name
                );
                self.unknown_decl(
                    codes::UNKNOWN_CONNECTOR,
                    "connector",
                    |k| k == DeclKind::Connector,
                    c,
                    declare,
                );
                None
            }
        }
    }

    /// Dispatches one operator; returns its semantics and output schema.
    fn op(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        match &op.kind {
            OpKind::FollowedBy(step) => self.step(step, input, p),
            OpKind::Not(step) => {
                if !p.is_sequence {
                    self.outside_sequence(op.span, Operator::Not.name());
                }
                let (_, schema) = self.source_schema(&step.ty);
                if let Some(f) = &step.filter {
                    let mut scope = p.scope(&schema);
                    scope.later_aliases.clear();
                    for (n, _) in &p.all_aliases {
                        if scope.aliases.iter().all(|a| a.name != *n) {
                            if let Some(b) = p.bound.iter().find(|b| b.name == *n) {
                                scope.aliases.push(b.clone());
                            }
                        }
                    }
                    self.condition(f, &scope, "a `.not` filter");
                }
                (
                    StageKind::Not {
                        ty: step.ty.name.clone(),
                        filter: step.filter.as_ref().map(|f| f.span),
                    },
                    input.clone(),
                )
            }
            OpKind::Emit { as_type, args } => self.emit(s, op, as_type.as_ref(), args, input, p),
            OpKind::Call { name, args } => self.call_op(s, op, name, args, input, p),
        }
    }

    fn step(
        &mut self,
        step: &SeqStep,
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let (_, schema) = self.source_schema(&step.ty);
        if let Some(f) = &step.filter {
            let mut scope = p.scope(&schema);
            // A Kleene step's filter may refer to its own alias: the previous
            // event of the accumulation (docs/LANGUAGE.md#kleene-steps).
            if let (true, Some(a)) = (step.all, &step.alias) {
                scope.later_aliases.retain(|(n, _)| *n != a.name);
                scope.aliases.push(AliasBinding {
                    name: a.name.clone(),
                    schema: (*schema).clone(),
                    kleene: false,
                });
            }
            self.condition(f, &scope, "a step filter");
        }
        if let Some(a) = &step.alias {
            p.bound.retain(|b| b.name != a.name);
            p.bound.push(AliasBinding {
                name: a.name.clone(),
                schema: (*schema).clone(),
                kleene: step.all,
            });
        }
        let _ = input;
        let mut m = (*schema).clone();
        m.aliases = p.bound.clone();
        let kind = StageKind::Step {
            ty: step.ty.name.clone(),
            alias: step.alias.as_ref().map(|a| a.name.clone()),
            kleene: step.all,
            filter: step.filter.as_ref().map(|f| f.span),
        };
        (kind, Arc::new(m))
    }

    pub(super) fn outside_sequence(&mut self, span: Span, op: &str) {
        self.report(
            Diagnostic::new(
                codes::WITHIN_OUTSIDE_SEQUENCE,
                format!("`.{op}` is only meaningful in a sequence"),
                span,
            )
            .with_label("this stream has no `->` steps")
            .with_help("add a step such as `-> Next where ... as n`, or remove this operator"),
        );
    }

    fn call_op(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        name: &Ident,
        args: &[varpulis_syntax::ast::Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let Some(info) = capabilities::operator(&name.name) else {
            let help = suggest::did_you_mean(&name.name, capabilities::operator_names())
                .map(str::to_string);
            let d = Diagnostic::new(
                codes::UNKNOWN_OPERATOR,
                format!("unknown operator `.{}`", name.name),
                name.span,
            )
            .with_label("no such operator");
            let d = match help {
                Some(h) => d
                    .with_help(format!("did you mean `.{h}`?"))
                    .with_suggestion(name.span, h),
                None => d,
            };
            self.report(d);
            return (StageKind::Invalid, opened(input));
        };
        match info.support {
            Support::NotYet => {
                self.report(
                    Diagnostic::new(
                        codes::UNSUPPORTED_OPERATOR,
                        format!("operator `.{}` is not supported yet", name.name),
                        name.span,
                    )
                    .with_label("parsed, but the engine does not run it")
                    .with_note(format!("`.{}`: {}", name.name, info.summary))
                    .with_help(format!("remove `.{}(...)` from the pipeline", name.name)),
                );
                return (StageKind::Invalid, opened(input));
            }
            Support::NoOp => {
                self.report(
                    Diagnostic::new(
                        codes::TAP_NO_OP,
                        format!("`.{}` does nothing", name.name),
                        op.span,
                    )
                    .with_label("ignored")
                    .with_help("remove it, or use `.print(...)` to observe events"),
                );
                return (StageKind::Tap, input.clone());
            }
            Support::Supported => {}
        }
        if !self.op_shape(name, args, info) {
            // Still record placement facts so that later operators are not
            // blamed for a malformed window or aggregate.
            match info.op {
                Operator::Window => p.window = p.window.or(Some(name.span)),
                Operator::Aggregate => p.aggregate = p.aggregate.or(Some(name.span)),
                // Its output fields are unknown: later uses are not blamed.
                Operator::Score => return (StageKind::Invalid, opened(input)),
                _ => {}
            }
            return (StageKind::Invalid, input.clone());
        }
        self.supported_op(s, op, name, args, input, p)
    }

    /// Generic arity and named-argument checks from the capability table.
    fn op_shape(
        &mut self,
        name: &Ident,
        args: &[varpulis_syntax::ast::Arg],
        info: &capabilities::OpInfo,
    ) -> bool {
        let Some(named) = info.named else { return true };
        let positional = args.iter().filter(|a| a.name.is_none()).count();
        let mut ok = true;
        for a in args {
            if let Some(n) = &a.name {
                if !named.contains(&n.name.as_str()) {
                    let help = suggest::help(&n.name, named.iter().copied());
                    let d = Diagnostic::new(
                        codes::UNKNOWN_ARGUMENT,
                        format!("`.{}` has no parameter `{}`", name.name, n.name),
                        n.span,
                    )
                    .with_label("unknown parameter");
                    let d = match help {
                        Some(h) => d.with_help(h),
                        None if named.is_empty() => {
                            d.with_help(format!("`.{}` takes only positional arguments", name.name))
                        }
                        None => d.with_note(format!(
                            "parameters: {}",
                            super::expr::list(named.iter().copied())
                        )),
                    };
                    self.report(d);
                    ok = false;
                }
            }
        }
        if ok && (positional < info.min_positional || positional > info.max_positional) {
            let sig = format!(".{}: {}", info.name, info.summary);
            let span = Span::new(
                name.span.start,
                args.last().map_or(name.span.end, |a| a.span.end + 1),
            );
            self.arity(
                span,
                name,
                positional,
                info.min_positional,
                info.max_positional,
                &sig,
            );
            ok = false;
        }
        ok
    }
}

/// The schema after an operator whose effect is unknown (misspelt or not
/// supported): the same fields, but any other field is accepted, so that
/// later operators are not blamed for it.
fn opened(input: &Arc<Schema>) -> Arc<Schema> {
    let mut s = (**input).clone();
    s.open = true;
    Arc::new(s)
}

fn is_call(op: &Op, name: &str) -> bool {
    matches!(&op.kind, OpKind::Call { name: n, .. } if n.name == name)
}
