//! Optional introspection for interactive hosts (the REPL's `:inspect` and
//! `:why`): a snapshot of a stream's operator state, and a trace of what
//! each operator did with the records of the last push.
//!
//! Both are off the hot path. [`Engine::inspect`] only reads state. The
//! trace is recorded only after [`Engine::set_trace`]`(true)`; when it is
//! off the engine pays one `Option` test per operator call batch.

use crate::engine::Engine;
use crate::ops::{Operator, PartKey};
use crate::sequence::{EventTrace, SequenceState};
use crate::windows::Group;
use std::sync::Arc;
use varpulis_program::{Event, Value};

/// One open window (or session) of a window operator.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowState {
    /// The partition key (`None` without `.partition_by`).
    pub key: Option<Value>,
    /// Events in the window (buffered, or folded into accumulators).
    pub events: u64,
    /// Event time the window starts at, when it has one (not count windows).
    pub start: Option<i64>,
    /// Event time at which the window closes, when it is time-based.
    pub end: Option<i64>,
}

impl WindowState {
    /// A window state for partition `key`.
    pub(crate) fn new(key: &PartKey, events: u64, start: Option<i64>, end: Option<i64>) -> Self {
        WindowState {
            key: key.as_ref().map(|k| k.0.clone()),
            events,
            start,
            end,
        }
    }
}

impl Group {
    /// Events in the group.
    pub(crate) fn events(&self) -> u64 {
        match self {
            Group::Buffer(v) => v.len() as u64,
            Group::Acc(st) => st.n,
        }
    }
}

/// The state of one runtime operator.
#[derive(Clone, Debug, PartialEq)]
pub struct OpState {
    /// Index of the operator in the stream's plan
    /// ([`varpulis_program::StreamPlan::ops`]); a window with a fused
    /// `.aggregate` reports the window's index.
    pub plan_index: usize,
    /// Size of the operator's snapshot in bytes (0 when stateless).
    pub state_bytes: usize,
    /// The earliest watermark at which a timer of the operator fires.
    pub next_timer: Option<i64>,
    /// Open windows, ordered by key (empty for non-window operators).
    pub windows: Vec<WindowState>,
    /// A sequence operator's partial matches and counters.
    pub sequence: Option<SequenceState>,
    /// A window's fused `.pattern`: groups tested, groups matched.
    pub pattern: Option<(u64, u64)>,
}

/// The state of one stream, for `:inspect`.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamState {
    /// The stream's name.
    pub name: Arc<str>,
    /// Its operators in chain order.
    pub ops: Vec<OpState>,
    /// Events that left the stream's chain so far.
    pub emitted: u64,
    /// Distinct partition keys with open windows, over all operators.
    pub partitions: usize,
    /// Total snapshot size of the stream's operators.
    pub state_bytes: usize,
}

/// What one traced step did.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// The operator processed `input` records and passed `output` on.
    /// `sample` is the first input record's event.
    Op {
        /// Records in.
        input: usize,
        /// Records out.
        output: usize,
        /// The first record in.
        sample: Option<Arc<Event>>,
    },
    /// The operator's timer fired at watermark `watermark` and released
    /// `output` records.
    Timer {
        /// The watermark.
        watermark: i64,
        /// Records released.
        output: usize,
    },
    /// `count` events left the end of the chain (outputs of the stream).
    Left {
        /// Events out.
        count: usize,
    },
    /// What one event (or a watermark) did to a sequence operator's partial
    /// matches; follows the operator's [`StepKind::Op`] or
    /// [`StepKind::Timer`] step.
    Sequence(EventTrace),
}

/// One traced step of one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceStep {
    /// Index of the stream in the program.
    pub stream: usize,
    /// Index of the operator in the stream's plan (`None` for
    /// [`StepKind::Left`]).
    pub plan_index: Option<usize>,
    /// What happened.
    pub kind: StepKind,
}

/// Bound on recorded steps between two takes, so a trace left on during a
/// long replay cannot grow without limit.
const MAX_STEPS: usize = 10_000;

/// The trace buffer held by the engine while tracing is on.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    steps: Vec<TraceStep>,
}

impl Trace {
    pub(crate) fn push(&mut self, step: TraceStep) {
        if self.steps.len() < MAX_STEPS {
            self.steps.push(step);
        }
    }

    /// Moves a sequence operator's run trace into the buffer.
    pub(crate) fn push_sequence(
        &mut self,
        stream: usize,
        plan_index: Option<usize>,
        op: &mut dyn Operator,
    ) {
        for e in op.take_sequence_trace() {
            self.push(TraceStep {
                stream,
                plan_index,
                kind: StepKind::Sequence(e),
            });
        }
    }
}

impl Engine {
    /// Turns the trace on (an empty buffer) or off (dropping it).
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Box::default);
        for st in &mut self.streams {
            for op in &mut st.ops {
                op.set_trace(on);
            }
        }
    }

    /// Whether tracing is on.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Takes the steps recorded since the last take (empty when tracing is
    /// off).
    pub fn take_trace(&mut self) -> Vec<TraceStep> {
        self.trace
            .as_mut()
            .map(|t| std::mem::take(&mut t.steps))
            .unwrap_or_default()
    }

    /// The state of stream `name`, or `None` when the program has no such
    /// stream.
    pub fn inspect(&self, name: &str) -> Option<StreamState> {
        let (s, st) = self
            .streams
            .iter()
            .enumerate()
            .find(|(_, st)| &*st.name == name)?;
        let mut keys: Vec<Option<Value>> = Vec::new();
        let mut ops = Vec::with_capacity(st.ops.len());
        for (i, op) in st.ops.iter().enumerate() {
            let state_bytes = op.save().ok().flatten().map_or(0, |b| b.len());
            let mut windows = op.inspect();
            windows.sort_by(|a, b| {
                let ka = a.key.as_ref().map(ToString::to_string);
                let kb = b.key.as_ref().map(ToString::to_string);
                ka.cmp(&kb).then(a.start.cmp(&b.start))
            });
            for w in &windows {
                if !keys.contains(&w.key) {
                    keys.push(w.key.clone());
                }
            }
            ops.push(OpState {
                plan_index: st.origin.get(i).copied().unwrap_or(i),
                state_bytes,
                next_timer: op.next_timer(),
                windows,
                sequence: op.inspect_sequence(),
                pattern: op.pattern_counts(),
            });
        }
        Some(StreamState {
            name: st.name.clone(),
            emitted: self.metrics.out_per_stream.get(s).copied().unwrap_or(0),
            partitions: keys.len(),
            state_bytes: ops.iter().map(|o| o.state_bytes).sum(),
            ops,
        })
    }
}
