//! Dataflow operators: the runtime form of [`varpulis_program::OpSpec`]s.
//!
//! An operator receives records one at a time ([`Operator::process`]) and
//! pushes zero or more records downstream. Stateful operators may also emit
//! when the watermark advances ([`Operator::on_watermark`]) and save/restore
//! their state for snapshots. Operators never see wall-clock time.

pub mod aggregate;
pub mod basic;
pub mod dedup;
pub mod enrich;
pub mod forecast;
pub mod keys;
pub mod map;
pub mod on_error;
pub mod pattern;
pub mod score;
pub mod sequence;

use crate::engine::SideOutput;
use crate::interp::{EvalCx, Vm};
use crate::sequence::Bindings;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use varpulis_program::{Chunk, Event, Program, SchemaId, Value, ValueKey};

/// A partition key: `None` when no `.partition_by` precedes the operator.
pub type PartKey = Option<ValueKey>;

/// One record flowing through a chain: the event and its partition key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rec {
    /// The event (shared: fan-out and window buffers clone the pointer).
    pub ev: Arc<Event>,
    /// Set by `.partition_by`.
    pub key: PartKey,
    /// A sequence match's bound events, for the operators after the match
    /// (`alias.f`, `len(ks)`); `None` for other events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Arc<Bindings>>,
}

impl Rec {
    /// A record without partition key or bindings.
    pub fn new(ev: Arc<Event>) -> Rec {
        Rec {
            ev,
            key: None,
            bindings: None,
        }
    }
}

/// What operators may use while running.
pub struct Cx<'a> {
    /// The program.
    pub program: &'a Program,
    /// The interpreter (and runtime error sink).
    pub vm: &'a mut Vm,
    /// Global variables.
    pub globals: &'a mut [Option<Value>],
    /// Print, log and sink records for the host.
    pub side: &'a mut Vec<SideOutput>,
    /// The stream being run.
    pub stream: &'a Arc<str>,
    /// The virtual clock: time of the event being processed, or the
    /// watermark when timers fire.
    pub now: i64,
    /// The watermark once the event being processed is accounted for (`None`
    /// before any event): windows whose end it has reached can close.
    pub watermark: Option<i64>,
    /// The host's answers to `.enrich` lookups.
    pub enricher: &'a mut dyn crate::enrich::Enricher,
    /// Spent events whose allocations new events reuse ([`Cx::new_event`]).
    pub spent: &'a mut Vec<Arc<Event>>,
}

impl Cx<'_> {
    /// A new event of `type_id` at `time` with no fields and no overflow, in the allocation
    /// (and slots, emptied) of a spent event when the engine has one.
    pub fn new_event(&mut self, type_id: SchemaId, time: i64) -> Arc<Event> {
        while let Some(mut ev) = self.spent.pop() {
            if let Some(e) = Arc::get_mut(&mut ev) {
                e.type_id = type_id;
                e.time = time;
                e.fields.clear();
                e.extra = None;
                return ev;
            }
        }
        Arc::new(Event::new(type_id, time, Vec::new()))
    }

    /// Evaluates an expression on an event.
    pub fn eval(&mut self, chunk: &Chunk, ev: &Event) -> Option<Value> {
        let cx = EvalCx::event(ev, self.now);
        self.vm.eval(self.program, self.globals, chunk, &cx)
    }

    /// Evaluates a condition on an event (only `true` passes).
    pub fn test(&mut self, chunk: &Chunk, ev: &Event) -> bool {
        let cx = EvalCx::event(ev, self.now);
        self.vm.test(self.program, self.globals, chunk, &cx)
    }

    /// Evaluates an expression on a record (its event and, after a
    /// sequence, its match bindings).
    pub fn eval_rec(&mut self, chunk: &Chunk, rec: &Rec) -> Option<Value> {
        let mut cx = EvalCx::event(&rec.ev, self.now);
        cx.bindings = rec.bindings.as_deref();
        self.vm.eval(self.program, self.globals, chunk, &cx)
    }

    /// Evaluates a condition on a record (only `true` passes).
    pub fn test_rec(&mut self, chunk: &Chunk, rec: &Rec) -> bool {
        let mut cx = EvalCx::event(&rec.ev, self.now);
        cx.bindings = rec.bindings.as_deref();
        self.vm.test(self.program, self.globals, chunk, &cx)
    }
}

/// Failure to save or restore operator state.
pub type StateResult<T> = Result<T, String>;

/// A runtime operator.
pub trait Operator {
    /// Handles one record.
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>);

    /// Handles every record that reaches the operator in one engine step,
    /// in order, emptying `recs`. By default one [`Operator::process`] each;
    /// `.enrich` asks the host for the whole batch at once and `.score` runs
    /// its model once per batch.
    fn process_batch(&mut self, recs: &mut Vec<Rec>, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        for r in recs.drain(..) {
            self.process(r, cx, out);
        }
    }

    /// The watermark reached `wm`: emit whatever closes at or before it.
    fn on_watermark(&mut self, _wm: i64, _cx: &mut Cx<'_>, _out: &mut Vec<Rec>) {}

    /// The earliest watermark at which [`Operator::on_watermark`] would do
    /// anything (`None` = never).
    fn next_timer(&self) -> Option<i64> {
        None
    }

    /// End of input with partial-window flushing enabled: release incomplete
    /// count windows.
    fn flush_partial(&mut self, _cx: &mut Cx<'_>, _out: &mut Vec<Rec>) {}

    /// The operator's state for a snapshot (`None` when stateless).
    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Open windows, for [`crate::inspect`] (empty for other operators).
    fn inspect(&self) -> Vec<crate::inspect::WindowState> {
        Vec::new()
    }

    /// Restores state written by [`Operator::save`].
    fn load(&mut self, _bytes: &[u8]) -> StateResult<()> {
        Ok(())
    }

    /// A sequence operator's matcher counters (`None` for other operators).
    fn sequence_metrics(&self) -> Option<crate::sequence::Metrics> {
        None
    }

    /// A window with a fused `.pattern`: groups tested and groups matched
    /// (`None` for other operators).
    fn pattern_counts(&self) -> Option<(u64, u64)> {
        None
    }

    /// A sequence operator's open partial matches, for [`crate::inspect`]
    /// (`None` for other operators).
    fn inspect_sequence(&self) -> Option<crate::sequence::SequenceState> {
        None
    }

    /// Size of the operator's state (`None` when stateless), for
    /// [`crate::Engine::memory`]; `index` and `kind` are filled in by the
    /// engine.
    fn memory(&self) -> Option<crate::memory::OpMemory> {
        None
    }

    /// Forgets everything kept for partition `key`, without output (a key
    /// evicted by the bound of the `.partition_by` before it).
    fn evict_key(&mut self, _key: &ValueKey) {}

    /// Keys the operator's state bound evicted since the last take; the
    /// engine makes the operators after it forget them
    /// ([`Operator::evict_key`]).
    fn take_evicted(&mut self) -> Vec<ValueKey> {
        Vec::new()
    }

    /// Whether the operator sets the partition key of the records after it
    /// (`.partition_by`): evictions of an earlier key set stop here.
    fn sets_key(&self) -> bool {
        false
    }

    /// Turns the operator's own trace on or off ([`crate::Engine::set_trace`]).
    fn set_trace(&mut self, _on: bool) {}

    /// What the records and timers since the last take did to a sequence
    /// operator's runs (empty unless traced, and for other operators).
    fn take_sequence_trace(&mut self) -> Vec<crate::sequence::EventTrace> {
        Vec::new()
    }
}

/// Encodes operator state for a snapshot.
pub fn encode<T: Serialize>(state: &T) -> StateResult<Option<Vec<u8>>> {
    let mut out = Vec::new();
    ciborium::into_writer(state, &mut out).map_err(|e| e.to_string())?;
    Ok(Some(out))
}

/// Decodes operator state from a snapshot.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> StateResult<T> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}
