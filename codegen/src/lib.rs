//! Machine code for nnc: the graph IR of a training step lowered to kernels (loop nests
//! over buffers, fused), and the kernels compiled with Cranelift into one function, run by
//! the JIT executor.

mod clif;
mod crew;
mod fuse;
mod jit;
pub mod kernel;
mod lower;
mod microkernel;

pub use clif::{BoundsReport, Compiled, CompiledKernel, LIBRARY_PRODUCTS, Options, PARALLEL_FLOPS, compile};
pub use jit::JitExecutor;
pub use lower::{LowerError, lower};
