//! The middle of nnc: name resolution and the built-in names of the language, with the
//! analysis that the command line and the language server share.

mod analysis;
pub mod builtins;
pub mod checked;
pub mod driver;
pub mod ir;
mod resolve;
pub mod shapes;

pub use analysis::{Analysis, analyze, analyze_bytes};
pub use resolve::{DefKind, Definition, Resolution, resolve};
