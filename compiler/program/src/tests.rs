//! Round-trip tests of the artifact.

use super::*;

pub(crate) fn sample() -> Program {
    let mut p = Program::default();
    p.span_table.files.push("rules.vpl".into());
    let span = p.span_table.push(SpanInfo {
        file: 0,
        start: 10,
        end: 20,
        line: 2,
        column: 5,
    });
    p.schemas.push(EventSchema::with_fields(
        "Reading",
        SchemaOrigin::Declared,
        &["pump", "bar"],
    ));
    p.schemas.push(EventSchema::with_fields(
        "Hot",
        SchemaOrigin::Stream,
        &["pump", "bar"],
    ));
    let filter = Chunk {
        code: vec![Instr::LoadField(1), Instr::Const(0), Instr::Gt],
        consts: vec![Value::Float(8.0)],
        spans: vec![span, span, span],
        span,
        locals: 0,
    };
    p.streams.push(StreamPlan {
        name: "Hot".into(),
        source: SourceSpec::Input(InputRef::Event(0)),
        ops: vec![
            OpSpec::Filter(filter),
            OpSpec::Window(WindowSpec::Sliding {
                size: 60_000_000_000,
                slide: 1_000_000_000,
            }),
            OpSpec::Aggregate(AggregateSpec {
                calls: vec![AggCall {
                    func: AggFunc::Percentile,
                    arg: Some(Chunk::new(vec![Instr::LoadField(1)], vec![])),
                    param: Some(0.9),
                }],
                items: vec![AggItem {
                    name: "p90".into(),
                    expr: Chunk::new(vec![Instr::LoadAgg(0)], vec![]),
                }],
                schema: 1,
                key_slot: None,
                partition_slot: None,
            }),
        ],
        output_schema: 1,
        visible: true,
        time: StreamTime {
            out_of_order: Some(5),
            allowed_lateness: None,
        },
        bounds: Vec::new(),
        span,
    });
    p.functions.push(Function {
        name: "f".into(),
        params: vec![FieldDef {
            name: "x".into(),
            ty: Type::Optional(Box::new(Type::Int)),
        }],
        chunk: Chunk::new(
            vec![
                Instr::LoadLocal(0),
                Instr::CallBuiltin(Builtin::Abs, 1),
                Instr::Return,
            ],
            vec![],
        ),
        span,
    });
    p.globals.push(Global {
        name: "limit".into(),
        mutable: false,
        init: Chunk::new(
            vec![Instr::Const(0)],
            vec![Value::array(vec![Value::Timestamp(1), Value::Duration(2)])],
        ),
    });
    p.connectors.push(ConnectorDef {
        name: "Out".into(),
        kind: "file".into(),
        params: vec![("path".into(), ConfigValue::Str("a.jsonl".into()))],
        span,
    });
    p
}

#[test]
fn program_round_trips_through_json() {
    let p = sample();
    let text = serde_json::to_string(&p).expect("serialises");
    let back: Program = serde_json::from_str(&text).expect("deserialises");
    assert_eq!(back, p);
    assert_eq!(back.version, FORMAT_VERSION);
}

#[test]
fn contexts_and_placements_round_trip_and_old_programs_load_without_them() {
    let mut p = sample();
    p.contexts.push(ContextDef {
        name: "ingest".into(),
        cores: vec![0, 1],
        span: SpanId::NONE,
    });
    p.placements.push(Placement {
        stream: 0,
        context: Some(0),
        emit: None,
    });
    let text = serde_json::to_string(&p).expect("serialises");
    let back: Program = serde_json::from_str(&text).expect("deserialises");
    assert_eq!(back, p);
    // A version-1 artifact has neither field: it loads as a program without
    // contexts.
    let mut old = sample();
    old.version = 1;
    let text = serde_json::to_string(&old).expect("serialises");
    assert!(!text.contains("contexts") && !text.contains("placements"));
    let back: Program = serde_json::from_str(&text).expect("deserialises");
    assert!(back.contexts.is_empty() && back.placements.is_empty());
    assert!((OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&back.version));
}

#[test]
fn span_table_renders_locations_without_source_text() {
    let p = sample();
    assert_eq!(
        p.span_table.location(SpanId(0)).as_deref(),
        Some("rules.vpl:2:5")
    );
    assert_eq!(p.span_table.location(SpanId::NONE), None);
}

#[test]
fn routes_invert_the_stream_graph() {
    let mut p = sample();
    p.streams.push(StreamPlan {
        name: "Both".into(),
        source: SourceSpec::Merge {
            branches: vec![
                MergeBranch {
                    input: InputRef::Stream(0),
                    filter: None,
                    remap: vec![],
                },
                MergeBranch {
                    input: InputRef::Event(0),
                    filter: None,
                    remap: vec![],
                },
            ],
            schema: 1,
        },
        ops: vec![],
        output_schema: 1,
        visible: false,
        time: StreamTime::default(),
        bounds: Vec::new(),
        span: SpanId::NONE,
    });
    let r = p.routes();
    assert_eq!(
        r.by_event[0],
        vec![
            Consumer {
                stream: 0,
                input: 0
            },
            Consumer {
                stream: 1,
                input: 1
            }
        ]
    );
    assert_eq!(
        r.by_stream[0],
        vec![Consumer {
            stream: 1,
            input: 0
        }]
    );
    assert!(r.by_stream[1].is_empty());
    assert_eq!(p.stream_id("Both"), Some(1));
    assert_eq!(p.schema_id("Hot"), Some(1));
}
