//! Operators on one released window group (docs/LANGUAGE.md#window-group-operators):
//! `.order_by`, `.collect`, `.any`, `.all` ([`varpulis_program::GroupOp`]).
//!
//! A window hands each group it releases to its [`super::GroupSink`], which
//! runs these operators in order on the group's records before the group
//! goes downstream (or into a fused `.aggregate`). They see the whole group
//! at once, so they need no state of their own: nothing here is saved in
//! snapshots, and every result depends only on the group.

use crate::interp::arith::total_cmp;
use crate::ops::{Cx, PartKey, Rec};
use std::cmp::Ordering;
use std::sync::Arc;
use varpulis_program::{CollectSpec, Event, GroupOp, SortKey, Value, ValueKey, ValueMap};

/// Runs `ops` in order on one group. `end` stamps a collected event (the
/// window's end; `None` = the time of the group's last event).
pub fn run(
    ops: &[GroupOp],
    mut group: Vec<Rec>,
    key: &PartKey,
    end: Option<i64>,
    cx: &mut Cx<'_>,
) -> Vec<Rec> {
    for op in ops {
        if group.is_empty() {
            break;
        }
        group = match op {
            GroupOp::OrderBy(keys) => order_by(keys, group, cx),
            GroupOp::Collect(spec) => collect(spec, group, key, end, cx),
            GroupOp::Any(cond) => {
                let hit = group.iter().any(|r| cx.test_rec(cond, r));
                last_if(hit, group)
            }
            GroupOp::All(cond) => {
                let hit = group.iter().all(|r| cx.test_rec(cond, r));
                last_if(hit, group)
            }
        };
    }
    group
}

/// The group's last record when `hit`, else nothing.
fn last_if(hit: bool, mut group: Vec<Rec>) -> Vec<Rec> {
    match (hit, group.pop()) {
        (true, Some(last)) => vec![last],
        _ => Vec::new(),
    }
}

/// A stable sort on the keys; a record without a value for a key sorts
/// after those with one, in both directions.
fn order_by(keys: &[SortKey], group: Vec<Rec>, cx: &mut Cx<'_>) -> Vec<Rec> {
    let mut rows: Vec<(Vec<Option<Value>>, Rec)> = group
        .into_iter()
        .map(|r| (keys.iter().map(|k| cx.eval_rec(&k.key, &r)).collect(), r))
        .collect();
    rows.sort_by(|(a, _), (b, _)| compare_keys(keys, a, b));
    rows.into_iter().map(|(_, r)| r).collect()
}

fn compare_keys(keys: &[SortKey], a: &[Option<Value>], b: &[Option<Value>]) -> Ordering {
    for ((k, x), y) in keys.iter().zip(a).zip(b) {
        let o = match (x, y) {
            (Some(x), Some(y)) if k.descending => total_cmp(y, x),
            (Some(x), Some(y)) => total_cmp(x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// One record holding the group's events as an array of maps (each event's
/// present fields by name), plus the partition key when the layout has a
/// slot for it.
fn collect(
    spec: &CollectSpec,
    group: Vec<Rec>,
    key: &PartKey,
    end: Option<i64>,
    cx: &mut Cx<'_>,
) -> Vec<Rec> {
    let Some(last) = group.last() else {
        return Vec::new();
    };
    let time = end.unwrap_or(last.ev.time);
    let events: Vec<Value> = group
        .iter()
        .map(|r| Value::map(event_map(cx, &r.ev)))
        .collect();
    let n_slots = cx
        .program
        .schemas
        .get(spec.schema as usize)
        .map_or(1, |s| s.fields.len())
        .max(1);
    let mut fields: Vec<Option<Value>> = vec![None; n_slots];
    if let Some(f) = fields.first_mut() {
        *f = Some(Value::array(events));
    }
    if let (Some(ValueKey(k)), Some(slot)) = (key, spec.key_slot) {
        if let Some(f) = fields.get_mut(usize::from(slot)) {
            *f = Some(k.clone());
        }
    }
    vec![Rec {
        ev: Arc::new(Event::new(spec.schema, time, fields)),
        key: key.clone(),
        bindings: None,
    }]
}

/// An event's present fields (and kept undeclared ones) by name.
fn event_map(cx: &Cx<'_>, ev: &Event) -> ValueMap {
    let named = crate::engine::output_of(cx.program, cx.stream, ev.type_id, ev);
    named.fields.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(descending: bool) -> SortKey {
        SortKey {
            key: varpulis_program::Chunk::default(),
            descending,
        }
    }

    #[test]
    fn missing_keys_sort_last_in_both_directions() {
        for desc in [false, true] {
            let k = [key(desc)];
            let some = [Some(Value::Int(1))];
            let none = [None];
            assert_eq!(compare_keys(&k, &some, &none), Ordering::Less);
            assert_eq!(compare_keys(&k, &none, &some), Ordering::Greater);
        }
    }

    #[test]
    fn later_keys_break_ties_and_descending_reverses() {
        let k = [key(false), key(true)];
        let a = [Some(Value::Int(1)), Some(Value::Float(2.0))];
        let b = [Some(Value::Float(1.0)), Some(Value::Int(3))];
        assert_eq!(compare_keys(&k, &a, &b), Ordering::Greater);
        assert_eq!(compare_keys(&k, &a, &a), Ordering::Equal);
    }
}
