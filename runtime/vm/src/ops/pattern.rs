//! `.pattern(name: events => test)` (docs/LANGUAGE.md#pattern-window-test): a boolean
//! test over each group a window releases. It is fused into the window (see
//! [`crate::windows::GroupSink::pattern`]): the window hands it the group
//! whole, the test runs once with the group's events as an array of maps, and
//! when it is `true` one event passes on: the group's last event, plus the
//! fields `pattern` (the name) and `window_events` (the group's size).
//!
//! The test is bounded by the window (the group is already in memory) and by
//! the interpreter's instruction budget; it reads no clock.

use super::{Cx, Rec};
use crate::interp::EvalCx;
use std::sync::Arc;
use varpulis_program::{Event, PatternTest, Program, Value, ValueMap};

/// The runtime form of a [`PatternTest`].
pub struct PatternRt {
    spec: PatternTest,
    /// Groups tested.
    pub tested: u64,
    /// Groups for which the test was `true`.
    pub matched: u64,
}

impl PatternRt {
    /// Wraps a spec.
    pub fn new(spec: PatternTest) -> PatternRt {
        PatternRt {
            spec,
            tested: 0,
            matched: 0,
        }
    }

    /// Tests one released group (oldest first); pushes the output event when
    /// the test is `true`. An empty group is not tested.
    pub fn release<'a>(
        &mut self,
        recs: impl ExactSizeIterator<Item = &'a Rec> + Clone,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
    ) {
        let n = recs.len();
        let Some(last) = recs.clone().last() else {
            return;
        };
        let events: Vec<Value> = recs.map(|r| event_map(cx.program, &r.ev)).collect();
        self.tested += 1;
        let ecx = EvalCx::event(&last.ev, cx.now);
        let v = cx.vm.eval_with_locals(
            cx.program,
            cx.globals,
            &self.spec.test,
            &ecx,
            vec![Value::array(events)],
        );
        if v != Some(Value::Bool(true)) {
            return;
        }
        self.matched += 1;
        let width = cx
            .program
            .schemas
            .get(self.spec.schema as usize)
            .map_or(0, |s| s.fields.len());
        // The input layout is the output's prefix; its last two slots are
        // `pattern` and `window_events`.
        let mut fields = last.ev.fields.clone();
        fields.resize(width.saturating_sub(2), None);
        fields.push(Some(Value::Str(self.spec.name.clone())));
        fields.push(Some(Value::Int(i64::try_from(n).unwrap_or(i64::MAX))));
        let ev = Event {
            type_id: self.spec.schema,
            time: last.ev.time,
            fields,
            extra: last.ev.extra.clone(),
        };
        out.push(Rec {
            ev: Arc::new(ev),
            key: last.key.clone(),
            bindings: last.bindings.clone(),
        });
    }
}

/// An event as `.pattern` sees it: a map of its present fields (declared and
/// kept undeclared ones), `event_type` and `timestamp` unless the event has
/// fields of those names.
pub fn event_map(program: &Program, ev: &Event) -> Value {
    let mut m = ValueMap::new();
    let schema = program.schemas.get(ev.type_id as usize);
    if let Some(s) = schema {
        for (def, v) in s.fields.iter().zip(&ev.fields) {
            if let Some(v) = v {
                m.insert(def.name.clone(), v.clone());
            }
        }
    }
    if let Some(extra) = &ev.extra {
        for (k, v) in extra.iter() {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(s) = schema {
        m.entry(Arc::from("event_type"))
            .or_insert_with(|| Value::Str(s.name.clone()));
    }
    m.entry(Arc::from("timestamp"))
        .or_insert(Value::Timestamp(ev.time));
    Value::map(m)
}
