//! An engine that runs only part of a program: one context of a context
//! pipeline (the host's `varpulis run` gives each `context` its own engine
//! thread; docs/DESIGN.md, *Contexts*).
//!
//! Every engine of a pipeline loads the whole program and sees every input
//! event, so event time, watermarks and timers move identically in all of
//! them; each runs only its own streams ([`Engine::run_only`]). What leaves
//! a stream that another context reads is handed to the host as an
//! [`Export`], tagged with the *stage* of the engine step that produced it:
//! 0 while the input event runs, then one stage per stream (in topological
//! order) each time the watermark moves and timers fire. The host passes
//! the exports of a step to the engines downstream ([`Engine::inject`])
//! before they run the same step, and each delivers them at the same stage,
//! where the one engine would have delivered them: a stream receives the
//! same records, at the same watermark, before the same timers.
//!
//! Still deterministic and single-threaded: the engine knows nothing of the
//! threads; it only runs a step with records it is given.

use std::collections::VecDeque;

use varpulis_program::{Event, StreamId};

use super::{Engine, Output};
use crate::ops::Rec;

/// A record that left a stream another context reads.
#[derive(Clone, Debug)]
pub struct Export {
    /// The stage of the step that produced it (see the module docs).
    pub stage: u32,
    /// The stream it left.
    pub stream: StreamId,
    /// The record (the event in the stream's output layout, with a
    /// sequence's bindings).
    pub(crate) rec: Rec,
}

impl Export {
    /// The event, in the stream's output layout.
    pub fn event(&self) -> &Event {
        &self.rec.ev
    }
}

/// Which streams this engine runs, and what it hands on.
pub(crate) struct Lane {
    /// By stream id: run here.
    active: Vec<bool>,
    /// By stream id: read by another context, so exported.
    exported: Vec<bool>,
    exports: Vec<Export>,
    /// Records of other contexts for the current step, by stage.
    injected: VecDeque<Export>,
    /// The current stage.
    stage: u32,
    /// The first stage of the next watermark move in this step.
    next_base: u32,
}

impl Engine {
    /// Makes this engine run only the streams marked in `active` (by stream
    /// id; missing entries are not run) and export what leaves the streams
    /// marked in `exported` ([`Engine::take_exports`]). Streams not run keep
    /// no state and produce nothing; records of theirs that this engine's
    /// streams read come through [`Engine::inject`].
    pub fn run_only(&mut self, active: Vec<bool>, exported: Vec<bool>) {
        self.lane = Some(Box::new(Lane {
            active,
            exported,
            exports: Vec::new(),
            injected: VecDeque::new(),
            stage: 0,
            next_base: 1,
        }));
    }

    /// The exports of the steps since the last call, in the order they
    /// were produced (so by stage within each step).
    pub fn take_exports(&mut self) -> Vec<Export> {
        self.lane
            .as_mut()
            .map(|l| std::mem::take(&mut l.exports))
            .unwrap_or_default()
    }

    /// Hands this engine the exports of other contexts for its next step
    /// (a push, a time observation, a watermark move or the finish): each is
    /// delivered to the streams that read it at its stage. Must be given in
    /// stage order, as [`Engine::take_exports`] gives them.
    pub fn inject(&mut self, exports: impl IntoIterator<Item = Export>) {
        if let Some(l) = self.lane.as_mut() {
            l.injected.extend(exports);
        }
    }

    /// Whether stream `s` runs in this engine.
    pub(super) fn is_active(&self, s: usize) -> bool {
        self.lane
            .as_ref()
            .is_none_or(|l| l.active.get(s).copied().unwrap_or(false))
    }

    /// A new step starts at stage 0.
    pub(super) fn begin_step(&mut self) {
        if let Some(l) = self.lane.as_mut() {
            l.stage = 0;
            l.next_base = 1;
        }
    }

    /// The first stage of a watermark move (one stage per stream after it).
    pub(super) fn stage_base(&mut self) -> u32 {
        match self.lane.as_mut() {
            Some(l) => {
                let base = l.next_base;
                l.next_base = base.saturating_add(u32::try_from(self.topo.len()).unwrap_or(0));
                base
            }
            None => 1,
        }
    }

    /// Enters `stage` and queues the injected records of it (and of any
    /// earlier stage left over) for the streams here that read them.
    pub(super) fn enter_stage(&mut self, stage: u32) {
        let Some(l) = self.lane.as_mut() else {
            return;
        };
        l.stage = stage;
        while l.injected.front().is_some_and(|x| x.stage <= stage) {
            let Some(x) = l.injected.pop_front() else {
                break;
            };
            let consumers = self
                .routes
                .by_stream
                .get(x.stream as usize)
                .map_or(&[][..], Vec::as_slice);
            for c in consumers {
                if l.active.get(c.stream as usize).copied().unwrap_or(false) {
                    self.queue
                        .push_back((c.stream as usize, c.input, x.rec.clone()));
                }
            }
        }
    }

    /// Ends a step: injected records whose stage the step never reached
    /// (the producing engine moved its watermark where this one did not,
    /// which a host that feeds both the same input never causes) are still
    /// delivered rather than lost.
    pub(super) fn end_step(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.lane.as_ref().is_some_and(|l| !l.injected.is_empty()) {
            self.enter_stage(u32::MAX);
            self.drain(now, out);
        }
    }
}

impl Lane {
    /// By stream id: whether the stream runs here.
    pub(super) fn active(&self) -> &[bool] {
        &self.active
    }

    /// Sets the current stage (its injected records are queued by
    /// [`Engine::enter_stage`]).
    pub(super) fn set_stage(&mut self, stage: u32) {
        self.stage = stage;
    }

    /// Records `rec` leaving stream `s`, if another context reads it.
    pub(super) fn export(&mut self, s: usize, rec: &Rec) {
        if self.exported.get(s).copied().unwrap_or(false) {
            let mut rec = rec.clone();
            rec.key = None;
            self.exports.push(Export {
                stage: self.stage,
                stream: u32::try_from(s).unwrap_or(u32::MAX),
                rec,
            });
        }
    }
}
