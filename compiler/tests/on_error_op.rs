//! `.on_error(Conn)` (docs/LANGUAGE.md#on_error) through the compiler's host
//! API: the lowered route and the editor features.

use varpulis_compiler::ide::{completions, hover};
use varpulis_compiler::Compiler;
use varpulis_program::{ConfigValue, OpSpec};

const SRC: &str = "connector Errors = file (path: \"e.jsonl\")\n\nevent R:\n    x: int\n\nstream S = R\n    .emit(y: 10 / x)\n    .on_error(Errors, topic: \"errs\")\n";

#[test]
fn on_error_lowers_to_a_route_to_its_connector() {
    let mut c = Compiler::new();
    c.set_file("t.vpl", SRC);
    let p = c.program("t.vpl").expect("lowers");
    let route = p.streams[0]
        .ops
        .iter()
        .find_map(|o| match o {
            OpSpec::OnError(r) => Some(r),
            _ => None,
        })
        .expect("an OnError op");
    assert_eq!(&*p.connectors[route.connector as usize].name, "Errors");
    assert_eq!(
        route.params,
        [("topic".into(), ConfigValue::Str("errs".into()))]
    );
}

#[test]
fn editor_knows_on_error() {
    let mut c = Compiler::new();
    c.set_file("t.vpl", SRC);
    let at = SRC.find("on_error").expect("in text") as u32;
    let h = hover(&c, "t.vpl", at + 1).expect("hover");
    assert!(h.markdown.contains("runtime errors"), "{}", h.markdown);
    assert!(completions(&c, "t.vpl", at)
        .items
        .iter()
        .any(|i| i.label == "on_error"));
}
