//! Editor features for `.score`: hover on the operator and on its output
//! fields, completion of the operator and of fields inside `inputs: [...]`,
//! and signature help naming its parameters.

use varpulis_compiler::ide::{completions, hover, signature_help};
use varpulis_compiler::Compiler;

const SRC: &str = "event Payment:\n    account: str\n    amount: float\n    age: int\n\n\
stream Risky = Payment\n    .score(model: \"fraud.onnx\", inputs: [amount, age], outputs: [risk])\n    .where(risk > 0.9)\n";

fn compiler(text: &str) -> Compiler {
    let mut c = Compiler::new();
    c.set_file("t.vpl", text);
    c
}

fn at(text: &str, needle: &str) -> u32 {
    text.find(needle).expect("needle in text") as u32
}

#[test]
fn hover_shows_the_operator_and_the_float_output() {
    let c = compiler(SRC);
    let h = hover(&c, "t.vpl", at(SRC, "score("))
        .expect("hover")
        .markdown;
    assert!(h.contains(".score(model: _, inputs: _, outputs: _)"), "{h}");
    assert!(h.contains("ONNX"), "{h}");
    assert!(!h.contains("not supported"), "{h}");
    let h = hover(&c, "t.vpl", at(SRC, "risk >"))
        .expect("hover")
        .markdown;
    assert!(h.contains("(field) risk: float"), "{h}");
}

#[test]
fn completion_offers_score_with_a_snippet_and_fields_in_inputs() {
    let src = SRC.replace(".where(risk > 0.9)\n", ".where(risk > 0.9)\n    .sc");
    let c = compiler(&src);
    let items = completions(&c, "t.vpl", src.len() as u32).items;
    let score = items
        .iter()
        .find(|i| i.label == "score")
        .expect("score is offered");
    assert!(
        score.snippet && score.insert_text.contains("inputs: ["),
        "{score:?}"
    );

    let src = SRC.replace("inputs: [amount, age]", "inputs: [amount, ag]");
    let c = compiler(&src);
    let off = at(&src, "ag]") + 2;
    let labels: Vec<String> = completions(&c, "t.vpl", off)
        .items
        .into_iter()
        .map(|i| i.label)
        .collect();
    assert!(labels.contains(&"age".to_string()), "{labels:?}");
}

#[test]
fn signature_help_names_the_parameters() {
    let c = compiler(SRC);
    let s = signature_help(&c, "t.vpl", at(SRC, "inputs:")).expect("signature");
    assert_eq!(s.label, ".score(model: _, inputs: _, outputs: _)");
    assert_eq!(s.active, 1);
}
