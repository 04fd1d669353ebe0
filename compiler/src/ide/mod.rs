//! IDE queries for the language server: hover, completion, signature help,
//! references and rename, outlines, highlighting and folding.
//!
//! Built on the public [`Compiler`](crate::Compiler) host API (the checked
//! items, their [semantic model](crate::model) and the name index) and the
//! lexer; no salsa internals and no protocol types. Every position is a byte
//! offset into the file's own text and every answer carries byte spans: the
//! server converts them to editor positions. Offsets out of range or inside
//! a character are tolerated (clamped or answered with nothing), never a
//! panic.
//!
//! The core is `view::FileView`, which classifies each identifier of an
//! item (an [`Occurrence`]) from the checker's expression table (fields,
//! aliases, locals, globals, calls), the syntax tree (declared names, event
//! fields, output fields, aliases bound by steps, operator names) and the
//! file's declared names (stream sources, `.to` targets, types).

mod complete;
mod forecast;
mod hover;
mod outline;
mod refs;
mod signature;
mod view;

pub use complete::{completions, Completion, CompletionKind, Completions};
pub use hover::{hover, Hover};
pub use outline::{
    folding_ranges, highlights, outline, Fold, FoldKind, Highlight, HighlightClass, OutlineItem,
};
pub use refs::{definition, occurrence_at, references, rename, rename_target, Edit, RenameError};
pub use signature::{signature_help, SignatureHelp};
pub use view::{Occurrence, SymbolKind, Target};
