//! The window group operators `.order_by`, `.collect`, `.any`, `.all`
//! (docs/LANGUAGE.md#window-group-operators) through the compiler's host API:
//! placement and argument checks, the lowered plan, and the editor features.

use varpulis_compiler::ide::{completions, hover, signature_help};
use varpulis_compiler::Compiler;
use varpulis_program::{GroupOp, OpSpec};

const EVENT: &str =
    "event Trade:\n    desk: str\n    symbol: str\n    price: float\n    tags: [str]\n\n";

fn compiler(body: &str) -> (Compiler, String) {
    let text = format!("{EVENT}{body}");
    let mut c = Compiler::new();
    c.set_file("t.vpl", text.clone());
    (c, text)
}

/// The error codes `check` reports for `body`.
fn codes(body: &str) -> Vec<String> {
    let (c, _) = compiler(body);
    c.check("t.vpl")
        .into_iter()
        .filter(|d| d.severity == varpulis_compiler::Severity::Error)
        .map(|d| d.code.to_string())
        .collect()
}

fn ops(body: &str) -> Vec<OpSpec> {
    let (c, _) = compiler(body);
    let p = c.program("t.vpl").expect("program lowers");
    p.streams[0].ops.clone()
}

#[test]
fn group_operators_need_a_window_right_before_them() {
    for op in [
        ".order_by(price)",
        ".collect()",
        ".any(price > 1.0)",
        ".all(price > 1.0)",
    ] {
        assert_eq!(
            codes(&format!("stream S = Trade\n    {op}\n")),
            ["E0418"],
            "{op}"
        );
        assert_eq!(
            codes(&format!(
                "stream S = Trade\n    .window(1m)\n    .where(price > 0.0)\n    {op}\n"
            )),
            ["E0418"],
            "{op}"
        );
        assert!(
            codes(&format!(
                "stream S = Trade\n    .window(1m)\n    .order_by(symbol)\n    {op}\n"
            ))
            .is_empty(),
            "{op}"
        );
    }
}

#[test]
fn arguments_are_checked() {
    assert_eq!(
        codes("stream S = Trade\n    .window(5)\n    .order_by(tags)\n"),
        ["E0304"]
    );
    assert_eq!(
        codes("stream S = Trade\n    .window(5)\n    .any(price)\n"),
        ["E0302"]
    );
    assert_eq!(
        codes("stream S = Trade\n    .window(5)\n    .order_by(prise)\n"),
        ["E0202"]
    );
    assert_eq!(
        codes("stream S = Trade\n    .window(5)\n    .collect(into: x)\n"),
        ["E0212"]
    );
    assert_eq!(
        codes("stream S = Trade\n    .window(5)\n    .order_by()\n"),
        ["E0303"]
    );
}

#[test]
fn collect_output_has_the_list_and_the_partition_key() {
    let errs = codes(
        "stream S = Trade\n    .partition_by(desk, max_keys: 10)\n    .window(5)\n    .collect(as: trades)\n    .emit(desk: desk, n: len(trades), p: trades[0].price)\n",
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        codes("stream S = Trade\n    .window(5)\n    .collect(as: trades)\n    .emit(p: price)\n"),
        ["E0202"],
        "the events are in the list, not fields of the collected event"
    );
}

#[test]
fn group_operators_lower_after_their_window() {
    let ops = ops(
        "stream S = Trade\n    .window(5)\n    .order_by(desc(price), symbol)\n    .all(price > 1.0)\n    .emit(symbol: symbol)\n",
    );
    assert!(matches!(ops[0], OpSpec::Window(_)));
    let OpSpec::Group(GroupOp::OrderBy(keys)) = &ops[1] else {
        panic!("{ops:?}")
    };
    assert_eq!(
        keys.iter().map(|k| k.descending).collect::<Vec<_>>(),
        [true, false]
    );
    assert!(matches!(ops[2], OpSpec::Group(GroupOp::All(_))));
}

#[test]
fn editor_knows_the_group_operators() {
    let body = "stream S = Trade\n    .window(5)\n    .order_by(price)\n    .any(price > 1.0)\n";
    let (c, text) = compiler(body);
    let at = |s: &str| text.find(s).expect("in text") as u32;
    let h = hover(&c, "t.vpl", at("order_by") + 1).expect("hover");
    assert!(h.markdown.contains(".order_by(key, ...)"), "{}", h.markdown);
    assert!(!h.markdown.contains("not supported"), "{}", h.markdown);
    let h = hover(&c, "t.vpl", at("any(") + 1).expect("hover");
    assert!(h.markdown.contains(".any(condition)"), "{}", h.markdown);
    let s = signature_help(&c, "t.vpl", at("price)")).expect("signature");
    assert_eq!(s.label, ".order_by(key, ...)");
    let items = completions(&c, "t.vpl", at(".order_by") + 1).items;
    for name in ["order_by", "collect", "any", "all"] {
        assert!(items.iter().any(|i| i.label == name), "{name}");
    }
}
