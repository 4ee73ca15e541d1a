//! The language server of nnc (`nnc lsp`): the front end's analysis (diagnostics, shapes,
//! parameter counts, names) turned into LSP answers. The only crate that knows LSP types.
//!
//! Each feature is a pure function of an [`Analyzed`] document and a position; `server`
//! is the thin protocol glue that orders edits and runs the features in isolation.

mod analyzed;
mod completion;
mod convert;
mod document;
mod format;
mod hints;
mod hover;
mod navigation;
mod semantic;
mod server;
mod symbols;
mod syntax;

pub use analyzed::Analyzed;
pub use completion::{completions, signature_help};
pub use convert::diagnostics;
pub use document::{Applied, Document, Lines};
pub use format::{format_document, format_edit};
pub use hints::{HintMode, inlay_hints};
pub use hover::hover;
pub use navigation::{goto_definition, prepare_rename, references, rename};
pub use semantic::{legend as semantic_tokens_legend, semantic_tokens};
pub use server::{Backend, DocumentStore, OrderedService, run_stdio, serve, service};
pub use symbols::{COMMAND_GRADIENT_IR, COMMAND_RUN, COMMAND_SUMMARY, code_lenses, document_symbols, folding_ranges};
pub use tower_lsp_server::ls_types;
