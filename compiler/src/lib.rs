//! The middle of nnc: name resolution and the built-in names of the language, with the
//! analysis that the command line and the language server share; the IR, and the executor
//! interface with the reference interpreter behind it and the optimisers it updates with.

mod analysis;
pub mod builtins;
pub mod checked;
pub mod driver;
pub mod exec;

pub mod ir;
pub mod optim;
mod resolve;
pub mod shapes;
pub mod train;

pub use analysis::{Analysis, analyze, analyze_bytes, first_error};
pub use resolve::{DefKind, Definition, Resolution, resolve};
