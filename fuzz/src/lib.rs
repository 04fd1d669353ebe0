//! What the fuzz targets share: the fixture program (`fixture.vpl`, one stream per kind of
//! stateful operator) compiled once, and the host's way of pushing decoded records through
//! an engine running it, so decoded input and restored state reach every operator.

use std::sync::{Arc, OnceLock};

use varpulis_compiler::Compiler;
use varpulis_program::{EventDecoder, Program, RawEvent};
use varpulis_vm::{Engine, Output};

/// The fixture program's text.
pub const FIXTURE: &str = include_str!("../fixture.vpl");

/// The compiled fixture and its input decoder.
pub struct Fixture {
    /// The lowered program.
    pub program: Arc<Program>,
    /// Its input types by name, as the host decodes records.
    pub decoder: EventDecoder,
}

/// The fixture, compiled on first use. It is a fixed text: failing to compile it is a bug of
/// this crate, found on the first run, not a finding of the fuzzer.
pub fn fixture() -> &'static Fixture {
    static FIXTURE_PROGRAM: OnceLock<Fixture> = OnceLock::new();
    FIXTURE_PROGRAM.get_or_init(|| {
        let mut compiler = Compiler::new();
        compiler.set_file("fixture.vpl", FIXTURE);
        let program = match compiler.program("fixture.vpl") {
            Ok(p) => Arc::new(p),
            Err(diags) => panic!("fuzz/fixture.vpl does not compile: {diags:?}"),
        };
        let decoder = EventDecoder::new(&program);
        Fixture { program, decoder }
    })
}

/// A fresh engine running the fixture.
pub fn engine() -> Engine {
    match Engine::new(fixture().program.clone()) {
        Ok(e) => e,
        Err(e) => panic!("the fixture program does not load: {e}"),
    }
}

/// Pushes records through `engine` the way `varpulis simulate` does: each at its own time
/// (`None`: its JSON timestamp, else the previous record's time), unknown types skipped,
/// then the end of input; every output is rendered as JSON like a sink would.
pub fn run<'a>(
    engine: &mut Engine,
    records: impl IntoIterator<Item = (&'a RawEvent, Option<i64>)>,
) {
    let decoder = &fixture().decoder;
    let mut clock = 0i64;
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    for (raw, time) in records {
        let time = time.or(raw.timestamp).unwrap_or(clock);
        clock = time;
        warnings.clear();
        if let Ok(event) = decoder.decode(raw, time, &mut warnings) {
            engine.push_into(event, &mut out);
        }
        render(&mut out);
    }
    out.extend(engine.finish());
    render(&mut out);
    let _ = engine.take_errors();
    let _ = engine.take_side_outputs();
}

/// A fixed burst of input after a restore: every input type, several keys, times on both
/// sides of the window sizes, so restored windows, joins and runs all fire.
pub fn replay_after_restore(engine: &mut Engine) {
    let rec = |t: &str, fields: Vec<(&str, varpulis_program::Value)>| RawEvent {
        event_type: t.to_string(),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        timestamp: None,
    };
    use varpulis_program::Value as V;
    let minute = 60_000_000_000i64;
    let records = [
        rec(
            "Reading",
            vec![("k", V::str("a")), ("v", V::Float(2.0)), ("n", V::Int(1))],
        ),
        rec("Quote", vec![("k", V::str("a")), ("bid", V::Float(1.5))]),
        rec(
            "Reading",
            vec![("k", V::str("b")), ("v", V::Float(3.0)), ("n", V::Int(4))],
        ),
        rec(
            "Reading",
            vec![("k", V::str("a")), ("v", V::Float(5.0)), ("n", V::Int(5))],
        ),
        rec("Ack", vec![("k", V::str("b"))]),
        rec(
            "Reading",
            vec![("k", V::str("a")), ("v", V::Float(9.0)), ("n", V::Int(7))],
        ),
    ];
    let base = engine.watermark().unwrap_or(0).max(0);
    let timed: Vec<(&RawEvent, Option<i64>)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let step = i64::try_from(i).unwrap_or(0).saturating_mul(minute / 2);
            (r, Some(base.saturating_add(step)))
        })
        .collect();
    run(engine, timed);
}

fn render(out: &mut Vec<Output>) {
    for o in out.drain(..) {
        for (_, v) in &o.fields {
            let _ = v.to_json().to_string();
        }
    }
}
