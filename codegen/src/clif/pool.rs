//! Max and average pooling, forward and backward, with the epilogue a max-pooling
//! gradient runs over the windows it writes.

use super::elementwise::{Numbered, number_loads, vectorizable};
use super::generator::Gen;
use crate::kernel::{Access, BufferId, Combine, Expr, PoolMode, Window};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, Value, types};

impl<'a, 'p> Gen<'a, 'p> {
    /// `body(ho_index, wo_index, kh_index, kw_index, h, w)` for every position of every
    /// window whose input position is inside the input (padding reads nothing).
    fn windows(&mut self, w: &Window, body: &mut dyn FnMut(&mut Gen<'a, 'p>, [Value; 6])) {
        let (pad_h, pad_w) = (w.pad.0 as i64, w.pad.1 as i64);
        let (height, width) = (w.h as i64, w.w as i64);
        self.for_range(0, w.ho, 1, &mut |g, i| {
            g.for_range(0, w.wo, 1, &mut |g, j| {
                g.for_range(0, w.kernel.0, 1, &mut |g, kh| {
                    let h = g.b.ins().imul_imm_s(i, w.stride.0 as i64);
                    let h = g.b.ins().iadd(h, kh);
                    let h = g.b.ins().iadd_imm_s(h, -pad_h);
                    let h_ok = g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, h, height);
                    g.when(h_ok, &mut |g| {
                        g.for_range(0, w.kernel.1, 1, &mut |g, kw| {
                            let x = g.b.ins().imul_imm_s(j, w.stride.1 as i64);
                            let x = g.b.ins().iadd(x, kw);
                            let x = g.b.ins().iadd_imm_s(x, -pad_w);
                            let x_ok = g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, x, width);
                            g.when(x_ok, &mut |g| body(g, [i, j, kh, kw, h, x]));
                        });
                    });
                });
            });
        });
    }

    /// Element `((a * n1 + b) * n2 + c) * n3 + d` of a 4-D tensor.
    fn index4(&mut self, [a, b, c, d]: [Value; 4], [n1, n2, n3]: [usize; 3]) -> Value {
        let x = self.b.ins().imul_imm_s(a, n1 as i64);
        let x = self.b.ins().iadd(x, b);
        let x = self.b.ins().imul_imm_s(x, n2 as i64);
        let x = self.b.ins().iadd(x, c);
        let x = self.b.ins().imul_imm_s(x, n3 as i64);
        self.b.ins().iadd(x, d)
    }

    pub(super) fn maxpool(
        &mut self,
        w: &Window,
        input: BufferId,
        out: BufferId,
        mode: PoolMode,
        epilogue: Option<&Expr>,
    ) {
        let (x_base, out_base) = (self.base(input), self.base(out));
        let other_base = match mode {
            PoolMode::Grad(b) | PoolMode::Pick(b) => Some(self.base(b)),
            PoolMode::Forward => None,
        };
        let bases = PoolBases { x: x_base, out: out_base, other: other_base };
        let w = *w;
        // Windows of 2×2 at stride 2, the common case, run four windows at a time.
        let vector_columns = if w.kernel == (2, 2) && w.stride == (2, 2) { w.wo - w.wo % 4 } else { 0 };
        // Where the windows tile the input (no overlap, no rows or columns left over), each
        // window writes the cotangent of all its positions, and there is nothing to zero
        // first; otherwise the windows add into a zeroed plane.
        let tiled = w.tiles();
        let covered = tiled || (vector_columns == w.wo && w.h == 2 * w.ho && w.w == 2 * w.wo);
        // The epilogue's loads, output first, each with its stride along a row.
        let epilogue = epilogue.map(|expr| {
            let own = Access { buffer: out, offset: 0, strides: vec![w.c * w.h * w.w, w.h * w.w, w.w, 1] };
            let loads: Vec<Access> = [own].into_iter().chain(expr.loads().into_iter().cloned()).collect();
            let bases: Vec<Value> = loads.iter().map(|a| self.base(a.buffer)).collect();
            (number_loads(expr, &mut 0), loads, bases)
        });
        self.for_units(w.n * w.c, &mut |g, plane| {
            let epilogue = epilogue.as_ref().map(|(expr, loads, bases)| {
                // Where each access starts in this plane of example n and channel c.
                let n = g.b.ins().udiv_imm_u(plane, w.c as i64);
                let c = g.b.ins().urem_imm_u(plane, w.c as i64);
                let starts = loads
                    .iter()
                    .map(|a| {
                        let offset = g.iconst(a.offset);
                        let offset = g.step(offset, n, a.strides[0]);
                        g.step(offset, c, a.strides[1])
                    })
                    .collect();
                let along_rows = loads.iter().map(|a| Access { strides: vec![a.strides[3]], ..a.clone() }).collect();
                let row_strides = loads.iter().map(|a| a.strides[2]).collect();
                let like_output = loads.iter().map(|a| a.strides == loads[0].strides).collect();
                PoolEpilogue { expr, bases: bases.clone(), starts, along_rows, row_strides, like_output }
            });
            let epilogue = epilogue.as_ref();
            if matches!(mode, PoolMode::Grad(_)) && !covered {
                // The cotangent of this plane of the input, which only its windows reach.
                let start = g.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
                g.zero_run(out_base, start, w.h * w.w);
            }
            g.for_range(0, w.ho, 1, &mut |g, i| {
                g.for_range(0, vector_columns, 4, &mut |g, j| {
                    g.maxpool_four_windows(&w, [plane, i, j], bases, mode, epilogue)
                });
                // The windows left over: four again, overlapping those before, where writing a
                // window twice writes the same values (never when the gradient adds).
                let rewritable = !matches!(mode, PoolMode::Grad(_)) || tiled;
                if vector_columns > 0 && vector_columns < w.wo && rewritable {
                    let j = g.iconst(w.wo - 4);
                    g.maxpool_four_windows(&w, [plane, i, j], bases, mode, epilogue);
                } else {
                    g.for_range(vector_columns, w.wo, 1, &mut |g, j| {
                        g.maxpool_window(&w, [plane, i, j], bases, mode, tiled, epilogue)
                    });
                }
            });
        });
    }

    /// The window at output position `(plane, i, j)`; with `tiled`, the cotangent of every
    /// position of the window is written (0 but at its maximum), else added at the maximum.
    fn maxpool_window(
        &mut self,
        w: &Window,
        [plane, i, j]: [Value; 3],
        bases: PoolBases,
        mode: PoolMode,
        tiled: bool,
        epilogue: Option<&PoolEpilogue<'_>>,
    ) {
        // The first maximum of the window: its value and its index.
        let top_row = self.b.ins().imul_imm_s(i, w.stride.0 as i64);
        let left = self.b.ins().imul_imm_s(j, w.stride.1 as i64);
        let plane_start = self.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
        let first = self.b.ins().imul_imm_s(top_row, w.w as i64);
        let first = self.b.ins().iadd(first, left);
        let first = self.b.ins().iadd(first, plane_start);
        // The window's positions are unrolled: constant offsets from its corner.
        let mut best = self.fconst(f32::NEG_INFINITY);
        let mut best_at = first;
        for kh in 0..w.kernel.0 {
            for kw in 0..w.kernel.1 {
                let at = self.b.ins().iadd_imm_s(first, (kh * w.w + kw) as i64);
                let x = self.load(bases.x, at);
                let greater = self.b.ins().fcmp(FloatCC::GreaterThan, x, best);
                best = self.b.ins().select(greater, x, best);
                best_at = self.b.ins().select(greater, at, best_at);
            }
        }
        let window = self.pooled_index(w, plane, i, j);
        let at = best_at;
        match (mode, bases.other) {
            (PoolMode::Forward, _) => {
                let x = self.load(bases.x, at);
                self.store(bases.out, window, x);
            }
            (PoolMode::Grad(_), Some(grad)) if tiled => {
                let gv = self.load(grad, window);
                let zero = self.fconst(0.0);
                for kh in 0..w.kernel.0 {
                    for kw in 0..w.kernel.1 {
                        let position = self.b.ins().iadd_imm_s(first, (kh * w.w + kw) as i64);
                        let is_max = self.b.ins().icmp(IntCC::Equal, position, at);
                        let share = self.b.ins().select(is_max, gv, zero);
                        self.store(bases.out, position, share);
                        if let Some(epilogue) = epilogue {
                            let h = self.b.ins().imul_imm_s(i, w.stride.0 as i64);
                            let h = self.b.ins().iadd_imm_s(h, kh as i64);
                            let x = self.b.ins().imul_imm_s(j, w.stride.1 as i64);
                            let x = self.b.ins().iadd_imm_s(x, kw as i64);
                            self.pool_epilogue(epilogue, [h, x], position, false);
                        }
                    }
                }
            }
            (PoolMode::Grad(_), Some(grad)) => {
                let gv = self.load(grad, window);
                let old = self.load(bases.out, at);
                let new = self.b.ins().fadd(old, gv);
                self.store(bases.out, at, new);
            }
            (PoolMode::Pick(_), Some(other)) => {
                let x = self.load(other, at);
                self.store(bases.out, window, x);
            }
            _ => unreachable!("pooling modes with a second input have its base"),
        }
    }

    /// Element `(plane, i, j)` of the pooled tensor.
    fn pooled_index(&mut self, w: &Window, plane: Value, i: Value, j: Value) -> Value {
        let window = self.b.ins().imul_imm_s(plane, (w.ho * w.wo) as i64);
        let row = self.b.ins().imul_imm_s(i, w.wo as i64);
        let window = self.b.ins().iadd(window, row);
        self.b.ins().iadd(window, j)
    }

    /// The 2×2 windows at output positions `(plane, i, j .. j + 4)`, in lanes: the two input
    /// rows are read as four vectors and split into the windows' four corners, which are
    /// compared in the order of the scalar loop (so the first maximum wins, as there).
    fn maxpool_four_windows(
        &mut self,
        w: &Window,
        [plane, i, j]: [Value; 3],
        bases: PoolBases,
        mode: PoolMode,
        epilogue: Option<&PoolEpilogue<'_>>,
    ) {
        let plane_start = self.b.ins().imul_imm_s(plane, (w.h * w.w) as i64);
        let top = self.b.ins().imul_imm_s(i, (2 * w.w) as i64);
        let top = self.b.ins().iadd(top, plane_start);
        let left = self.b.ins().imul_imm_s(j, 2);
        let rows = {
            let first = self.b.ins().iadd(top, left);
            [first, self.b.ins().iadd_imm_s(first, w.w as i64)]
        };
        // Corners (0,0), (0,1), (1,0), (1,1) of the four windows, a vector each.
        let corners = |g: &mut Gen<'a, 'p>, base: Value| -> [Value; 4] {
            let mut out = Vec::with_capacity(4);
            for row in rows {
                let left_half = g.load_vector(base, row);
                let right = g.b.ins().iadd_imm_s(row, 4);
                let right_half = g.load_vector(base, right);
                out.push(g.shuffle_lanes(left_half, right_half, [0, 2, 4, 6]));
                out.push(g.shuffle_lanes(left_half, right_half, [1, 3, 5, 7]));
            }
            [out[0], out[1], out[2], out[3]]
        };
        let xs = corners(self, bases.x);
        let window = self.pooled_index(w, plane, i, j);
        let minus_infinity = {
            let x = self.fconst(f32::NEG_INFINITY);
            self.b.ins().splat(types::F32X4, x)
        };
        let mut best = minus_infinity;
        let mut greater = Vec::with_capacity(4);
        for &x in &xs {
            let beats = self.b.ins().fcmp(FloatCC::GreaterThan, x, best);
            let m = self.mask(beats);
            best = self.b.ins().bitselect(m, x, best);
            greater.push(beats);
        }
        // The corner each window takes: the last that beat the maximum so far, else the first.
        let later =
            |g: &mut Gen<'a, 'p>, from: usize| greater[from + 1..].iter().copied().reduce(|a, b| g.b.ins().bor(a, b));
        let mut winners = Vec::with_capacity(4);
        for (k, &beats) in greater.iter().enumerate() {
            let won = match (k, later(self, k)) {
                (0, Some(any_later)) => self.b.ins().bnot(any_later),
                (_, Some(any_later)) => self.b.ins().band_not(beats, any_later),
                (_, None) => beats,
            };
            winners.push(self.mask(won));
        }
        let pick = |g: &mut Gen<'a, 'p>, values: [Value; 4]| {
            (1..4).fold(values[0], |picked, k| g.b.ins().bitselect(winners[k], values[k], picked))
        };
        match (mode, bases.other) {
            (PoolMode::Forward, _) => {
                let value = pick(self, xs);
                self.store_vector(bases.out, window, value);
            }
            (PoolMode::Pick(_), Some(other)) => {
                let values = corners(self, other);
                let value = pick(self, values);
                self.store_vector(bases.out, window, value);
            }
            (PoolMode::Grad(_), Some(grad)) => {
                let cotangent = self.load_vector(grad, window);
                let zero = {
                    let z = self.fconst(0.0);
                    self.b.ins().splat(types::F32X4, z)
                };
                let shares: Vec<Value> =
                    winners.iter().map(|&won| self.b.ins().bitselect(won, cotangent, zero)).collect();
                // Back to two rows of eight input positions: corners interleaved.
                for (r, row) in rows.into_iter().enumerate() {
                    let (left_corner, right_corner) = (shares[2 * r], shares[2 * r + 1]);
                    let low = self.shuffle_lanes(left_corner, right_corner, [0, 4, 1, 5]);
                    let high = self.shuffle_lanes(left_corner, right_corner, [2, 6, 3, 7]);
                    self.store_vector(bases.out, row, low);
                    let right = self.b.ins().iadd_imm_s(row, 4);
                    self.store_vector(bases.out, right, high);
                    if let Some(epilogue) = epilogue {
                        let h = self.b.ins().imul_imm_s(i, 2);
                        let h = self.b.ins().iadd_imm_s(h, r as i64);
                        let x = self.b.ins().imul_imm_s(j, 2);
                        for (half, position) in [(0, row), (1, right)] {
                            let x = self.b.ins().iadd_imm_s(x, 4 * half);
                            self.pool_epilogue(epilogue, [h, x], position, true);
                        }
                    }
                }
            }
            _ => unreachable!("pooling modes with a second input have its base"),
        }
    }

    /// A pooling gradient's epilogue at input row `h`, column `x` of the plane (four
    /// columns from `x` with `vector`), which is element `position` of the output, in
    /// place: the element written is read back as the cotangent and replaced by the
    /// expression.
    fn pool_epilogue(&mut self, epilogue: &PoolEpilogue<'_>, [h, x]: [Value; 2], position: Value, vector: bool) {
        let lanes = if vector && vectorizable(epilogue.expr, &epilogue.along_rows, 0, Combine::Assign) {
            vec![(x, position, true)]
        } else if vector {
            (0..4)
                .map(|lane| (self.b.ins().iadd_imm_s(x, lane), self.b.ins().iadd_imm_s(position, lane), false))
                .collect()
        } else {
            vec![(x, position, false)]
        };
        for (x, position, vector) in lanes {
            // Accesses laid out as the output (the activation the derivative reads) are at
            // the output's position; others are placed from the row and column.
            let offsets: Vec<Value> = (0..epilogue.bases.len())
                .map(|k| {
                    if epilogue.like_output[k] {
                        return self.b.ins().iadd_imm_s(position, epilogue.along_rows[k].offset as i64);
                    }
                    let at = self.step(epilogue.starts[k], h, epilogue.row_strides[k]);
                    self.step(at, x, epilogue.along_rows[k].strides[0])
                })
                .collect();
            let bases = &epilogue.bases;
            let value = if vector {
                self.vector_expr(epilogue.expr, bases, &offsets, &epilogue.along_rows, 0, &[])
            } else {
                self.scalar_expr(epilogue.expr, bases, &offsets, &[])
            };
            self.store_lanes(vector, bases[0], offsets[0], value);
        }
    }

    /// Lanes of two f32x4 vectors: `lanes[k]` below 4 picks lane k of `a`, 4 and above lane
    /// k - 4 of `b`.
    fn shuffle_lanes(&mut self, a: Value, b: Value, lanes: [u8; 4]) -> Value {
        let bytes: Vec<u8> = lanes.iter().flat_map(|&lane| (0..4).map(move |byte| lane * 4 + byte)).collect();
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(bytes));
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let a = self.b.ins().bitcast(types::I8X16, little, a);
        let b = self.b.ins().bitcast(types::I8X16, little, b);
        let shuffled = self.b.ins().shuffle(a, b, mask);
        self.b.ins().bitcast(types::F32X4, little, shuffled)
    }

    pub(super) fn avgpool(&mut self, w: &Window, input: BufferId, out: BufferId, backward: bool) {
        let (x_base, out_base) = (self.base(input), self.base(out));
        let w = *w;
        let scale = 1.0 / (w.kernel.0 * w.kernel.1) as f32;
        let out_plane = if backward { w.h * w.w } else { w.ho * w.wo };
        self.for_units(w.n * w.c, &mut |g, plane| {
            let start = g.b.ins().imul_imm_s(plane, out_plane as i64);
            g.zero_run(out_base, start, out_plane);
            let zero = g.iconst(0);
            g.windows(&w, &mut |g, [i, j, _, _, h, x]| {
                let small = g.index4([zero, plane, i, j], [w.n * w.c, w.ho, w.wo]);
                let large = g.index4([zero, plane, h, x], [w.n * w.c, w.h, w.w]);
                let (from, to) = if backward { (small, large) } else { (large, small) };
                let v = g.load(x_base, from);
                let s = g.fconst(scale);
                let v = g.b.ins().fmul(v, s);
                let old = g.load(out_base, to);
                let new = g.b.ins().fadd(old, v);
                g.store(out_base, to, new);
            });
        });
    }
}

/// The addresses a pooling kernel reads and writes.
/// A pooling gradient's epilogue within one plane: per access (the output first), its base
/// address, where it starts in the plane, its stride from row to row, and the access with
/// its stride along a row alone.
struct PoolEpilogue<'e> {
    expr: &'e Numbered,
    bases: Vec<Value>,
    starts: Vec<Value>,
    along_rows: Vec<Access>,
    row_strides: Vec<usize>,
    /// Whether each access has the output's strides.
    like_output: Vec<bool>,
}

#[derive(Clone, Copy)]
struct PoolBases {
    x: Value,
    out: Value,
    /// The cotangent (`Grad`) or the values to pick (`Pick`).
    other: Option<Value>,
}
