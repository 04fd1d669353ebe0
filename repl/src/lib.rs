//! `varpulis-repl`: an interactive session for VPL.
//!
//! Type declarations (redefining one replaces it and keeps the rest), push
//! events by typing them, replay and step through `.evt` files on a virtual
//! clock, and ask the engine what it holds (`:inspect`) and why a stream did
//! or did not emit (`:why`). See `repl/README.md` for a sample session.
//!
//! - [`session`]: the [`Session`] (no terminal: input in, lines out);
//! - [`decls`]: the session's declarations as one virtual file;
//! - [`commands`]: the `:` commands;
//! - [`explain`]: `:inspect` and `:why`;
//! - [`complete`]: completion, highlighting and continuation rules;
//! - [`front`]: the rustyline editor and the piped-input reader;
//! - [`format`](mod@format): how events, times and operators are written.

pub mod commands;
pub mod complete;
pub mod decls;
pub mod explain;
mod forecast;
pub mod format;
pub mod front;
mod patterns;
pub mod score;
pub mod session;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

pub use front::LineAssembler;
pub use session::{Action, Session};

/// Options of `varpulis repl`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `.vpl` files loaded (as with `:load`) before the first prompt.
    pub files: Vec<PathBuf>,
}

/// Runs `varpulis repl`: the rustyline editor when stdin is a terminal,
/// otherwise a plain reader over stdin that prints outputs only (no
/// prompts), so `varpulis repl < session.txt` is scriptable.
pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let mut session = Session::new();
    let interactive = std::io::stdin().is_terminal();
    session.set_color(interactive && std::io::stdout().is_terminal());
    for f in &options.files {
        for line in session.handle_line(&format!(":load {}", f.display())) {
            println!("{line}");
        }
    }
    if interactive {
        front::run_interactive(session)?;
    } else {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        front::run_piped(&mut session, stdin.lock(), &mut stdout.lock())?;
    }
    Ok(ExitCode::SUCCESS)
}
