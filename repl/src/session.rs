//! The REPL session: declarations, the running engine, the virtual clock and
//! the recorded events. No terminal here: [`Session::handle_line`] takes one
//! complete input and returns the lines to print, so scripted tests drive
//! it directly.
//!
//! # State and determinism
//!
//! The session records every event it pushed and every `:advance` in an
//! action log. When a declaration changes, the new file is checked
//! incrementally, lowered to a fresh [`Program`], loaded into a fresh
//! [`Engine`], and the whole log is replayed through it (outputs are not
//! shown again). Engine state after a redefinition is therefore exactly the
//! state a fresh run of the new rules over the same input would have: the
//! engine is deterministic, so there is no hidden history. `:reset` clears
//! the log.

use std::sync::Arc;

use varpulis_compiler::render::terminal;
use varpulis_compiler::{Compiler, Diagnostic};
use varpulis_program::evt::EvtReader;
use varpulis_program::{DecodeError, EventDecoder, Program, RawEvent};
use varpulis_vm::inspect::TraceStep;
use varpulis_vm::{Engine, EngineConfig, Output, SideOutput};

use crate::decls::Decls;
use crate::format;

/// Name of the virtual file holding the session's declarations (shown in
/// diagnostics).
pub const SESSION_FILE: &str = "session.vpl";

/// One recorded action, replayed after every redefinition.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// An event pushed at `time`.
    Event {
        /// Event time (ns on the virtual clock).
        time: i64,
        /// The event.
        raw: RawEvent,
    },
    /// The clock moved to `to` (`:advance`).
    Advance {
        /// The new watermark.
        to: i64,
    },
}

/// A compiled version of the declarations.
pub(crate) struct Version {
    /// The lowered program.
    pub program: Arc<Program>,
    /// The virtual file's text the program was lowered from (spans in the
    /// program's span table point into it).
    pub text: String,
}

/// The last interactively pushed event and what the engine did with it.
pub(crate) struct LastEvent {
    pub time: i64,
    pub raw: RawEvent,
    pub trace: Vec<TraceStep>,
    pub outputs: Vec<Output>,
}

/// Progress callback for long replays: `(bytes read, total bytes)`.
pub type Progress = Box<dyn FnMut(u64, u64)>;

/// An interactive session.
pub struct Session {
    pub(crate) compiler: Compiler,
    pub(crate) decls: Decls,
    pub(crate) current: Version,
    pub(crate) previous: Option<Version>,
    pub(crate) engine: Engine,
    pub(crate) decoder: EventDecoder,
    pub(crate) log: Vec<Action>,
    pub(crate) clock: i64,
    pub(crate) last: Option<LastEvent>,
    pub(crate) stepper: Option<crate::commands::Stepper>,
    pub(crate) color: bool,
    pub(crate) quit: bool,
    pub(crate) progress: Option<Progress>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// An empty session (no declarations, clock at 0).
    pub fn new() -> Session {
        let program = Arc::new(Program::default());
        let engine = Engine::with_config(program.clone(), engine_config())
            .expect("the empty program always loads");
        let mut compiler = Compiler::new();
        compiler.set_file(SESSION_FILE, String::new());
        Session {
            compiler,
            decls: Decls::default(),
            decoder: EventDecoder::new(&program),
            current: Version {
                program,
                text: String::new(),
            },
            previous: None,
            engine,
            log: Vec::new(),
            clock: 0,
            last: None,
            stepper: None,
            color: false,
            quit: false,
            progress: None,
        }
    }

    /// Renders diagnostics with colour (for terminals).
    pub fn set_color(&mut self, color: bool) {
        self.color = color;
    }

    /// Reports replay progress through `f` (interactive front end only).
    pub fn set_progress(&mut self, f: Option<Progress>) {
        self.progress = f;
    }

    /// Whether `:quit` was entered.
    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    /// The compiler holding the session's virtual file (for completion).
    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    /// The virtual file's current text.
    pub fn source(&self) -> &str {
        &self.current.text
    }

    /// The current program.
    pub fn program(&self) -> &Arc<Program> {
        &self.current.program
    }

    /// Recorded actions (events and clock moves) since the last `:reset`.
    pub fn actions(&self) -> &[Action] {
        &self.log
    }

    /// Handles one complete input (a command, an event literal, or one or
    /// more declarations, possibly over several lines) and returns the lines
    /// to print. Never panics on any input.
    pub fn handle_line(&mut self, input: &str) -> Vec<String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        if let Some(cmd) = trimmed.strip_prefix(':') {
            return self.command(cmd);
        }
        if looks_like_event(trimmed) {
            return self.event_line(trimmed);
        }
        self.define(input)
    }

    /// Adds or replaces declarations.
    pub(crate) fn define(&mut self, input: &str) -> Vec<String> {
        let (next, changes) = self.decls.merged(input);
        if changes.is_empty() {
            return Vec::new();
        }
        let mut out = match self.apply(next) {
            Ok(out) => out,
            Err(lines) => return lines,
        };
        let replayed = self.log.len();
        let mut head: Vec<String> = changes
            .iter()
            .map(|c| {
                let verb = if c.redefined { "redefined" } else { "defined" };
                format!("{verb} {}", c.what)
            })
            .collect();
        if replayed > 0 && changes.iter().any(|c| c.redefined) {
            head.push(format!(
                "state rebuilt: replayed {} recorded action{}",
                replayed,
                if replayed == 1 { "" } else { "s" }
            ));
        }
        // Warnings about the new items only (others were shown before).
        let ranges = self.decls.ranges();
        let text = self.current.text.clone();
        let warnings: Vec<Diagnostic> = self
            .compiler
            .check(SESSION_FILE)
            .into_iter()
            .filter(|d| {
                changes.iter().any(|c| {
                    ranges.get(c.index).is_some_and(|r| {
                        let s = d.primary.span.start as usize;
                        s >= r.start && s <= r.end
                    })
                })
            })
            .collect();
        if !warnings.is_empty() {
            head.push(terminal::render(SESSION_FILE, &text, &warnings, self.color));
        }
        head.append(&mut out);
        head
    }

    /// Checks, lowers and loads `next`; on success makes it current and
    /// replays the log (returns extra lines), on failure leaves everything
    /// as it was and returns the rendered errors.
    pub(crate) fn apply(&mut self, next: Decls) -> Result<Vec<String>, Vec<String>> {
        let text = next.text();
        self.compiler.set_file(SESSION_FILE, text.clone());
        let program = match self.compiler.program(SESSION_FILE) {
            Ok(p) => Arc::new(p),
            Err(errors) => {
                let all = self.compiler.check(SESSION_FILE);
                let shown = if all.is_empty() { errors } else { all };
                let rendered = terminal::render(SESSION_FILE, &text, &shown, self.color);
                self.compiler
                    .set_file(SESSION_FILE, self.current.text.clone());
                return Err(vec![
                    rendered.trim_end().to_string(),
                    "not applied: the session keeps its previous declarations".to_string(),
                ]);
            }
        };
        let mut engine = match crate::score::engine(&program) {
            Ok(e) => e,
            Err(e) => {
                self.compiler
                    .set_file(SESSION_FILE, self.current.text.clone());
                return Err(vec![
                    format!("error: the engine cannot run these declarations: {e}"),
                    "not applied: the session keeps its previous declarations".to_string(),
                ]);
            }
        };
        let decoder = EventDecoder::new(&program);
        let mut sink = Vec::new();
        let mut lines = Vec::new();
        let mut unknown = 0u64;
        for action in &self.log {
            match action {
                Action::Event { time, raw } => {
                    let mut warnings = Vec::new();
                    match decoder.decode(raw, *time, &mut warnings) {
                        Ok(ev) => engine.push_into(ev, &mut sink),
                        Err(DecodeError::UnknownType(_)) => unknown += 1,
                    }
                }
                Action::Advance { to } => sink.extend(engine.advance_watermark(*to)),
            }
            sink.clear();
        }
        engine.take_side_outputs();
        engine.take_errors();
        if unknown > 0 {
            lines.push(format!(
                "note: {} recorded event{} of types the new declarations do not use were skipped",
                unknown,
                if unknown == 1 { "" } else { "s" }
            ));
        }
        let old = std::mem::replace(&mut self.current, Version { program, text });
        self.previous = Some(old);
        self.engine = engine;
        self.decoder = decoder;
        self.decls = next;
        // The trace of the last event belongs to the old rules.
        self.last = None;
        Ok(lines)
    }

    /// An event literal typed at the prompt.
    fn event_line(&mut self, line: &str) -> Vec<String> {
        let (time, raw) = match self.parse_event(line) {
            Ok(ev) => ev,
            Err(msg) => return vec![msg],
        };
        let mut out = Vec::new();
        match self.push_traced(time, raw) {
            Ok(lines) => out.extend(lines),
            Err(msg) => out.push(msg),
        }
        out
    }

    /// Parses `[@offset] Type { ... }` at the current clock.
    pub(crate) fn parse_event(&self, line: &str) -> Result<(i64, RawEvent), String> {
        match EvtReader::new().parse_line(line) {
            Ok(Some(rec)) => {
                let time = if rec.timed || rec.event.timestamp.is_some() {
                    rec.event_time(0)
                } else {
                    self.clock
                };
                Ok((time, rec.event))
            }
            Ok(None) => Err("error: expected an event such as `Reading { temp: 40.0 }`".into()),
            Err(e) => Err(format!("error: invalid event: {}", e.kind)),
        }
    }

    /// Pushes one event with the trace on, records it, and returns what
    /// each stream emitted.
    pub(crate) fn push_traced(&mut self, time: i64, raw: RawEvent) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        let ev = match self.decoder.decode(&raw, time, &mut warnings) {
            Ok(ev) => ev,
            Err(DecodeError::UnknownType(t)) => {
                return Err(format!(
                    "error: unknown event type `{t}`: declare it (`event {t}:` with its fields) or use it as a stream source"
                ))
            }
        };
        let mut lines: Vec<String> = warnings.iter().map(|w| format!("warning: {w}")).collect();
        if self.engine.watermark().is_some_and(|w| time < w) {
            lines.push(format!(
                "note: late event: {} is before the watermark {}",
                format::at(time),
                format::at(self.engine.watermark().unwrap_or(time))
            ));
        }
        self.engine.set_trace(true);
        let mut outputs = Vec::new();
        self.engine.push_into(ev, &mut outputs);
        let trace = self.engine.take_trace();
        self.engine.set_trace(false);
        self.clock = self.clock.max(time);
        self.log.push(Action::Event {
            time,
            raw: raw.clone(),
        });
        lines.extend(self.render_outputs(&outputs));
        lines.extend(self.side_lines());
        self.last = Some(LastEvent {
            time,
            raw,
            trace,
            outputs,
        });
        Ok(lines)
    }

    /// Outputs one per line, or `(no output)`.
    pub(crate) fn render_outputs(&self, outputs: &[Output]) -> Vec<String> {
        if outputs.is_empty() {
            return vec!["(no output)".to_string()];
        }
        outputs
            .iter()
            .map(|o| format!("→ {}", format::output(o)))
            .collect()
    }

    /// Print/log lines and runtime errors since the last call.
    pub(crate) fn side_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for side in self.engine.take_side_outputs() {
            match side {
                SideOutput::Print { line, .. } | SideOutput::Log { line, .. } => lines.push(line),
                SideOutput::Sink {
                    connector, output, ..
                } => {
                    let name = self
                        .current
                        .program
                        .connectors
                        .get(connector as usize)
                        .map_or("?".to_string(), |c| c.name.to_string());
                    lines.push(format!("[to {name}] {}", format::output(&output)));
                }
            }
        }
        let spans = &self.current.program.span_table;
        for err in self.engine.take_errors() {
            lines.push(format!("warning: runtime error {}", err.render(spans)));
        }
        lines
    }
}

/// The REPL never flushes at end of input: `:advance` moves the clock.
pub(crate) fn engine_config() -> EngineConfig {
    EngineConfig {
        flush_at_end: false,
        flush_partial_count_windows: false,
        ..EngineConfig::default()
    }
}

/// Declaration keywords: input starting with one is never an event.
const DECL_WORDS: &[&str] = &[
    "stream",
    "event",
    "type",
    "let",
    "var",
    "const",
    "fn",
    "connector",
    "context",
    "config",
    "pattern",
    "import",
    "if",
    "for",
    "while",
];

/// Whether a line is an event literal: `@offset ...`, or `Name {`/`Name(`
/// where `Name` is not a declaration keyword, or a JSON object.
pub fn looks_like_event(line: &str) -> bool {
    if line.starts_with('@') || line.starts_with('{') {
        return true;
    }
    let word_end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(word_end);
    if word.is_empty() || DECL_WORDS.contains(&word) {
        return false;
    }
    let rest = rest.trim_start();
    rest.starts_with('{') || rest.starts_with('(')
}

#[cfg(test)]
mod tests {
    use super::looks_like_event;

    #[test]
    fn event_literals_are_told_from_declarations() {
        assert!(looks_like_event("Reading { temp: 1 }"));
        assert!(looks_like_event("@5s Reading { temp: 1 }"));
        assert!(looks_like_event("Reading(1, 2)"));
        assert!(!looks_like_event("stream S = Reading"));
        assert!(!looks_like_event("fn f(x: int) -> int:"));
        assert!(!looks_like_event("x := 3"));
    }
}
