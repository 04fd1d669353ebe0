//! The `varpulis` command line as a library, so the corpus harness, `varpulis test`
//! and the REPL share one implementation of what the commands do.

pub mod checkpoint;
pub mod cli;
pub mod contexts;
pub mod duration;
pub mod enrich;
pub mod expect;
pub mod groups;
pub mod input;
pub mod job;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod output;
pub mod overrides;
pub mod parallel;
pub mod server;
pub mod trace;

/// Compiles a test program (file name `t.vpl`); unit tests only.
#[cfg(test)]
pub(crate) fn test_program(text: &str) -> varpulis_program::Program {
    let mut compiler = varpulis_compiler::Compiler::new();
    compiler.set_file("t.vpl", text.to_string());
    compiler
        .program("t.vpl")
        .expect("the test program compiles")
}
