//! varpulis-compiler: the VPL front end.
//!
//! Text goes in through the [`Compiler`] host API; the salsa [`db`] splits
//! each file into items, parses them ([`varpulis_syntax`]), builds a
//! per-file [name index](resolve), and checks each item ([`check`]) into
//! diagnostics ([`diagnostic`], codes in [`codes`]) and a semantic
//! [`model`] that the lowering consumes. Diagnostics are rendered by
//! [`render`] (ariadne terminal output, JSON).
//!
//! The crate does no IO and never depends on the runtime.

pub mod builtins;
pub mod capabilities;
pub mod check;
pub mod codes;
pub mod db;
pub mod diagnostic;
pub mod forecast;
mod host;
pub mod ide;
pub mod lower;
pub mod model;
pub mod render;
pub mod resolve;
pub mod scale_out;
pub mod suggest;
pub mod types;

pub use codes::explain;
pub use diagnostic::{Diagnostic, Label, Severity, Suggestion};
pub use host::{Cancelled, CheckedItem, Compiler, Symbol};
