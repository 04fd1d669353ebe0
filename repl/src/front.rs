//! Front ends: the rustyline editor for terminals and a plain line reader
//! for piped input. Both only read input and print what the [`Session`]
//! returns.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::rc::Rc;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, ConditionalEventHandler, Context, Editor, Event, EventContext, EventHandler, Helper,
    KeyCode, KeyEvent, Modifiers, RepeatCount,
};

use crate::complete::{complete, highlight, needs_more, next_indent};
use crate::session::Session;

/// Splits piped input into complete inputs: commands and events are one
/// line; a declaration goes on while the parser calls it incomplete or the
/// next line is indented (so `stream S = A` may continue with an indented
/// `.where(...)` line), and a blank line or a `:` command at column 0 ends
/// it.
#[derive(Debug, Default)]
pub struct LineAssembler {
    buf: String,
}

impl LineAssembler {
    /// An empty assembler.
    pub fn new() -> LineAssembler {
        LineAssembler::default()
    }

    /// Feeds one line (without its newline); returns the inputs it
    /// completed, in order.
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut done = Vec::new();
        // A command at column 0 ends whatever was pending, complete or not,
        // so a script cannot swallow its commands into a broken declaration.
        if line.starts_with(':') {
            done.extend(self.finish());
            done.push(line.to_string());
            return done;
        }
        if !self.buf.is_empty() {
            if line.trim().is_empty() {
                if needs_more(&format!("{}\n ", self.buf)) {
                    self.buf.push('\n');
                } else {
                    done.push(std::mem::take(&mut self.buf));
                }
                return done;
            }
            let indented = line.starts_with([' ', '\t']);
            if indented || needs_more(&self.buf) {
                self.buf.push('\n');
                self.buf.push_str(line);
                return done;
            }
            done.push(std::mem::take(&mut self.buf));
        }
        let t = line.trim_start();
        if t.is_empty() {
            return done;
        }
        if t.starts_with(':') || (crate::session::looks_like_event(t) && !needs_more(t)) {
            done.push(line.to_string());
        } else {
            self.buf.push_str(line);
        }
        done
    }

    /// End of input: the pending input, if any.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.trim().is_empty()).then_some(rest)
    }
}

/// Runs the session over piped input: no prompts, outputs only.
pub fn run_piped(
    session: &mut Session,
    input: impl BufRead,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut asm = LineAssembler::new();
    for line in input.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                writeln!(out, "error: input line is not UTF-8")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        for text in asm.push_line(&line) {
            for l in session.handle_line(&text) {
                writeln!(out, "{l}")?;
            }
            if session.quit_requested() {
                return Ok(());
            }
        }
    }
    if let Some(text) = asm.finish() {
        for l in session.handle_line(&text) {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}

/// The rustyline helper: completion, highlighting and validation over the
/// shared session.
struct ReplHelper {
    session: Rc<RefCell<Session>>,
    files: FilenameCompleter,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = line.trim_start();
        let wants_file = ["load", "l", "replay", "r", "step", "s", "diff", "d"]
            .iter()
            .any(|c| head.starts_with(&format!(":{c} ")));
        if wants_file {
            return self.files.complete_path(line, pos);
        }
        let Ok(session) = self.session.try_borrow() else {
            return Ok((pos, Vec::new()));
        };
        let (start, cands) = complete(&session, line, pos);
        Ok((
            start,
            cands
                .into_iter()
                .map(|c| Pair {
                    display: format!("{}  ({})", c.text, c.kind),
                    replacement: c.text,
                })
                .collect(),
        ))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Owned(highlight(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        true
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if needs_more(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for ReplHelper {}

/// Enter on incomplete input inserts a newline and the next line's
/// indentation (four more spaces after a block-opening `:`).
struct IndentOnEnter;

impl ConditionalEventHandler for IndentOnEnter {
    fn handle(
        &self,
        _evt: &Event,
        _n: RepeatCount,
        _positive: bool,
        ctx: &EventContext<'_>,
    ) -> Option<Cmd> {
        let line = ctx.line();
        if ctx.pos() == line.len() && needs_more(line) {
            Some(Cmd::Insert(1, format!("\n{}", next_indent(line))))
        } else {
            None
        }
    }
}

/// Where history is kept: `$XDG_STATE_HOME/varpulis/history`, else
/// `~/.varpulis_history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(state).join("varpulis").join("history"));
    }
    std::env::var_os("HOME")
        .filter(|s| !s.is_empty())
        .map(|h| PathBuf::from(h).join(".varpulis_history"))
}

/// A progress bar on stderr for replays of files over 1 MiB.
fn progress_bar() -> crate::session::Progress {
    Box::new(|done: u64, total: u64| {
        if total < 1 << 20 {
            return;
        }
        let mut err = std::io::stderr();
        if done >= total {
            let _ = write!(err, "\r\x1b[K");
        } else {
            let pct = done.saturating_mul(100) / total.max(1);
            let filled = (pct / 4) as usize;
            let _ = write!(
                err,
                "\r[{}{}] {pct:>3}% reading",
                "#".repeat(filled),
                " ".repeat(25 - filled.min(25))
            );
        }
        let _ = err.flush();
    })
}

/// Runs the interactive editor until `:quit` or end of input.
pub fn run_interactive(session: Session) -> anyhow::Result<()> {
    let session = Rc::new(RefCell::new(session));
    {
        let mut s = session.borrow_mut();
        s.set_color(std::io::stdout().is_terminal());
        s.set_progress(Some(progress_bar()));
    }
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut rl: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)?;
    rl.set_helper(Some(ReplHelper {
        session: session.clone(),
        files: FilenameCompleter::new(),
    }));
    rl.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::NONE),
        EventHandler::Conditional(Box::new(IndentOnEnter)),
    );
    let history = history_path();
    if let Some(h) = &history {
        // A missing history file is normal on first use.
        let _ = rl.load_history(h);
    }
    println!("Varpulis REPL: type declarations, events or :help (Ctrl-D quits)");
    loop {
        match rl.readline("vpl> ") {
            Ok(text) => {
                if !text.trim().is_empty() {
                    let _ = rl.add_history_entry(text.as_str());
                }
                let lines = session.borrow_mut().handle_line(&text);
                for l in lines {
                    println!("{l}");
                }
                if session.borrow().quit_requested() {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-C: input discarded; :quit or Ctrl-D leaves)");
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = rl.save_history(h) {
            eprintln!("warning: cannot save history to {}: {e}", h.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &str) -> Vec<String> {
        let mut a = LineAssembler::new();
        let mut out = Vec::new();
        for l in text.lines() {
            out.extend(a.push_line(l));
        }
        out.extend(a.finish());
        out
    }

    #[test]
    fn piped_lines_group_into_inputs() {
        let got = chunks(
            "event R:\n    x: int\n\nstream S = R\n    .where(x > 1)\nR { x: 2 }\n:streams\nstream T = R.where(\n  x > 3)\n",
        );
        assert_eq!(
            got,
            [
                "event R:\n    x: int",
                "stream S = R\n    .where(x > 1)",
                "R { x: 2 }",
                ":streams",
                "stream T = R.where(\n  x > 3)",
            ]
        );
    }
}
