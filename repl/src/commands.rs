//! The `:` commands: loading rules, replaying and stepping through event
//! files, moving the clock, listing, resetting and diffing.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use varpulis_program::evt::EvtReader;
use varpulis_program::{DecodeError, InputRef, Program, RawEvent, SourceSpec};
use varpulis_vm::Output;

use crate::format;
use crate::session::{Action, Session};

/// Every command with its one-line help, in `:help` order.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "load",
        "FILE",
        "add or replace the declarations of a .vpl file",
    ),
    (
        "replay",
        "FILE",
        "push every event of a .evt file; outputs grouped per stream",
    ),
    (
        "step",
        "[FILE]",
        "start stepping through a .evt file, or push its next event",
    ),
    (
        "advance",
        "DURATION",
        "move the clock (and watermark) forward, firing timers: `:advance 5m`",
    ),
    (
        "inspect",
        "STREAM",
        "open windows, partitions and state size of a stream",
    ),
    (
        "why",
        "STREAM [EVENT]",
        "explain why the stream did or did not emit for the last (or given) event",
    ),
    (
        "diff",
        "[FILE]",
        "replay the recorded (or a file's) events through the previous and current rules",
    ),
    ("streams", "", "list event types and streams"),
    ("source", "", "print the session's declarations"),
    ("drop", "NAME", "remove a declaration"),
    (
        "reset",
        "[all]",
        "forget recorded events and state (`all`: declarations too)",
    ),
    ("help", "", "this list"),
    ("quit", "", "leave (also :q, :exit, Ctrl-D)"),
];

/// Events read from a file: `(line, time, event)`.
pub type FileEvents = Vec<(usize, i64, RawEvent)>;

/// A file being stepped through with `:step`.
pub struct Stepper {
    path: String,
    events: FileEvents,
    next: usize,
}

/// Reads the events of a `.evt` (or JSON lines) file: `(line, time, event)`
/// plus messages for bad lines. Times follow `varpulis run`: the `@` offset
/// (or `BATCH` clock) from the epoch, or the JSON `timestamp`.
pub(crate) fn read_events(
    path: &Path,
    mut progress: Option<&mut crate::session::Progress>,
) -> Result<(FileEvents, Vec<String>), String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("error: cannot read `{}`: {e}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = std::io::BufReader::new(file);
    let mut evt = EvtReader::new();
    let mut events = Vec::new();
    let mut problems = Vec::new();
    let mut buf = String::new();
    let mut bytes = 0u64;
    let mut line_no = 0usize;
    loop {
        buf.clear();
        match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) => {
                problems.push(format!("{}: cannot read: {e}", path.display()));
                break;
            }
        }
        line_no += 1;
        match evt.parse_line(&buf) {
            Ok(Some(rec)) => events.push((rec.line, rec.event_time(0), rec.event)),
            Ok(None) => {}
            Err(e) => problems.push(format!("{}:{}: {}", path.display(), e.line, e.kind)),
        }
        if line_no.is_multiple_of(8192) {
            if let Some(p) = progress.as_mut() {
                p(bytes, total);
            }
        }
    }
    if let Some(p) = progress.as_mut() {
        p(total, total);
    }
    Ok((events, problems))
}

impl Session {
    /// Runs a command (the text after `:`).
    pub(crate) fn command(&mut self, cmd: &str) -> Vec<String> {
        let cmd = cmd.trim();
        let (name, arg) = match cmd.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (cmd, ""),
        };
        match name {
            "help" | "h" | "?" => help(),
            "quit" | "q" | "exit" => {
                self.quit = true;
                Vec::new()
            }
            "load" | "l" => self.load(arg),
            "replay" | "r" => self.replay(arg),
            "step" | "s" => self.step(arg),
            "advance" | "a" => self.advance(arg),
            "inspect" | "i" => self.inspect(arg),
            "why" | "w" => self.why(arg),
            "diff" | "d" => self.diff(arg),
            "streams" => self.streams(),
            "source" => vec![self.current.text.trim_end().to_string()],
            "drop" => self.drop_decl(arg),
            "reset" => self.reset(arg),
            _ => {
                let names: Vec<&str> = COMMANDS.iter().map(|c| c.0).collect();
                let hint = names
                    .iter()
                    .find(|n| n.starts_with(name) && !name.is_empty())
                    .map(|n| format!(" (did you mean `:{n}`?)"))
                    .unwrap_or_default();
                vec![format!(
                    "error: unknown command `:{name}`{hint}; `:help` lists them"
                )]
            }
        }
    }

    fn load(&mut self, arg: &str) -> Vec<String> {
        if arg.is_empty() {
            return vec!["usage: :load FILE".to_string()];
        }
        match std::fs::read_to_string(arg) {
            Ok(text) => {
                let mut out = self.define(&text);
                if out.is_empty() {
                    out.push(format!("`{arg}` holds no declarations"));
                }
                out
            }
            Err(e) => vec![format!("error: cannot read `{arg}`: {e}")],
        }
    }

    fn replay(&mut self, arg: &str) -> Vec<String> {
        if arg.is_empty() {
            return vec!["usage: :replay FILE".to_string()];
        }
        let mut progress = self.progress.take();
        let read = read_events(Path::new(arg), progress.as_mut());
        self.progress = progress;
        let (events, problems) = match read {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        let mut lines = Vec::new();
        let mut outputs = Vec::new();
        let mut unknown: BTreeMap<String, u64> = BTreeMap::new();
        let mut pushed = 0u64;
        for (_, time, raw) in events {
            let mut warnings = Vec::new();
            match self.decoder.decode(&raw, time, &mut warnings) {
                Ok(ev) => {
                    self.engine.push_into(ev, &mut outputs);
                    pushed += 1;
                }
                Err(DecodeError::UnknownType(t)) => *unknown.entry(t).or_default() += 1,
            }
            self.clock = self.clock.max(time);
            self.log.push(Action::Event { time, raw });
        }
        self.last = None;
        lines.push(format!(
            "replayed {} from {arg} (clock {}): {}",
            format::plural(pushed, "event"),
            format::at(self.clock),
            format::plural(outputs.len() as u64, "output"),
        ));
        lines.extend(grouped(&outputs, 10));
        for (t, n) in unknown {
            lines.push(format!(
                "warning: {} of unknown type `{t}` skipped",
                format::plural(n, "event")
            ));
        }
        let side = self.side_lines();
        let shown = side.len().min(20);
        lines.extend(side.iter().take(shown).cloned());
        if side.len() > shown {
            lines.push(format!("… {} more print/log lines", side.len() - shown));
        }
        for p in problems.iter().take(10) {
            lines.push(format!("warning: {p} (skipped)"));
        }
        if problems.len() > 10 {
            lines.push(format!("… {} more bad lines", problems.len() - 10));
        }
        lines
    }

    fn step(&mut self, arg: &str) -> Vec<String> {
        if !arg.is_empty() {
            let (events, problems) = match read_events(Path::new(arg), None) {
                Ok(r) => r,
                Err(e) => return vec![e],
            };
            let mut lines: Vec<String> = problems
                .iter()
                .map(|p| format!("warning: {p} (skipped)"))
                .collect();
            lines.push(format!(
                "stepping through {arg}: {}; `:step` pushes the next one",
                format::plural(events.len() as u64, "event")
            ));
            self.stepper = Some(Stepper {
                path: arg.to_string(),
                events,
                next: 0,
            });
            lines.extend(self.step_next());
            return lines;
        }
        self.step_next()
    }

    fn step_next(&mut self) -> Vec<String> {
        let Some(st) = self.stepper.as_mut() else {
            return vec!["nothing to step through: `:step FILE` starts a file".to_string()];
        };
        let total = st.events.len();
        let Some((line, time, raw)) = st.events.get(st.next).cloned() else {
            let path = st.path.clone();
            self.stepper = None;
            return vec![format!("end of {path}")];
        };
        st.next += 1;
        let header = format!(
            "[{}/{total}] line {line}: {}",
            st.next,
            format::raw_event(time, &raw)
        );
        let mut lines = vec![header];
        match self.push_traced(time, raw) {
            Ok(l) => lines.extend(l),
            Err(e) => lines.push(e),
        }
        lines
    }

    fn advance(&mut self, arg: &str) -> Vec<String> {
        let Some(d) = format::parse_duration(arg) else {
            return vec![format!(
                "usage: :advance DURATION (e.g. `:advance 5m`, `:advance 30s`), got `{arg}`"
            )];
        };
        let to = self.clock.saturating_add(d);
        self.clock = to;
        let outputs = self.engine.advance_watermark(to);
        self.log.push(Action::Advance { to });
        let mut lines = vec![format!("clock {}", format::at(to))];
        if !outputs.is_empty() {
            lines.extend(self.render_outputs(&outputs));
        }
        lines.extend(self.side_lines());
        lines
    }

    fn reset(&mut self, arg: &str) -> Vec<String> {
        let all = match arg {
            "" => false,
            "all" => true,
            other => return vec![format!("usage: :reset [all], got `{other}`")],
        };
        self.log.clear();
        self.clock = 0;
        self.last = None;
        self.stepper = None;
        if all {
            match self.apply(Default::default()) {
                Ok(_) => {
                    self.previous = None;
                    vec!["reset: declarations, events and state cleared".to_string()]
                }
                Err(e) => e,
            }
        } else {
            match crate::score::engine(&self.current.program) {
                Ok(e) => {
                    self.engine = e;
                    vec!["reset: events and state cleared, declarations kept".to_string()]
                }
                Err(e) => vec![format!("error: {e}")],
            }
        }
    }

    fn drop_decl(&mut self, arg: &str) -> Vec<String> {
        if arg.is_empty() {
            return vec!["usage: :drop NAME".to_string()];
        }
        let Some(next) = self.decls.without(arg) else {
            return vec![format!("error: no declaration named `{arg}`")];
        };
        match self.apply(next) {
            Ok(mut lines) => {
                lines.insert(0, format!("dropped {arg}"));
                lines
            }
            Err(e) => e,
        }
    }

    fn streams(&self) -> Vec<String> {
        let p = &self.current.program;
        let mut lines = Vec::new();
        let events: Vec<String> = p
            .schemas
            .iter()
            .filter(|s| {
                matches!(
                    s.origin,
                    varpulis_program::SchemaOrigin::Declared
                        | varpulis_program::SchemaOrigin::Undeclared
                )
            })
            .map(|s| {
                let fields: Vec<String> = s.fields.iter().map(|f| f.name.to_string()).collect();
                format!("{}({})", s.name, fields.join(", "))
            })
            .collect();
        if events.is_empty() && p.streams.is_empty() {
            return vec!["no declarations yet".to_string()];
        }
        lines.push(format!("events: {}", events.join(", ")));
        let metrics = self.engine.metrics();
        for (i, s) in p.streams.iter().enumerate() {
            let ops: Vec<String> = s
                .ops
                .iter()
                .map(|o| format::op(p, &self.current.text, o))
                .collect();
            let n = metrics.out_per_stream.get(i).copied().unwrap_or(0);
            lines.push(format!(
                "stream {} = {}{}  [{}{}]",
                s.name,
                source_name(p, &s.source),
                ops.join(""),
                if s.visible { "" } else { "internal, " },
                format::plural(n, "output"),
            ));
        }
        lines
    }

    fn diff(&mut self, arg: &str) -> Vec<String> {
        let Some(prev) = &self.previous else {
            return vec![
                "nothing to compare: no previous version (redefine a declaration first)".into(),
            ];
        };
        let actions: Vec<Action> = if arg.is_empty() {
            self.log.clone()
        } else {
            match read_events(Path::new(arg), None) {
                Ok((events, _)) => events
                    .into_iter()
                    .map(|(_, time, raw)| Action::Event { time, raw })
                    .collect(),
                Err(e) => return vec![e],
            }
        };
        let before = match run_actions(&prev.program, &actions) {
            Ok(o) => o,
            Err(e) => return vec![format!("error: previous version: {e}")],
        };
        let after = match run_actions(&self.current.program, &actions) {
            Ok(o) => o,
            Err(e) => return vec![format!("error: current version: {e}")],
        };
        let n_events = actions
            .iter()
            .filter(|a| matches!(a, Action::Event { .. }))
            .count() as u64;
        let before: Vec<String> = before.iter().map(format::output).collect();
        let after: Vec<String> = after.iter().map(format::output).collect();
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for o in &before {
            *counts.entry(o).or_default() -= 1;
        }
        for o in &after {
            *counts.entry(o).or_default() += 1;
        }
        let mut lines = Vec::new();
        let mut added = 0;
        let mut removed = 0;
        // Walk in output order so the diff reads like the two runs.
        let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
        for o in before.iter().chain(after.iter()) {
            let c = counts.get(o.as_str()).copied().unwrap_or(0);
            let done = seen.entry(o).or_default();
            if c < 0 && *done < -c {
                lines.push(format!("- {o}"));
                removed += 1;
                *done += 1;
            } else if c > 0 && *done < c {
                lines.push(format!("+ {o}"));
                added += 1;
                *done += 1;
            }
        }
        let unchanged = after.len() as i64 - added;
        lines.insert(
            0,
            format!(
                "diff over {} ({}): {} appeared, {} disappeared, {} unchanged",
                format::plural(n_events, "event"),
                if arg.is_empty() { "recorded" } else { arg },
                added,
                removed,
                unchanged
            ),
        );
        lines
    }
}

/// Runs recorded actions through a fresh engine for `program`.
pub(crate) fn run_actions(
    program: &std::sync::Arc<Program>,
    actions: &[Action],
) -> Result<Vec<Output>, String> {
    let mut engine = crate::score::engine(program)?;
    let decoder = varpulis_program::EventDecoder::new(program);
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Event { time, raw } => {
                let mut w = Vec::new();
                if let Ok(ev) = decoder.decode(raw, *time, &mut w) {
                    engine.push_into(ev, &mut out);
                }
            }
            Action::Advance { to } => out.extend(engine.advance_watermark(*to)),
        }
    }
    Ok(out)
}

/// Outputs grouped per stream (streams in order of first output), at most
/// `max` shown per stream.
pub(crate) fn grouped(outputs: &[Output], max: usize) -> Vec<String> {
    let mut order: Vec<&str> = Vec::new();
    for o in outputs {
        if !order.contains(&&*o.stream) {
            order.push(&o.stream);
        }
    }
    let mut lines = Vec::new();
    for s in order {
        let rows: Vec<&Output> = outputs.iter().filter(|o| &*o.stream == s).collect();
        lines.push(format!(
            "{s}: {}",
            format::plural(rows.len() as u64, "output")
        ));
        for o in rows.iter().take(max) {
            lines.push(format!("  {}", format::output(o)));
        }
        if rows.len() > max {
            lines.push(format!("  … {} more", rows.len() - max));
        }
    }
    lines
}

/// The source of a stream, as written.
pub(crate) fn source_name(p: &Program, s: &SourceSpec) -> String {
    let input = |i: &InputRef| match i {
        InputRef::Event(id) => p
            .schemas
            .get(*id as usize)
            .map_or("?".to_string(), |s| s.name.to_string()),
        InputRef::Stream(id) => p
            .streams
            .get(*id as usize)
            .map_or("?".to_string(), |s| s.name.to_string()),
    };
    match s {
        SourceSpec::Input(i) => input(i),
        SourceSpec::Connector { schema, .. } => input(&InputRef::Event(*schema)),
        SourceSpec::Merge { branches, .. } => {
            let b: Vec<String> = branches.iter().map(|b| input(&b.input)).collect();
            format!("merge({})", b.join(", "))
        }
        SourceSpec::Join(j) => {
            let b: Vec<String> = j.inputs.iter().map(|b| input(&b.input)).collect();
            format!("join({})", b.join(", "))
        }
        SourceSpec::Timer { period, .. } => {
            format!(
                "timer({})",
                varpulis_program::time::format_duration(*period)
            )
        }
        SourceSpec::Late(t) => format!(
            "{}.late()",
            p.streams
                .get(*t as usize)
                .map_or("?".to_string(), |s| s.name.to_string())
        ),
    }
}

/// The inputs of a stream (event types and streams), for `:why`.
pub(crate) fn inputs(s: &SourceSpec) -> Vec<InputRef> {
    match s {
        SourceSpec::Input(i) => vec![*i],
        SourceSpec::Connector { schema, .. } => vec![InputRef::Event(*schema)],
        SourceSpec::Merge { branches, .. } => branches.iter().map(|b| b.input).collect(),
        SourceSpec::Join(j) => j.inputs.iter().map(|b| b.input).collect(),
        SourceSpec::Timer { .. } => Vec::new(),
        SourceSpec::Late(t) => vec![InputRef::Stream(*t)],
    }
}

fn help() -> Vec<String> {
    let mut lines = vec![
        "Type VPL declarations (multi-line: indented blocks end with a blank line);".to_string(),
        "a declaration with an existing name replaces it. Type an event such as".to_string(),
        "`Reading { sensor: \"a\", temp: 40.0 }` or `@5s Reading { ... }` to push it.".to_string(),
        "Commands:".to_string(),
    ];
    for (name, args, what) in COMMANDS {
        let head = if args.is_empty() {
            format!(":{name}")
        } else {
            format!(":{name} {args}")
        };
        lines.push(format!("  {head:<22} {what}"));
    }
    lines
}
