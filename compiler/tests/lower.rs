//! Snapshot tests of lowering: small VPL programs go through the host API
//! (parse, check, lower) and the resulting `Program` is rendered compactly
//! (schemas with slots, streams with operators, chunks as instruction lists)
//! next to the source in the snapshot.

use std::fmt::Write as _;

use varpulis_compiler::Compiler;
use varpulis_program::{Chunk, Program, SourceSpec};

/// Compiles `src` and renders the lowered program, or the diagnostics.
fn check(src: &str) -> String {
    let mut c = Compiler::new();
    c.set_file("test.vpl", src);
    let mut out = String::new();
    match c.program("test.vpl") {
        Ok(p) => {
            let json = serde_json::to_string(&p).expect("serialises");
            let back: Program = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(back, p, "JSON round trip");
            render(&p, &mut out);
        }
        Err(diags) => {
            for d in diags {
                let _ = writeln!(
                    out,
                    "{} {} at {}..{}",
                    d.code, d.message, d.primary.span.start, d.primary.span.end
                );
            }
        }
    }
    format!("{}\n---\n{out}", src.trim())
}

fn chunk(c: &Chunk) -> String {
    let mut s = String::new();
    for (i, instr) in c.code.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        let _ = write!(s, "{instr:?}");
        if let varpulis_program::Instr::Const(k) = instr {
            if let Some(v) = c.consts.get(*k as usize) {
                let _ = write!(s, "={v:?}");
            }
        }
    }
    if c.locals > 0 {
        let _ = write!(s, " (locals {})", c.locals);
    }
    s
}

fn render(p: &Program, out: &mut String) {
    for (i, s) in p.schemas.iter().enumerate() {
        let fields: Vec<&str> = s.fields.iter().map(|f| &*f.name).collect();
        let extra = if s.keep_extra { " +extra" } else { "" };
        let _ = writeln!(
            out,
            "schema {i} {} {:?}{extra}: [{}]",
            s.name,
            s.origin,
            fields.join(", ")
        );
    }
    for c in &p.connectors {
        let _ = writeln!(out, "connector {} {} {:?}", c.name, c.kind, c.params);
    }
    for g in &p.globals {
        let _ = writeln!(
            out,
            "global {} mut={}: {}",
            g.name,
            g.mutable,
            chunk(&g.init)
        );
    }
    for f in &p.functions {
        let _ = writeln!(
            out,
            "fn {}({}): {}",
            f.name,
            f.params.len(),
            chunk(&f.chunk)
        );
    }
    for s in &p.streams {
        let _ = writeln!(
            out,
            "stream {} -> schema {} visible={} time={:?}",
            s.name, s.output_schema, s.visible, s.time
        );
        let src = match &s.source {
            SourceSpec::Join(j) => {
                let mut t = format!(
                    "Join horizon={} schema={} residual={:?}",
                    j.horizon,
                    j.schema,
                    j.residual.as_ref().map(chunk)
                );
                for i in &j.inputs {
                    let keys: Vec<String> = i.keys.iter().map(chunk).collect();
                    let _ = write!(
                        t,
                        "\n    input {:?} keys={keys:?} filter={:?} project={:?}",
                        i.input,
                        i.filter.as_ref().map(chunk),
                        i.project
                    );
                }
                t
            }
            SourceSpec::Merge { branches, schema } => {
                let mut t = format!("Merge schema={schema}");
                for b in branches {
                    let _ = write!(
                        t,
                        "\n    branch {:?} filter={:?} remap={:?}",
                        b.input,
                        b.filter.as_ref().map(chunk),
                        b.remap
                    );
                }
                t
            }
            other => format!("{other:?}"),
        };
        let _ = writeln!(out, "  source {src}");
        for op in &s.ops {
            let line = match op {
                varpulis_program::OpSpec::Filter(c) => format!("Filter {}", chunk(c)),
                varpulis_program::OpSpec::Having(c) => format!("Having {}", chunk(c)),
                varpulis_program::OpSpec::PartitionBy(c) => format!("PartitionBy {}", chunk(c)),
                varpulis_program::OpSpec::Process(c) => format!("Process {}", chunk(c)),
                varpulis_program::OpSpec::Select(p) => {
                    let items: Vec<String> = p.items.iter().map(chunk).collect();
                    format!("Select schema={} {items:?}", p.schema)
                }
                varpulis_program::OpSpec::Emit(e) => {
                    let items: Option<Vec<String>> =
                        e.items.as_ref().map(|v| v.iter().map(chunk).collect());
                    format!("Emit schema={} {items:?}", e.schema)
                }
                varpulis_program::OpSpec::Aggregate(a) => {
                    let mut t = format!(
                        "Aggregate schema={} key_slot={:?} partition_slot={:?}",
                        a.schema, a.key_slot, a.partition_slot
                    );
                    for c in &a.calls {
                        let _ = write!(
                            t,
                            "\n    call {:?} arg={:?} param={:?}",
                            c.func,
                            c.arg.as_ref().map(chunk),
                            c.param
                        );
                    }
                    for i in &a.items {
                        let _ = write!(t, "\n    item {}: {}", i.name, chunk(&i.expr));
                    }
                    t
                }
                varpulis_program::OpSpec::Sequence(q) => {
                    let mut t = format!(
                        "Sequence schema={} within={:?} root={:?} selection={:?}",
                        q.schema, q.within, q.root, q.selection
                    );
                    for a in &q.aliases {
                        let _ = write!(t, "\n    alias {} schema={}", a.name, a.schema);
                    }
                    for st in &q.steps {
                        let _ = write!(
                            t,
                            "\n    step {:?} {:?} alias={:?} selfref={} filter={:?}",
                            st.input,
                            st.kleene,
                            st.alias,
                            st.self_referential,
                            st.filter.as_ref().map(chunk)
                        );
                    }
                    for n in &q.negations {
                        let _ = write!(
                            t,
                            "\n    not {:?} after={:?} filter={:?}",
                            n.input,
                            n.after_step,
                            n.filter.as_ref().map(chunk)
                        );
                    }
                    if let Some(parts) = &q.partition {
                        let keys: Vec<Option<String>> =
                            parts.iter().map(|c| c.as_ref().map(chunk)).collect();
                        let _ = write!(t, "\n    partition {keys:?}");
                    }
                    t
                }
                varpulis_program::OpSpec::Print(cs) => {
                    let items: Vec<String> = cs.iter().map(chunk).collect();
                    format!("Print {items:?}")
                }
                varpulis_program::OpSpec::Log(l) => format!(
                    "Log {:?} {:?} data={:?}",
                    l.level,
                    l.message,
                    l.data.as_ref().map(chunk)
                ),
                varpulis_program::OpSpec::Distinct { key, capacity } => {
                    format!("Distinct {:?} capacity={capacity}", key.as_ref().map(chunk))
                }
                other => format!("{other:?}"),
            };
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "spans {}", p.span_table.spans.len());
}

macro_rules! snap {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(check($src));
        }
    };
}

snap!(
    filter_select_emit_read_fields_by_slot,
    r#"
event Reading:
    pump: str
    bar: float
event Alarm extends Reading:
    level: int

stream Hot = Alarm
    .where(bar > 9.5 and level >= 2)
    .select(pump, pressure: bar * 100.0)
    .emit(pump: pump, kpa: pressure)
"#
);

snap!(
    expression_families_lower_to_bytecode,
    r#"
event E:
    s: str
    n: int
    xs: [int]
    m: {str: int}

stream Out = E
    .emit(
        lit: [1, 2.5, "x", true, null, 5m, @2024-01-01],
        map: {a: n, "b": 2},
        idx: xs[0],
        sl: xs[1:],
        mem: m.a,
        opt: m?.b,
        call: upper(s),
        alias: lowercase(s),
        method: s.len(),
        un: -n,
        cond: if n > 0 then "pos" else "neg",
        member: n in xs,
        nmember: "z" not in s,
        rng: 1..=3,
        logic: n > 1 or not (n < 0))
"#
);

snap!(
    undeclared_types_get_inferred_open_schemas,
    r#"
stream A = Ping.where(latency > 100)
stream B = A.emit(host: host, latency: latency)
stream C = Ping.emit()
"#
);

snap!(
    globals_and_functions_with_loops,
    r#"
let base = 10
var factor = 2
const OFFSET: int = 5
factor := 3
let double = x => x * 2
let clamp01 = (v) => {
    let out = if v < 0.0 then 0.0 else if v > 1.0 then 1.0 else v
    out
}

fn total(xs: [int]) -> int:
    var acc = 0
    for x in xs:
        if x < 0:
            continue
        elif x > 100:
            break
        acc := acc + x
    acc

fn countdown(n: int) -> int:
    var i = n
    while i > 0:
        i := i - 1
    return i * factor + OFFSET

event Sample:
    v: int
    xs: [int]

stream Scaled = Sample
    .emit(t: total(xs), c: countdown(v), b: v + base)
"#
);

snap!(
    windows_aggregates_and_having,
    r#"
event Reading:
    pump: str
    bar: float

stream Tumbling = Reading.partition_by(pump).window(1m)
    .aggregate(peak: max(bar), n: count(), spread: max(bar) - min(bar), avg_bar: avg(bar))
    .having(peak > 9.5)
    .emit(pump: pump, peak: peak, n: n)
stream Sliding = Reading.window(5m, sliding: 30s).aggregate(s: sum(bar), e: ema(bar, 5))
stream Count = Reading.window(200).aggregate(d: count(distinct(pump)))
stream SlidingCount = Reading.window(200, sliding: 50).aggregate(p: percentile(bar, 0.9))
stream Session = Reading.window(session: 2m).aggregate(l: last(bar), f: first(bar))
"#
);

snap!(
    other_operators,
    r#"
connector Out = file (path: "alerts.jsonl", batch_size: 10, brokers: ["a", "b"], retry: 5s)
event Reading:
    pump: str
    bar: float

stream Misc = Reading
    .watermark(out_of_order: 2s)
    .allowed_lateness(10s)
    .distinct(pump)
    .limit(10)
    .first()
    .print(pump, bar)
    .log(level: "warn", message: "high", data: bar)
    .to(Out, topic: "t")
"#
);

snap!(
    sources_merge_join_from_timer,
    r#"
connector Feed = mqtt (host: "localhost", topic: "in")
event Trade:
    symbol: str
    price: float
event Quote:
    symbol: str
    bid: float
    ask: float

stream FromFeed = Trade.from(Feed, topic: "trades")
stream Both = merge(
        stream Big = Trade.where(price > 100.0),
        Quote)
    .emit(symbol: symbol)
stream Joined = join(Trade, Quote)
    .on(Trade.symbol == Quote.symbol and Trade.price > Quote.bid)
    .window(2m)
    .emit(symbol: symbol, spread: Trade.price - Quote.bid)
stream Derived = Joined.where(spread > 1.0)
"#
);

snap!(
    in_stream_sequence_with_negation_and_partition,
    r#"
event Order:
    id: str
    customer: str
event Packed:
    order: str
    customer: str
event Sent:
    order: str
    carrier: str
    customer: str
event Cancelled:
    order: str
    customer: str

stream Shipped = Order as o
    .where(id != "")
    -> all Packed where order == o.id as k
    -> Sent where order == o.id as s
    .within(2h)
    .not(Cancelled where order == o.id)
    .partition_by(customer)
    .emit(order: o.id, carrier: s.carrier, last: k.order)
"#
);

snap!(
    named_pattern_lowers_to_a_sequence_spec,
    r#"
event Start:
    job: str
event Progress:
    job: str
event Fail:
    job: str

pattern Stalled = SEQ(Start as s, Progress* where job == s.job, NOT Fail where job == s.job, Fail where job == s.job as f)
    within 30m partition by job
pattern Either = Start as a OR Fail as b

stream StalledJobs = Stalled
    .emit(job: s.job)
stream Any = Either.emit(x: 1)
"#
);

snap!(
    emit_statements_push_one_value_per_field,
    r#"
event Reading:
    pump: str
    bar: float
event Alert:
    pump: str
    level: int

fn classify(p: str, b: float):
    if b > 9.0:
        emit Alert(pump: p, level: 2)
    elif b > 5.0:
        emit Alert(level: 1)
"#
);

snap!(
    kleene_alias_length_lowers_to_alias_len,
    r#"
event Tick:
    px: float
    xs: [int]

stream Runs = Tick as a
    -> all Tick where px > a.px as t
    .within(1m)
    .emit(n: len(t))
"#
);

snap!(
    unsupported_constructs_are_reported_not_dropped,
    r#"
event A:
    k: str
event B:
    k: str
event C:
    k: str

pattern P = NOT A within 1m

stream Out = P
    .emit(k: k)
"#
);

snap!(
    three_way_join_uses_transitive_keys,
    r#"
event A:
    k: str
    x: int
event B:
    k: str
    y: int
event C:
    id: str
    z: int

stream J = join(A, stream Bs = B.where(y > 0), C)
    .on(A.k == Bs.k and Bs.k == C.id and A.x < C.z)
    .emit(k: k, sum: A.x + Bs.y + C.z)
"#
);

snap!(
    emit_as_type_and_stream_chains,
    r#"
event Reading:
    pump: str
    bar: float
event Alert:
    pump: str
    d: float

stream Base = Reading.where(bar > 1.0)
stream Mid = Base.select(pump, double: bar * 2.0)
stream Top = Mid.emit as Alert (pump: pump, d: double)
"#
);

#[test]
fn spans_point_at_the_original_text_through_declaration_loops() {
    let src = "event R:\n    zone: int\n\nfor z in 1..=2:\n    stream Z{z} = R\n        .where(zone == {z})\n";
    let mut c = Compiler::new();
    c.set_file("loops.vpl", src);
    let p = c.program("loops.vpl").expect("lowers");
    let mut locations = Vec::new();
    for s in &p.streams {
        if let Some(varpulis_program::OpSpec::Filter(chunk)) = s.ops.first() {
            locations.push(p.span_table.location(chunk.span).expect("has a span"));
        }
    }
    // Both expanded copies map back to the one `.where` in the loop body.
    assert_eq!(
        locations,
        vec!["loops.vpl:6:16".to_string(), "loops.vpl:6:16".to_string()]
    );
    assert_eq!(
        p.span_table.files,
        vec![std::sync::Arc::<str>::from("loops.vpl")]
    );
}

#[test]
fn a_file_with_check_errors_is_not_lowered() {
    let mut c = Compiler::new();
    c.set_file("bad.vpl", "stream S = T.where(\n");
    let errors = c.program("bad.vpl").expect_err("syntax error");
    assert!(errors.iter().all(|d| d.is_error()) && !errors.is_empty());
}

/// The connectors of `src`, compiled, rendered without their spans.
fn connectors(src: &str) -> Vec<String> {
    let mut c = Compiler::new();
    c.set_file("test.vpl", src);
    let p = c.program("test.vpl").expect("compiles");
    p.connectors
        .iter()
        .map(|d| format!("{} = {} {:?}", d.name, d.kind, d.params))
        .collect()
}

#[test]
fn config_connectors_lower_like_connector_declarations() {
    let config = connectors(
        r#"
config:
  sources:
    trades: { type: kafka, brokers: ["localhost:9092"], topic: trades, group_id: rules-prod }
  sinks:
    alerts:
      type: http
      url: "https://api.example.com/alerts"
      headers: { Authorization: "Bearer ${ALERT_TOKEN}", "X-Team": "ops" }
    screen: { type: console }
connector audit = file (path: "audit.jsonl")
"#,
    );
    let declared = connectors(
        r#"
connector trades = kafka (brokers: ["localhost:9092"], topic: trades, group_id: "rules-prod")
connector alerts = http (url: "https://api.example.com/alerts", headers: ["Authorization: Bearer ${ALERT_TOKEN}", "X-Team: ops"])
connector screen = console
connector audit = file (path: "audit.jsonl")
"#,
    );
    assert_eq!(config, declared);
}

#[test]
fn contexts_and_stream_placements_are_recorded_for_the_host() {
    let src = "context ingest (cores: [0, 2])\ncontext analytics\n\nevent R:\n    zone: str\n    temp: float\n\nstream Clean = R\n    .context(ingest)\n    .where(temp < 150.0)\n    .emit(context: analytics, zone: zone, temp: temp)\n\nstream Hot = Clean\n    .where(temp > 40.0)\n    .emit(zone: zone)\n\nstream Raw = R\n    .context(analytics)\n    .emit(zone: zone)\n";
    let mut c = Compiler::new();
    c.set_file("test.vpl", src);
    let p = c.program("test.vpl").expect("compiles");
    let names: Vec<(&str, &[u32])> = p
        .contexts
        .iter()
        .map(|c| (&*c.name, c.cores.as_slice()))
        .collect();
    assert_eq!(names, [("ingest", &[0, 2][..]), ("analytics", &[][..])]);
    let clean = p.stream_id("Clean").expect("Clean");
    let raw = p.stream_id("Raw").expect("Raw");
    let placed: Vec<_> = p
        .placements
        .iter()
        .map(|x| (x.stream, x.context, x.emit))
        .collect();
    assert_eq!(
        placed,
        [(clean, Some(0), Some(1)), (raw, Some(1), None)],
        "Hot names no context: it has no placement"
    );
    // `context:` is not a field of the emitted event.
    let schema = &p.schemas[p.streams[clean as usize].output_schema as usize];
    assert!(schema.fields.iter().all(|f| &*f.name != "context"));
}
