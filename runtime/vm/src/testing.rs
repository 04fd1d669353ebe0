//! Builders for hand-made programs, for tests and benches until the
//! compiler's lowering drives the engine (feature `testing`).

use std::sync::Arc;
use varpulis_program::{
    AggCall, AggFunc, AggItem, AggregateSpec, Chunk, EmitSpec, Event, EventSchema, InputRef, Instr,
    OpSpec, Program, SchemaId, SchemaOrigin, SourceSpec, SpanId, StreamId, StreamPlan, StreamTime,
    Value,
};

/// Builds a [`Program`] step by step.
#[derive(Default)]
pub struct ProgramBuilder {
    /// The program so far.
    pub program: Program,
}

impl ProgramBuilder {
    /// An empty program.
    pub fn new() -> ProgramBuilder {
        ProgramBuilder::default()
    }

    /// Declares an event type with untyped fields.
    pub fn event(&mut self, name: &str, fields: &[&str]) -> SchemaId {
        self.add_schema(EventSchema::with_fields(
            name,
            SchemaOrigin::Declared,
            fields,
        ))
    }

    /// Adds an operator/stream layout.
    pub fn layout(&mut self, name: &str, fields: &[&str]) -> SchemaId {
        self.add_schema(EventSchema::with_fields(name, SchemaOrigin::Stream, fields))
    }

    fn add_schema(&mut self, s: EventSchema) -> SchemaId {
        self.program.schemas.push(s);
        u32::try_from(self.program.schemas.len() - 1).expect("few schemas in tests")
    }

    /// Adds a stream whose output layout is `output`.
    pub fn stream(
        &mut self,
        name: &str,
        source: SourceSpec,
        ops: Vec<OpSpec>,
        output: SchemaId,
    ) -> StreamId {
        let visible = ops
            .iter()
            .any(|o| matches!(o, OpSpec::Emit(_) | OpSpec::Process(_)));
        self.program.streams.push(StreamPlan {
            name: Arc::from(name),
            source,
            ops,
            output_schema: output,
            visible,
            time: StreamTime::default(),
            bounds: Vec::new(),
            span: SpanId::NONE,
        });
        u32::try_from(self.program.streams.len() - 1).expect("few streams in tests")
    }

    /// A stream that keeps its input layout: copies `layout`'s fields into a
    /// new schema named after the stream.
    pub fn passthrough_stream(
        &mut self,
        name: &str,
        source: SourceSpec,
        ops: Vec<OpSpec>,
        layout: SchemaId,
    ) -> StreamId {
        let fields: Vec<String> = self.program.schemas[layout as usize]
            .fields
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let out = self.layout(name, &refs);
        self.stream(name, source, ops, out)
    }

    /// An `.emit(name: expr, ...)` operator with a new layout named `name`.
    pub fn emit(&mut self, name: &str, items: Vec<(&str, Chunk)>) -> (OpSpec, SchemaId) {
        let names: Vec<&str> = items.iter().map(|(n, _)| *n).collect();
        let schema = self.layout(name, &names);
        (
            OpSpec::Emit(EmitSpec {
                items: Some(items.into_iter().map(|(_, c)| c).collect()),
                schema,
            }),
            schema,
        )
    }

    /// An `.aggregate(...)` of simple calls (`(name, func, arg slot, param)`),
    /// partitioned output adds the key under `key_name` and `_partition`.
    pub fn aggregate(
        &mut self,
        name: &str,
        calls: &[(&str, AggFunc, Option<u16>, Option<f64>)],
        key_name: Option<&str>,
    ) -> (OpSpec, SchemaId) {
        let mut names: Vec<&str> = calls.iter().map(|c| c.0).collect();
        let n = names.len();
        let (mut key_slot, mut partition_slot) = (None, None);
        if let Some(k) = key_name {
            names.push(k);
            names.push("_partition");
            key_slot = u16::try_from(n).ok();
            partition_slot = u16::try_from(n + 1).ok();
        }
        let schema = self.layout(name, &names);
        let spec = AggregateSpec {
            calls: calls
                .iter()
                .map(|(_, f, slot, p)| AggCall {
                    func: *f,
                    arg: slot.map(field),
                    param: *p,
                })
                .collect(),
            items: calls
                .iter()
                .enumerate()
                .map(|(i, (n, ..))| AggItem {
                    name: Arc::from(*n),
                    expr: code(vec![Instr::LoadAgg(u16::try_from(i).unwrap_or(0))], vec![]),
                })
                .collect(),
            schema,
            key_slot,
            partition_slot,
        };
        (OpSpec::Aggregate(spec), schema)
    }

    /// The finished program.
    pub fn build(self) -> Arc<Program> {
        Arc::new(self.program)
    }
}

/// A chunk from code and constants.
pub fn code(code: Vec<Instr>, consts: Vec<Value>) -> Chunk {
    Chunk::new(code, consts)
}

/// Reads one field.
pub fn field(slot: u16) -> Chunk {
    code(vec![Instr::LoadField(slot)], vec![])
}

/// A constant.
pub fn konst(v: Value) -> Chunk {
    code(vec![Instr::Const(0)], vec![v])
}

/// `field <op> constant`.
pub fn compare(slot: u16, op: Instr, v: Value) -> Chunk {
    code(vec![Instr::LoadField(slot), Instr::Const(0), op], vec![v])
}

/// Events of `type_id` source.
pub fn input(type_id: SchemaId) -> SourceSpec {
    SourceSpec::Input(InputRef::Event(type_id))
}

/// Outputs of stream `s`.
pub fn from_stream(s: StreamId) -> SourceSpec {
    SourceSpec::Input(InputRef::Stream(s))
}

/// An event with all fields present.
pub fn event(type_id: SchemaId, time: i64, fields: Vec<Value>) -> Event {
    Event::new(type_id, time, fields.into_iter().map(Some).collect())
}

/// Renders outputs compactly for assertions: `Stream@t{a=1,b="x"}`.
pub fn render(outs: &[crate::Output]) -> Vec<String> {
    outs.iter()
        .map(|o| {
            let f: Vec<String> = o
                .fields
                .iter()
                .map(|(k, v)| match v {
                    Value::Str(s) => format!("{k}={s:?}"),
                    v => format!("{k}={v}"),
                })
                .collect();
            format!("{}@{}{{{}}}", o.stream, o.time, f.join(","))
        })
        .collect()
}
