//! Building an [`Engine`] from a [`Program`]: validation, topological order
//! and cycle detection, operator construction, global initialisation.

use super::source::{JoinRt, SourceRt, TimerRt};
use super::{Engine, EngineConfig, Metrics, OutputNames, Shared, StreamRt, TimeState};
use crate::error::LoadError;
use crate::interp::{EvalCx, Vm};
use crate::model::Models;
use crate::ops::aggregate::{Aggregator, PerEventAggregate};
use crate::ops::basic::{Filter, Log, PartitionBy, Print, Process, Project, Sink};
use crate::ops::dedup::{Distinct, Limit};
use crate::ops::enrich::Enrich;
use crate::ops::pattern::PatternRt;
use crate::ops::score::Score;
use crate::ops::sequence::SequenceOp;
use crate::ops::Operator;
use crate::windows::{
    count::Count, session::Session, sliding::Sliding, sliding_count::SlidingCount,
    tumbling::Tumbling, GroupSink,
};
use std::collections::VecDeque;
use std::sync::Arc;
use varpulis_program::{
    InputRef, OpSpec, Program, SchemaId, SourceSpec, StreamPlan, WindowSpec, FORMAT_VERSION,
    OLDEST_FORMAT_VERSION,
};

pub(super) fn build(
    program: Arc<Program>,
    config: EngineConfig,
    models: &Models,
) -> Result<Engine, LoadError> {
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&program.version) {
        return Err(LoadError::Version {
            found: program.version,
            expected: FORMAT_VERSION,
        });
    }
    validate(&program)?;
    let topo = topo_order(&program)?;
    let routes = program.routes();
    let n_schemas = program.schemas.len();
    let mut ooo = vec![0i64; n_schemas];
    let mut consumed = vec![false; n_schemas];
    for plan in &program.streams {
        for s in event_inputs(plan) {
            if let Some(c) = consumed.get_mut(s as usize) {
                *c = true;
            }
            if let (Some(o), Some(d)) = (ooo.get_mut(s as usize), plan.time.out_of_order) {
                *o = (*o).max(d.max(0));
            }
        }
    }
    let mut streams = Vec::with_capacity(program.streams.len());
    for plan in &program.streams {
        streams.push(build_stream(
            &program,
            plan,
            config.sequence_limits,
            models,
        )?);
    }
    let mut shared = Shared {
        program: program.clone(),
        vm: Vm::new(),
        globals: vec![None; program.globals.len()],
        side: Vec::new(),
        watermark: None,
        enricher: Box::new(crate::enrich::Unanswered),
        spent: Vec::new(),
    };
    for (i, g) in program.globals.iter().enumerate() {
        let cx = EvalCx {
            event: None,
            aggs: &[],
            now: 0,
            bindings: None,
        };
        let v = shared.vm.eval(&program, &mut shared.globals, &g.init, &cx);
        if let Some(slot) = shared.globals.get_mut(i) {
            *slot = v;
        }
    }
    let mut from_sub = vec![None; program.streams.len()];
    for (k, sub) in program.subscriptions().iter().enumerate() {
        for (stream, _) in &sub.streams {
            if let Some(slot) = from_sub.get_mut(*stream as usize) {
                *slot = u32::try_from(k).ok();
            }
        }
    }
    Ok(Engine {
        shared,
        streams,
        routes,
        topo,
        consumed,
        from_sub,
        config,
        metrics: Metrics {
            out_per_stream: vec![0; program.streams.len()],
            ..Metrics::default()
        },
        time: TimeState {
            watermark: None,
            src_max: vec![None; n_schemas],
            ooo,
            first_seen: None,
            max_seen: None,
        },
        queue: VecDeque::new(),
        cur: Vec::new(),
        scratch: Vec::new(),
        trace: None,
        lane: None,
        recycled: None,
        spare_slots: None,
        output_fields: Vec::new(),
        names: program
            .schemas
            .iter()
            .map(|s| OutputNames {
                event_type: Arc::from(&*s.name),
                fields: s.fields.iter().map(|f| Arc::from(&*f.name)).collect(),
            })
            .collect(),
    })
}

/// Input event types a stream reads directly (they drive its watermark).
fn event_inputs(plan: &StreamPlan) -> Vec<SchemaId> {
    let mut v = Vec::new();
    let mut add = |i: &InputRef| {
        if let InputRef::Event(s) = i {
            v.push(*s);
        }
    };
    match &plan.source {
        SourceSpec::Input(i) => add(i),
        SourceSpec::Connector { schema, .. } => add(&InputRef::Event(*schema)),
        SourceSpec::Merge { branches, .. } => branches.iter().for_each(|b| add(&b.input)),
        SourceSpec::Join(j) => j.inputs.iter().for_each(|b| add(&b.input)),
        SourceSpec::Timer { .. } | SourceSpec::Late(_) => {}
    }
    for op in &plan.ops {
        if let OpSpec::Sequence(seq) = op {
            seq.inputs().iter().for_each(&mut add);
        }
    }
    v
}

fn invalid(msg: String) -> LoadError {
    LoadError::Invalid(msg)
}

fn validate(p: &Program) -> Result<(), LoadError> {
    let ns = p.schemas.len();
    let nst = p.streams.len();
    let schema_ok = |s: SchemaId, what: &str, stream: &str| {
        if (s as usize) < ns {
            Ok(())
        } else {
            Err(invalid(format!(
                "stream `{stream}`: {what} schema {s} out of range"
            )))
        }
    };
    let input_ok = |i: &InputRef, stream: &str| match i {
        InputRef::Event(s) => schema_ok(*s, "input", stream),
        InputRef::Stream(t) if (*t as usize) < nst => Ok(()),
        InputRef::Stream(t) => Err(invalid(format!(
            "stream `{stream}`: input stream {t} out of range"
        ))),
    };
    for plan in &p.streams {
        let n = &*plan.name;
        schema_ok(plan.output_schema, "output", n)?;
        match &plan.source {
            SourceSpec::Input(i) => input_ok(i, n)?,
            SourceSpec::Connector {
                schema, connector, ..
            } => {
                schema_ok(*schema, "source", n)?;
                if *connector as usize >= p.connectors.len() {
                    return Err(invalid(format!(
                        "stream `{n}`: connector {connector} out of range"
                    )));
                }
            }
            SourceSpec::Merge { branches, schema } => {
                schema_ok(*schema, "merge", n)?;
                for b in branches {
                    input_ok(&b.input, n)?;
                }
            }
            SourceSpec::Join(j) => {
                schema_ok(j.schema, "join", n)?;
                let keys = j.inputs.first().map_or(0, |i| i.keys.len());
                for b in &j.inputs {
                    input_ok(&b.input, n)?;
                    if b.keys.len() != keys {
                        return Err(invalid(format!(
                            "stream `{n}`: join inputs have different key counts"
                        )));
                    }
                }
            }
            SourceSpec::Timer { schema, period, .. } => {
                schema_ok(*schema, "timer", n)?;
                if *period <= 0 {
                    return Err(invalid(format!(
                        "stream `{n}`: timer period must be positive"
                    )));
                }
            }
            SourceSpec::Late(t) => {
                if *t as usize >= nst {
                    return Err(invalid(format!(
                        "stream `{n}`: late stream {t} out of range"
                    )));
                }
            }
        }
        for op in &plan.ops {
            match op {
                OpSpec::Select(pj) => schema_ok(pj.schema, "select", n)?,
                OpSpec::Score(s) => schema_ok(s.schema, "score", n)?,
                OpSpec::Emit(e) => schema_ok(e.schema, "emit", n)?,
                OpSpec::Aggregate(a) => schema_ok(a.schema, "aggregate", n)?,
                OpSpec::Pattern(t) => schema_ok(t.schema, "pattern", n)?,
                OpSpec::Map(m) => schema_ok(m.schema, "map", n)?,
                OpSpec::Group(varpulis_program::GroupOp::Collect(c)) => {
                    schema_ok(c.schema, "collect", n)?
                }
                OpSpec::OnError(r) if r.connector as usize >= p.connectors.len() => {
                    return Err(invalid(format!(
                        "stream `{n}`: error connector {} out of range",
                        r.connector
                    )));
                }
                OpSpec::Sink { connector, .. } if *connector as usize >= p.connectors.len() => {
                    return Err(invalid(format!(
                        "stream `{n}`: connector {connector} out of range"
                    )));
                }
                OpSpec::Sequence(seq) => {
                    schema_ok(seq.schema, "sequence", n)?;
                    for i in seq.inputs() {
                        input_ok(&i, n)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Producers before consumers; a cycle is a load error naming its streams.
fn topo_order(p: &Program) -> Result<Vec<usize>, LoadError> {
    let n = p.streams.len();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, plan) in p.streams.iter().enumerate() {
        let mut add = |input: &InputRef| {
            if let InputRef::Stream(t) = input {
                deps[i].push(*t as usize);
            }
        };
        match &plan.source {
            SourceSpec::Input(x) => add(x),
            SourceSpec::Merge { branches, .. } => branches.iter().for_each(|b| add(&b.input)),
            SourceSpec::Join(j) => j.inputs.iter().for_each(|b| add(&b.input)),
            SourceSpec::Late(t) => deps[i].push(*t as usize),
            SourceSpec::Connector { .. } | SourceSpec::Timer { .. } => {}
        }
        // The other inputs of a sequence are upstream too.
        for op in &plan.ops {
            if let OpSpec::Sequence(seq) = op {
                for x in seq.inputs() {
                    if let InputRef::Stream(t) = x {
                        deps[i].push(t as usize);
                    }
                }
            }
        }
    }
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut mark = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    for start in 0..n {
        if mark[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match mark.get(d) {
                    Some(0) => {
                        mark[d] = 1;
                        stack.push((d, 0));
                    }
                    Some(1) => {
                        let pos = stack.iter().position(|(x, _)| *x == d).unwrap_or(0);
                        let mut names: Vec<String> = stack[pos..]
                            .iter()
                            .map(|(x, _)| p.streams[*x].name.to_string())
                            .collect();
                        names.push(p.streams[d].name.to_string());
                        return Err(LoadError::Cycle(names));
                    }
                    _ => {}
                }
            } else {
                mark[node] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// The layout of events entering a stream's chain.
fn source_layout(p: &Program, plan: &StreamPlan, depth: usize) -> SchemaId {
    let of_input = |i: &InputRef| match i {
        InputRef::Event(s) => *s,
        InputRef::Stream(t) => p.streams.get(*t as usize).map_or(0, |s| s.output_schema),
    };
    match &plan.source {
        SourceSpec::Input(i) => of_input(i),
        SourceSpec::Connector { schema, .. }
        | SourceSpec::Merge { schema, .. }
        | SourceSpec::Timer { schema, .. } => *schema,
        SourceSpec::Join(j) => j.schema,
        SourceSpec::Late(t) => match p.streams.get(*t as usize) {
            Some(up) if depth < p.streams.len() => source_layout(p, up, depth + 1),
            _ => 0,
        },
    }
}

fn build_stream(
    p: &Program,
    plan: &StreamPlan,
    limits: crate::sequence::Limits,
    models: &Models,
) -> Result<StreamRt, LoadError> {
    let source = match &plan.source {
        SourceSpec::Merge { branches, schema } => SourceRt::Merge {
            branches: branches.clone(),
            schema: *schema,
        },
        SourceSpec::Join(j) => {
            let max = plan
                .bounds
                .iter()
                .find(|b| b.op == varpulis_program::StateBound::SOURCE)
                .and_then(|b| b.max_events);
            SourceRt::Join(Box::new(JoinRt::new(j.clone(), max)))
        }
        SourceSpec::Timer {
            period,
            initial_delay,
            schema,
        } => SourceRt::Timer(TimerRt {
            period: *period,
            initial_delay: *initial_delay,
            schema: *schema,
            next: None,
        }),
        SourceSpec::Input(_) | SourceSpec::Connector { .. } | SourceSpec::Late(_) => SourceRt::Pass,
    };
    let mut layout = source_layout(p, plan, 0);
    let bound = |at: usize| plan.bounds.iter().find(|b| b.op as usize == at);
    let mut ops: Vec<Box<dyn Operator>> = Vec::with_capacity(plan.ops.len());
    let mut on_error = None;
    let mut origin = Vec::with_capacity(plan.ops.len());
    let mut i = 0;
    while let Some(op) = plan.ops.get(i) {
        let at = i;
        i += 1;
        let built: Box<dyn Operator> = match op {
            OpSpec::Filter(c) | OpSpec::Having(c) => Box::new(Filter::new(c.clone())),
            OpSpec::Select(pj) => {
                layout = pj.schema;
                Box::new(Project::new(pj.items.clone(), pj.schema))
            }
            OpSpec::Emit(e) => match &e.items {
                Some(items) => {
                    layout = e.schema;
                    Box::new(Project::new(items.clone(), e.schema))
                }
                // `.emit()` keeps the event (and its layout) as is.
                None => continue,
            },
            OpSpec::PartitionBy(c) => Box::new(PartitionBy::new(c.clone(), bound(at))),
            OpSpec::Window(w) => {
                // The group operators and an `.aggregate` right after the
                // window are fused into it, in that order.
                let mut group_ops = Vec::new();
                while let Some(OpSpec::Group(g)) = plan.ops.get(i) {
                    if let varpulis_program::GroupOp::Collect(c) = g {
                        layout = c.schema;
                    }
                    group_ops.push(g.clone());
                    i += 1;
                }
                let sink = match plan.ops.get(i) {
                    Some(OpSpec::Aggregate(a)) => {
                        i += 1;
                        layout = a.schema;
                        GroupSink::aggregate(Aggregator::new(a.clone()))
                    }
                    // `.pattern` always follows its window and is fused too.
                    Some(OpSpec::Pattern(t)) => {
                        i += 1;
                        layout = t.schema;
                        GroupSink::pattern(PatternRt::new(t.clone()))
                    }
                    _ => GroupSink::pass_through(),
                };
                window(
                    *w,
                    sink.with_max_events(bound(at).and_then(|b| b.max_events))
                        .with_group_ops(group_ops),
                )
            }
            OpSpec::Aggregate(a) => {
                layout = a.schema;
                Box::new(PerEventAggregate(Aggregator::new(a.clone())))
            }
            OpSpec::Distinct { key, capacity } => {
                Box::new(Distinct::new(key.clone(), *capacity, bound(at)))
            }
            OpSpec::Limit(n) => Box::new(Limit { n: *n, passed: 0 }),
            OpSpec::Print(items) => Box::new(Print {
                items: items.clone(),
                layout,
            }),
            OpSpec::Log(l) => Box::new(Log(l.clone())),
            OpSpec::Sink { connector, params } => {
                let topic = params
                    .iter()
                    .chain(
                        p.connectors
                            .get(*connector as usize)
                            .map_or(&[][..], |c| c.params.as_slice()),
                    )
                    .find(|(k, _)| &**k == "topic")
                    .and_then(|(_, v)| v.as_text())
                    .map(Arc::from);
                Box::new(Sink {
                    connector: *connector,
                    topic,
                    params: params.clone(),
                    layout,
                })
            }
            OpSpec::Process(c) => Box::new(Process(c.clone())),
            // A setting of the whole stream, not a step of the chain.
            OpSpec::OnError(route) => {
                on_error = Some(crate::ops::on_error::ErrorSink::new(p, route));
                continue;
            }
            OpSpec::Map(m) => {
                let op = crate::ops::map::Map::new(p, m, layout);
                layout = m.schema;
                Box::new(op)
            }
            OpSpec::Pattern(_) => {
                return Err(LoadError::Invalid(format!(
                    "stream `{}`: `.pattern` must come right after `.window`",
                    plan.name
                )))
            }
            OpSpec::Group(_) => {
                return Err(LoadError::Invalid(format!(
                    "stream `{}`: a window group operator without a window before it",
                    plan.name
                )))
            }
            OpSpec::Enrich(e) => {
                let Some(conn) = p.connectors.get(e.connector as usize) else {
                    return Err(LoadError::Invalid(format!(
                        "stream `{}`: `.enrich` names connector {} of {}",
                        plan.name,
                        e.connector,
                        p.connectors.len()
                    )));
                };
                if p.schemas.get(e.schema as usize).is_none() {
                    return Err(LoadError::Invalid(format!(
                        "stream `{}`: `.enrich` output layout {} does not exist",
                        plan.name, e.schema
                    )));
                }
                layout = e.schema;
                Box::new(Enrich::new(e.clone(), conn.name.clone()))
            }
            OpSpec::Sequence(seq) => {
                layout = match (&seq.trend, &seq.forecast) {
                    (_, Some(f)) => f.schema,
                    (Some(t), None) => t.schema,
                    (None, None) => seq.schema,
                };
                let op = SequenceOp::with_limits(p, seq, limits)
                    .map_err(|e| LoadError::Invalid(format!("stream `{}`: {e}", plan.name)))?;
                Box::new(op)
            }
            OpSpec::Score(spec) => {
                layout = spec.schema;
                Box::new(score(p, plan, spec, models)?)
            }
        };
        ops.push(built);
        origin.push(at);
    }
    Ok(StreamRt {
        // The engine's own copy: outputs carry it, and engines on other
        // threads count their own references (`OutputNames`).
        name: Arc::from(&*plan.name),
        source,
        ops,
        output_schema: plan.output_schema,
        visible: plan.visible,
        allowed_lateness: plan.time.allowed_lateness,
        origin,
        on_error,
    })
}

/// A `.score` operator with its model, checked against the spec.
fn score(
    p: &Program,
    plan: &StreamPlan,
    spec: &varpulis_program::ScoreSpec,
    models: &Models,
) -> Result<Score, LoadError> {
    let u = crate::model::ModelUse {
        stream: plan.name.clone(),
        model: spec.model.clone(),
        path: spec.path.clone(),
        inputs: spec.inputs.iter().map(|(n, _)| n.clone()).collect(),
        outputs: spec.outputs.iter().map(|(n, _)| n.clone()).collect(),
    };
    let Some(model) = models.get(&spec.path) else {
        return Err(LoadError::Model(format!(
            "stream `{}` scores with model `{}` ({}), which was not loaded",
            plan.name, spec.model, spec.path
        )));
    };
    crate::model::check(&u, model.as_ref()).map_err(|e| LoadError::Model(e.to_string()))?;
    let width = p
        .schemas
        .get(spec.schema as usize)
        .map_or(0, |s| s.fields.len());
    if let Some((name, slot)) = spec.outputs.iter().find(|(_, s)| *s as usize >= width) {
        return Err(invalid(format!(
            "stream `{}`: `.score` output `{name}` slot {slot} out of range",
            plan.name
        )));
    }
    Ok(Score::new(model.clone(), spec, width))
}

fn window(w: WindowSpec, sink: GroupSink) -> Box<dyn Operator> {
    match w {
        WindowSpec::Tumbling { size } => Box::new(Tumbling::new(size, sink)),
        WindowSpec::Sliding { size, slide } => Box::new(Sliding::new(size, slide, sink)),
        WindowSpec::Count { size } => Box::new(Count::new(size, sink)),
        WindowSpec::SlidingCount { size, slide } => Box::new(SlidingCount::new(size, slide, sink)),
        WindowSpec::Session { gap } => Box::new(Session::new(gap, sink)),
    }
}
