//! Unit tests of the checker through the host API: diagnostics as
//! `code line:col message` lines, and the semantic model of streams.

use crate::model::{ItemModel, Resolution, SourceModel, StageKind, WindowSpec};
use crate::Compiler;

const R: &str = "event Reading:\n    pump: str\n    bar: float\n    n: int\n";

/// Diagnostics of `text` as `CODE line:col message`, one per line.
fn check(text: &str) -> String {
    let mut c = Compiler::new();
    c.set_file("t.vpl", text);
    let index = crate::render::LineIndex::new(text);
    c.check("t.vpl")
        .iter()
        .map(|d| {
            let (l, col) = index.position(d.primary.span.start);
            format!("{} {l}:{col} {}", d.code, d.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The output schema of stream `name` as `field: type` strings.
fn schema(text: &str, name: &str) -> Vec<String> {
    let mut c = Compiler::new();
    c.set_file("t.vpl", text);
    c.stream_schema("t.vpl", name)
        .map(|s| {
            s.fields
                .iter()
                .map(|f| format!("{}: {}", f.name, f.ty))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn correct_programs_check_clean() {
    let text = format!(
        "{R}connector Out = file (path: \"o.jsonl\")\nconst LIMIT = 8.5\n\
         fn spread(lo: float, hi: float) -> float:\n    hi - lo\n\
         stream Hot = Reading\n    .where(bar > LIMIT and pump != \"x\")\n    .emit(pump: pump, d: spread(0.0, bar))\n    .to(Out)\n"
    );
    assert_eq!(check(&text), "");
}

#[test]
fn unknown_field_suggests_the_closest() {
    let text = format!("{R}stream S = Reading\n    .where(bra > 1.0)\n");
    assert_eq!(check(&text), "E0202 6:12 unknown field `bra` on `Reading`");
}

#[test]
fn numeric_widening_and_duration_arithmetic() {
    let text = "let a = 1 + 2.5\nlet d = 5m * 2 + 30s\nlet t = @2024-01-01 + d\nlet gap = t - @2024-01-01\n";
    assert_eq!(check(text), "");
    let mut c = Compiler::new();
    c.set_file("t.vpl", text);
    let types: Vec<String> = c
        .items("t.vpl")
        .iter()
        .map(|i| match &i.analysis.model {
            ItemModel::Global(t) => t.to_string(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(types, ["float", "duration", "timestamp", "duration"]);
}

#[test]
fn select_emit_and_aggregate_define_the_output_schema() {
    let text = format!(
        "{R}stream A = Reading\n    .select(pump, b2: bar * 2.0)\n\
         stream B = Reading\n    .partition_by(pump)\n    .window(1m)\n    .aggregate(peak: max(bar), c: count())\n\
         stream C = B\n    .where(c > 1)\n"
    );
    assert_eq!(check(&text), "");
    assert_eq!(schema(&text, "A"), ["pump: str", "b2: float"]);
    assert_eq!(
        schema(&text, "B"),
        ["peak: float", "c: int", "pump: str", "_partition: str"]
    );
    assert_eq!(schema(&text, "C"), schema(&text, "B"));
}

#[test]
fn sequences_bind_aliases_and_kleene_lists() {
    let text = format!(
        "{R}stream S = Reading as a\n    -> all Reading where bar > a.bar as ks\n    -> Reading where n > 0 as z\n    .within(1m)\n\
         .emit(p: a.pump, k: len(ks), total: sum(ks.bar), last_n: n, zn: z.n)\n"
    );
    assert_eq!(check(&text), "");
    assert_eq!(
        schema(&text, "S"),
        ["p: str", "k: int", "total: float", "last_n: int", "zn: int"]
    );
}

#[test]
fn join_and_merge_schemas() {
    let text = "event A:\n    k: str\n    x: int\nevent B:\n    k: str\n    y: float\n\
                stream J = join(A, B)\n    .on(A.k == B.k)\n    .emit(k: A.k, x: x, y: B.y)\n\
                stream M = merge(A, B)\n    .where(k != \"\")\n";
    assert_eq!(check(text), "");
    assert_eq!(schema(text, "J"), ["k: str", "x: int", "y: float"]);
    assert_eq!(schema(text, "M"), ["k: str", "x: int", "y: float"]);
}

#[test]
fn the_model_records_resolutions_and_stages() {
    let text = format!("{R}let limit = 3\nstream S = Reading\n    .where(n > limit)\n    .window(5m, sliding: 1m)\n    .aggregate(m: avg(bar))\n");
    let mut c = Compiler::new();
    c.set_file("t.vpl", text.as_str());
    let s = c.stream("t.vpl", "S").expect("S is a stream");
    assert!(
        matches!(&s.source, SourceModel::Event { name, declared: true, .. } if name == "Reading")
    );
    let kinds: Vec<String> = s
        .stages
        .iter()
        .map(|st| format!("{:?}", st.kind).chars().take(8).collect())
        .collect();
    assert_eq!(kinds, ["Where(Sp", "Window(T", "Aggregat"]);
    assert!(matches!(
        s.stages[1].kind,
        StageKind::Window(WindowSpec::Time {
            size: 300_000_000_000,
            slide: Some(60_000_000_000)
        })
    ));
    let item = c
        .items("t.vpl")
        .into_iter()
        .nth(2)
        .expect("the stream item");
    let res: Vec<&Resolution> = item
        .analysis
        .exprs
        .values()
        .filter_map(|e| e.resolution.as_ref())
        .collect();
    assert!(
        res.contains(&&Resolution::Field {
            index: 2,
            name: "n".into()
        }),
        "{res:?}"
    );
    assert!(
        res.contains(&&Resolution::Global {
            name: "limit".into()
        }),
        "{res:?}"
    );
    assert!(
        res.contains(&&Resolution::Aggregate { name: "avg".into() }),
        "{res:?}"
    );
}

#[test]
fn fields_shadow_globals() {
    let text = format!("{R}let bar = \"global\"\nstream S = Reading\n    .where(bar > 1.0)\n");
    assert_eq!(check(&text), "");
}

#[test]
fn recursive_functions_with_a_return_type_are_fine() {
    let text = "fn fact(n: int) -> int:\n    if n <= 1:\n        return 1\n    n * fact(n - 1)\n";
    assert_eq!(check(text), "");
}

#[test]
fn recursive_functions_without_a_return_type_are_cyclic_but_do_not_hang() {
    let text = "fn f(n: int):\n    g(n)\nfn g(n: int):\n    f(n)\nlet x = f(1)\n";
    assert_eq!(
        check(text),
        "E0213 1:4 `f` is recursive but has no return type\nE0213 3:4 `g` is recursive but has no return type"
    );
}

#[test]
fn errors_in_recovered_items_are_not_cascaded() {
    let text = format!("{R}stream S = Reading\n    .where(bar > )\n    .emit(p: nope)\n");
    let out = check(&text);
    assert!(out.starts_with("E01"), "{out}");
    assert!(
        !out.contains("E0202"),
        "no semantic errors in an item with syntax errors: {out}"
    );
}

#[test]
fn declaration_loops_map_spans_back_to_the_loop_body() {
    let text = format!(
        "{R}for z in 1..=2:\n    stream Hot{{z}} = Reading\n        .where(bra > {{z}}.0)\n"
    );
    let out = check(&text);
    assert_eq!(
        out,
        "E0202 7:16 unknown field `bra` on `Reading`\nE0202 7:16 unknown field `bra` on `Reading`"
    );
}

#[test]
fn undeclared_sources_warn_and_accept_any_field() {
    assert_eq!(
        check("stream S = Sensor\n    .where(x > 1)\n"),
        "W0101 1:12 event type `Sensor` is not declared"
    );
}

#[test]
fn imports_resolve_against_loaded_files() {
    let mut c = Compiler::new();
    c.set_file(
        "rules/main.vpl",
        "import \"types.vpl\"\nstream Hot = Reading\n    .where(bar > 1.0)\n",
    );
    assert_eq!(c.imports("rules/main.vpl"), ["rules/types.vpl"]);
    let codes: Vec<&str> = c.check("rules/main.vpl").iter().map(|d| d.code).collect();
    assert_eq!(codes, ["W0108", "W0101"], "not loaded yet");
    c.set_file("rules/types.vpl", R);
    assert!(
        c.check("rules/main.vpl").is_empty(),
        "{:?}",
        c.check("rules/main.vpl")
    );
    c.set_file(
        "rules/main.vpl",
        "import \"types.vpl\"\nstream Hot = Reading\n    .where(bra > 1.0)\n",
    );
    let codes: Vec<&str> = c.check("rules/main.vpl").iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0202"], "imported schemas are checked");
}

#[test]
fn import_paths_are_relative_to_the_importing_file() {
    use crate::db::resolve_import_path as r;
    assert_eq!(r("a/b/main.vpl", "types.vpl"), "a/b/types.vpl");
    assert_eq!(r("a/b/main.vpl", "../shared/t.vpl"), "a/shared/t.vpl");
    assert_eq!(r("main.vpl", "./t.vpl"), "t.vpl");
    assert_eq!(r("a/main.vpl", "/abs/t.vpl"), "/abs/t.vpl");
}

const SHIP: &str =
    "event Order:\n    id: str\n    customer: str\nevent Sent:\n    order: str\n    carrier: str\n";

#[test]
fn timeout_streams_read_the_sequence_aliases() {
    let text = format!(
        "{SHIP}stream Shipped = Order as o -> Sent where order == o.id as s .within(2h) .emit(order: o.id)\n\
         stream Unshipped = Shipped.timeouts() .emit(order: o.id, carrier: s.carrier)\n"
    );
    assert_eq!(check(&text), "");
    assert_eq!(schema(&text, "Unshipped"), ["order: str", "carrier: str"]);
}

#[test]
fn timeout_streams_need_a_sequence_with_a_deadline_first() {
    let seq = "stream Shipped = Order as o -> Sent where order == o.id as s .emit(order: o.id)\n";
    let cases = [
        (
            format!("{SHIP}{seq}stream U = Shipped.timeouts()\n"),
            "E0414 8:12 `Shipped` has no `.within(...)`, so its partial matches never time out",
        ),
        (
            format!("{SHIP}stream U = Order.timeouts()\n"),
            "E0414 7:12 `Order` is not a sequence stream or pattern",
        ),
        (
            format!("{SHIP}stream P = Order\nstream U = P.timeouts()\n"),
            "E0414 8:12 `P` runs no sequence",
        ),
        (
            format!("{SHIP}stream U = Order.where(id == \"x\").timeouts()\n"),
            "E0414 7:35 `.timeouts()` must be the first operator",
        ),
    ];
    for (text, want) in cases {
        let got = check(&text);
        assert!(got.contains(want), "{got}");
    }
}

#[test]
fn unbounded_keys_before_a_count_window_warn_and_bounds_silence_it() {
    let with = |part: &str, window: &str| {
        check(&format!(
            "{R}stream S = Reading\n    .partition_by({part})\n    .window({window})\n    .aggregate(c: count())\n    .emit(c)\n"
        ))
    };
    assert_eq!(
        with("pump", "10"),
        "W0112 6:6 every key keeps an open count window: state grows with the number of keys"
    );
    assert_eq!(with("pump", "10, sliding: 2").lines().count(), 1);
    assert_eq!(with("pump", "5m"), "", "time windows free their keys");
    assert_eq!(with("pump, max_keys: 1000", "10"), "");
    assert_eq!(with("pump, idle: 30m, evict: fifo", "10"), "");
    assert_eq!(
        with("pump, max_keys: 0, evict: newest, idle: 5", "10"),
        "E0417 6:35 `max_keys:` must be a positive integer literal\n\
         E0417 6:45 `evict:` must be `lru` or `fifo`\n\
         E0417 6:59 `idle:` must be a positive duration, e.g. `30m`"
    );
}

#[test]
fn distinct_takes_a_bound_and_sequences_refuse_key_bounds() {
    assert_eq!(
        check(&format!(
            "{R}stream D = Reading\n    .distinct(pump, max: 500, evict: fifo)\n    .emit(pump)\n"
        )),
        ""
    );
    let seq = check(&format!(
        "{R}stream Q = Reading as a -> Reading as b\n    .within(1m)\n    .partition_by(pump, max_keys: 10)\n    .emit(x: a.bar)\n"
    ));
    assert!(
        seq.starts_with("E0417") && seq.contains("does not apply to a sequence"),
        "{seq}"
    );
}

#[test]
fn max_events_is_a_positive_literal_on_a_window_that_grows() {
    let with = |window: &str| {
        check(&format!(
            "{R}stream S = Reading\n    .window({window})\n    .aggregate(c: count())\n    .emit(c)\n"
        ))
    };
    assert_eq!(with("5m, max_events: 1000"), "");
    assert_eq!(with("5m, sliding: 1m, max_events: 1000"), "");
    assert_eq!(with("session: 5m, max_events: 1000"), "");
    assert_eq!(
        with("5m, max_events: 0"),
        "E0417 6:29 `max_events:` must be a positive integer literal"
    );
    assert_eq!(
        with("5m, max_events: \"x\""),
        "E0417 6:29 `max_events:` must be a positive integer literal"
    );
    assert_eq!(
        with("100, max_events: 10"),
        "E0417 6:30 `max_events:` does not apply to a count window"
    );
}
