//! varpulis-syntax: lexer, parser and syntax tree of VPL.
//!
//! No salsa, no IO: text in, tree and errors out. The parser never panics and
//! never fails; it recovers and reports every independent error once.

pub mod ast;
pub mod span;

pub use span::Span;
