//! Sequence patterns in `:inspect` and `:why`: open partial matches, and
//! what the last event did to each of them, in the user's words (aliases,
//! event types, the steps and negations as written).

use std::sync::Arc;

use varpulis_program::{Event, InputRef, Kleene, Program, SequenceSpec};
use varpulis_vm::sequence::{EventTrace, Fate, RunView, SequenceState};

use crate::explain::operand_values;
use crate::format;

/// The name of a step's or negation's input (event type or stream).
fn input_name(p: &Program, i: &InputRef) -> String {
    match i {
        InputRef::Event(id) => p.schemas.get(*id as usize).map(|s| s.name.to_string()),
        InputRef::Stream(id) => p.streams.get(*id as usize).map(|s| s.name.to_string()),
    }
    .unwrap_or_else(|| "?".to_string())
}

/// A sequence as seen by the REPL: the plan, the program and the source.
pub(crate) struct Pattern<'a> {
    pub p: &'a Program,
    pub text: &'a str,
    pub spec: &'a SequenceSpec,
}

impl Pattern<'_> {
    /// `step 3 `Transfer where amount > 10000.0 as t2``.
    fn step(&self, s: usize) -> String {
        let Some(st) = self.spec.steps.get(s) else {
            return format!("step {}", s + 1);
        };
        let mut t = input_name(self.p, &st.input);
        t.push_str(match st.kleene {
            Kleene::One => "",
            Kleene::Plus => "+",
            Kleene::Star => "*",
            Kleene::Optional => "?",
        });
        if let Some(e) = st
            .filter
            .as_ref()
            .and_then(|c| format::chunk_text(self.p, self.text, c))
        {
            t.push_str(&format!(" where {e}"));
        }
        if let Some(a) = st.alias.and_then(|a| self.spec.aliases.get(usize::from(a))) {
            t.push_str(&format!(" as {}", a.name));
        }
        format!("step {} `{t}`", s + 1)
    }

    /// `.not(Logout where user == l.user)` / `NOT Cancel`.
    fn negation(&self, n: usize) -> String {
        let Some(neg) = self.spec.negations.get(n) else {
            return format!("negation {}", n + 1);
        };
        let mut t = input_name(self.p, &neg.input);
        if let Some(e) = neg
            .filter
            .as_ref()
            .and_then(|c| format::chunk_text(self.p, self.text, c))
        {
            t.push_str(&format!(" where {e}"));
        }
        match neg.after_step {
            None => format!("`.not({t})`"),
            Some(_) => format!("`NOT {t}`"),
        }
    }

    /// The name of matcher alias `a`: a declared alias, or for the hidden
    /// alias of a step without one, that step's input.
    fn alias(&self, a: u16) -> String {
        let declared = self.spec.aliases.len();
        if let Some(d) = self.spec.aliases.get(usize::from(a)) {
            return format!("`{}`", d.name);
        }
        let hidden = usize::from(a) - declared;
        self.spec
            .steps
            .iter()
            .filter(|s| s.alias.is_none())
            .nth(hidden)
            .map_or("?".to_string(), |s| {
                format!("(unnamed) {}", input_name(self.p, &s.input))
            })
    }

    /// The alias the matcher binds at step `s`.
    fn alias_of_step(&self, s: usize) -> Option<u16> {
        let declared = u16::try_from(self.spec.aliases.len()).ok()?;
        let st = self.spec.steps.get(s)?;
        if st.alias.is_some() {
            return st.alias;
        }
        let hidden = self.spec.steps[..s]
            .iter()
            .filter(|x| x.alias.is_none())
            .count();
        declared.checked_add(u16::try_from(hidden).ok()?)
    }

    fn event(&self, ev: &Event) -> String {
        let name = self
            .p
            .schemas
            .get(ev.type_id as usize)
            .map_or("?", |s| &*s.name);
        format!("{name}{}", format::at(ev.time))
    }

    /// `key "u1", started @0s`.
    fn who(run: &RunView) -> String {
        match &run.key {
            Some(k) => format!(
                "partial match started {} (key {})",
                format::at(run.started),
                format::value(k)
            ),
            None => format!("partial match started {}", format::at(run.started)),
        }
    }

    /// `l` = Login@0s, `t` = 2 × Transfer (last Transfer@20s).
    fn bound(&self, run: &RunView) -> String {
        let parts: Vec<String> = run
            .bound
            .iter()
            .map(|b| {
                if b.count == 1 {
                    format!("{} = {}", self.alias(b.alias), self.event(&b.last))
                } else {
                    format!(
                        "{} = {} events (last {})",
                        self.alias(b.alias),
                        b.count,
                        self.event(&b.last)
                    )
                }
            })
            .collect();
        if parts.is_empty() {
            "nothing bound".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// `waiting for step 3 `...` until @5m` / `complete, still accepting`.
    fn waiting(&self, run: &RunView) -> String {
        let until = run
            .deadline
            .map_or_else(String::new, |d| format!(" until {}", format::at(d)));
        if run.waiting.is_empty() {
            return format!("complete, still taking events{until}");
        }
        let steps: Vec<String> = run.waiting.iter().map(|&s| self.step(s)).collect();
        format!("waiting for {}{until}", steps.join(" and "))
    }

    /// The `:inspect` lines of a sequence operator.
    pub(crate) fn inspect_lines(&self, st: &SequenceState) -> Vec<String> {
        let m = &st.metrics;
        let mut lines = vec![format!(
            "    {} open; so far {}, {} expired, {} killed by a negation, {} evicted",
            format::plural(st.open as u64, "partial match").replace("matchs", "matches"),
            format::plural(m.matches, "match").replace("matchs", "matches"),
            m.expired,
            m.killed,
            m.evicted + m.rejected,
        )];
        for run in &st.runs {
            lines.push(format!(
                "    {}: {}; {}",
                Self::who(run),
                self.bound(run),
                self.waiting(run)
            ));
        }
        if st.open > st.runs.len() {
            lines.push(format!("    … and {} more", st.open - st.runs.len()));
        }
        if let Some(v) = &st.forecast {
            lines.extend(crate::forecast::inspect_lines(v));
        }
        lines
    }

    /// The `:why` lines for what one event (`ev`, `None` at a watermark) did
    /// to the runs.
    pub(crate) fn why_lines(&self, e: &EventTrace, ev: Option<&Arc<Event>>) -> Vec<String> {
        let mut lines = Vec::new();
        let bound_at = |step: usize| {
            let alias = self
                .alias_of_step(step)
                .map_or("?".to_string(), |a| self.alias(a));
            let what = ev.map_or("the event".to_string(), |e| self.event(e));
            format!("{alias} bound to {what}")
        };
        for r in &e.runs {
            let who = Self::who(&r.run);
            let line = match &r.fate {
                Fate::Started {
                    step,
                    completed: true,
                } => format!(
                    "✓ new partial match opened and completed: {} → match",
                    bound_at(*step)
                ),
                Fate::Started { step, .. } => format!(
                    "+ new partial match opened{}: {}; {}",
                    r.run
                        .key
                        .as_ref()
                        .map_or_else(String::new, |k| format!(" (key {})", format::value(k))),
                    bound_at(*step),
                    self.waiting(&r.run)
                ),
                Fate::Advanced {
                    step,
                    completed: true,
                } => format!(
                    "✓ {who} completed: {} → match ({})",
                    bound_at(*step),
                    self.bound(&r.run)
                ),
                Fate::Advanced { step, .. } => format!(
                    "↪ {who} advanced: {}; {}",
                    bound_at(*step),
                    self.waiting(&r.run)
                ),
                Fate::Killed { negation } => format!(
                    "✗ {who} killed by negation {} (it had {})",
                    self.negation(*negation),
                    self.bound(&r.run)
                ),
                Fate::Expired {
                    absence_match: true,
                } => format!(
                    "✓ {who} completed at its deadline {}: no negated event came → match",
                    r.run.deadline.map_or("?".to_string(), format::at)
                ),
                Fate::Expired { .. } => format!(
                    "⏱ {who} expired at its deadline {} ({}; it was {})",
                    r.run.deadline.map_or("?".to_string(), format::at),
                    self.bound(&r.run),
                    self.waiting(&r.run)
                ),
                Fate::Ignored { false_steps } if false_steps.is_empty() => {
                    format!("· {who} ignored the event: {}", self.waiting(&r.run))
                }
                Fate::Ignored { false_steps } => {
                    format!(
                        "· {who} ignored the event: {}",
                        self.false_steps(false_steps, ev)
                    )
                }
                Fate::Discarded => format!(
                    "✗ {who} discarded: strict contiguity and the event fit no awaited step"
                ),
            };
            lines.push(line);
        }
        if !e.not_started.is_empty() {
            lines.push(format!(
                "✗ no partial match opened: {}",
                self.false_steps(&e.not_started, ev)
            ));
        }
        if let (Some(n), Some(f)) = (&e.forecast, &self.spec.forecast) {
            lines.push(crate::forecast::why_line(n, &f.states));
        }
        lines
    }

    /// `step 2 `...` was false: amount = 500.0`.
    fn false_steps(&self, steps: &[usize], ev: Option<&Arc<Event>>) -> String {
        let parts: Vec<String> = steps
            .iter()
            .map(|&s| {
                let vals = self
                    .spec
                    .steps
                    .get(s)
                    .and_then(|st| st.filter.as_ref())
                    .and_then(|c| format::chunk_text(self.p, self.text, c))
                    .zip(ev)
                    .map(|(expr, ev)| operand_values(self.p, expr, ev))
                    .unwrap_or_default();
                if vals.is_empty() {
                    format!("{} was false", self.step(s))
                } else {
                    format!("{} was false: {vals}", self.step(s))
                }
            })
            .collect();
        parts.join("; ")
    }
}
