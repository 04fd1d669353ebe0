//! VPL text of any shape: the parser, the formatter, the checker (every diagnostic rendered
//! for the terminal and as JSON) and, for programs that check clean, the lowering and the
//! engine loading the program. None of them may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_compiler::{render, Compiler};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parse = varpulis_syntax::parse(text);
    if parse.errors.is_empty() {
        // The formatter checks its own output parses to the same trees; an `Unstable`
        // answer is a formatter bug, so it fails the run like a panic would.
        if let Err(varpulis_syntax::format::FormatError::Unstable(why)) =
            varpulis_syntax::format::format(text)
        {
            panic!("the formatter changed the program's meaning: {why}");
        }
    }
    let mut compiler = Compiler::new();
    compiler.set_file("fuzz.vpl", text);
    let diags = compiler.check("fuzz.vpl");
    let _ = render::terminal::render("fuzz.vpl", text, &diags, false);
    let _ = render::json::render("fuzz.vpl", text, &diags);
    if let Ok(program) = compiler.program("fuzz.vpl") {
        let _ = varpulis_vm::Engine::new(std::sync::Arc::new(program));
    }
});
