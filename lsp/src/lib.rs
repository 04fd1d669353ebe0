//! varpulis-lsp: the VPL language server.
//!
//! A [tower-lsp-server](tower_lsp_server) server over stdio that keeps every
//! open document in one [`varpulis_compiler::Compiler`] and answers from its
//! incremental queries: diagnostics (debounced, with the `check` codes,
//! related spans and help), hover, completion, signature help, definition,
//! references, rename, document and workspace symbols, semantic tokens,
//! folding ranges, quick fixes and formatting. Reads run on compiler
//! snapshots off the protocol loop, so a long check never blocks a hover;
//! an edit cancels the work still running on the old text. This crate only
//! converts between the protocol and the compiler's host and
//! [`ide`](varpulis_compiler::ide) APIs (byte offsets ↔ UTF-16 positions in
//! [`position`]).
//!
//! Besides the protocol, the server answers `varpulis/stats` with its
//! [`Stats`] counters (diagnostics published, cancelled by edits, dropped
//! as stale; requests cancelled; failures).
//!
//! The CLI's `varpulis lsp` calls [`run_stdio`].

pub mod convert;
mod format;
pub mod position;
mod server;

pub use server::{Backend, Options, Stats, DEBOUNCE};

/// Serves the protocol on stdin/stdout until the client closes stdin (after
/// `exit`).
pub async fn serve_stdio() {
    serve_stdio_with(Options::default()).await;
}

/// [`serve_stdio`] with test knobs.
#[doc(hidden)]
pub async fn serve_stdio_with(options: Options) {
    let (service, socket) =
        tower_lsp_server::LspService::build(|client| Backend::with_options(client, options))
            .custom_method("varpulis/stats", Backend::stats)
            .finish();
    tower_lsp_server::Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
        .serve(service)
        .await;
}

/// Builds a tokio runtime and runs [`serve_stdio`] on it.
pub fn run_stdio() -> anyhow::Result<()> {
    run_stdio_with(Options::default())
}

/// [`run_stdio`] with test knobs.
#[doc(hidden)]
pub fn run_stdio_with(options: Options) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the language server's runtime")?;
    runtime.block_on(serve_stdio_with(options));
    // A check still running on a blocking thread must not hold the exit:
    // its answer has nowhere to go.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}
