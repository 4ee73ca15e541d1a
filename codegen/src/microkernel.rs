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
    use super::Operands;
    use std::arch::x86_64::*;

    const ROWS: usize = 8;
    const COLS: usize = 32;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(m: usize, n: usize, operands: &Operands) {
        for i0 in (0..m).step_by(ROWS) {
            for j0 in (0..n).step_by(COLS) {
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
