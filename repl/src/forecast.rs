//! The `.forecast` lines of `:inspect` (the model's state) and `:why`
//! (what the last event taught it and whether it forecast), under the
//! sequence operator's own lines.

use std::sync::Arc;

use varpulis_vm::forecast::{ForecastNote, ForecastView};

use crate::format;

/// The label of state `s`.
fn label(states: &[Arc<str>], s: u16) -> String {
    states
        .get(usize::from(s))
        .map_or_else(|| s.to_string(), ToString::to_string)
}

/// `:inspect`: what the model has learned.
pub(crate) fn inspect_lines(v: &ForecastView) -> Vec<String> {
    let warm = if v.learned < v.warmup {
        format!(", warming up ({} of {})", v.learned, v.warmup)
    } else {
        String::new()
    };
    let mut lines = vec![format!(
        "    forecast: learned {}{warm}; {}, {}, {} known",
        format::plural(v.learned, "event"),
        format::plural(v.contexts as u64, "context"),
        format::plural(v.keys as u64, "key"),
        format::plural(v.outcomes as u64, "outcome"),
    )];
    if let Some(h) = v.hawkes {
        lines.push(format!(
            "    timing: {:.3} events/s, {:.2} triggered per event, decay {:.3}/s",
            h.rate() * 1e9,
            h.n,
            h.beta * 1e9
        ));
    }
    lines
}

/// `:why`: the state the event left, and the forecast it gave.
pub(crate) fn why_line(n: &ForecastNote, states: &[Arc<str>]) -> String {
    let state = label(states, n.state);
    match n.probability {
        None if n.learned < n.warmup => format!(
            "~ forecast: state {state}; warming up ({} of {} events), no forecast yet",
            n.learned, n.warmup
        ),
        None => {
            format!("~ forecast: state {state}; no horizon yet (one gap between events needed)")
        }
        Some(p) if p >= n.threshold => format!(
            "~ forecast: state {state}; completion probability {p:.3} ≥ {} → forecast emitted",
            n.threshold
        ),
        Some(p) => format!(
            "~ forecast: state {state}; completion probability {p:.3} < {} → no forecast",
            n.threshold
        ),
    }
}
