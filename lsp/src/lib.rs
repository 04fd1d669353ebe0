//! varpulis-lsp: the VPL language server.
//!
//! A [tower-lsp](tower_lsp) server over stdio that keeps every open document
//! in one [`varpulis_compiler::Compiler`] and answers from its incremental
//! queries: diagnostics (debounced, with the `check` codes, related spans
//! and help), hover, completion, signature help, definition, references,
//! rename, document and workspace symbols, semantic tokens, folding ranges,
//! quick fixes and formatting. This crate only converts between the
//! protocol and the compiler's host and [`ide`](varpulis_compiler::ide)
//! APIs (byte offsets ↔ UTF-16 positions in [`position`]).
//!
//! The CLI's `varpulis lsp` calls [`run_stdio`].

pub mod convert;
mod format;
pub mod position;
mod server;

pub use server::{Backend, DEBOUNCE};

/// Serves the protocol on stdin/stdout until the client closes stdin (after
/// `exit`).
pub async fn serve_stdio() {
    let (service, socket) = tower_lsp::LspService::new(Backend::new);
    tower_lsp::Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
        .serve(service)
        .await;
}

/// Builds a tokio runtime and runs [`serve_stdio`] on it.
pub fn run_stdio() -> anyhow::Result<()> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the language server's runtime")?;
    runtime.block_on(serve_stdio());
    Ok(())
}
