//! The `LanguageServer` implementation: document bookkeeping, debounced
//! diagnostics and one handler per request, each a thin conversion around a
//! compiler query.
//!
//! **One writer, many readers.** The state (the compiler and the open
//! documents' versions) sits behind a mutex that is only ever held briefly.
//! Edits are the one writer: under the lock they apply the text to the
//! compiler, which cancels every query still running on a snapshot, and
//! bump the document's version. Every read (each request and each
//! diagnostics run) takes a [`Compiler::snapshot`] under the lock, releases
//! it, and computes on a blocking thread, so a long check never delays a
//! hover or a completion, and no handler blocks the protocol loop.
//!
//! **Staleness.** A read notes the document version its snapshot belongs
//! to. A read cancelled by an edit, or finished after one, fails with
//! `ContentModified` (the client retries), so positions computed for one
//! text are never applied to another. Diagnostics carry their version: a
//! run cancelled by an edit, or finished after one, is dropped, and the
//! check of the newest version publishes instead. Publishing is serialised,
//! so an older version is never published after a newer one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};
use varpulis_compiler::{ide, Cancelled, Compiler};

use crate::convert;
use crate::position::Lines;

/// How long an edit must stay the latest before it is re-checked.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Knobs for tests. `Options::default()` is what `varpulis lsp` runs.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Makes every diagnostics run last at least this long after its
    /// check, polling for cancellation, as a check of a huge file would:
    /// the tests use it to hold a check open while they send requests and
    /// edits. Zero in production.
    pub check_delay: Duration,
}

/// An open document.
struct Doc {
    version: i32,
}

/// Everything the handlers share.
#[derive(Default)]
struct State {
    compiler: Compiler,
    docs: HashMap<Uri, Doc>,
}

/// What the diagnostics runs did, answered by the `varpulis/stats` request.
#[derive(Default)]
struct Counters {
    /// Runs computing right now.
    running: AtomicU64,
    /// Runs whose diagnostics were published.
    published: AtomicU64,
    /// Runs stopped midway by an edit.
    cancelled: AtomicU64,
    /// Runs dropped because the document moved on or closed before they
    /// started or before they could publish.
    stale: AtomicU64,
    /// Reads (requests) stopped midway by an edit.
    requests_cancelled: AtomicU64,
    /// Reads that failed inside the compiler (a bug: answered as an
    /// internal error rather than taking the server down).
    failed: AtomicU64,
}

/// The answer to `varpulis/stats`: counters since the server started.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Diagnostics runs computing right now.
    pub running: u64,
    /// Diagnostics runs whose results were published.
    pub published: u64,
    /// Diagnostics runs stopped midway by an edit.
    pub cancelled: u64,
    /// Diagnostics runs dropped because a newer version arrived first.
    pub stale: u64,
    /// Requests stopped midway by an edit (answered `ContentModified`).
    pub requests_cancelled: u64,
    /// Requests or runs that failed inside the compiler.
    pub failed: u64,
}

/// The shared parts, cloned into the diagnostics tasks.
#[derive(Clone)]
struct Shared {
    client: Client,
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
    /// Held while checking currency and publishing, so that publications
    /// happen in version order.
    publish: Arc<tokio::sync::Mutex<()>>,
    options: Options,
}

/// The server; one per connection.
pub struct Backend {
    shared: Shared,
}

fn content_modified() -> Error {
    Error {
        code: ErrorCode::ServerError(-32801),
        message: "content modified".into(),
        data: None,
    }
}

/// A read's view of one document: a compiler snapshot, the path and text.
struct View<'a> {
    compiler: &'a Compiler,
    path: &'a str,
    text: &'a str,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking handler must not take the server down with it: the
    // state is only ever updated in whole steps, so a poisoned lock still
    // holds consistent data.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on `compiler` (a snapshot) on a blocking thread, dropping the
/// snapshot there before answering. `Ok(Err(Cancelled))` when an edit
/// cancelled it; `Err` when it panicked.
async fn on_snapshot<T: Send + 'static>(
    compiler: Compiler,
    f: impl FnOnce(&Compiler) -> T + Send + 'static,
) -> std::result::Result<std::result::Result<T, Cancelled>, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let out = Compiler::cancellable(|| f(&compiler));
        // The writer waits for every snapshot to be dropped: drop it here,
        // before anything else can wait on it.
        drop(compiler);
        out
    })
    .await
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn version(&self, uri: &Uri) -> Option<i32> {
        self.lock().docs.get(uri).map(|d| d.version)
    }

    /// A snapshot of the compiler with the version of `uri`, or `None` for
    /// a document that is not open.
    fn snapshot(&self, uri: &Uri) -> Option<(Compiler, i32)> {
        let state = self.lock();
        let version = state.docs.get(uri)?.version;
        Some((state.compiler.snapshot(), version))
    }

    /// Checks `uri` at `version` after `delay`, and publishes the result
    /// unless a newer version arrived meanwhile.
    fn schedule_diagnostics(&self, uri: Uri, version: i32, delay: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            this.diagnostics_run(uri, version).await;
        });
    }

    async fn diagnostics_run(&self, uri: Uri, version: i32) {
        let counters = &self.counters;
        let compiler = match self.snapshot(&uri) {
            Some((c, v)) if v == version => c,
            _ => {
                counters.stale.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        counters.running.fetch_add(1, Ordering::SeqCst);
        let delay = self.options.check_delay;
        let path = uri.as_str().to_string();
        let for_check = uri.clone();
        let result = on_snapshot(compiler, move |c| {
            let started = Instant::now();
            let diags = diagnostics(c, &for_check, &path);
            while started.elapsed() < delay {
                c.unwind_if_cancelled();
                std::thread::sleep(Duration::from_millis(2));
            }
            diags
        })
        .await;
        counters.running.fetch_sub(1, Ordering::SeqCst);
        let diags = match result {
            Ok(Ok(Some(d))) => d,
            Ok(Ok(None)) => {
                counters.stale.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Err(Cancelled)) => {
                counters.cancelled.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                self.client
                    .log_message(
                        MessageType::ERROR,
                        format!("varpulis: checking {} failed: {e}", uri.as_str()),
                    )
                    .await;
                return;
            }
        };
        let _order = self.publish.lock().await;
        if self.version(&uri) != Some(version) {
            counters.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.client
            .publish_diagnostics(uri, diags, Some(version))
            .await;
        counters.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `f` on a snapshot of the document `uri`, off the protocol
    /// loop. Unknown documents answer `None`; a read cancelled by an edit,
    /// or finished after one, fails with `ContentModified`.
    async fn read<T: Send + 'static>(
        &self,
        uri: &Uri,
        f: impl FnOnce(&View<'_>) -> Option<T> + Send + 'static,
    ) -> Result<Option<T>> {
        let Some((compiler, version)) = self.snapshot(uri) else {
            return Ok(None);
        };
        let path = uri.as_str().to_string();
        let result = on_snapshot(compiler, move |c| {
            let text = c.text(&path)?;
            f(&View {
                compiler: c,
                path: &path,
                text,
            })
        })
        .await;
        self.answer(self.version(uri) == Some(version), result)
    }

    /// The answer of a read; `current` tells whether the documents it read
    /// are still at the versions its snapshot had.
    fn answer<T>(
        &self,
        current: bool,
        result: std::result::Result<std::result::Result<T, Cancelled>, tokio::task::JoinError>,
    ) -> Result<T> {
        match result {
            Ok(Ok(v)) if current => Ok(v),
            Ok(Ok(_)) | Ok(Err(Cancelled)) => {
                self.counters
                    .requests_cancelled
                    .fetch_add(1, Ordering::Relaxed);
                Err(content_modified())
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                Err(Error {
                    code: ErrorCode::InternalError,
                    message: format!("the compiler failed on this request: {e}").into(),
                    data: None,
                })
            }
        }
    }
}

/// The diagnostics of `uri` (at `path` in `compiler`) as the editor shows
/// them: the check plus, when it is clean, what the lowering refuses.
/// `None` for a file the compiler does not hold.
fn diagnostics(compiler: &Compiler, uri: &Uri, path: &str) -> Option<Vec<Diagnostic>> {
    let text = compiler.text(path)?;
    let lines = Lines::new(text);
    Some(
        compiler
            .check_and_lower(path)
            .iter()
            .map(|d| convert::diagnostic(uri, &lines, d))
            .collect(),
    )
}

impl Backend {
    /// A server talking to `client`.
    pub fn new(client: Client) -> Backend {
        Backend::with_options(client, Options::default())
    }

    /// A server with test knobs.
    #[doc(hidden)]
    pub fn with_options(client: Client, options: Options) -> Backend {
        Backend {
            shared: Shared {
                client,
                state: Arc::default(),
                counters: Arc::default(),
                publish: Arc::default(),
                options,
            },
        }
    }

    /// `varpulis/stats`: what the diagnostics runs and requests did.
    pub async fn stats(&self) -> Result<Stats> {
        let c = &self.shared.counters;
        Ok(Stats {
            running: c.running.load(Ordering::SeqCst),
            published: c.published.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            requests_cancelled: c.requests_cancelled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        })
    }
}

fn apply_change(text: &mut String, change: TextDocumentContentChangeEvent) {
    match change.range {
        None => *text = change.text,
        Some(range) => {
            let span = Lines::new(text).span(range);
            text.replace_range(span.range(), &change.text);
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, _: InitializeParams) -> Result<InitializeResult> {
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "varpulis-lsp".to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            }),
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::INCREMENTAL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![".".to_string(), ">".to_string()]),
                    ..CompletionOptions::default()
                }),
                signature_help_provider: Some(SignatureHelpOptions {
                    trigger_characters: Some(vec!["(".to_string(), ",".to_string()]),
                    retrigger_characters: None,
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                }),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                })),
                document_symbol_provider: Some(OneOf::Left(true)),
                workspace_symbol_provider: Some(OneOf::Left(true)),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend: convert::legend(),
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            range: None,
                            work_done_progress_options: WorkDoneProgressOptions::default(),
                        },
                    ),
                ),
                folding_range_provider: Some(FoldingRangeProviderCapability::Simple(true)),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                        ..CodeActionOptions::default()
                    },
                )),
                document_formatting_provider: Some(OneOf::Left(true)),
                ..ServerCapabilities::default()
            },
            ..InitializeResult::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {}

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        {
            let mut state = self.shared.lock();
            state.compiler.set_file(doc.uri.as_str(), doc.text);
            state.docs.insert(
                doc.uri.clone(),
                Doc {
                    version: doc.version,
                },
            );
        }
        // An opened file is checked at once, without the debounce.
        self.shared
            .schedule_diagnostics(doc.uri, doc.version, Duration::ZERO);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let version = params.text_document.version;
        {
            // The one writer. `set_file` cancels the reads running on
            // snapshots and waits for them to let go, which they do at
            // their next query; none of them waits for this lock.
            let mut state = self.shared.lock();
            if !state.docs.contains_key(&uri) {
                return;
            }
            let mut text = state
                .compiler
                .text(uri.as_str())
                .unwrap_or_default()
                .to_string();
            for change in params.content_changes {
                apply_change(&mut text, change);
            }
            state.compiler.set_file(uri.as_str(), text);
            if let Some(doc) = state.docs.get_mut(&uri) {
                doc.version = version;
            }
        }
        self.shared.schedule_diagnostics(uri, version, DEBOUNCE);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        {
            let mut state = self.shared.lock();
            state.docs.remove(&uri);
            // The compiler has no removal: an empty text frees the items.
            state.compiler.set_file(uri.as_str(), "");
        }
        let _order = self.shared.publish.lock().await;
        self.shared
            .client
            .publish_diagnostics(uri, Vec::new(), None)
            .await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let p = params.text_document_position_params;
        self.shared
            .read(&p.text_document.uri, move |s| {
                let lines = Lines::new(s.text);
                let h = ide::hover(s.compiler, s.path, lines.offset(p.position))?;
                Some(Hover {
                    contents: HoverContents::Markup(convert::markdown(h.markdown)),
                    range: Some(lines.range(h.span)),
                })
            })
            .await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let p = params.text_document_position;
        self.shared
            .read(&p.text_document.uri, move |s| {
                let lines = Lines::new(s.text);
                let c = ide::completions(s.compiler, s.path, lines.offset(p.position));
                let range = lines.range(c.replace);
                let items = c
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| CompletionItem {
                        label: item.label,
                        kind: Some(convert::completion_kind(item.kind)),
                        detail: item.detail,
                        documentation: item.documentation.map(convert::documentation),
                        sort_text: Some(format!("{i:04}")),
                        insert_text_format: Some(if item.snippet {
                            InsertTextFormat::SNIPPET
                        } else {
                            InsertTextFormat::PLAIN_TEXT
                        }),
                        text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(
                            range,
                            item.insert_text,
                        ))),
                        ..CompletionItem::default()
                    })
                    .collect();
                Some(CompletionResponse::List(CompletionList {
                    is_incomplete: false,
                    items,
                }))
            })
            .await
    }

    async fn signature_help(&self, params: SignatureHelpParams) -> Result<Option<SignatureHelp>> {
        let p = params.text_document_position_params;
        self.shared
            .read(&p.text_document.uri, move |s| {
                let lines = Lines::new(s.text);
                let h = ide::signature_help(s.compiler, s.path, lines.offset(p.position))?;
                // Labels are ASCII signatures, so byte offsets are UTF-16 offsets.
                let parameters = h
                    .params
                    .iter()
                    .map(|&(a, b)| ParameterInformation {
                        label: ParameterLabel::LabelOffsets([a, b]),
                        documentation: None,
                    })
                    .collect();
                Some(SignatureHelp {
                    signatures: vec![SignatureInformation {
                        label: h.label,
                        documentation: h.doc.map(convert::documentation),
                        parameters: Some(parameters),
                        active_parameter: Some(h.active as u32),
                    }],
                    active_signature: Some(0),
                    active_parameter: Some(h.active as u32),
                })
            })
            .await
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let p = params.text_document_position_params;
        let uri = p.text_document.uri;
        let target = uri.clone();
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let span = ide::definition(s.compiler, s.path, lines.offset(p.position))?;
                Some(GotoDefinitionResponse::Scalar(Location::new(
                    target,
                    lines.range(span),
                )))
            })
            .await
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let target = uri.clone();
        let include_declaration = params.context.include_declaration;
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let spans = ide::references(
                    s.compiler,
                    s.path,
                    lines.offset(p.position),
                    include_declaration,
                );
                Some(
                    spans
                        .into_iter()
                        .map(|sp| Location::new(target.clone(), lines.range(sp)))
                        .collect(),
                )
            })
            .await
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let uri = params.text_document.uri;
        let position = params.position;
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let span = ide::rename_target(s.compiler, s.path, lines.offset(position))?;
                Some(PrepareRenameResponse::Range(lines.range(span)))
            })
            .await
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let new_name = params.new_name;
        let result = self
            .shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let edits = ide::rename(s.compiler, s.path, lines.offset(p.position), &new_name);
                Some(edits.map_err(|e| e.to_string()).map(|edits| {
                    edits
                        .into_iter()
                        .map(|e| TextEdit::new(lines.range(e.span), e.text))
                        .collect::<Vec<_>>()
                }))
            })
            .await?;
        match result {
            None => Ok(None),
            Some(Err(e)) => Err(Error::invalid_params(e)),
            Some(Ok(edits)) => Ok(Some(WorkspaceEdit {
                changes: Some(HashMap::from([(uri, edits)])),
                ..WorkspaceEdit::default()
            })),
        }
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let uri = params.text_document.uri;
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let symbols = ide::outline(s.compiler, s.path)
                    .iter()
                    .map(|o| convert::document_symbol(&lines, o))
                    .collect();
                Some(DocumentSymbolResponse::Nested(symbols))
            })
            .await
    }

    #[allow(deprecated)] // `SymbolInformation::deprecated` must be written.
    async fn symbol(
        &self,
        params: WorkspaceSymbolParams,
    ) -> Result<Option<WorkspaceSymbolResponse>> {
        let query = params.query.to_lowercase();
        let (compiler, versions) = {
            let state = self.shared.lock();
            let mut versions: Vec<(Uri, i32)> = state
                .docs
                .iter()
                .map(|(u, d)| (u.clone(), d.version))
                .collect();
            versions.sort_by(|a, b| a.0.cmp(&b.0));
            (state.compiler.snapshot(), versions)
        };
        let uris: Vec<Uri> = versions.iter().map(|(u, _)| u.clone()).collect();
        let result = on_snapshot(compiler, move |c| {
            let mut out = Vec::new();
            for uri in uris {
                let Some(text) = c.text(uri.as_str()) else {
                    continue;
                };
                let lines = Lines::new(text);
                for sym in c.symbols(uri.as_str()) {
                    if !sym.name.to_lowercase().contains(&query) {
                        continue;
                    }
                    out.push(SymbolInformation {
                        name: sym.name,
                        kind: convert::symbol_kind(ide::SymbolKind::of_decl(sym.kind)),
                        tags: None,
                        deprecated: None,
                        location: Location::new(uri.clone(), lines.range(sym.name_span)),
                        container_name: None,
                    });
                }
            }
            out
        })
        .await;
        // Every document must still be at the version the answer read.
        let current = versions
            .iter()
            .all(|(u, v)| self.shared.version(u) == Some(*v));
        let out = self.shared.answer(current, result)?;
        Ok(Some(WorkspaceSymbolResponse::Flat(out)))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        let uri = params.text_document.uri;
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let hs = ide::highlights(s.compiler, s.path);
                Some(SemanticTokensResult::Tokens(SemanticTokens {
                    result_id: None,
                    data: convert::semantic_tokens(s.text, &lines, &hs),
                }))
            })
            .await
    }

    async fn folding_range(&self, params: FoldingRangeParams) -> Result<Option<Vec<FoldingRange>>> {
        let uri = params.text_document.uri;
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                Some(
                    ide::folding_ranges(s.compiler, s.path)
                        .iter()
                        .map(|f| convert::folding_range(&lines, f))
                        .collect(),
                )
            })
            .await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let target = uri.clone();
        let range = params.range;
        self.shared
            .read(&uri, move |s| {
                let lines = Lines::new(s.text);
                let want = lines.span(range);
                let mut actions = Vec::new();
                for d in s.compiler.check(s.path) {
                    let Some(sugg) = &d.suggestion else {
                        continue;
                    };
                    let p = d.primary.span;
                    if p.end < want.start || p.start > want.end {
                        continue;
                    }
                    let title = match &d.help {
                        Some(h) => capitalise(h),
                        None => format!("Replace with `{}`", sugg.replacement),
                    };
                    let edit = TextEdit::new(lines.range(sugg.span), sugg.replacement.clone());
                    actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                        title,
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: Some(vec![convert::diagnostic(&target, &lines, &d)]),
                        edit: Some(WorkspaceEdit {
                            changes: Some(HashMap::from([(target.clone(), vec![edit])])),
                            ..WorkspaceEdit::default()
                        }),
                        is_preferred: Some(true),
                        ..CodeAction::default()
                    }));
                }
                Some(actions)
            })
            .await
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let uri = params.text_document.uri;
        self.shared
            .read(&uri, move |s| {
                let formatted = crate::format::format(s.text)?;
                if formatted == s.text {
                    return Some(Vec::new());
                }
                let lines = Lines::new(s.text);
                let whole = varpulis_syntax::Span::new(0, s.text.len() as u32);
                Some(vec![TextEdit::new(lines.range(whole), formatted)])
            })
            .await
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::from_str(s).expect("valid URI")
    }

    fn open(backend: &Backend, uri: &Uri, version: i32, text: &str) {
        let mut state = backend.shared.lock();
        state.compiler.set_file(uri.as_str(), text);
        state.docs.insert(uri.clone(), Doc { version });
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_read_that_an_edit_overtook_is_content_modified() {
        let (service, _socket) = tower_lsp_server::LspService::new(Backend::new);
        let backend = service.inner();
        let doc = uri("file:///t.vpl");
        open(backend, &doc, 2, "event R:\n    x: int\n");
        // Finished, but for version 1 while the document is at 2.
        let stale = backend.shared.answer(false, Ok(Ok(())));
        assert_eq!(
            stale.map_err(|e| e.code),
            Err(ErrorCode::ServerError(-32801))
        );
        let cancelled = backend.shared.answer(true, Ok(Err::<(), _>(Cancelled)));
        assert_eq!(
            cancelled.map_err(|e| e.code),
            Err(ErrorCode::ServerError(-32801))
        );
        assert_eq!(backend.shared.answer(true, Ok(Ok(()))), Ok(()));
        let rt = runtime();
        let unknown = uri("file:///u.vpl");
        assert_eq!(
            rt.block_on(backend.shared.read(&unknown, |_| Some(()))),
            Ok(None)
        );
        assert_eq!(
            rt.block_on(backend.shared.read(&doc, |_| Some(()))),
            Ok(Some(()))
        );
    }

    #[test]
    fn diagnostics_are_computed_on_a_snapshot() {
        let (service, _socket) = tower_lsp_server::LspService::new(Backend::new);
        let backend = service.inner();
        let doc = uri("file:///t.vpl");
        open(backend, &doc, 3, "stream S = R\n    .where(\n");
        let (snapshot, version) = backend.shared.snapshot(&doc).expect("open");
        assert_eq!(version, 3);
        let now = diagnostics(&snapshot, &doc, doc.as_str()).expect("known file");
        assert!(!now.is_empty());
        assert!(diagnostics(&snapshot, &doc, "file:///other.vpl").is_none());
    }

    #[test]
    fn edits_apply_with_utf16_ranges() {
        let mut text = "é = 1\nx".to_string();
        apply_change(
            &mut text,
            TextDocumentContentChangeEvent {
                range: Some(Range::new(Position::new(0, 1), Position::new(0, 3))),
                range_length: None,
                text: ":=".to_string(),
            },
        );
        assert_eq!(text, "é:= 1\nx");
        // A range past the end is clamped, never a panic.
        apply_change(
            &mut text,
            TextDocumentContentChangeEvent {
                range: Some(Range::new(Position::new(7, 0), Position::new(9, 9))),
                range_length: None,
                text: "!".to_string(),
            },
        );
        assert_eq!(text, "é:= 1\nx!");
    }
}
