//! The Rust functions that generated code calls: the math library, the matrix-product
//! libraries (`gemm` and the AVX-512 kernels of `microkernel`) and the report of an access
//! outside its buffer, with the table of math functions `compile` declares.

use super::BoundsReport;
use std::sync::atomic::Ordering;

/// Called by code with bounds checks for an access outside its buffer; keeps the first.
///
/// # Safety
/// `report` points at a live `BoundsReport`.
pub(super) unsafe extern "C" fn nnc_out_of_bounds(report: *const BoundsReport, kernel: u64, buffer: u64, index: u64) {
    // SAFETY: as the caller promises.
    let report = unsafe { &*report };
    if report.count.load(Ordering::Acquire) == 0 {
        report.kernel.store(kernel, Ordering::Release);
        report.buffer.store(buffer, Ordering::Release);
        report.index.store(index, Ordering::Release);
    }
    report.count.fetch_add(1, Ordering::AcqRel);
}

extern "C" fn nnc_expf(x: f32) -> f32 {
    x.exp()
}
extern "C" fn nnc_logf(x: f32) -> f32 {
    x.ln()
}
extern "C" fn nnc_sinf(x: f32) -> f32 {
    x.sin()
}
extern "C" fn nnc_cosf(x: f32) -> f32 {
    x.cos()
}
extern "C" fn nnc_tanf(x: f32) -> f32 {
    x.tan()
}
/// In f64, rounded once, as the reference interpreter computes it.
extern "C" fn nnc_erff(x: f32) -> f32 {
    libm::erf(f64::from(x)) as f32
}
extern "C" fn nnc_tanhf(x: f32) -> f32 {
    x.tanh()
}
extern "C" fn nnc_sigmoidf(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
extern "C" fn nnc_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}

/// `c (+)= a @ b` for strided m×k and k×n matrices, by the `gemm` crate on one thread.
///
/// # Safety
/// The pointers and strides must describe matrices inside their buffers, `c` not
/// overlapping `a` or `b`; generated code passes only views the kernel verifier checked.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "C" fn nnc_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    c: *mut f32,
    c_rs: isize,
    c_cs: isize,
    accumulate: u32,
) {
    if crate::microkernel::takes(k, b_cs, c_cs) {
        // SAFETY: as the caller promises; the kernel checked the CPU and the strides.
        unsafe { crate::microkernel::product([m, n, k], a, [a_rs, a_cs], b, b_rs, c, c_rs, accumulate != 0) };
        return;
    }
    let keep = if accumulate != 0 { 1.0 } else { 0.0 };
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs,
            c_rs,
            accumulate != 0,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            keep,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `c = Σ over the batch of a_t @ b_t` by the AVX-512 dot-product kernel.
///
/// # Safety
/// As `microkernel::dot_products` requires; generated code passes only views the kernel
/// verifier checked, on a CPU `takes_dot_products` accepted.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "C" fn nnc_dot_products(
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    a: *const f32,
    a_rs: isize,
    a_bs: isize,
    b: *const f32,
    b_cs: isize,
    b_bs: isize,
    c: *mut f32,
    c_rs: isize,
    c_cs: isize,
) {
    // SAFETY: as the caller promises.
    unsafe { crate::microkernel::dot_products([m, n, k, batch], a, [a_rs, a_bs], b, [b_cs, b_bs], c, [c_rs, c_cs]) }
}

/// A Rust function that generated code may call: its symbol, arity and address.
pub(super) struct MathFunction {
    pub name: &'static str,
    pub arity: usize,
    pub address: fn() -> *const u8,
}

/// The functions generated code may call.
pub(super) const MATH: [MathFunction; 9] = [
    MathFunction { name: "nnc_expf", arity: 1, address: || nnc_expf as *const u8 },
    MathFunction { name: "nnc_logf", arity: 1, address: || nnc_logf as *const u8 },
    MathFunction { name: "nnc_sinf", arity: 1, address: || nnc_sinf as *const u8 },
    MathFunction { name: "nnc_cosf", arity: 1, address: || nnc_cosf as *const u8 },
    MathFunction { name: "nnc_tanf", arity: 1, address: || nnc_tanf as *const u8 },
    MathFunction { name: "nnc_erff", arity: 1, address: || nnc_erff as *const u8 },
    MathFunction { name: "nnc_tanhf", arity: 1, address: || nnc_tanhf as *const u8 },
    MathFunction { name: "nnc_sigmoidf", arity: 1, address: || nnc_sigmoidf as *const u8 },
    MathFunction { name: "nnc_powf", arity: 2, address: || nnc_powf as *const u8 },
];
