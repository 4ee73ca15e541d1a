//! Machine code for nnc: the graph IR of a training step lowered to kernels (loop nests
//! over buffers, fused), and each kernel compiled with Cranelift into a function of its own
//! over a range of its independent units, run by the JIT executor.

mod clif;
mod crew;
mod fuse;
mod jit;
pub mod kernel;
mod lower;
mod microkernel;

pub use clif::{
    BoundsReport, Compiled, CompiledKernel, LIBRARY_PRODUCTS, Options, PARALLEL_FLOPS, compile, library_block,
};
pub use jit::JitExecutor;
pub use lower::{LowerError, lower};
