//! The protocol glue: the `LanguageServer` of tower-lsp-server over the document store, with
//! edits applied in the order the client sent them and every feature run in isolation.
//!
//! tower-lsp-server runs handlers concurrently, so a `didChange` handler may start after the
//! one of a later change. Edits therefore never go through handlers: [`OrderedService`]
//! applies `didOpen`, `didChange` and `didClose` to the store when the transport hands it
//! the message, which it does one message at a time in the order they were read. Handlers
//! then only read the store. A change whose version is not newer than the document's is
//! dropped.
//!
//! Each request runs its feature on a blocking thread inside `catch_unwind`: a bug answers
//! that request with an internal error and the server goes on. A request cancelled by the
//! client stops being awaited, and its answer is dropped.

use crate::analyzed::Analyzed;
use crate::document::{Applied, Document};
use crate::hints::HintMode;
use crate::{completion, convert, format, hints, hover, navigation, semantic, symbols};
use nnc_grammar::Span;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use tower_lsp_server::jsonrpc::{self, Request, Response};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, ClientSocket, ExitedError, LanguageServer, LspService, Server};
use tower_service::Service;

/// The open documents, each with the analysis of its current version once computed.
#[derive(Debug, Default)]
pub struct DocumentStore {
    entries: Mutex<HashMap<Uri, Entry>>,
}

#[derive(Debug)]
struct Entry {
    document: Document,
    /// The analysis of `document` at the version it is tagged with.
    analyzed: Option<(i32, Arc<Analyzed>)>,
    /// The last version whose diagnostics were published.
    published: Option<i32>,
}

impl DocumentStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uri, Entry>> {
        // A panic while the lock was held cannot leave an entry half-written (every write is
        // one assignment), so the map is still good to use.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The version and text of a document, as the server sees it.
    pub fn text(&self, uri: &Uri) -> Option<(i32, String)> {
        self.lock().get(uri).map(|entry| (entry.document.version(), entry.document.text().to_string()))
    }

    fn open(&self, uri: Uri, text: String, version: i32) {
        let entry = Entry { document: Document::new(text, version), analyzed: None, published: None };
        self.lock().insert(uri, entry);
    }

    fn change(&self, uri: &Uri, version: i32, changes: &[TextDocumentContentChangeEvent]) -> Option<Applied> {
        self.lock().get_mut(uri).map(|entry| entry.document.apply(version, changes))
    }

    fn close(&self, uri: &Uri) {
        self.lock().remove(uri);
    }

    /// Applies a text synchronisation notification; other messages are left alone.
    fn apply(&self, request: &Request) {
        let params = || request.params().cloned().unwrap_or(Value::Null);
        match request.method() {
            "textDocument/didOpen" => {
                if let Ok(params) = serde_json::from_value::<DidOpenTextDocumentParams>(params()) {
                    let document = params.text_document;
                    self.open(document.uri, document.text, document.version);
                }
            }
            "textDocument/didChange" => {
                if let Ok(params) = serde_json::from_value::<DidChangeTextDocumentParams>(params()) {
                    let document = params.text_document;
                    self.change(&document.uri, document.version, &params.content_changes);
                }
            }
            "textDocument/didClose" => {
                if let Ok(params) = serde_json::from_value::<DidCloseTextDocumentParams>(params()) {
                    self.close(&params.text_document.uri);
                }
            }
            _ => {}
        }
    }

    /// Closes the document a synchronisation notification is about.
    fn forget(&self, request: &Request) {
        let uri = request.params().and_then(|p| p.pointer("/textDocument/uri")).and_then(|u| u.as_str());
        if let Some(uri) = uri.and_then(|u| u.parse::<Uri>().ok()) {
            self.close(&uri);
        }
    }

    /// The analysis of the document's current version, computed now if it is not cached.
    /// Called on a blocking thread: the analysis runs without holding the lock.
    fn analyzed(&self, uri: &Uri) -> Option<(i32, Arc<Analyzed>)> {
        let (version, text) = {
            let entries = self.lock();
            let entry = entries.get(uri)?;
            let version = entry.document.version();
            if let Some((cached, analyzed)) = &entry.analyzed
                && *cached == version
            {
                return Some((version, analyzed.clone()));
            }
            (version, entry.document.text().to_string())
        };
        let analyzed = Arc::new(Analyzed::new(&text));
        if let Some(entry) = self.lock().get_mut(uri)
            && entry.document.version() == version
        {
            entry.analyzed = Some((version, analyzed.clone()));
        }
        Some((version, analyzed))
    }

    /// Whether diagnostics of `version` should be published now: it is still the document's
    /// version and no later one was published. Records it as published.
    fn claim_publication(&self, uri: &Uri, version: i32) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(uri) else {
            return false;
        };
        let current = entry.document.version() == version && entry.published.is_none_or(|p| p < version);
        if current {
            entry.published = Some(version);
        }
        current
    }
}

/// The settings a client may give, in `initializationOptions` or as the `nnc` section of
/// its configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Settings {
    inlay_hints: HintMode,
}

impl Settings {
    /// Reads `{"inlayHints": "shapes"}` or `{"nnc": {"inlayHints": "shapes"}}`, or the form
    /// editors with one switch per setting send, `{"inlayHints": {"shapes": true, "params":
    /// false}}` (a switch left out counts as on); `None` when the value says nothing about them.
    fn read(value: &Value) -> Option<Settings> {
        let section = value.get("nnc").unwrap_or(value);
        let mode = section.get("inlayHints")?;
        let inlay_hints = match mode {
            Value::Object(switches) => {
                let on = |name: &str| switches.get(name).and_then(Value::as_bool).unwrap_or(true);
                HintMode::from_switches(on("shapes"), on("params"))
            }
            _ => serde_json::from_value::<HintMode>(mode.clone()).ok()?,
        };
        Some(Settings { inlay_hints })
    }
}

/// What the client said it can do, where the answers depend on it.
#[derive(Clone, Copy, Debug, Default)]
struct ClientSupport {
    related_information: bool,
    configuration: bool,
    inlay_hint_refresh: bool,
}

/// The language server: the client connection, the documents and the settings.
pub struct Backend {
    client: Client,
    documents: Arc<DocumentStore>,
    settings: Mutex<Settings>,
    support: Mutex<ClientSupport>,
    /// Held while deciding to publish diagnostics and sending them, so that diagnostics of
    /// an older version are never sent after those of a newer one.
    publishing: tokio::sync::Mutex<()>,
}

/// The server as a tower service, applying document edits and settings in the order they
/// arrive.
pub struct OrderedService {
    inner: LspService<Backend>,
    documents: Arc<DocumentStore>,
}

impl OrderedService {
    /// The documents as the server sees them, for tests that compare them with the client's.
    pub fn documents(&self) -> Arc<DocumentStore> {
        self.documents.clone()
    }
}

impl Service<Request> for OrderedService {
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = <LspService<Backend> as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExitedError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Editing the text cannot panic by design; should it all the same, the document is
        // forgotten (its requests answer nothing until it is opened again) and the server
        // goes on.
        if catch_unwind(AssertUnwindSafe(|| self.documents.apply(&request))).is_err() {
            self.documents.forget(&request);
        }
        // Settings given with the notification take effect before any later request, too.
        if request.method() == "workspace/didChangeConfiguration"
            && let Some(settings) = request.params().and_then(|p| p.get("settings")).and_then(Settings::read)
        {
            *self.inner.inner().settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
        }
        self.inner.call(request)
    }
}

/// A new server and the socket through which it talks to the client.
pub fn service() -> (OrderedService, ClientSocket) {
    let documents = Arc::new(DocumentStore::default());
    let store = documents.clone();
    let (inner, socket) = LspService::new(move |client| Backend {
        client,
        documents: store,
        settings: Mutex::new(Settings::default()),
        support: Mutex::new(ClientSupport::default()),
        publishing: tokio::sync::Mutex::new(()),
    });
    (OrderedService { inner, documents }, socket)
}

/// Serves the protocol on `input` and `output` until the client says `exit` or goes away.
pub async fn serve<I, O>(service: OrderedService, socket: ClientSocket, input: I, output: O)
where
    I: tokio::io::AsyncRead + Unpin,
    O: tokio::io::AsyncWrite,
{
    Server::new(input, output, socket).serve(service).await;
}

/// Runs the language server on standard input and output.
pub fn run_stdio() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (service, socket) = service();
    runtime.block_on(serve(service, socket, tokio::io::stdin(), tokio::io::stdout()));
    // A feature still running for a request that was cancelled is not waited for.
    runtime.shutdown_background();
    Ok(())
}

/// Runs `work` on a blocking thread, turning a panic into an internal error that names it.
async fn isolated<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> jsonrpc::Result<T> {
    let outcome = tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(work))).await;
    let panic = match outcome {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(panic)) => panic,
        Err(join) => return Err(internal_error(format!("{what} stopped: {join}"))),
    };
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string());
    Err(internal_error(format!("{what} failed: {message}")))
}

fn internal_error(message: String) -> jsonrpc::Error {
    jsonrpc::Error { message: message.into(), ..jsonrpc::Error::internal_error() }
}

impl Backend {
    fn settings(&self) -> Settings {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn support(&self) -> ClientSupport {
        *self.support.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `feature` on the current analysis of `uri`; `None` for a document that is not open.
    async fn with_analysis<T: Send + 'static>(
        &self,
        what: &'static str,
        uri: &Uri,
        feature: impl FnOnce(&Analyzed) -> T + Send + 'static,
    ) -> jsonrpc::Result<Option<T>> {
        let documents = self.documents.clone();
        let uri = uri.clone();
        isolated(what, move || documents.analyzed(&uri).map(|(_, analyzed)| feature(&analyzed))).await
    }

    /// Publishes the diagnostics of the document's current version, unless newer ones were
    /// published meanwhile.
    async fn publish_diagnostics(&self, uri: Uri) {
        let documents = self.documents.clone();
        let related = self.support().related_information;
        let target = uri.clone();
        let result = isolated("checking the document", move || {
            let (version, analyzed) = documents.analyzed(&target)?;
            Some((version, convert::diagnostics(&analyzed, &target, related)))
        })
        .await;
        let (version, diagnostics) = match result {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(error) => {
                self.client.log_message(MessageType::ERROR, error.message).await;
                return;
            }
        };
        let _order = self.publishing.lock().await;
        if self.documents.claim_publication(&uri, version) {
            self.client.publish_diagnostics(uri, diagnostics, Some(version)).await;
        }
    }

    /// Reads the `nnc` section of the client's configuration, when it offers it.
    async fn pull_configuration(&self) {
        if !self.support().configuration {
            return;
        }
        let item = ConfigurationItem { scope_uri: None, section: Some("nnc".to_string()) };
        if let Ok(values) = self.client.configuration(vec![item]).await
            && let Some(settings) = values.first().and_then(Settings::read)
        {
            self.update_settings(settings).await;
        }
    }

    async fn update_settings(&self, settings: Settings) {
        let changed = {
            let mut current = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, settings) != settings
        };
        if changed {
            self.refresh_hints().await;
        }
    }

    /// Asks the client to ask for inlay hints again, when it can.
    async fn refresh_hints(&self) {
        if self.support().inlay_hint_refresh {
            // Whether the client refreshes changes nothing here.
            let _ = self.client.inlay_hint_refresh().await;
        }
    }
}

fn location(uri: &Uri, analyzed: &Analyzed, span: Span) -> Location {
    Location::new(uri.clone(), analyzed.range(span))
}

fn text_edit(analyzed: &Analyzed, (span, new_text): (Span, String)) -> TextEdit {
    TextEdit::new(analyzed.range(span), new_text)
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let capabilities = &params.capabilities;
        let text_document = capabilities.text_document.as_ref();
        let workspace = capabilities.workspace.as_ref();
        *self.support.lock().unwrap_or_else(PoisonError::into_inner) = ClientSupport {
            related_information: text_document
                .and_then(|t| t.publish_diagnostics.as_ref())
                .and_then(|p| p.related_information)
                .unwrap_or(false),
            configuration: workspace.and_then(|w| w.configuration).unwrap_or(false),
            inlay_hint_refresh: workspace
                .and_then(|w| w.inlay_hint.as_ref())
                .and_then(|i| i.refresh_support)
                .unwrap_or(false),
        };
        if let Some(settings) = params.initialization_options.as_ref().and_then(Settings::read) {
            *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
        }
        let capabilities = ServerCapabilities {
            position_encoding: Some(PositionEncodingKind::UTF16),
            text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            })),
            hover_provider: Some(HoverProviderCapability::Simple(true)),
            completion_provider: Some(CompletionOptions {
                trigger_characters: Some(vec!["(".to_string(), ",".to_string(), ">".to_string()]),
                ..CompletionOptions::default()
            }),
            signature_help_provider: Some(SignatureHelpOptions {
                trigger_characters: Some(vec!["(".to_string(), ",".to_string()]),
                retrigger_characters: Some(vec!["=".to_string()]),
                work_done_progress_options: WorkDoneProgressOptions::default(),
            }),
            definition_provider: Some(OneOf::Left(true)),
            references_provider: Some(OneOf::Left(true)),
            rename_provider: Some(OneOf::Right(RenameOptions {
                prepare_provider: Some(true),
                work_done_progress_options: WorkDoneProgressOptions::default(),
            })),
            document_symbol_provider: Some(OneOf::Left(true)),
            folding_range_provider: Some(FoldingRangeProviderCapability::Simple(true)),
            semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
                SemanticTokensOptions {
                    legend: semantic::legend(),
                    range: Some(true),
                    full: Some(SemanticTokensFullOptions::Bool(true)),
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                },
            )),
            inlay_hint_provider: Some(OneOf::Left(true)),
            code_lens_provider: Some(CodeLensOptions { resolve_provider: Some(false) }),
            document_formatting_provider: Some(OneOf::Left(true)),
            ..ServerCapabilities::default()
        };
        Ok(InitializeResult {
            capabilities,
            server_info: Some(ServerInfo {
                name: "nnc".to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        self.pull_configuration().await;
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }

    // The text was stored by `OrderedService` already; the handlers only check it.
    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        self.publish_diagnostics(params.text_document.uri).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.publish_diagnostics(params.text_document.uri).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let _order = self.publishing.lock().await;
        self.client.publish_diagnostics(params.text_document.uri, Vec::new(), None).await;
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        // Settings sent with the notification were stored by `OrderedService`; without
        // them, the client is asked for its configuration.
        match Settings::read(&params.settings) {
            Some(_) => self.refresh_hints().await,
            None => self.pull_configuration().await,
        }
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> jsonrpc::Result<Option<Vec<InlayHint>>> {
        let mode = self.settings().inlay_hints;
        let range = params.range;
        self.with_analysis("inlay hints", &params.text_document.uri, move |analyzed| {
            hints::inlay_hints(analyzed, Some(analyzed.span(range)), mode)
        })
        .await
    }

    async fn hover(&self, params: HoverParams) -> jsonrpc::Result<Option<Hover>> {
        let at = params.text_document_position_params;
        let position = at.position;
        let found = self.with_analysis("hover", &at.text_document.uri, move |analyzed| {
            hover::hover(analyzed, analyzed.offset(position))
        });
        Ok(found.await?.flatten())
    }

    async fn completion(&self, params: CompletionParams) -> jsonrpc::Result<Option<CompletionResponse>> {
        let at = params.text_document_position;
        let position = at.position;
        let items = self.with_analysis("completion", &at.text_document.uri, move |analyzed| {
            completion::completions(analyzed, analyzed.offset(position))
        });
        Ok(items.await?.map(CompletionResponse::Array))
    }

    async fn signature_help(&self, params: SignatureHelpParams) -> jsonrpc::Result<Option<SignatureHelp>> {
        let at = params.text_document_position_params;
        let position = at.position;
        let help = self.with_analysis("signature help", &at.text_document.uri, move |analyzed| {
            completion::signature_help(analyzed, analyzed.offset(position))
        });
        Ok(help.await?.flatten())
    }

    async fn goto_definition(&self, params: GotoDefinitionParams) -> jsonrpc::Result<Option<GotoDefinitionResponse>> {
        let at = params.text_document_position_params;
        let (uri, position) = (at.text_document.uri, at.position);
        let target = uri.clone();
        let found = self.with_analysis("go to definition", &uri, move |analyzed| {
            navigation::goto_definition(analyzed, analyzed.offset(position))
                .map(|span| GotoDefinitionResponse::Scalar(location(&target, analyzed, span)))
        });
        Ok(found.await?.flatten())
    }

    async fn references(&self, params: ReferenceParams) -> jsonrpc::Result<Option<Vec<Location>>> {
        let at = params.text_document_position;
        let (uri, position) = (at.text_document.uri, at.position);
        let include = params.context.include_declaration;
        let target = uri.clone();
        self.with_analysis("find references", &uri, move |analyzed| {
            let spans = navigation::references(analyzed, analyzed.offset(position), include);
            spans.into_iter().map(|span| location(&target, analyzed, span)).collect()
        })
        .await
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> jsonrpc::Result<Option<PrepareRenameResponse>> {
        let position = params.position;
        let found = self.with_analysis("rename", &params.text_document.uri, move |analyzed| {
            navigation::prepare_rename(analyzed, analyzed.offset(position))
                .map(|span| PrepareRenameResponse::Range(analyzed.range(span)))
        });
        Ok(found.await?.flatten())
    }

    async fn rename(&self, params: RenameParams) -> jsonrpc::Result<Option<WorkspaceEdit>> {
        let at = params.text_document_position;
        let (uri, position, new_name) = (at.text_document.uri, at.position, params.new_name);
        let found = self.with_analysis("rename", &uri, move |analyzed| {
            navigation::rename(analyzed, analyzed.offset(position), &new_name)
                .map(|edits| edits.into_iter().map(|edit| text_edit(analyzed, edit)).collect::<Vec<_>>())
        });
        match found.await? {
            None => Ok(None),
            Some(Err(why)) => Err(jsonrpc::Error::invalid_params(why)),
            Some(Ok(edits)) => {
                Ok(Some(WorkspaceEdit { changes: Some(HashMap::from([(uri, edits)])), ..WorkspaceEdit::default() }))
            }
        }
    }

    async fn document_symbol(&self, params: DocumentSymbolParams) -> jsonrpc::Result<Option<DocumentSymbolResponse>> {
        let symbols = self.with_analysis("document symbols", &params.text_document.uri, symbols::document_symbols);
        Ok(symbols.await?.map(DocumentSymbolResponse::Nested))
    }

    async fn folding_range(&self, params: FoldingRangeParams) -> jsonrpc::Result<Option<Vec<FoldingRange>>> {
        self.with_analysis("folding ranges", &params.text_document.uri, symbols::folding_ranges).await
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> jsonrpc::Result<Option<SemanticTokensResult>> {
        let tokens = self.with_analysis("semantic tokens", &params.text_document.uri, |analyzed| {
            semantic::semantic_tokens(analyzed, None)
        });
        Ok(tokens.await?.map(|data| SemanticTokensResult::Tokens(SemanticTokens { result_id: None, data })))
    }

    async fn semantic_tokens_range(
        &self,
        params: SemanticTokensRangeParams,
    ) -> jsonrpc::Result<Option<SemanticTokensRangeResult>> {
        let range = params.range;
        let tokens = self.with_analysis("semantic tokens", &params.text_document.uri, move |analyzed| {
            semantic::semantic_tokens(analyzed, Some(analyzed.span(range)))
        });
        Ok(tokens.await?.map(|data| SemanticTokensRangeResult::Tokens(SemanticTokens { result_id: None, data })))
    }

    async fn code_lens(&self, params: CodeLensParams) -> jsonrpc::Result<Option<Vec<CodeLens>>> {
        let uri = params.text_document.uri;
        let target = uri.clone();
        self.with_analysis("code lenses", &uri, move |analyzed| symbols::code_lenses(analyzed, &target)).await
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> jsonrpc::Result<Option<Vec<TextEdit>>> {
        let edit = self.with_analysis("formatting", &params.text_document.uri, |analyzed| {
            format::format_document(analyzed).map(|edit| text_edit(analyzed, edit))
        });
        Ok(edit.await?.flatten().map(|edit| vec![edit]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_feature_answers_with_an_error() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let failed = runtime.block_on(isolated("hover", || -> u32 { panic!("a bug") }));
        let error = failed.expect_err("the panic is an error");
        assert_eq!((error.code, error.message.as_ref()), (jsonrpc::ErrorCode::InternalError, "hover failed: a bug"));
        assert_eq!(runtime.block_on(isolated("hover", || 7)), Ok(7));
    }

    #[test]
    fn settings_are_read_as_a_word_or_as_switches() {
        let read = |text: &str| Settings::read(&serde_json::from_str(text).unwrap()).map(|s| s.inlay_hints);
        assert_eq!(read(r#"{"inlayHints": "shapes"}"#), Some(HintMode::Shapes));
        assert_eq!(read(r#"{"nnc": {"inlayHints": "none"}}"#), Some(HintMode::None));
        assert_eq!(read(r#"{"nnc": {"inlayHints": {"shapes": true, "params": false}}}"#), Some(HintMode::Shapes));
        assert_eq!(read(r#"{"inlayHints": {"shapes": false, "params": true}}"#), Some(HintMode::Params));
        assert_eq!(read(r#"{"inlayHints": {"shapes": false, "params": false}}"#), Some(HintMode::None));
        assert_eq!(read(r#"{"inlayHints": {"params": false}}"#), Some(HintMode::Shapes));
        assert_eq!(read(r#"{"inlayHints": {}}"#), Some(HintMode::Both));
        assert_eq!(read(r#"{"inlayHints": "sideways"}"#), None);
        assert_eq!(read(r#"{"path": "/usr/bin/nnc"}"#), None);
    }
}
