//! `:inspect` (a stream's live state) and `:why` (what each operator of a
//! stream did with the last event), built on the engine's optional
//! introspection API ([`varpulis_vm::inspect`]).
//!
//! Sequence operators list their open partial matches and, in `:why`, what
//! the event did to each of them (the `patterns` module).

use std::sync::Arc;

use varpulis_program::{Event, InputRef, OpSpec, Program, RawEvent, StateBound};
use varpulis_syntax::{lex, TokenKind};
use varpulis_vm::inspect::{StepKind, StreamState, TraceStep};
use varpulis_vm::Output;

use crate::commands::{inputs, source_name};
use crate::format;
use crate::patterns::Pattern;
use crate::session::{looks_like_event, Session};

/// How deep `:why` follows a stream's upstream streams.
const MAX_DEPTH: usize = 4;

impl Session {
    /// `:inspect STREAM`.
    pub(crate) fn inspect(&self, arg: &str) -> Vec<String> {
        if arg.is_empty() {
            return vec!["usage: :inspect STREAM".to_string()];
        }
        let p = &self.current.program;
        let Some(plan) = p.streams.iter().find(|s| &*s.name == arg) else {
            return vec![self.unknown_stream(arg)];
        };
        let Some(state) = self.engine.inspect(arg) else {
            return vec![self.unknown_stream(arg)];
        };
        let mut lines = vec![format!(
            "stream {} = {} — {}, {} open, state {} bytes, watermark {}",
            plan.name,
            source_name(p, &plan.source),
            format::plural(state.emitted, "event") + " out",
            format::plural(state.partitions as u64, "partition"),
            state.state_bytes,
            self.engine
                .watermark()
                .map_or("none yet".to_string(), format::at),
        )];
        if let Some(b) = plan.bounds.iter().find(|b| b.op == StateBound::SOURCE) {
            if let Some(n) = b.max_events {
                lines.push(format!(
                    "  join keeps at most {n} keys per input (max_events: {n})"
                ));
            }
        }
        lines.extend(self.op_lines(p, plan, &state));
        lines
    }

    fn op_lines(
        &self,
        p: &Program,
        plan: &varpulis_program::StreamPlan,
        state: &StreamState,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, spec) in plan.ops.iter().enumerate() {
            let mut text = format::op(p, &self.current.text, spec);
            if let Some(b) = plan.bounds.iter().find(|b| b.op as usize == i) {
                text = format::with_args(&text, &format::bound_args(spec, b));
            }
            let Some(op) = state.ops.iter().find(|o| o.plan_index == i) else {
                lines.push(format!("  {text}"));
                continue;
            };
            let mut head = format!("  {text}");
            if op.state_bytes > 0 {
                head.push_str(&format!("  ({} bytes)", op.state_bytes));
            }
            if let Some(t) = op.next_timer {
                head.push_str(&format!("  next timer at watermark {}", format::at(t)));
            }
            lines.push(head);
            if let (OpSpec::Sequence(seq), Some(st)) = (spec, &op.sequence) {
                let pat = Pattern {
                    p,
                    text: &self.current.text,
                    spec: seq,
                };
                lines.extend(pat.inspect_lines(st));
            }
            if matches!(spec, OpSpec::Window(_)) {
                if op.windows.is_empty() {
                    lines.push("    no open window".to_string());
                }
                for w in op.windows.iter().take(10) {
                    lines.push(format!("    {}", window_line(w)));
                }
                if let Some((tested, matched)) = op.pattern {
                    lines.push(format!(
                        "    .pattern: {} tested, {matched} matched",
                        format::plural(tested, "window")
                    ));
                }
                if op.windows.len() > 10 {
                    lines.push(format!("    … {} more windows", op.windows.len() - 10));
                }
            }
        }
        lines
    }

    fn unknown_stream(&self, name: &str) -> String {
        let names: Vec<&str> = self
            .current
            .program
            .streams
            .iter()
            .map(|s| &*s.name)
            .collect();
        let best = names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case(name) || n.starts_with(name))
            .copied()
            .next();
        match (best, names.is_empty()) {
            (_, true) => format!("error: unknown stream `{name}`: no streams are declared"),
            (Some(b), _) => format!("error: unknown stream `{name}` (did you mean `{b}`?)"),
            (None, _) => format!(
                "error: unknown stream `{name}`; streams: {}",
                names.join(", ")
            ),
        }
    }

    /// `:why STREAM [EVENT]`.
    pub(crate) fn why(&mut self, arg: &str) -> Vec<String> {
        let (stream, event) = match arg.split_once(char::is_whitespace) {
            Some((s, e)) => (s, e.trim()),
            None => (arg, ""),
        };
        if stream.is_empty() {
            return vec!["usage: :why STREAM [EVENT]".to_string()];
        }
        let Some(s) = self
            .current
            .program
            .streams
            .iter()
            .position(|p| &*p.name == stream)
        else {
            return vec![self.unknown_stream(stream)];
        };
        let (time, raw, (trace, outputs), hypothetical) = if event.is_empty() {
            let Some(last) = &self.last else {
                return vec![format!(
                    "no event to explain yet: type one, or name one: `:why {stream} Type {{ ... }}`"
                )];
            };
            (
                last.time,
                last.raw.clone(),
                (last.trace.clone(), last.outputs.clone()),
                false,
            )
        } else {
            if !looks_like_event(event) {
                return vec![format!("error: `{event}` is not an event literal")];
            }
            let (time, raw) = match self.parse_event(event) {
                Ok(e) => e,
                Err(e) => return vec![e],
            };
            match self.trial(time, &raw) {
                Ok(run) => (time, raw, run, true),
                Err(e) => return vec![e],
            }
        };
        let mut lines = vec![format!(
            "why {stream} {} {}:",
            if hypothetical {
                "would react to"
            } else {
                "after"
            },
            format::raw_event(time, &raw)
        )];
        let run = Run {
            raw: &raw,
            trace: &trace,
            outputs: &outputs,
        };
        self.explain_stream(s, &run, 1, &mut lines);
        if hypothetical {
            lines.push("(a trial run: the session's state is unchanged)".to_string());
        }
        lines
    }

    /// Pushes an event with the trace on and rolls the engine back.
    fn trial(
        &mut self,
        time: i64,
        raw: &RawEvent,
    ) -> Result<(Vec<TraceStep>, Vec<Output>), String> {
        let mut warnings = Vec::new();
        let ev = self
            .decoder
            .decode(raw, time, &mut warnings)
            .map_err(|e| format!("error: {e}"))?;
        let saved = self
            .engine
            .snapshot()
            .map_err(|e| format!("error: cannot snapshot the engine: {e}"))?;
        self.engine.set_trace(true);
        let mut sink = Vec::new();
        self.engine.push_into(ev, &mut sink);
        let trace = self.engine.take_trace();
        self.engine.set_trace(false);
        self.engine
            .restore(&saved)
            .map_err(|e| format!("error: cannot restore the engine: {e}"))?;
        self.engine.take_side_outputs();
        self.engine.take_errors();
        Ok((trace, sink))
    }

    fn explain_stream(&self, s: usize, run: &Run<'_>, depth: usize, lines: &mut Vec<String>) {
        let (raw, trace) = (run.raw, run.trace);
        let p = &self.current.program;
        let Some(plan) = p.streams.get(s) else { return };
        let pad = "  ".repeat(depth);
        let steps: Vec<&TraceStep> = trace.iter().filter(|t| t.stream == s).collect();
        if steps.is_empty() {
            lines.push(format!(
                "{pad}{} did not receive anything: it reads {}",
                plan.name,
                source_name(p, &plan.source)
            ));
            if depth > MAX_DEPTH {
                return;
            }
            for input in inputs(&plan.source) {
                match input {
                    InputRef::Event(id) => {
                        let name = p.schemas.get(id as usize).map_or("?", |s| &*s.name);
                        if name != raw.event_type {
                            lines.push(format!(
                                "{pad}  the event is a `{}`, not a `{name}`",
                                raw.event_type
                            ));
                        }
                    }
                    InputRef::Stream(up) => {
                        let up_name = p.streams.get(up as usize).map_or("?", |s| &*s.name);
                        lines.push(format!("{pad}  upstream {up_name}:"));
                        self.explain_stream(up as usize, run, depth + 2, lines);
                    }
                }
            }
            return;
        }
        let state = self.engine.inspect(&plan.name);
        let mut last_sample: Option<Arc<Event>> = None;
        for step in steps {
            let spec = step.plan_index.and_then(|i| plan.ops.get(i));
            let mut text = spec.map_or_else(String::new, |o| format::op(p, &self.current.text, o));
            // The group operators run inside the window's release.
            let fused = step
                .plan_index
                .map_or(&[][..], |i| format::fused_group_ops(&plan.ops, i));
            for g in fused {
                text.push_str(&format::op(p, &self.current.text, g));
            }
            match &step.kind {
                StepKind::Op {
                    input,
                    output,
                    sample,
                } => {
                    last_sample.clone_from(sample);
                    // A `.pattern` runs inside the window before it.
                    let pattern = step.plan_index.and_then(|i| match plan.ops.get(i + 1) {
                        Some(OpSpec::Pattern(t)) => Some(&t.name),
                        _ => None,
                    });
                    let line = match spec {
                        Some(OpSpec::Window(_)) if pattern.is_some() && *output == 0 => {
                            let name = pattern.map_or("", |n| &**n);
                            let mut l = format!(
                                "… {text} buffered the event, or closed a window whose events \
                                 did not match `.pattern({name}: ...)`"
                            );
                            if let Some(w) = open_windows(&state, step.plan_index) {
                                l.push_str(&format!(": {w}"));
                            }
                            l
                        }
                        Some(OpSpec::Window(_)) if pattern.is_some() => format!(
                            "✓ {text} closed a window whose events matched `.pattern({}: ...)`",
                            pattern.map_or("", |n| &**n)
                        ),
                        Some(OpSpec::Filter(c) | OpSpec::Having(c)) if *output == 0 => {
                            let expr = format::chunk_text(p, &self.current.text, c).unwrap_or("");
                            let vals = sample
                                .as_ref()
                                .map(|ev| operand_values(p, expr, ev))
                                .unwrap_or_default();
                            if vals.is_empty() {
                                format!("✗ {text} was false")
                            } else {
                                format!("✗ {text} was false: {vals}")
                            }
                        }
                        Some(OpSpec::Filter(_) | OpSpec::Having(_)) => format!("✓ {text} was true"),
                        Some(OpSpec::Window(_)) if *output == 0 && !fused.is_empty() => {
                            match open_windows(&state, step.plan_index) {
                                Some(w) => format!(
                                    "… {text} passed nothing on: the event is buffered, or a \
                                     closed window's group did not pass ({w})"
                                ),
                                None => {
                                    format!("✗ {text} closed a window, but its group did not pass")
                                }
                            }
                        }
                        Some(OpSpec::Window(_)) if *output == 0 => {
                            let mut l = format!("… {text} buffered the event");
                            if let Some(w) = open_windows(&state, step.plan_index) {
                                l.push_str(&format!(": {w}"));
                            }
                            l
                        }
                        Some(OpSpec::Window(_)) => format!(
                            "✓ {text} closed a window and released {}",
                            format::plural(*output as u64, "event")
                        ),
                        Some(OpSpec::Distinct { .. }) if *output == 0 => {
                            format!("✗ {text} dropped a value already seen")
                        }
                        Some(OpSpec::Score(s)) => {
                            crate::score::why(&text, s, *input, *output, sample.as_deref())
                        }
                        Some(OpSpec::Limit(_)) if *output == 0 => {
                            format!("✗ {text}: the limit was already reached")
                        }
                        Some(OpSpec::Sequence(s)) if s.forecast.is_some() => {
                            if *output == 0 {
                                format!("… {text} made no forecast")
                            } else {
                                format!("✓ {text} made a forecast")
                            }
                        }
                        // The REPL never opens connections: every lookup
                        // fails, so say what the fields hold.
                        Some(OpSpec::Enrich(e)) => format!(
                            "✓ {text}: not looked up in the REPL (enrich_status \"error\", {})",
                            match &e.fallback {
                                Some(v) => format!("fields = fallback {}", v.to_json()),
                                None => "fields absent: no fallback".to_string(),
                            }
                        ),
                        Some(OpSpec::Sequence(_)) if *output == 0 => {
                            format!("… {text} completed no match")
                        }
                        Some(OpSpec::Sequence(_)) => format!(
                            "✓ {text} completed {}",
                            format::plural(*output as u64, "match").replace("matchs", "matches")
                        ),
                        _ if *output == 0 => format!("✗ {text} passed nothing on"),
                        _ if input == output => format!("✓ {text}"),
                        _ => format!("✓ {text} ({input} in, {output} out)"),
                    };
                    lines.push(format!("{pad}{line}"));
                }
                StepKind::Sequence(e) => {
                    let Some(OpSpec::Sequence(seq)) = spec else {
                        continue;
                    };
                    let pat = Pattern {
                        p,
                        text: &self.current.text,
                        spec: seq,
                    };
                    for l in pat.why_lines(e, last_sample.as_ref()) {
                        lines.push(format!("{pad}  {l}"));
                    }
                }
                StepKind::Timer { watermark, output } => lines.push(format!(
                    "{pad}⏱ {text} fired at watermark {} and released {}",
                    format::at(*watermark),
                    format::plural(*output as u64, "event")
                )),
                StepKind::Left { count } => {
                    let what = if plan.visible {
                        "emitted"
                    } else {
                        "passed downstream (no .emit: not a visible output)"
                    };
                    lines.push(format!(
                        "{pad}→ {what} {}",
                        format::plural(*count as u64, "event")
                    ));
                    for o in run.outputs.iter().filter(|o| o.stream == plan.name).take(5) {
                        lines.push(format!("{pad}  {}", format::output(o)));
                    }
                }
            }
        }
        let emitted = trace
            .iter()
            .any(|t| t.stream == s && matches!(t.kind, StepKind::Left { .. }));
        if !emitted {
            lines.push(format!("{pad}→ no output from {}", plan.name));
        }
    }
}

/// One explained push: the event, its trace and the visible outputs.
struct Run<'a> {
    raw: &'a RawEvent,
    trace: &'a [TraceStep],
    outputs: &'a [Output],
}

/// `key "a": 3 events in [@0s, @1m), closes at @1m`.
fn window_line(w: &varpulis_vm::inspect::WindowState) -> String {
    let key = w
        .key
        .as_ref()
        .map_or_else(String::new, |k| format!("key {}: ", format::value(k)));
    let span = match (w.start, w.end) {
        (Some(s), Some(e)) => format!(
            " in [{}, {}), closes at {}",
            format::at(s),
            format::at(e),
            format::at(e)
        ),
        (None, Some(e)) => format!(", closes at {}", format::at(e)),
        _ => String::new(),
    };
    format!("{key}{}{span}", format::plural(w.events, "event"))
}

/// A summary of the open windows of the operator at `plan_index`.
fn open_windows(state: &Option<StreamState>, plan_index: Option<usize>) -> Option<String> {
    let op = state
        .as_ref()?
        .ops
        .iter()
        .find(|o| Some(o.plan_index) == plan_index)?;
    match op.windows.as_slice() {
        [] => None,
        [w] => Some(window_line(w)),
        many => Some(format!(
            "{} open windows, e.g. {}",
            many.len(),
            window_line(&many[0])
        )),
    }
}

/// `temp = 25.0, sensor = "a"`: the fields of `ev` named in `expr`.
pub(crate) fn operand_values(p: &Program, expr: &str, ev: &Arc<Event>) -> String {
    let Some(schema) = p.schemas.get(ev.type_id as usize) else {
        return String::new();
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut parts = Vec::new();
    for t in lex(expr) {
        if t.kind != TokenKind::Ident {
            continue;
        }
        let Some(word) = expr.get(t.span.range()) else {
            continue;
        };
        if seen.contains(&word) {
            continue;
        }
        let value = match schema.slot(word) {
            Some(slot) => ev.get(slot).map(format::value),
            None => ev.get_extra(word).map(format::value),
        };
        let Some(value) = value else {
            if schema.slot(word).is_some() {
                parts.push(format!("{word} is absent"));
                seen.push(word);
            }
            continue;
        };
        seen.push(word);
        parts.push(format!("{word} = {value}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_program::{EventSchema, SchemaOrigin, Value};

    #[test]
    fn operand_values_name_the_fields_of_the_expression() {
        let p = Program {
            schemas: vec![EventSchema::with_fields(
                "R",
                SchemaOrigin::Declared,
                &["sensor", "temp"],
            )],
            ..Program::default()
        };
        let ev = Arc::new(Event::new(
            0,
            0,
            vec![Some(Value::str("a")), Some(Value::Float(25.0))],
        ));
        assert_eq!(
            operand_values(&p, "temp > 30.0 and temp < 99.0", &ev),
            "temp = 25.0"
        );
        assert_eq!(operand_values(&p, "sensor == \"b\"", &ev), "sensor = \"a\"");
    }
}
