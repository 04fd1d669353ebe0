//! `.score` in the REPL: its plan as written, its `:why` line, and engines
//! that run it (the session reads model files like `varpulis run` does:
//! paths are relative to the directory the REPL started in).

use std::sync::Arc;
use varpulis_program::{Event, Instr, Program, ScoreSpec, Value};
use varpulis_vm::{model, Engine};

/// `.score(model: "m.onnx", inputs: [a, b], outputs: [y])`.
pub fn format(s: &ScoreSpec) -> String {
    let names = |v: Vec<&str>| v.join(", ");
    format!(
        ".score(model: {:?}, inputs: [{}], outputs: [{}])",
        &*s.model,
        names(s.inputs.iter().map(|(n, _)| &**n).collect()),
        names(s.outputs.iter().map(|(n, _)| &**n).collect())
    )
}

/// The `:why` line of a `.score` step that took `input` events and passed
/// `output` on; `sample` is the first event it took.
pub fn why(
    text: &str,
    s: &ScoreSpec,
    input: usize,
    output: usize,
    sample: Option<&Event>,
) -> String {
    let outs: Vec<&str> = s.outputs.iter().map(|(n, _)| &**n).collect();
    if output == 0 {
        match sample.and_then(|ev| bad_input(s, ev)) {
            Some(why) => format!("✗ {text} did not score the event: {why} (R0009)"),
            None => format!(
                "✗ {text} scored nothing: an input was not a number (R0009), \
                 or the model failed (R0010)"
            ),
        }
    } else if output < input {
        format!(
            "✓ {text} set {} on {output} of {input} events; the others had no numeric input",
            outs.join(", ")
        )
    } else {
        format!("✓ {text} set {}", outs.join(", "))
    }
}

/// The first input of `s` that `ev` has no number for, when the input is a
/// plain field read: "input `b` is missing".
fn bad_input(s: &ScoreSpec, ev: &Event) -> Option<String> {
    for (name, chunk) in &s.inputs {
        let slot = match chunk.code.as_slice() {
            [Instr::LoadField(slot)] | [Instr::LoadField(slot), Instr::Return] => *slot,
            _ => continue,
        };
        match ev.get(slot) {
            None => return Some(format!("input `{name}` is missing")),
            Some(Value::Int(_) | Value::Float(_)) => {}
            Some(v) => return Some(format!("input `{name}` is {}, not a number", v.type_name())),
        }
    }
    None
}

/// An engine for `program` with the models its `.score` operators name.
pub fn engine(program: &Arc<Program>) -> Result<Engine, String> {
    let models =
        model::load(program, &mut |path| std::fs::read(path)).map_err(|e| e.to_string())?;
    Engine::with_models(program.clone(), crate::session::engine_config(), &models)
        .map_err(|e| e.to_string())
}
