//! The `LanguageServer` implementation: document bookkeeping, debounced
//! diagnostics and one handler per request, each a thin conversion around a
//! compiler query.
//!
//! **Staleness.** Every request notes the document version it arrived for
//! and answers only if that is still the current version when it holds the
//! state; otherwise it fails with `ContentModified` (the client retries), so
//! positions computed for one text are never applied to another. Debounced
//! diagnostics carry the version they were computed for and are dropped when
//! a newer edit arrived meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tower_lsp::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp::lsp_types::*;
use tower_lsp::{Client, LanguageServer};
use varpulis_compiler::{ide, Compiler};

use crate::convert;
use crate::position::Lines;

/// How long an edit must stay the latest before it is re-checked.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// An open document.
struct Doc {
    version: i32,
}

/// Everything the handlers share.
#[derive(Default)]
struct State {
    compiler: Compiler,
    docs: HashMap<Url, Doc>,
}

/// The server; one per connection.
pub struct Backend {
    client: Client,
    state: Arc<Mutex<State>>,
}

fn content_modified() -> Error {
    Error {
        code: ErrorCode::ServerError(-32801),
        message: "content modified".into(),
        data: None,
    }
}

/// A query's view of one document: the compiler, its path and text.
struct Snapshot<'a> {
    compiler: &'a Compiler,
    path: &'a str,
    text: &'a str,
}

impl Backend {
    /// A server talking to `client`.
    pub fn new(client: Client) -> Backend {
        Backend {
            client,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler must not take the server down with it: the
        // state is only ever replaced wholesale, so a poisoned lock still
        // holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn version(&self, uri: &Url) -> Option<i32> {
        self.lock().docs.get(uri).map(|d| d.version)
    }

    /// Runs `f` on the document `uri` if it is still at `version`. Unknown
    /// documents answer `None`; a changed one fails with `ContentModified`.
    fn query<T>(
        &self,
        uri: &Url,
        version: Option<i32>,
        f: impl FnOnce(&Snapshot<'_>) -> Option<T>,
    ) -> Result<Option<T>> {
        let state = self.lock();
        let Some(doc) = state.docs.get(uri) else {
            return Ok(None);
        };
        if Some(doc.version) != version {
            return Err(content_modified());
        }
        let path = uri.as_str();
        let Some(text) = state.compiler.text(path) else {
            return Ok(None);
        };
        Ok(f(&Snapshot {
            compiler: &state.compiler,
            path,
            text,
        }))
    }

    /// Computes the diagnostics of `uri` at `version`, or `None` when the
    /// document moved on or was closed.
    fn diagnostics(state: &State, uri: &Url, version: i32) -> Option<Vec<Diagnostic>> {
        if state.docs.get(uri).map(|d| d.version) != Some(version) {
            return None;
        }
        let path = uri.as_str();
        let text = state.compiler.text(path)?;
        let lines = Lines::new(text);
        Some(
            state
                .compiler
                .check_and_lower(path)
                .iter()
                .map(|d| convert::diagnostic(uri, &lines, d))
                .collect(),
        )
    }

    async fn publish_now(&self, uri: Url, version: i32) {
        let diags = Self::diagnostics(&self.lock(), &uri, version);
        if let Some(d) = diags {
            self.client.publish_diagnostics(uri, d, Some(version)).await;
        }
    }

    fn publish_later(&self, uri: Url, version: i32) {
        let client = self.client.clone();
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DEBOUNCE).await;
            let diags = {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                Self::diagnostics(&state, &uri, version)
            };
            if let Some(d) = diags {
                client.publish_diagnostics(uri, d, Some(version)).await;
            }
        });
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

#[tower_lsp::async_trait]
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
        })
    }

    async fn initialized(&self, _: InitializedParams) {}

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        {
            let mut state = self.lock();
            state.compiler.set_file(doc.uri.as_str(), doc.text);
            state.docs.insert(
                doc.uri.clone(),
                Doc {
                    version: doc.version,
                },
            );
        }
        self.publish_now(doc.uri, doc.version).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let version = params.text_document.version;
        {
            let mut state = self.lock();
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
        self.publish_later(uri, version);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        {
            let mut state = self.lock();
            state.docs.remove(&uri);
            // The compiler has no removal: an empty text frees the items.
            state.compiler.set_file(uri.as_str(), "");
        }
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let p = params.text_document_position_params;
        let v = self.version(&p.text_document.uri);
        self.query(&p.text_document.uri, v, |s| {
            let lines = Lines::new(s.text);
            let h = ide::hover(s.compiler, s.path, lines.offset(p.position))?;
            Some(Hover {
                contents: HoverContents::Markup(convert::markdown(h.markdown)),
                range: Some(lines.range(h.span)),
            })
        })
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let p = params.text_document_position;
        let v = self.version(&p.text_document.uri);
        self.query(&p.text_document.uri, v, |s| {
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
    }

    async fn signature_help(&self, params: SignatureHelpParams) -> Result<Option<SignatureHelp>> {
        let p = params.text_document_position_params;
        let v = self.version(&p.text_document.uri);
        self.query(&p.text_document.uri, v, |s| {
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
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let p = params.text_document_position_params;
        let uri = p.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let span = ide::definition(s.compiler, s.path, lines.offset(p.position))?;
            Some(GotoDefinitionResponse::Scalar(Location::new(
                uri.clone(),
                lines.range(span),
            )))
        })
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let spans = ide::references(
                s.compiler,
                s.path,
                lines.offset(p.position),
                params.context.include_declaration,
            );
            Some(
                spans
                    .into_iter()
                    .map(|sp| Location::new(uri.clone(), lines.range(sp)))
                    .collect(),
            )
        })
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let uri = params.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let span = ide::rename_target(s.compiler, s.path, lines.offset(params.position))?;
            Some(PrepareRenameResponse::Range(lines.range(span)))
        })
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let v = self.version(&uri);
        let result = self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let edits = ide::rename(
                s.compiler,
                s.path,
                lines.offset(p.position),
                &params.new_name,
            );
            Some(edits.map(|edits| {
                edits
                    .into_iter()
                    .map(|e| TextEdit::new(lines.range(e.span), e.text))
                    .collect::<Vec<_>>()
            }))
        })?;
        match result {
            None => Ok(None),
            Some(Err(e)) => Err(Error::invalid_params(e.to_string())),
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
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let symbols = ide::outline(s.compiler, s.path)
                .iter()
                .map(|o| convert::document_symbol(&lines, o))
                .collect();
            Some(DocumentSymbolResponse::Nested(symbols))
        })
    }

    #[allow(deprecated)] // `SymbolInformation::deprecated` must be written.
    async fn symbol(
        &self,
        params: WorkspaceSymbolParams,
    ) -> Result<Option<Vec<SymbolInformation>>> {
        let query = params.query.to_lowercase();
        let state = self.lock();
        let mut uris: Vec<&Url> = state.docs.keys().collect();
        uris.sort();
        let mut out = Vec::new();
        for uri in uris {
            let Some(text) = state.compiler.text(uri.as_str()) else {
                continue;
            };
            let lines = Lines::new(text);
            for sym in state.compiler.symbols(uri.as_str()) {
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
        Ok(Some(out))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        let uri = params.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let hs = ide::highlights(s.compiler, s.path);
            Some(SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data: convert::semantic_tokens(s.text, &lines, &hs),
            }))
        })
    }

    async fn folding_range(&self, params: FoldingRangeParams) -> Result<Option<Vec<FoldingRange>>> {
        let uri = params.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            Some(
                ide::folding_ranges(s.compiler, s.path)
                    .iter()
                    .map(|f| convert::folding_range(&lines, f))
                    .collect(),
            )
        })
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let lines = Lines::new(s.text);
            let want = lines.span(params.range);
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
                    diagnostics: Some(vec![convert::diagnostic(&uri, &lines, &d)]),
                    edit: Some(WorkspaceEdit {
                        changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                        ..WorkspaceEdit::default()
                    }),
                    is_preferred: Some(true),
                    ..CodeAction::default()
                }));
            }
            Some(actions)
        })
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let uri = params.text_document.uri;
        let v = self.version(&uri);
        self.query(&uri, v, |s| {
            let formatted = crate::format::format(s.text)?;
            if formatted == s.text {
                return Some(Vec::new());
            }
            let lines = Lines::new(s.text);
            let whole = varpulis_syntax::Span::new(0, s.text.len() as u32);
            Some(vec![TextEdit::new(lines.range(whole), formatted)])
        })
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
    use super::*;

    fn open(backend: &Backend, uri: &Url, version: i32, text: &str) {
        let mut state = backend.lock();
        state.compiler.set_file(uri.as_str(), text);
        state.docs.insert(uri.clone(), Doc { version });
    }

    #[test]
    fn a_request_for_an_older_version_is_cancelled() {
        let (service, _socket) = tower_lsp::LspService::new(Backend::new);
        let backend = service.inner();
        let uri = Url::parse("file:///t.vpl").expect("valid URI");
        open(backend, &uri, 2, "event R:\n    x: int\n");
        let stale = backend.query(&uri, Some(1), |_| Some(()));
        assert_eq!(
            stale.map_err(|e| e.code),
            Err(ErrorCode::ServerError(-32801))
        );
        assert_eq!(backend.query(&uri, Some(2), |_| Some(())), Ok(Some(())));
        let unknown = Url::parse("file:///u.vpl").expect("valid URI");
        assert_eq!(backend.query(&unknown, None, |_| Some(())), Ok(None));
    }

    #[test]
    fn stale_diagnostics_are_dropped() {
        let (service, _socket) = tower_lsp::LspService::new(Backend::new);
        let backend = service.inner();
        let uri = Url::parse("file:///t.vpl").expect("valid URI");
        open(backend, &uri, 3, "stream S = R\n    .where(\n");
        let state = backend.lock();
        assert!(Backend::diagnostics(&state, &uri, 2).is_none());
        let now = Backend::diagnostics(&state, &uri, 3).expect("current version");
        assert!(!now.is_empty());
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
