//! The columns of a convolution (im2col) and their sum back into the image (col2im),
//! which turn a convolution into matrix products.

use super::generator::Gen;
use crate::kernel::{BufferId, Window};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};

impl<'a, 'p> Gen<'a, 'p> {
    /// The columns of a convolution's input (`cols[n][(c, kh, kw)][(i, j)]`, 0 in the
    /// padding), or with `backward` the columns added back into the image.
    ///
    /// The kernel positions are unrolled, so that for each row of the output the columns
    /// that fall inside the image form one run known when compiling: a vector copy for
    /// stride 1, with constant stretches of padding on either side.
    pub(super) fn im2col(&mut self, w: &Window, image: BufferId, cols: BufferId, backward: bool) {
        let (image_base, cols_base) = (self.base(image), self.base(cols));
        let w = *w;
        let p = w.ho * w.wo;
        // Each plane of the image meets its own rows of columns, so planes can be split.
        self.for_units(w.n * w.c, &mut |g, plane| {
            let plane_start = g.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
            if backward && w.stride == (1, 1) {
                g.col2im_gather(&w, plane, plane_start, image_base, cols_base);
                return;
            }
            if backward {
                g.zero_run(image_base, plane_start, w.h * w.w);
            } else if w.stride == (1, 1) && w.wo == w.w {
                g.im2col_same_width(&w, plane, plane_start, image_base, cols_base);
                return;
            }
            for kh in 0..w.kernel.0 {
                for kw in 0..w.kernel.1 {
                    // Row (plane, kh, kw) of the columns.
                    let row = g.b.ins().imul_imm_s(plane, (w.kernel.0 * w.kernel.1) as i64);
                    let row = g.b.ins().iadd_imm_s(row, (kh * w.kernel.1 + kw) as i64);
                    let row_start = g.b.ins().imul_imm_s(row, p as i64);
                    // Output columns j whose input column j*s + kw - pad is inside the image.
                    let first = (0..w.wo).find(|&j| j * w.stride.1 + kw >= w.pad.1).unwrap_or(w.wo);
                    let end = (first..w.wo).find(|&j| j * w.stride.1 + kw >= w.pad.1 + w.w).unwrap_or(w.wo);
                    g.for_range(0, w.ho, 1, &mut |g, i| {
                        let h = g.b.ins().imul_imm_s(i, w.stride.0 as i64);
                        let h = g.b.ins().iadd_imm_s(h, kh as i64 - w.pad.0 as i64);
                        let h_ok = g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, h, w.h as i64);
                        let out_line = g.b.ins().imul_imm_s(i, w.wo as i64);
                        let out_line = g.b.ins().iadd(row_start, out_line);
                        let inside = g.b.create_block();
                        let outside = g.b.create_block();
                        let after = g.b.create_block();
                        g.b.ins().brif(h_ok, inside, &[], outside, &[]);
                        g.b.switch_to_block(inside);
                        g.b.seal_block(inside);
                        {
                            let line = g.b.ins().imul_imm_s(h, w.w as i64);
                            let line = g.b.ins().iadd(plane_start, line);
                            let source = g.b.ins().iadd_imm_s(line, (first * w.stride.1 + kw) as i64 - w.pad.1 as i64);
                            let dest = g.b.ins().iadd_imm_s(out_line, first as i64);
                            let run = Run { len: end - first, source_stride: w.stride.1 };
                            g.move_run(image_base, source, cols_base, dest, run, backward);
                            if !backward {
                                g.zero_run(cols_base, out_line, first);
                                let tail = g.b.ins().iadd_imm_s(out_line, end as i64);
                                g.zero_run(cols_base, tail, w.wo - end);
                            }
                        }
                        g.b.ins().jump(after, &[]);
                        g.b.switch_to_block(outside);
                        g.b.seal_block(outside);
                        if !backward {
                            g.zero_run(cols_base, out_line, w.wo);
                        }
                        g.b.ins().jump(after, &[]);
                        g.b.switch_to_block(after);
                        g.b.seal_block(after);
                    });
                }
            }
        });
    }

    /// The columns of one plane of a convolution of stride 1 whose output rows are as wide
    /// as the input's. Then output element q of a kernel position reads input element
    /// `q + delta` for one constant `delta`, so each row of columns is one long copy (rather
    /// than a short run per output row, whose loop overhead dominated), after which the
    /// columns that fall into the horizontal padding, which the copy filled from the
    /// neighbouring rows, are set to 0.
    fn im2col_same_width(&mut self, w: &Window, plane: Value, plane_start: Value, image_base: Value, cols_base: Value) {
        let (p, plane_len) = (w.ho * w.wo, w.h * w.w);
        for kh in 0..w.kernel.0 {
            for kw in 0..w.kernel.1 {
                // Row (plane, kh, kw) of the columns.
                let plane_rows = self.b.ins().imul_imm_s(plane, (w.kernel.0 * w.kernel.1 * p) as i64);
                let row = self.b.ins().iadd_imm_s(plane_rows, ((kh * w.kernel.1 + kw) * p) as i64);
                let delta = (kh as i64 - w.pad.0 as i64) * w.w as i64 + (kw as i64 - w.pad.1 as i64);
                // Output rows whose input row is inside the image.
                let i0 = w.pad.0.saturating_sub(kh).min(w.ho);
                let i1 = (w.h + w.pad.0).saturating_sub(kh).min(w.ho).max(i0);
                self.zero_run(cols_base, row, i0 * w.wo);
                let after = self.b.ins().iadd_imm_s(row, (i1 * w.wo) as i64);
                self.zero_run(cols_base, after, (w.ho - i1) * w.wo);
                // The copy, of the elements whose input lies inside the plane.
                let first = (i0 * w.wo) as i64;
                let first = first.max(-delta);
                let end = ((i1 * w.wo) as i64).min(plane_len as i64 - delta).max(first);
                let source = self.b.ins().iadd_imm_s(plane_start, first + delta);
                let dest = self.b.ins().iadd_imm_s(row, first);
                let run = Run { len: (end - first) as usize, source_stride: 1 };
                self.move_run(image_base, source, cols_base, dest, run, false);
                // The columns in the horizontal padding, on every copied row.
                let j_low = w.pad.1.saturating_sub(kw).min(w.wo);
                let j_high = (w.w + w.pad.1).saturating_sub(kw).min(w.wo).max(j_low);
                let padding: Vec<usize> = (0..j_low).chain(j_high..w.wo).collect();
                if padding.is_empty() || i1 == i0 {
                    continue;
                }
                let zero = self.fconst(0.0);
                let rows_start = self.b.ins().iadd_imm_s(row, (i0 * w.wo) as i64);
                self.for_range(0, i1 - i0, 1, &mut |g, i| {
                    let line = g.step(rows_start, i, w.wo);
                    for &j in &padding {
                        let at = g.b.ins().iadd_imm_s(line, j as i64);
                        g.store(cols_base, at, zero);
                    }
                });
            }
        }
    }

    /// col2im of one plane of a stride-1 convolution as a gather: each image element is the
    /// sum of the columns' elements that came from it, in kernel order, written once. (As
    /// a scatter, each kernel position added a short run into the image: nine passes over
    /// it, each reading and writing it.) The image is cut into blocks of rows and of
    /// columns within which the same kernel positions reach inside the output, so that the
    /// loops need no test per element.
    fn col2im_gather(&mut self, w: &Window, plane: Value, plane_start: Value, image_base: Value, cols_base: Value) {
        let p = w.ho * w.wo;
        // The kernel rows (or columns) whose output position is inside the output, for
        // input row (or column) `x`: output position `x + pad - k`.
        let reaching = |x: usize, pad: usize, kernel: usize, out: usize| -> Vec<usize> {
            (0..kernel).filter(|&k| (x + pad).checked_sub(k).is_some_and(|o| o < out)).collect()
        };
        // Consecutive positions that the same kernel positions reach.
        let blocks = |len: usize, pad: usize, kernel: usize, out: usize| -> Vec<(usize, usize, Vec<usize>)> {
            let mut blocks: Vec<(usize, usize, Vec<usize>)> = Vec::new();
            for x in 0..len {
                let ks = reaching(x, pad, kernel, out);
                match blocks.last_mut() {
                    Some((_, end, last)) if *last == ks => *end = x + 1,
                    _ => blocks.push((x, x + 1, ks)),
                }
            }
            blocks
        };
        let row_blocks = blocks(w.h, w.pad.0, w.kernel.0, w.ho);
        let column_blocks = blocks(w.w, w.pad.1, w.kernel.1, w.wo);
        let plane_rows = self.b.ins().imul_imm_s(plane, (w.kernel.0 * w.kernel.1 * p) as i64);
        for (h0, h1, khs) in &row_blocks {
            for (x0, x1, kws) in &column_blocks {
                // Per kernel position (kh, kw), the element of the columns that image
                // element (h, x) came from is `start + h * wo + x`.
                let starts: Vec<i64> = khs
                    .iter()
                    .flat_map(|&kh| kws.iter().map(move |&kw| (kh, kw)))
                    .map(|(kh, kw)| {
                        ((kh * w.kernel.1 + kw) * p) as i64
                            + (w.pad.0 as i64 - kh as i64) * w.wo as i64
                            + (w.pad.1 as i64 - kw as i64)
                    })
                    .collect();
                let width = x1 - x0;
                let vector_end = x0 + width - width % 4;
                self.for_range(*h0, *h1, 1, &mut |g, h| {
                    let image_row = g.step(plane_start, h, w.w);
                    let cols_row = g.step(plane_rows, h, w.wo);
                    for (begin, end, step) in [(*x0, vector_end, 4), (vector_end, *x1, 1)] {
                        g.for_range(begin, end, step, &mut |g, x| {
                            let vector = step == 4;
                            let mut total = None;
                            for &start in &starts {
                                let at = g.b.ins().iadd(cols_row, x);
                                let at = g.b.ins().iadd_imm_s(at, start);
                                let v = g.load_lanes(vector, cols_base, at);
                                total = Some(match total {
                                    Some(t) => g.b.ins().fadd(t, v),
                                    None => v,
                                });
                            }
                            let value = total.unwrap_or_else(|| {
                                let zero = g.fconst(0.0);
                                if vector { g.b.ins().splat(types::F32X4, zero) } else { zero }
                            });
                            let to = g.b.ins().iadd(image_row, x);
                            g.store_lanes(vector, image_base, to, value);
                        });
                    }
                });
            }
        }
    }

    /// Moves a run between an image row and a row of columns, four at a time where the
    /// image side is contiguous: `cols[c + j] = image[i + j * stride]`, or with `add`,
    /// `image[i + j * stride] += cols[c + j]` (col2im).
    fn move_run(&mut self, image_base: Value, image: Value, cols_base: Value, cols: Value, run: Run, add: bool) {
        let vector_end = if run.source_stride == 1 { run.len - run.len % 4 } else { 0 };
        for (start, end, step) in [(0, vector_end, 4), (vector_end, run.len, 1)] {
            self.for_range(start, end, step, &mut |g, j| {
                let image_at = g.step(image, j, run.source_stride);
                let cols_at = g.b.ins().iadd(cols, j);
                let vector = step == 4;
                if add {
                    let v = g.load_lanes(vector, cols_base, cols_at);
                    let old = g.load_lanes(vector, image_base, image_at);
                    let sum = g.b.ins().fadd(old, v);
                    g.store_lanes(vector, image_base, image_at, sum);
                } else {
                    let v = g.load_lanes(vector, image_base, image_at);
                    g.store_lanes(vector, cols_base, cols_at, v);
                }
            });
        }
    }
}

/// A run of elements copied between an image row and a row of columns.
#[derive(Clone, Copy)]
struct Run {
    len: usize,
    /// The step between the image elements (the convolution's stride).
    source_stride: usize,
}
