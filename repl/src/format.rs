//! How the REPL writes events, times, durations and plan operators.
//!
//! Times are shown as offsets on the session's virtual clock (`@5s`), which
//! starts at the epoch like `varpulis run` on an `.evt` file; values are
//! written the way VPL literals are (strings quoted).

use varpulis_program::time::{format_duration, NS_PER_SEC};
use varpulis_program::{Chunk, GroupOp, OpSpec, Program, RawEvent, StateBound, Value, WindowSpec};
use varpulis_vm::Output;

/// `@5s`, `@1m30s`-style offset of an event time on the virtual clock.
pub fn at(time: i64) -> String {
    if time == i64::MAX {
        return "@end".to_string();
    }
    if time < 0 {
        return format!("@-{}", format_duration(time.saturating_neg()));
    }
    format!("@{}", format_duration(time))
}

/// A value as a VPL literal: strings quoted, the rest as displayed.
pub fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{:?}", &**s),
        other => other.to_string(),
    }
}

/// `Hot @5s { sensor: "a", temp: 40.0 }`.
pub fn output(o: &Output) -> String {
    let fields: Vec<String> = o
        .fields
        .iter()
        .map(|(k, v)| format!("{k}: {}", value(v)))
        .collect();
    format!("{} {} {{ {} }}", o.stream, at(o.time), fields.join(", "))
}

/// `@5s Reading { sensor: "a", temp: 40.0 }`.
pub fn raw_event(time: i64, raw: &RawEvent) -> String {
    let fields: Vec<String> = raw
        .fields
        .iter()
        .map(|(k, v)| format!("{k}: {}", value(v)))
        .collect();
    format!(
        "{} {} {{ {} }}",
        at(time),
        raw.event_type,
        fields.join(", ")
    )
}

/// Parses a duration such as `5m`, `30s`, `250ms`, `1h`, `2d`, `10us`, `7ns` with the
/// language's own parser (docs/LANGUAGE.md#durations); a bare number means seconds here, a
/// REPL convenience.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let ns = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()?.checked_mul(NS_PER_SEC as u64)?
    } else {
        varpulis_syntax::parse_duration(text)?
    };
    i64::try_from(ns).ok()
}

/// The source text of a chunk's expression in `text`, if the span table
/// knows it.
pub fn chunk_text<'a>(program: &Program, text: &'a str, chunk: &Chunk) -> Option<&'a str> {
    let info = program.span_table.get(chunk.span)?;
    text.get(info.start as usize..info.end as usize)
}

/// A plan operator as the user wrote it, roughly: `.where(temp > 30.0)`.
pub fn op(program: &Program, text: &str, spec: &OpSpec) -> String {
    let expr = |c: &Chunk| chunk_text(program, text, c).unwrap_or("…").to_string();
    match spec {
        OpSpec::Filter(c) => format!(".where({})", expr(c)),
        OpSpec::Having(c) => format!(".having({})", expr(c)),
        OpSpec::Select(_) => ".select(…)".to_string(),
        OpSpec::Emit(_) => ".emit(…)".to_string(),
        OpSpec::PartitionBy(c) => format!(".partition_by({})", expr(c)),
        OpSpec::Window(w) => format!(".window({})", window(w)),
        OpSpec::Aggregate(_) => ".aggregate(…)".to_string(),
        OpSpec::Distinct { key: Some(k), .. } => format!(".distinct({})", expr(k)),
        OpSpec::Distinct { key: None, .. } => ".distinct()".to_string(),
        OpSpec::Limit(n) => format!(".limit({n})"),
        OpSpec::Print(_) => ".print(…)".to_string(),
        OpSpec::Log(_) => ".log(…)".to_string(),
        OpSpec::Sink { .. } => ".to(…)".to_string(),
        OpSpec::Process(c) => format!(".process({})", expr(c)),
        OpSpec::Sequence(_) => ".sequence(…)".to_string(),
        OpSpec::Pattern(t) => format!(".pattern({}: {})", t.name, expr(&t.test)),
        OpSpec::Group(g) => group_op(g, expr),
        OpSpec::OnError(r) => {
            let name = program
                .connectors
                .get(r.connector as usize)
                .map_or("?", |c| &*c.name);
            format!(".on_error({name})")
        }
        OpSpec::Map(m) => {
            let fields = program.schemas.get(m.schema as usize);
            let items: Vec<String> = m
                .items
                .iter()
                .map(|(slot, c)| {
                    let name = fields
                        .and_then(|s| s.fields.get(usize::from(*slot)))
                        .map_or("?", |f| &*f.name);
                    format!("{name}: {}", expr(c))
                })
                .collect();
            format!(".map({})", items.join(", "))
        }
        OpSpec::Enrich(e) => {
            let conn = program
                .connectors
                .get(e.connector as usize)
                .map_or("…", |c| &*c.name);
            format!(
                ".enrich({conn}, key: {}, fields: [{}])",
                expr(&e.key),
                e.fields.iter().map(|f| &**f).collect::<Vec<_>>().join(", ")
            )
        }
        OpSpec::Score(s) => crate::score::format(s),
    }
}

/// The group operators right after the window at `ops[window]`, which the
/// engine runs inside that window (docs/LANGUAGE.md#window-group-operators).
pub fn fused_group_ops(ops: &[OpSpec], window: usize) -> &[OpSpec] {
    if !matches!(ops.get(window), Some(OpSpec::Window(_))) {
        return &[];
    }
    let rest = ops.get(window + 1..).unwrap_or(&[]);
    let n = rest
        .iter()
        .take_while(|o| matches!(o, OpSpec::Group(_)))
        .count();
    &rest[..n]
}

/// A window group operator: `.order_by(price, desc(volume))`, `.any(…)`.
fn group_op(g: &GroupOp, expr: impl Fn(&Chunk) -> String) -> String {
    match g {
        GroupOp::OrderBy(keys) => {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| {
                    if k.descending {
                        format!("desc({})", expr(&k.key))
                    } else {
                        expr(&k.key)
                    }
                })
                .collect();
            format!(".order_by({})", keys.join(", "))
        }
        GroupOp::Collect(c) => format!(".collect(as: {})", c.field),
        GroupOp::Any(c) => format!(".any({})", expr(c)),
        GroupOp::All(c) => format!(".all({})", expr(c)),
    }
}

/// The arguments a state bound was written with (`max_keys: 1000, evict: lru`), for the
/// operator `spec` it bounds (`.distinct` spells its key bound `max:`).
pub fn bound_args(spec: &OpSpec, b: &StateBound) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(n) = b.max_keys {
        let name = if matches!(spec, OpSpec::Distinct { .. }) {
            "max"
        } else {
            "max_keys"
        };
        args.push(format!("{name}: {n}"));
        args.push(format!("evict: {}", b.evict.name()));
    }
    if let Some(d) = b.idle {
        args.push(format!("idle: {}", format_duration(d)));
    }
    if let Some(n) = b.max_events {
        args.push(format!("max_events: {n}"));
    }
    args
}

/// `op` (`.name(args)`) with `extra` arguments added at the end.
pub fn with_args(op: &str, extra: &[String]) -> String {
    if extra.is_empty() {
        return op.to_string();
    }
    let Some(inner) = op.strip_suffix(')') else {
        return op.to_string();
    };
    let sep = if inner.ends_with('(') { "" } else { ", " };
    format!("{inner}{sep}{})", extra.join(", "))
}

/// The arguments of a `.window(...)`.
pub fn window(w: &WindowSpec) -> String {
    match *w {
        WindowSpec::Tumbling { size } => format_duration(size),
        WindowSpec::Sliding { size, slide } => {
            format!(
                "{}, sliding: {}",
                format_duration(size),
                format_duration(slide)
            )
        }
        WindowSpec::Count { size } => size.to_string(),
        WindowSpec::SlidingCount { size, slide } => format!("{size}, sliding: {slide}"),
        WindowSpec::Session { gap } => format!("session: {}", format_duration(gap)),
    }
}

/// `1 event` / `2 events`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_program::time::{NS_PER_MIN, NS_PER_MS};

    #[test]
    fn durations_parse_with_units_and_bare_seconds() {
        assert_eq!(parse_duration("5m"), Some(5 * NS_PER_MIN));
        assert_eq!(parse_duration("250ms"), Some(250 * NS_PER_MS));
        assert_eq!(parse_duration("3"), Some(3 * NS_PER_SEC));
        assert_eq!(parse_duration("5 min"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn times_are_offsets_on_the_virtual_clock() {
        assert_eq!(at(0), "@0s");
        assert_eq!(at(90 * NS_PER_SEC), "@90s");
        assert_eq!(at(i64::MAX), "@end");
    }
}
