//! `varpulis-vm`: the deterministic Varpulis engine.
//!
//! It loads a [`varpulis_program::Program`] (never source text) and runs it:
//!
//! - [`interp`]: the bytecode interpreter and built-in functions;
//! - [`ops`]: dataflow operators (filter, select, emit, partition, aggregate,
//!   distinct, limit, print, log, sink, process, enrich);
//! - [`enrich`]: the [`enrich::Enricher`] through which the host answers
//!   `.enrich` lookups;
//! - [`windows`]: tumbling, sliding, count, sliding count and session
//!   windows, closed by events (REF anchoring) and by the watermark;
//! - [`engine`]: the [`Engine`] driver (routing, event time, watermarks,
//!   late events, metrics, snapshot/restore through `varpulis-state`).
//!
//! Synchronous, single-threaded, no wall clock: the same input always gives
//! the same output, also across a snapshot and restore.

pub mod engine;
pub mod enrich;
pub mod error;
pub mod forecast;
pub mod inspect;
pub mod interp;
pub mod memory;
pub mod model;
pub mod ops;
pub mod sequence;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod windows;

pub use engine::snapshot::{
    combine_lane_states, plan_transfer, saved_streams, Compat, SavedStreams, StateReport,
    StreamState,
};
pub use engine::{Engine, EngineConfig, Metrics, Output, SideOutput};
pub use error::{LoadError, RuntimeError, RuntimeErrorKind};
