//! `.map(name: expr, ...)` (docs/LANGUAGE.md#map) through the compiler's host
//! API: the schema it produces, its argument checks, the lowered plan and the
//! editor features.

use varpulis_compiler::ide::{completions, hover, signature_help};
use varpulis_compiler::{Compiler, Severity};
use varpulis_program::OpSpec;

const EVENT: &str = "event Order:\n    id: str\n    price: float\n    qty: int\n\n";

fn compiler(body: &str) -> (Compiler, String) {
    let text = format!("{EVENT}{body}");
    let mut c = Compiler::new();
    c.set_file("t.vpl", text.clone());
    (c, text)
}

fn errors(body: &str) -> Vec<String> {
    let (c, _) = compiler(body);
    c.check("t.vpl")
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.code.to_string())
        .collect()
}

#[test]
fn map_keeps_the_input_fields_and_types_the_new_ones() {
    assert!(errors(
        "stream S = Order\n    .map(total: price * qty, price: round(price))\n    .where(total > 1.0 and id != \"x\" and price > 1)\n    .emit()\n"
    )
    .is_empty());
    // `price` is an int after the map, so comparing it with a string fails.
    assert_eq!(
        errors("stream S = Order\n    .map(price: round(price))\n    .where(price == \"a\")\n"),
        ["E0301"]
    );
}

#[test]
fn map_arguments_are_checked() {
    let f = "fn twice(x: float) -> float:\n    return x * 2.0\n\n";
    assert_eq!(
        errors(&format!("{f}stream S = Order\n    .map(twice)\n")),
        ["E0304"]
    );
    assert_eq!(errors("stream S = Order\n    .map(x => x)\n"), ["E0304"]);
    assert_eq!(errors("stream S = Order\n    .map()\n"), ["E0303"]);
    assert_eq!(
        errors("stream S = Order\n    .map(price + 1.0)\n"),
        ["E0216"]
    );
    assert_eq!(
        errors("stream S = Order\n    .map(a: 1, a: 2)\n"),
        ["E0215"]
    );
    assert_eq!(errors("stream S = Order\n    .map(a: prise)\n"), ["E0202"]);
}

#[test]
fn map_lowers_to_slots_of_the_extended_layout() {
    let (c, _) = compiler("stream S = Order\n    .map(total: price * qty, price: 1.0)\n");
    let p = c.program("t.vpl").expect("lowers");
    let OpSpec::Map(m) = &p.streams[0].ops[0] else {
        panic!("{:?}", p.streams[0].ops)
    };
    let names: Vec<&str> = p.schemas[m.schema as usize]
        .fields
        .iter()
        .map(|f| &*f.name)
        .collect();
    assert_eq!(names, ["id", "price", "qty", "total"]);
    let slots: Vec<u16> = m.items.iter().map(|(s, _)| *s).collect();
    assert_eq!(slots, [3, 1]);
}

#[test]
fn editor_knows_map() {
    let (c, text) = compiler("stream S = Order\n    .map(total: price)\n");
    let at = |s: &str| text.find(s).expect("in text") as u32;
    let h = hover(&c, "t.vpl", at("map") + 1).expect("hover");
    assert!(h.markdown.contains("add or replace"), "{}", h.markdown);
    assert!(signature_help(&c, "t.vpl", at("price)")).is_some());
    let items = completions(&c, "t.vpl", at(".map") + 1).items;
    assert!(items.iter().any(|i| i.label == "map"));
}
