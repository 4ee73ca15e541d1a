//! An ahead-of-time AVX-512 kernel for the matrix products of convolutions: few rows of A
//! (the output channels), a short k (C·K·K, or the channels of the gradient), and rows of B
//! and C contiguous. For these the `gemm` crate spends as long packing its operands as it
//! does multiplying (MNIST CNN: 35-50 GFLOP/s against its 100 or more on large products);
//! here B is read in place, 8 rows of C by 32 columns at a time in sixteen 512-bit sums.
//!
//! Cranelift emits 128-bit vectors only, so this kernel is Rust compiled for AVX-512 and
//! chosen when the CPU has it; generated code reaches it through the same call as the
//! library's products.

/// Whether the product `m × k @ k × n` with these strides is one this kernel takes, on
/// this CPU.
pub fn takes(k: usize, b_cs: isize, c_cs: isize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        b_cs == 1 && c_cs == 1 && (1..=MAX_K).contains(&k) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (k, b_cs, c_cs);
        false
    }
}

/// The longest k it takes: beyond it the library's blocking for the caches pays off.
const MAX_K: usize = 256;

/// `c = a @ b`, or `c += a @ b` with `accumulate`, for row-contiguous B and C.
///
/// # Safety
/// The CPU has AVX-512F (`takes`), and the pointers and strides describe an m × k matrix
/// `a`, a k × n matrix `b` with column stride 1 and an m × n matrix `c` with column stride
/// 1 inside their buffers, `c` overlapping neither.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product(
    [m, n, k]: [usize; 3],
    a: *const f32,
    [a_rs, a_cs]: [isize; 2],
    b: *const f32,
    b_rs: isize,
    c: *mut f32,
    c_rs: isize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let operands = Operands { a, a_rs, a_cs, b, b_rs, c, c_rs, k, accumulate };
        // SAFETY: as the caller promises.
        unsafe { avx512::product(m, n, &operands) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, a, a_rs, a_cs, b, b_rs, c, c_rs, accumulate);
        unreachable!("`takes` is false off x86-64")
    }
}

/// Whether a sum of products over a batch whose rows of A and columns of B are contiguous
/// along k (a convolution's weight gradient) is one `dot_products` takes, on this CPU.
pub fn takes_dot_products(a_cs: usize, b_rs: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        a_cs == 1 && b_rs == 1 && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a_cs, b_rs);
        false
    }
}

/// `c = Σ over the batch of a_t @ b_t` where every element is a dot product of a row of
/// `a_t` and a column of `b_t`, both contiguous: 4 × 4 elements of C at a time, each a
/// 512-bit sum kept across the whole batch, so that nothing is packed and C is written
/// once.
///
/// # Safety
/// The CPU has AVX-512F (`takes_dot_products`), and for t below `batch` the m × k matrix
/// at `a + t·a_bs` (row stride `a_rs`, column stride 1) and the k × n matrix at
/// `b + t·b_bs` (row stride 1, column stride `b_cs`) lie inside their buffers, as does the
/// m × n matrix `c`, which overlaps neither.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_products(
    [m, n, k, batch]: [usize; 4],
    a: *const f32,
    [a_rs, a_bs]: [isize; 2],
    b: *const f32,
    [b_cs, b_bs]: [isize; 2],
    c: *mut f32,
    [c_rs, c_cs]: [isize; 2],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let operands = DotOperands { a, a_rs, a_bs, b, b_cs, b_bs, c, c_rs, c_cs, k, batch };
        // SAFETY: as the caller promises.
        unsafe { avx512::dot_products(m, n, &operands) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, batch, a, a_rs, a_bs, b, b_cs, b_bs, c, c_rs, c_cs);
        unreachable!("`takes_dot_products` is false off x86-64")
    }
}

#[derive(Clone, Copy)]
struct DotOperands {
    a: *const f32,
    a_rs: isize,
    a_bs: isize,
    b: *const f32,
    b_cs: isize,
    b_bs: isize,
    c: *mut f32,
    c_rs: isize,
    c_cs: isize,
    k: usize,
    batch: usize,
}

#[derive(Clone, Copy)]
struct Operands {
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    c: *mut f32,
    c_rs: isize,
    k: usize,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{DotOperands, Operands};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_products(m: usize, n: usize, o: &DotOperands) {
        macro_rules! tiles {
            ($i0:expr, $rows:expr, $($r:literal)*) => {
                for j0 in (0..n).step_by(4) {
                    let cols = (n - j0).min(4);
                    // SAFETY: rows i0.. and columns j0.. inside C, as the caller promises.
                    unsafe {
                        match ($rows, cols) {
                            $(($r, 1) => dot_tile::<$r, 1>(o, $i0, j0),
                              ($r, 2) => dot_tile::<$r, 2>(o, $i0, j0),
                              ($r, 3) => dot_tile::<$r, 3>(o, $i0, j0),)*
                            (r, _) => match r {
                                $($r => dot_tile::<$r, 4>(o, $i0, j0),)*
                                _ => unreachable!("at most four rows"),
                            },
                        }
                    }
                }
            };
        }
        for i0 in (0..m).step_by(4) {
            let rows = (m - i0).min(4);
            tiles!(i0, rows, 1 2 3 4);
        }
    }

    /// Elements (i0 .. i0 + R, j0 .. j0 + Q) of C: R·Q sums of sixteen lanes, over k in
    /// steps of sixteen (the last masked) and over the batch.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn dot_tile<const R: usize, const Q: usize>(o: &DotOperands, i0: usize, j0: usize) {
        let mut sums = [[_mm512_setzero_ps(); Q]; R];
        let tail = o.k % 16;
        let tail_mask: __mmask16 = if tail == 0 { 0 } else { (1u16 << tail) - 1 };
        // SAFETY (every access): rows of A and columns of B below m, n and k of each
        // matrix of the batch, as the caller promises; the mask keeps k in range.
        unsafe {
            for t in 0..o.batch {
                let a_rows: [*const f32; R] =
                    std::array::from_fn(|r| o.a.offset(t as isize * o.a_bs + (i0 + r) as isize * o.a_rs));
                let b_cols: [*const f32; Q] =
                    std::array::from_fn(|q| o.b.offset(t as isize * o.b_bs + (j0 + q) as isize * o.b_cs));
                let mut kk = 0;
                while kk + 16 <= o.k {
                    let xs: [__m512; R] = std::array::from_fn(|r| _mm512_loadu_ps(a_rows[r].add(kk)));
                    let ys: [__m512; Q] = std::array::from_fn(|q| _mm512_loadu_ps(b_cols[q].add(kk)));
                    for r in 0..R {
                        for q in 0..Q {
                            sums[r][q] = _mm512_fmadd_ps(xs[r], ys[q], sums[r][q]);
                        }
                    }
                    kk += 16;
                }
                if tail != 0 {
                    let xs: [__m512; R] = std::array::from_fn(|r| _mm512_maskz_loadu_ps(tail_mask, a_rows[r].add(kk)));
                    let ys: [__m512; Q] = std::array::from_fn(|q| _mm512_maskz_loadu_ps(tail_mask, b_cols[q].add(kk)));
                    for r in 0..R {
                        for q in 0..Q {
                            sums[r][q] = _mm512_fmadd_ps(xs[r], ys[q], sums[r][q]);
                        }
                    }
                }
            }
            for (r, row) in sums.iter().enumerate() {
                for (q, &sum) in row.iter().enumerate() {
                    let at = o.c.offset((i0 + r) as isize * o.c_rs + (j0 + q) as isize * o.c_cs);
                    *at = _mm512_reduce_add_ps(sum);
                }
            }
        }
    }

    const ROWS: usize = 8;
    const COLS: usize = 32;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(m: usize, n: usize, operands: &Operands) {
        // Column blocks outside: the k × 32 block of B a column block reads stays in the
        // first-level cache for every block of rows.
        for j0 in (0..n).step_by(COLS) {
            for i0 in (0..m).step_by(ROWS) {
                let cols = COLS.min(n - j0);
                // SAFETY: rows i0.. and columns j0..j0 + cols lie inside the matrices.
                unsafe {
                    match m - i0 {
                        1 => tile::<1>(operands, i0, j0, cols),
                        2 => tile::<2>(operands, i0, j0, cols),
                        3 => tile::<3>(operands, i0, j0, cols),
                        4 => tile::<4>(operands, i0, j0, cols),
                        5 => tile::<5>(operands, i0, j0, cols),
                        6 => tile::<6>(operands, i0, j0, cols),
                        7 => tile::<7>(operands, i0, j0, cols),
                        _ => tile::<ROWS>(operands, i0, j0, cols),
                    }
                }
            }
        }
    }

    /// Rows `i0 .. i0 + R` and columns `j0 .. j0 + cols` of C (`cols` at most 32), with
    /// masked loads and stores for a narrower last tile.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize>(o: &Operands, i0: usize, j0: usize, cols: usize) {
        let low: __mmask16 = if cols >= 16 { 0xffff } else { (1u16 << cols) - 1 };
        let high: __mmask16 = if cols >= 32 {
            0xffff
        } else if cols > 16 {
            (1u16 << (cols - 16)) - 1
        } else {
            0
        };
        let mut sums = [[_mm512_setzero_ps(); 2]; R];
        // SAFETY (every access below): element (i, kk) of A, (kk, j) of B and (i, j) of C
        // for i < m, kk < k and j < n, as the caller promises; the masks keep the columns
        // below n.
        unsafe {
            let a_rows: [*const f32; R] = std::array::from_fn(|r| o.a.offset((i0 + r) as isize * o.a_rs));
            for kk in 0..o.k {
                let b_row = o.b.offset(kk as isize * o.b_rs).add(j0);
                let b0 = _mm512_maskz_loadu_ps(low, b_row);
                let b1 = _mm512_maskz_loadu_ps(high, b_row.add(16));
                for r in 0..R {
                    let x = _mm512_set1_ps(*a_rows[r].offset(kk as isize * o.a_cs));
                    sums[r][0] = _mm512_fmadd_ps(x, b0, sums[r][0]);
                    sums[r][1] = _mm512_fmadd_ps(x, b1, sums[r][1]);
                }
            }
            for (r, [s0, s1]) in sums.into_iter().enumerate() {
                let row = o.c.offset((i0 + r) as isize * o.c_rs).add(j0);
                let (s0, s1) = if o.accumulate {
                    (
                        _mm512_add_ps(s0, _mm512_maskz_loadu_ps(low, row)),
                        _mm512_add_ps(s1, _mm512_maskz_loadu_ps(high, row.add(16))),
                    )
                } else {
                    (s0, s1)
                };
                _mm512_mask_storeu_ps(row, low, s0);
                _mm512_mask_storeu_ps(row.add(16), high, s1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums over a batch of products against plain sums, with every remainder of rows,
    /// columns and k (below, at and above a multiple of sixteen).
    #[test]
    fn dot_products_equal_the_plain_sums() {
        if !takes_dot_products(1, 1) {
            return;
        }
        for (m, n, k, batch) in
            [(1, 1, 1, 1), (72, 16, 196, 3), (9, 8, 784, 2), (5, 7, 16, 4), (4, 4, 33, 1), (3, 2, 15, 2)]
        {
            // a_t: m × k rows contiguous; b_t: k × n, columns contiguous (stored as n × k).
            let a: Vec<f32> = (0..batch * m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
            let b: Vec<f32> = (0..batch * n * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
            let mut c = vec![f32::NAN; m * n];
            // SAFETY: the CPU has AVX-512F and the shapes describe the vectors; C is written
            // transposed (row stride 1, column stride m), as a weight gradient is.
            unsafe {
                dot_products(
                    [m, n, k, batch],
                    a.as_ptr(),
                    [k as isize, (m * k) as isize],
                    b.as_ptr(),
                    [k as isize, (n * k) as isize],
                    c.as_mut_ptr(),
                    [1, m as isize],
                )
            };
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..batch)
                        .flat_map(|t| (0..k).map(move |kk| (t, kk)))
                        .map(|(t, kk)| f64::from(a[t * m * k + i * k + kk]) * f64::from(b[t * n * k + j * k + kk]))
                        .sum();
                    let got = c[i + j * m];
                    assert!(
                        (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{n}x{k}x{batch}: {got} against {want}"
                    );
                }
            }
        }
    }

    /// The kernel against a plain triple loop, over shapes with every remainder of rows
    /// and columns, strided A, and accumulation.
    #[test]
    fn products_equal_the_plain_sums() {
        if !takes(1, 1, 1) {
            return; // No AVX-512 here: the library computes these products.
        }
        for (m, n, k) in [(1, 1, 1), (8, 32, 9), (9, 33, 5), (16, 196, 72), (7, 15, 3), (3, 47, 256), (17, 64, 2)] {
            for (transposed_a, accumulate) in [(false, false), (true, false), (false, true)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
                let (a_rs, a_cs) = if transposed_a { (1, m as isize) } else { (k as isize, 1) };
                let mut c: Vec<f32> = (0..m * n).map(|i| i as f32 / 16.0).collect();
                let mut want = c.clone();
                for i in 0..m {
                    for j in 0..n {
                        let sum: f64 = (0..k)
                            .map(|kk| {
                                let x = a[(i as isize * a_rs + kk as isize * a_cs) as usize];
                                f64::from(x) * f64::from(b[kk * n + j])
                            })
                            .sum();
                        want[i * n + j] =
                            if accumulate { (f64::from(want[i * n + j]) + sum) as f32 } else { sum as f32 };
                    }
                }
                // SAFETY: the CPU has AVX-512F and the shapes describe the vectors.
                unsafe {
                    product(
                        [m, n, k],
                        a.as_ptr(),
                        [a_rs, a_cs],
                        b.as_ptr(),
                        n as isize,
                        c.as_mut_ptr(),
                        n as isize,
                        accumulate,
                    )
                };
                for (got, want) in c.iter().zip(&want) {
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{m}x{n}x{k}: {got} against {want}");
                }
            }
        }
    }
}
