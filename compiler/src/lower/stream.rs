//! Streams: the source (event type, stream, connector, merge, join, timer)
//! and the operator chain → [`StreamPlan`] with one [`OpSpec`] per operator.
//!
//! Streams are lowered on demand, so a stream reading another finds that
//! stream's layout (dependency order, not declaration order); a cycle is
//! reported. Sequences (`->` steps, named patterns, `sequence(...)`) are
//! built in [`super::pattern`] and hoisted to the front of the chain.

use std::sync::Arc;

use varpulis_program::{
    AggItem, AggregateSpec, Chunk, EmitSpec, Evict, InputRef, Instr, JoinInput, JoinSpec, LogLevel,
    LogSpec, MergeBranch, OpSpec, Projection, SchemaId, SourceSpec, StateBound, StreamPlan,
    StreamTime, WindowSpec,
};
use varpulis_syntax::ast::{
    Arg, BinaryOp, Expr, ExprKind, InlineStream, Item, Op, OpKind, SourceKind, StreamDecl,
};
use varpulis_syntax::Span;

use super::expr::{unparen, ChunkBuilder, Env};
use super::{to_u16, to_u32, Decl, Lowerer, StreamState};
use crate::capabilities::{Op as Operator, Support};
use crate::codes;

/// The state of a chain being lowered.
pub(crate) struct Chain {
    pub sid: u32,
    pub name: String,
    pub env: Env,
    pub ops: Vec<OpSpec>,
    pub visible: bool,
    pub time: StreamTime,
    /// Bounds declared on the chain's operators.
    pub bounds: Vec<StateBound>,
    /// `Some(Some(k))` after `.partition_by(k)`, `Some(None)` for a key that
    /// is not a bare field name.
    pub partition: Option<Option<String>>,
}

impl Chain {
    pub(crate) fn layout(&self) -> SchemaId {
        self.env.layout.unwrap_or(0)
    }
}

/// Default horizon of a join without `.window(d)`: one minute.
const DEFAULT_JOIN_HORIZON: i64 = 60_000_000_000;
/// Capacity of `.distinct`'s memory (REF-like).
const DISTINCT_CAPACITY: u32 = 10_000;

impl Lowerer<'_> {
    /// Lowers stream `sid` unless done; returns the layout of its output.
    pub(crate) fn ensure_stream(&mut self, sid: usize) -> Option<SchemaId> {
        match self.stream_state.get(sid).copied()? {
            StreamState::Done(l) => return Some(l),
            StreamState::Failed => return None,
            StreamState::InProgress => {
                let item = self.stream_items[sid];
                let prev = self.enter_item(item);
                if let Some(Item::Stream(d)) = self.input.items.get(item).map(|n| &n.item) {
                    self.error(
                        codes::CYCLIC_DEFINITION,
                        format!("stream `{}` reads its own output", d.name.name),
                        d.name.span,
                    );
                }
                self.leave_item(prev);
                self.stream_state[sid] = StreamState::Failed;
                return None;
            }
            StreamState::Pending => {}
        }
        self.stream_state[sid] = StreamState::InProgress;
        let item = self.stream_items[sid];
        let prev = self.enter_item(item);
        let result = match self.input.items.get(item).map(|n| &n.item) {
            Some(Item::Stream(decl)) => self.lower_stream(to_u32(sid), decl),
            _ => None,
        };
        self.leave_item(prev);
        match result {
            Some((plan, end)) => {
                self.plans[sid] = Some(plan);
                if self.stream_state[sid] == StreamState::InProgress {
                    self.stream_state[sid] = StreamState::Done(end);
                }
                Some(end)
            }
            None => {
                self.stream_state[sid] = StreamState::Failed;
                None
            }
        }
    }

    /// The input named `name` (an event type, declared or not, or a stream)
    /// and the layout of its events. Patterns and other names are reported.
    pub(crate) fn input_of(&mut self, name: &str, span: Span) -> Option<(InputRef, SchemaId)> {
        match self.names.get(name).copied() {
            Some(Decl::Stream(_)) => {
                let sid = *self.stream_ids.get(name)?;
                let layout = self.ensure_stream(sid as usize)?;
                Some((InputRef::Stream(sid), layout))
            }
            Some(Decl::Event(_)) | None => {
                let id = self.event_schema(name);
                Some((InputRef::Event(id), id))
            }
            Some(_) => {
                self.error(
                    codes::UNKNOWN_SOURCE,
                    format!("`{name}` is not an event type or a stream"),
                    span,
                );
                None
            }
        }
    }

    /// The stream id of `name` and the layout of its input, for a late
    /// stream `name.late()` (the checker accepted only streams with a single
    /// event-type or stream input).
    fn late_input(&mut self, name: &str, span: Span) -> Option<(u32, SchemaId)> {
        let Some(Decl::Stream(_)) = self.names.get(name).copied() else {
            self.unsupported("`.late()` on a source that is not a stream", span);
            return None;
        };
        let sid = *self.stream_ids.get(name)?;
        let item = *self.stream_items.get(sid as usize)?;
        let Some(Item::Stream(up)) = self.input.items.get(item).map(|n| &n.item) else {
            return None;
        };
        let SourceKind::Named { name: src, .. } = &up.source.kind else {
            self.unsupported("`.late()` on a stream without a single input", span);
            return None;
        };
        let (src, src_span) = (src.name.clone(), src.span);
        let (_, layout) = self.input_of(&src, src_span)?;
        Some((sid, layout))
    }

    fn lower_stream(&mut self, sid: u32, decl: &StreamDecl) -> Option<(StreamPlan, SchemaId)> {
        let mut ch = Chain {
            sid,
            name: decl.name.name.clone(),
            env: Env::default(),
            ops: Vec::new(),
            visible: false,
            time: StreamTime::default(),
            bounds: Vec::new(),
            partition: None,
        };
        let mut skip = vec![false; decl.ops.len()];
        let source = match &decl.source.kind {
            SourceKind::Named { name, .. } if decl.starts_with_op(Operator::Timeouts.name()) => {
                let mut seq = self.timeout_sequence(&name.name, decl)?;
                seq.spec.emit_timeouts = true;
                // Timeouts are runs in the match layout, not trend aggregates
                // or forecasts.
                if seq.spec.trend.take().is_some() | seq.spec.forecast.take().is_some() {
                    seq.layout = seq.spec.schema;
                }
                ch.env.layout = Some(seq.layout);
                ch.env.aliases = seq.aliases;
                ch.ops.push(OpSpec::Sequence(seq.spec));
                if let Some(s) = skip.first_mut() {
                    *s = true;
                }
                seq.source
            }
            SourceKind::Named { name, .. } if decl.starts_with_op(Operator::Late.name()) => {
                let (up, layout) = self.late_input(&name.name, name.span)?;
                ch.env.layout = Some(layout);
                if let Some(s) = skip.first_mut() {
                    *s = true;
                }
                SourceSpec::Late(up)
            }
            SourceKind::Named { all, name, alias } => {
                let is_pattern = matches!(self.names.get(&name.name), Some(Decl::Pattern(_)));
                let has_steps = decl
                    .ops
                    .iter()
                    .any(|o| matches!(o.kind, OpKind::FollowedBy(_)));
                if is_pattern || has_steps || *all {
                    let seq = if is_pattern {
                        self.pattern_sequence(&name.name, decl, &mut skip)?
                    } else {
                        self.in_stream_sequence(*all, name, alias.as_ref(), decl, &mut skip)?
                    };
                    ch.env.layout = Some(seq.layout);
                    ch.env.aliases = seq.aliases;
                    ch.ops.push(OpSpec::Sequence(seq.spec));
                    seq.source
                } else {
                    let (input, layout) = self.input_of(&name.name, name.span)?;
                    ch.env.layout = Some(layout);
                    ch.env.self_names.push(name.name.clone());
                    if let Some(a) = alias {
                        ch.env.self_names.push(a.name.clone());
                    }
                    SourceSpec::Input(input)
                }
            }
            SourceKind::Sequence(steps) => {
                let seq = self.source_sequence(steps, decl, &mut skip)?;
                ch.env.layout = Some(seq.layout);
                ch.env.aliases = seq.aliases;
                ch.ops.push(OpSpec::Sequence(seq.spec));
                seq.source
            }
            SourceKind::From { ty, args } => {
                let schema = self.event_schema(&ty.name);
                ch.env.layout = Some(schema);
                ch.env.self_names.push(ty.name.clone());
                let connector = self.connector_arg(args, decl.source.span)?;
                let named: Vec<Arg> = args.iter().filter(|a| a.name.is_some()).cloned().collect();
                let params = self.config_params(&named);
                SourceSpec::Connector {
                    schema,
                    connector,
                    params,
                }
            }
            SourceKind::Merge(items) => self.merge_source(&mut ch, items)?,
            SourceKind::Join(items) => self.join_source(&mut ch, items, decl, &mut skip)?,
            SourceKind::Timer(args) => self.timer_source(&mut ch, args, decl.source.span)?,
            SourceKind::Error => {
                self.error(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "stream source failed to parse",
                    decl.source.span,
                );
                return None;
            }
        };
        for (op, skipped) in decl.ops.iter().zip(&skip) {
            if !skipped {
                let before = self.diags.len();
                self.op(&mut ch, op);
                // After an operator that failed, the layout is unknown: stop
                // rather than report a cascade of unknown names.
                if self.diags.len() > before {
                    break;
                }
            }
        }
        let span = self.span_id(decl.span);
        let end = ch.layout();
        let plan = StreamPlan {
            name: Arc::from(decl.name.name.as_str()),
            source,
            ops: ch.ops,
            // Set by `finish_streams` once every layout is final.
            output_schema: end,
            visible: ch.visible,
            time: ch.time,
            bounds: ch.bounds,
            span,
        };
        Some((plan, end))
    }

    /// The connector named by the first positional argument.
    pub(crate) fn connector_arg(&mut self, args: &[Arg], span: Span) -> Option<u32> {
        let first = args.iter().find(|a| a.name.is_none());
        match first.map(|a| &unparen(&a.value).kind) {
            Some(ExprKind::Ident(id)) => match self.connector_ids.get(&id.name) {
                Some(c) => Some(*c),
                None => {
                    self.error(
                        codes::UNKNOWN_CONNECTOR,
                        format!("unknown connector `{}`", id.name),
                        id.span,
                    );
                    None
                }
            },
            _ => {
                self.error(codes::UNKNOWN_CONNECTOR, "expected a connector name", span);
                None
            }
        }
    }

    fn merge_source(&mut self, ch: &mut Chain, items: &[InlineStream]) -> Option<SourceSpec> {
        let mut branches = Vec::new();
        let mut layouts = Vec::new();
        for it in items {
            let (input, layout, filter) =
                self.inline_branch(it, &[Operator::Where, Operator::Filter])?;
            branches.push((input, filter));
            layouts.push(layout);
        }
        let mut fields: Vec<String> = Vec::new();
        for l in &layouts {
            for f in self.field_names(*l) {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        }
        let schema = self.stream_schema(ch.sid, &format!("{}.merge", ch.name), fields.clone());
        let mut out = Vec::new();
        for ((input, filter), layout) in branches.into_iter().zip(layouts) {
            let remap = fields
                .iter()
                .map(|f| self.existing_slot(layout, f))
                .collect();
            out.push(MergeBranch {
                input,
                filter,
                remap,
            });
        }
        ch.env.layout = Some(schema);
        Some(SourceSpec::Merge {
            branches: out,
            schema,
        })
    }

    /// A merge/join item: its input, layout and inline filter (the
    /// conjunction of the listed operators).
    fn inline_branch(
        &mut self,
        it: &InlineStream,
        filters: &[Operator],
    ) -> Option<(InputRef, SchemaId, Option<Chunk>)> {
        match it {
            InlineStream::Ref(id) => {
                let (input, layout) = self.input_of(&id.name, id.span)?;
                Some((input, layout, None))
            }
            InlineStream::Decl { name, ty, ops, .. } => {
                let (input, layout) = self.input_of(&ty.name, ty.span)?;
                let mut env = Env::on(layout);
                env.self_names = vec![name.name.clone(), ty.name.clone()];
                let mut conds: Vec<&Expr> = Vec::new();
                for op in ops {
                    match &op.kind {
                        OpKind::Call { name: n, args } if filters.iter().any(|f| f.is(&n.name)) => {
                            if let Some(a) = args.first() {
                                conds.push(&a.value);
                            }
                        }
                        OpKind::Call { name: n, .. } if Operator::On.is(&n.name) => {}
                        _ => self.unsupported("this operator on a merge or join item", op.span),
                    }
                }
                let filter = self.conjunction(&mut env, &conds);
                Some((input, layout, filter))
            }
        }
    }

    /// `c1 and c2 and ...` as one chunk, or `None` when empty.
    pub(crate) fn conjunction(&mut self, env: &mut Env, conds: &[&Expr]) -> Option<Chunk> {
        let (first, rest) = conds.split_first()?;
        let sid = self.span_id(first.span);
        let mut b = ChunkBuilder::new(sid);
        self.expr(&mut b, env, first);
        for c in rest {
            let csid = self.span_id(c.span);
            let j = b.emit(Instr::AndThen(0), csid);
            self.expr(&mut b, env, c);
            b.emit(Instr::ToBool, csid);
            let end = b.here();
            b.patch(j, end);
        }
        Some(b.finish())
    }

    fn timer_source(&mut self, ch: &mut Chain, args: &[Arg], span: Span) -> Option<SourceSpec> {
        let mut period = None;
        let mut initial_delay = 0;
        for a in args {
            let v = self.duration_arg(&a.value)?;
            match a.name.as_ref().map(|n| n.name.as_str()) {
                None => period = Some(v),
                Some("initial_delay") => initial_delay = v,
                Some(_) => self.unsupported("this timer argument", a.span),
            }
        }
        let Some(period) = period.filter(|p| *p > 0) else {
            self.error(
                codes::EXPECTED_DURATION,
                "a timer needs a positive period",
                span,
            );
            return None;
        };
        let schema = self.add_schema(varpulis_program::EventSchema {
            name: Arc::from(format!("Timer_{}", ch.name).as_str()),
            fields: Vec::new(),
            origin: varpulis_program::SchemaOrigin::Timer,
            keep_extra: false,
        });
        ch.env.layout = Some(schema);
        Some(SourceSpec::Timer {
            period,
            initial_delay,
            schema,
        })
    }

    /// A duration literal in ns.
    pub(crate) fn duration_arg(&mut self, e: &Expr) -> Option<i64> {
        match &unparen(e).kind {
            ExprKind::Duration(d) => Some(i64::try_from(*d).unwrap_or(i64::MAX)),
            _ => {
                self.error(
                    codes::EXPECTED_DURATION,
                    "expected a duration literal such as `5m`",
                    e.span,
                );
                None
            }
        }
    }

    fn join_source(
        &mut self,
        ch: &mut Chain,
        items: &[InlineStream],
        decl: &StreamDecl,
        skip: &mut [bool],
    ) -> Option<SourceSpec> {
        // Branch name (for `Name.field`), type name, input, layout, filter.
        let mut branches = Vec::new();
        for it in items {
            let (bname, tname) = match it {
                InlineStream::Ref(id) => (id.name.clone(), id.name.clone()),
                InlineStream::Decl { name, ty, .. } => (name.name.clone(), ty.name.clone()),
            };
            let (input, layout, filter) =
                self.inline_branch(it, &[Operator::Where, Operator::Filter])?;
            branches.push((bname, tname, input, layout, filter));
        }
        // `.on(...)` written on an inline item (`stream B = T.on(A.k == B.k)`)
        // is part of the join condition (docs/LANGUAGE.md#join).
        let mut conjuncts = Vec::new();
        for it in items {
            if let InlineStream::Decl { ops, .. } = it {
                for op in ops {
                    if let OpKind::Call { name, args } = &op.kind {
                        if Operator::On.is(&name.name) {
                            if let Some(a) = args.first() {
                                split_and(&a.value, &mut conjuncts);
                            }
                        }
                    }
                }
            }
        }
        let mut on = None;
        let mut horizon = DEFAULT_JOIN_HORIZON;
        let mut join_max = None;
        for (i, op) in decl.ops.iter().enumerate() {
            if let OpKind::Call { name, args } = &op.kind {
                match Operator::from_name(&name.name) {
                    Some(Operator::On) if on.is_none() => {
                        on = args.first().map(|a| &a.value);
                        skip[i] = true;
                    }
                    Some(Operator::Window) => {
                        if let Some(a) = args.first().filter(|a| a.name.is_none()) {
                            horizon = self.duration_arg(&a.value)?;
                            skip[i] = true;
                        }
                        join_max = max_events(args);
                    }
                    _ => {}
                }
            }
        }
        // The joined layout: prefixed fields of every input, then unprefixed
        // fields (first input wins).
        let mut fields: Vec<String> = Vec::new();
        let mut projects: Vec<Vec<(String, u16)>> = Vec::new();
        for (bname, tname, _, layout, _) in &branches {
            let mut proj = Vec::new();
            for (slot, f) in self.field_names(*layout).into_iter().enumerate() {
                let mut names = vec![format!("{bname}.{f}")];
                if tname != bname {
                    names.push(format!("{tname}.{f}"));
                }
                for n in names {
                    if !fields.contains(&n) {
                        fields.push(n.clone());
                        proj.push((n, to_u16(slot)));
                    }
                }
            }
            projects.push(proj);
        }
        for ((_, _, _, layout, _), proj) in branches.iter().zip(projects.iter_mut()) {
            for (slot, f) in self.field_names(*layout).into_iter().enumerate() {
                if !fields.contains(&f) {
                    fields.push(f.clone());
                    proj.push((f, to_u16(slot)));
                }
            }
        }
        let schema = self.stream_schema(ch.sid, &format!("{}.join", ch.name), fields.clone());
        let position = |n: &str| to_u16(fields.iter().position(|f| f == n).unwrap_or(0));
        // Split `.on(...)` into equality keys and a residual predicate.
        if let Some(e) = on {
            split_and(e, &mut conjuncts);
        }
        let names: Vec<(String, String)> = branches
            .iter()
            .map(|(b, t, ..)| (b.clone(), t.clone()))
            .collect();
        let mut classes: Vec<(Vec<Option<Chunk>>, Vec<&Expr>)> = Vec::new();
        let mut residual: Vec<&Expr> = Vec::new();
        for c in conjuncts {
            let pair = match &unparen(c).kind {
                ExprKind::Binary {
                    op: BinaryOp::Eq,
                    lhs,
                    rhs,
                } => match (side_of(lhs, &names), side_of(rhs, &names)) {
                    (Some(i), Some(j)) if i != j => Some((i, lhs, j, rhs)),
                    _ => None,
                },
                _ => None,
            };
            let Some((i, lhs, j, rhs)) = pair else {
                residual.push(c);
                continue;
            };
            let ci = self.key_chunk(&branches[i].0, &branches[i].1, branches[i].3, lhs);
            let cj = self.key_chunk(&branches[j].0, &branches[j].1, branches[j].3, rhs);
            let same = |a: &Option<Chunk>, b: &Chunk| {
                a.as_ref()
                    .is_some_and(|a| a.code == b.code && a.consts == b.consts)
            };
            let found = classes
                .iter()
                .position(|(k, _)| same(&k[i], &ci) || same(&k[j], &cj));
            match found {
                Some(k) => {
                    let class = &mut classes[k];
                    let fits = |slot: &Option<Chunk>, c: &Chunk| slot.is_none() || same(slot, c);
                    if fits(&class.0[i], &ci) && fits(&class.0[j], &cj) {
                        class.0[i] = Some(ci);
                        class.0[j] = Some(cj);
                        class.1.push(c);
                    } else {
                        residual.push(c);
                    }
                }
                None => {
                    let mut keys = vec![None; branches.len()];
                    keys[i] = Some(ci);
                    keys[j] = Some(cj);
                    classes.push((keys, vec![c]));
                }
            }
        }
        let mut keys: Vec<Vec<Chunk>> = vec![Vec::new(); branches.len()];
        for (class, exprs) in classes {
            if class.iter().all(Option::is_some) {
                for (k, c) in keys.iter_mut().zip(class.into_iter().flatten()) {
                    k.push(c);
                }
            } else {
                residual.extend(exprs);
            }
        }
        if keys.first().is_none_or(Vec::is_empty) && branches.len() > 1 {
            let span = on.map_or(decl.source.span, |e| e.span);
            self.unsupported("a join without an equality key linking every input", span);
        }
        let mut env = Env::on(schema);
        let residual = self.conjunction(&mut env, &residual);
        let inputs = branches
            .into_iter()
            .zip(keys)
            .zip(projects)
            .map(|(((_, _, input, _, filter), keys), proj)| JoinInput {
                input,
                filter,
                keys,
                project: proj.iter().map(|(n, s)| (position(n), *s)).collect(),
            })
            .collect();
        ch.env.layout = Some(schema);
        if let Some(n) = join_max {
            ch.bounds.push(StateBound {
                op: StateBound::SOURCE,
                max_events: Some(n),
                ..StateBound::default()
            });
        }
        Some(SourceSpec::Join(JoinSpec {
            inputs,
            horizon,
            schema,
            residual,
        }))
    }

    /// One side of a join equality, compiled on its input's layout
    /// (`Name.field` reads the input's own field).
    fn key_chunk(&mut self, bname: &str, tname: &str, layout: SchemaId, e: &Expr) -> Chunk {
        let mut env = Env::on(layout);
        env.self_names = vec![bname.to_string(), tname.to_string()];
        self.chunk(&mut env, e)
    }

    /// Lowers one operator onto the chain.
    fn op(&mut self, ch: &mut Chain, op: &Op) {
        let (name, args) = match &op.kind {
            OpKind::Call { name, args } => (name.name.as_str(), args.as_slice()),
            OpKind::Emit { args, .. } => (Operator::Emit.name(), args.as_slice()),
            OpKind::FollowedBy(_) | OpKind::Not(_) => {
                self.unsupported("a sequence step here", op.span);
                return;
            }
        };
        let first = args.iter().find(|a| a.name.is_none()).map(|a| &a.value);
        let Some(which) = Operator::from_name(name) else {
            self.not_lowered(name, false, op.span);
            return;
        };
        match which {
            Operator::Where | Operator::Filter | Operator::Having => {
                let Some(e) = first else { return };
                let c = self.chunk(&mut ch.env, e);
                ch.ops.push(if which == Operator::Having {
                    OpSpec::Having(c)
                } else {
                    OpSpec::Filter(c)
                });
            }
            Operator::Select | Operator::Emit => {
                self.projection(ch, which == Operator::Emit, args, op.span)
            }
            Operator::Window => {
                if let Some(w) = self.window(args, op.span) {
                    ch.ops.push(OpSpec::Window(w));
                    if let Some(n) = max_events(args) {
                        let at = u32::try_from(ch.ops.len() - 1).unwrap_or(u32::MAX - 1);
                        ch.bounds.push(StateBound {
                            op: at,
                            max_events: Some(n),
                            ..StateBound::default()
                        });
                    }
                }
            }
            Operator::PartitionBy => {
                let Some(e) = first else { return };
                ch.partition = Some(match &unparen(e).kind {
                    ExprKind::Ident(id) => Some(id.name.clone()),
                    _ => None,
                });
                let c = self.chunk(&mut ch.env, e);
                ch.ops.push(OpSpec::PartitionBy(c));
                self.state_bound(ch, args);
            }
            Operator::Aggregate => self.aggregate(ch, args),
            Operator::Distinct => {
                let key = first.map(|e| self.chunk(&mut ch.env, e));
                ch.ops.push(OpSpec::Distinct {
                    key,
                    capacity: DISTINCT_CAPACITY,
                });
                self.state_bound(ch, args);
            }
            Operator::Limit => match first.map(|e| &unparen(e).kind) {
                Some(ExprKind::Int(n)) if *n >= 0 => ch.ops.push(OpSpec::Limit(*n as u64)),
                _ => self.error(
                    codes::INVALID_WINDOW,
                    "`.limit` takes a non-negative integer literal",
                    op.span,
                ),
            },
            Operator::First => ch.ops.push(OpSpec::Limit(1)),
            Operator::Print => {
                let cs = args
                    .iter()
                    .map(|a| self.chunk(&mut ch.env, &a.value))
                    .collect();
                ch.ops.push(OpSpec::Print(cs));
            }
            Operator::Log => self.log(ch, args),
            Operator::To => {
                let Some(connector) = self.connector_arg(args, op.span) else {
                    return;
                };
                let named: Vec<Arg> = args.iter().filter(|a| a.name.is_some()).cloned().collect();
                let params = self.config_params(&named);
                let layout = ch.layout();
                self.keep_extra(layout);
                ch.ops.push(OpSpec::Sink { connector, params });
            }
            Operator::Process => self.process(ch, first, op.span),
            Operator::Enrich => self.enrich(ch, args, op.span),
            Operator::Score => self.score(ch, args, op.span),
            Operator::Watermark => {
                let e = args
                    .iter()
                    .find(|a| a.name.as_ref().is_none_or(|n| n.name == "out_of_order"));
                if let Some(d) = e.and_then(|a| self.duration_arg(&a.value)) {
                    ch.time.out_of_order = Some(d);
                }
            }
            Operator::AllowedLateness => {
                if let Some(d) = first.and_then(|e| self.duration_arg(e)) {
                    ch.time.allowed_lateness = Some(d);
                }
            }
            Operator::Pattern => self.window_pattern(ch, args, op.span),
            Operator::Concurrent => self.concurrent(args),
            Operator::OrderBy | Operator::Collect | Operator::Any | Operator::All => {
                self.group_op(ch, which, args)
            }
            Operator::Map => self.map_op(ch, args),
            Operator::OnError => {
                let Some(connector) = self.connector_arg(args, op.span) else {
                    return;
                };
                let named: Vec<Arg> = args.iter().filter(|a| a.name.is_some()).cloned().collect();
                let params = self.config_params(&named);
                ch.ops.push(OpSpec::OnError(varpulis_program::ErrorRoute {
                    connector,
                    params,
                }));
            }
            // Scheduling hints and no-ops: results must not depend on them.
            Operator::Context | Operator::Tap | Operator::Timeouts | Operator::Late => {}
            Operator::Within => self.unsupported("`.within` outside a sequence", op.span),
            Operator::On => self.unsupported("`.on` outside a join", op.span),
            // Sequence operators outside a sequence (the checker reports
            // them; kept as an error in case it did not).
            Operator::Policy | Operator::LimitRuns | Operator::Not | Operator::TrendAggregate => {
                self.not_lowered(name, true, op.span)
            }
            Operator::Forecast | Operator::Fork => {
                let supported = which.support() == Support::Supported;
                self.not_lowered(name, supported, op.span)
            }
        }
    }

    /// An operator this lowering cannot run: `supported` when the checker
    /// accepts it (then the lowering lags behind the capability table).
    fn not_lowered(&mut self, name: &str, supported: bool, span: Span) {
        let msg = if supported {
            format!("lowering of `.{name}`")
        } else {
            format!("the operator `.{name}`")
        };
        let d = crate::diagnostic::Diagnostic::new(
            codes::UNSUPPORTED_OPERATOR,
            format!("{msg} is not supported yet"),
            self.absolute(span),
        );
        self.diags.push(d);
    }

    /// `.concurrent(workers: N)` (checked by the checker): the program's
    /// default worker count is the largest any stream asks for. A scheduling
    /// setting, so it adds no operator: results do not depend on it.
    pub(crate) fn concurrent(&mut self, args: &[Arg]) {
        let n = args
            .iter()
            .find_map(|a| match (&a.name, &unparen(&a.value).kind) {
                (Some(name), ExprKind::Int(n)) if name.name == "workers" => u32::try_from(*n).ok(),
                _ => None,
            });
        if let Some(n) = n {
            self.program.workers = Some(self.program.workers.map_or(n, |w| w.max(n)));
        }
    }

    /// `max_keys:`/`max:`, `evict:` and `idle:` of the operator just pushed
    /// (checked by the checker, docs/LANGUAGE.md#bounded-state).
    fn state_bound(&mut self, ch: &mut Chain, args: &[Arg]) {
        let Some(op) = ch
            .ops
            .len()
            .checked_sub(1)
            .and_then(|i| u32::try_from(i).ok())
        else {
            return;
        };
        let mut bound = StateBound {
            op,
            ..StateBound::default()
        };
        for a in args {
            let Some(name) = &a.name else { continue };
            match (name.name.as_str(), &unparen(&a.value).kind) {
                ("max_keys" | "max", ExprKind::Int(n)) if *n > 0 => {
                    bound.max_keys = u64::try_from(*n).ok();
                }
                ("evict", ExprKind::Ident(id)) => {
                    bound.evict = Evict::from_name(&id.name).unwrap_or_default();
                }
                ("idle", _) => bound.idle = self.duration_arg(&a.value),
                _ => {}
            }
        }
        if bound.max_keys.is_some() || bound.idle.is_some() {
            ch.bounds.push(bound);
        }
    }

    /// `.select(...)` / `.emit(...)`: one slot per item.
    fn projection(&mut self, ch: &mut Chain, emit: bool, args: &[Arg], span: Span) {
        let items: Vec<&Arg> = args
            .iter()
            .filter(|a| !(emit && a.name.as_ref().is_some_and(|n| n.name == "context")))
            .collect();
        if emit {
            ch.visible = true;
        }
        if emit && items.is_empty() {
            let layout = ch.layout();
            self.keep_extra(layout);
            ch.ops.push(OpSpec::Emit(EmitSpec {
                items: None,
                schema: layout,
            }));
            return;
        }
        let mut names = Vec::new();
        let mut chunks = Vec::new();
        for a in items {
            let name = match (&a.name, &unparen(&a.value).kind) {
                (Some(n), _) => n.name.clone(),
                (None, ExprKind::Ident(id)) => id.name.clone(),
                (None, ExprKind::Member { name, .. }) => name.name.clone(),
                _ => {
                    self.error("E0216", "output field without a name", a.span);
                    continue;
                }
            };
            names.push(name);
            chunks.push(self.chunk(&mut ch.env, &a.value));
        }
        let what = if emit {
            Operator::Emit
        } else {
            Operator::Select
        }
        .name();
        let schema = self.stream_schema(ch.sid, &format!("{}.{what}", ch.name), names);
        let _ = span;
        ch.ops.push(if emit {
            OpSpec::Emit(EmitSpec {
                items: Some(chunks),
                schema,
            })
        } else {
            OpSpec::Select(Projection {
                items: chunks,
                schema,
            })
        });
        ch.env.layout = Some(schema);
        ch.env.self_names.clear();
    }

    /// `.window(...)` (docs/LANGUAGE.md#window); arguments must be literals.
    fn window(&mut self, args: &[Arg], span: Span) -> Option<WindowSpec> {
        let mut size = None;
        let mut sliding = None;
        let mut session = None;
        for a in args {
            let v = &unparen(&a.value).kind;
            match a.name.as_ref().map(|n| n.name.as_str()) {
                None => size = Some(v),
                Some("sliding") => sliding = Some(v),
                Some("session") => session = Some(v),
                // `policy:` is accepted and ignored (REF).
                _ => {}
            }
        }
        let ns = |d: &u64| i64::try_from(*d).unwrap_or(i64::MAX);
        let spec = match (size, sliding, session) {
            (None, None, Some(ExprKind::Duration(g))) => WindowSpec::Session { gap: ns(g) },
            (Some(ExprKind::Duration(d)), None, None) => WindowSpec::Tumbling { size: ns(d) },
            (Some(ExprKind::Duration(d)), Some(ExprKind::Duration(s)), None) => {
                WindowSpec::Sliding {
                    size: ns(d),
                    slide: ns(s),
                }
            }
            (Some(ExprKind::Int(n)), None, None) if *n > 0 => WindowSpec::Count { size: *n as u64 },
            (Some(ExprKind::Int(n)), Some(ExprKind::Int(m)), None) if *n > 0 && *m > 0 => {
                WindowSpec::SlidingCount {
                    size: *n as u64,
                    slide: *m as u64,
                }
            }
            _ => {
                self.error(
                    codes::INVALID_WINDOW,
                    "window arguments must be literals of one of the five forms",
                    span,
                );
                return None;
            }
        };
        Some(spec)
    }

    /// `.aggregate(name: aggexpr, ...)`.
    fn aggregate(&mut self, ch: &mut Chain, args: &[Arg]) {
        ch.env.agg = Some(Vec::new());
        let mut items = Vec::new();
        let mut names = Vec::new();
        for a in args {
            let name = match (&a.name, &unparen(&a.value).kind) {
                (Some(n), _) => n.name.clone(),
                (None, ExprKind::Ident(id)) => id.name.clone(),
                _ => {
                    self.error("E0216", "aggregate item without a name", a.span);
                    continue;
                }
            };
            let expr = self.chunk(&mut ch.env, &a.value);
            names.push(name.clone());
            items.push(AggItem {
                name: Arc::from(name.as_str()),
                expr,
            });
        }
        let calls = ch.env.agg.take().unwrap_or_default();
        let mut fields = names.clone();
        let mut key_slot = None;
        let mut partition_slot = None;
        if let Some(key) = &ch.partition {
            if let Some(k) = key {
                if !fields.contains(k) {
                    fields.push(k.clone());
                    key_slot = Some(to_u16(fields.len() - 1));
                }
            }
            if !fields.iter().any(|f| f == "_partition") {
                fields.push("_partition".to_string());
                partition_slot = Some(to_u16(fields.len() - 1));
            }
        }
        let schema = self.stream_schema(ch.sid, &format!("{}.aggregate", ch.name), fields);
        ch.ops.push(OpSpec::Aggregate(AggregateSpec {
            calls,
            items,
            schema,
            key_slot,
            partition_slot,
        }));
        ch.env.layout = Some(schema);
        ch.env.self_names.clear();
    }

    /// `.log(level:, message:, data:)`.
    fn log(&mut self, ch: &mut Chain, args: &[Arg]) {
        let mut level = LogLevel::Info;
        let mut message: Arc<str> = Arc::from("");
        let mut data = None;
        for a in args {
            let v = unparen(&a.value);
            match (a.name.as_ref().map(|n| n.name.as_str()), &v.kind) {
                (Some("level"), ExprKind::Str(s)) => level = LogLevel::parse(s),
                (Some("level"), ExprKind::Ident(id)) => level = LogLevel::parse(&id.name),
                (Some("message") | None, ExprKind::Str(s)) => message = Arc::from(s.as_str()),
                (Some("data"), _) => data = Some(self.chunk(&mut ch.env, v)),
                _ => self.unsupported("this `.log` argument", a.span),
            }
        }
        ch.ops.push(OpSpec::Log(LogSpec {
            level,
            message,
            data,
        }));
    }

    /// `.process(f(args))`: the events `f` creates replace the current one.
    fn process(&mut self, ch: &mut Chain, call: Option<&Expr>, span: Span) {
        let Some(call) = call else {
            self.error(
                codes::UNKNOWN_FUNCTION,
                "`.process` needs a function call",
                span,
            );
            return;
        };
        let callee = match &unparen(call).kind {
            ExprKind::Call { callee, .. } => match &callee.kind {
                ExprKind::Ident(id) => Some(id.name.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(f) = callee.filter(|f| self.fn_ids.contains_key(f)) else {
            self.unsupported(
                "`.process` with anything but a user function call",
                call.span,
            );
            return;
        };
        let chunk = self.chunk(&mut ch.env, call);
        ch.ops.push(OpSpec::Process(chunk));
        ch.visible = true;
        match self.emitted_types(&f).as_slice() {
            [] => {}
            [one] => {
                let schema = self.event_schema(one);
                ch.env.layout = Some(schema);
                ch.env.self_names = vec![one.clone()];
            }
            _ => self.unsupported(
                "`.process` with a function emitting several event types",
                call.span,
            ),
        }
    }
}

/// Splits `a and b and c` into its conjuncts.
fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &unparen(e).kind {
        ExprKind::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            split_and(lhs, out);
            split_and(rhs, out);
        }
        _ => out.push(e),
    }
}

/// The single join input an equality side refers to: every `Name.field` in
/// it names input `i` (by branch or type name) and it has no bare names.
fn side_of(e: &Expr, names: &[(String, String)]) -> Option<usize> {
    fn walk(e: &Expr, names: &[(String, String)], found: &mut Option<usize>, ok: &mut bool) {
        match &e.kind {
            ExprKind::Member { base, .. } => {
                if let ExprKind::Ident(b) = &unparen(base).kind {
                    match names.iter().position(|(n, t)| *n == b.name || *t == b.name) {
                        Some(i) if found.is_none_or(|f| f == i) => *found = Some(i),
                        _ => *ok = false,
                    }
                } else {
                    walk(base, names, found, ok);
                }
            }
            ExprKind::Ident(_) => *ok = false,
            ExprKind::Paren(x) | ExprKind::Unary { expr: x, .. } => walk(x, names, found, ok),
            ExprKind::Binary { lhs, rhs, .. } => {
                walk(lhs, names, found, ok);
                walk(rhs, names, found, ok);
            }
            ExprKind::Call { args, .. } => {
                for a in args {
                    walk(&a.value, names, found, ok);
                }
            }
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::Null
            | ExprKind::Duration(_)
            | ExprKind::Timestamp(_) => {}
            _ => *ok = false,
        }
    }
    let mut found = None;
    let mut ok = true;
    walk(e, names, &mut found, &mut ok);
    if ok {
        found
    } else {
        None
    }
}

/// `max_events: n` among a `.window`'s arguments, when a positive integer
/// literal (the checker reports anything else).
fn max_events(args: &[Arg]) -> Option<u64> {
    args.iter()
        .filter(|a| a.name.as_ref().is_some_and(|n| n.name == "max_events"))
        .find_map(|a| match unparen(&a.value).kind {
            ExprKind::Int(n) if n > 0 => u64::try_from(n).ok(),
            _ => None,
        })
}
