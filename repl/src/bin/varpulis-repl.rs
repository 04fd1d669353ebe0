//! A standalone `varpulis-repl` binary (the same REPL as `varpulis repl`),
//! used by the pseudo-terminal test. Arguments are `.vpl` files to load.

use std::process::ExitCode;

fn main() -> ExitCode {
    let options = varpulis_repl::Options {
        files: std::env::args_os().skip(1).map(Into::into).collect(),
    };
    match varpulis_repl::run(options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
