//! Matrix products: generated 4×8 tiles over packed panels of the right-hand matrix, calls
//! of the libraries for large products, and the elementwise epilogue run over each
//! product's rows.

use super::elementwise::number_loads;
use super::generator::Gen;
use super::{PANEL, library_block};
use crate::kernel::{Access, Combine, Expr, Matrix};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::Variable;

/// Rows of a matrix-product tile: four rows of two vectors are eight accumulators.
const TILE_ROWS: usize = 4;

/// The sizes of a matrix product.
#[derive(Clone, Copy, Debug)]
pub(super) struct Product {
    pub(super) batch: usize,
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) accumulate: bool,
}

/// Where a tile of a product starts.
struct Tile {
    i0: Value,
    rows: usize,
    a_start: Value,
    c_start: Value,
}

impl<'a, 'p> Gen<'a, 'p> {
    /// `c = a @ b` for each matrix of the batch, or their sum with `accumulate` (the first
    /// product is stored, the others added). Products of separate outputs split over the
    /// batch; a single product or a sum splits over blocks of rows. The epilogue runs over
    /// each product's rows right after they are computed.
    pub(super) fn matmul(&mut self, p: Product, a: &Matrix, b: &Matrix, c: &Matrix, epilogue: Option<&Expr>) {
        if p.batch == 0 {
            if p.accumulate {
                self.fill(c.buffer, 0.0);
            }
            return;
        }
        if p.m * p.n * p.k >= self.library_products {
            self.library_matmul(p, a, b, c, epilogue);
            return;
        }
        if p.batch > 1 && !p.accumulate {
            self.for_units(p.batch, &mut |g, index| {
                let all_rows = (g.iconst(0), g.iconst(p.m.div_ceil(TILE_ROWS)));
                g.matmul_rows(p, index, all_rows, a, b, c);
                if let Some(expr) = epilogue {
                    let rows = (g.iconst(0), g.iconst(p.m));
                    g.epilogue(expr, p.n, c, index, rows);
                }
            });
            return;
        }
        let blocks = self.unit_range(p.m.div_ceil(TILE_ROWS));
        let first = self.iconst(0);
        self.matmul_rows(Product { accumulate: false, ..p }, first, blocks, a, b, c);
        self.for_range(1, p.batch, 1, &mut |g, index| g.matmul_rows(p, index, blocks, a, b, c));
        if let Some(expr) = epilogue {
            let begin = self.b.ins().imul_imm_s(blocks.0, TILE_ROWS as i64);
            let end = {
                let end = self.b.ins().imul_imm_s(blocks.1, TILE_ROWS as i64);
                let m = self.iconst(p.m);
                self.b.ins().umin(end, m)
            };
            self.epilogue(expr, p.n, c, first, (begin, end));
        }
    }

    /// A product's epilogue over rows `rows` of matrix `index` of `c`, in place: each
    /// element replaced by the expression, which reads it as the product.
    fn epilogue(&mut self, expr: &Expr, n: usize, c: &Matrix, index: Value, rows: (Value, Value)) {
        let loads = expr.loads();
        // The output first, then the loads in order, as `loop_level` takes them: each over
        // the columns of one row, starting where that row starts.
        let mut accesses = vec![Access { buffer: c.buffer, offset: 0, strides: vec![c.col_stride] }];
        let mut placements = vec![(c.offset, c.batch_stride, c.row_stride)];
        for load in &loads {
            accesses.push(Access { buffer: load.buffer, offset: 0, strides: vec![load.strides[2]] });
            placements.push((load.offset, load.strides[0], load.strides[1]));
        }
        let bases: Vec<Value> =
            accesses.iter().map(|a| a.buffer).collect::<Vec<_>>().into_iter().map(|b| self.base(b)).collect();
        let matrix_starts: Vec<(Value, usize)> = placements
            .into_iter()
            .map(|(offset, batch_stride, row_stride)| {
                let offset = self.iconst(offset);
                (self.step(offset, index, batch_stride), row_stride)
            })
            .collect();
        let expr = number_loads(expr, &mut 0);
        self.for_dynamic(rows.0, rows.1, &mut |g, row| {
            let offsets = matrix_starts.iter().map(|&(start, row_stride)| g.step(start, row, row_stride)).collect();
            g.loop_level(&[n], &accesses, &bases, offsets, Vec::new(), &expr, Combine::Assign);
        });
    }

    /// Product `index` of the batch, for the row blocks `blocks` (of `TILE_ROWS` rows, the
    /// last one holding the rows that are left).
    fn matmul_rows(&mut self, p: Product, index: Value, blocks: (Value, Value), a: &Matrix, b: &Matrix, c: &Matrix) {
        let offsets = [a, b, c].map(|m| {
            let start = self.iconst(m.offset);
            self.step(start, index, m.batch_stride)
        });
        self.pack(p, b, offsets[1]);
        let full_blocks = p.m / TILE_ROWS;
        let full_end = {
            let full = self.iconst(full_blocks);
            self.b.ins().umin(blocks.1, full)
        };
        self.for_dynamic(blocks.0, full_end, &mut |g, block| {
            let i0 = g.b.ins().imul_imm_s(block, TILE_ROWS as i64);
            g.matmul_row_block(p, i0, TILE_ROWS, a, offsets[0], c, offsets[2]);
        });
        if !p.m.is_multiple_of(TILE_ROWS) {
            let has_rest = self.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, blocks.1, full_blocks as i64);
            self.when(has_rest, &mut |g| {
                g.for_range(full_blocks * TILE_ROWS, p.m, 1, &mut |g, i| {
                    g.matmul_row_block(p, i, 1, a, offsets[0], c, offsets[2])
                });
            });
        }
    }

    /// Each product of the batch by a call to the `gemm` crate. Separate outputs split
    /// over the batch; a single product or a sum splits over the rows or the columns of
    /// `c`, whichever are more, each call computing its slice (a sum's first product is
    /// stored, the others added).
    fn library_matmul(&mut self, p: Product, a: &Matrix, b: &Matrix, c: &Matrix, epilogue: Option<&Expr>) {
        let bases = [a, b, c].map(|m| self.base(m.buffer));
        if (p.accumulate || p.batch == 1)
            && epilogue.is_none()
            && crate::microkernel::takes_dot_products(a.col_stride, b.row_stride)
        {
            // A sum of products whose elements are dot products of contiguous rows and
            // columns (a convolution's weight gradient): one call for the whole batch, split
            // over the rows of C.
            let (first, end) = self.unit_range(p.m);
            let count = self.b.ins().isub(end, first);
            let mut args = vec![count, self.iconst(p.n), self.iconst(p.k), self.iconst(p.batch)];
            for (which, (matrix, &base)) in [a, b, c].into_iter().zip(&bases).enumerate() {
                let start = self.iconst(matrix.offset);
                // The slice of rows moves A and C.
                let start = if which == 1 { start } else { self.step(start, first, matrix.row_stride) };
                let start = self.checked(base, start, 1);
                args.push(self.address(base, start));
                let strides = match which {
                    0 => [matrix.row_stride, matrix.batch_stride],
                    1 => [matrix.col_stride, matrix.batch_stride],
                    _ => [matrix.row_stride, matrix.col_stride],
                };
                args.extend(strides.map(|s| self.iconst(s)));
            }
            let has_rows = self.b.ins().icmp(IntCC::UnsignedLessThan, first, end);
            let call = self.dot_products;
            self.when(has_rows, &mut |g| {
                g.b.ins().call(call, &args);
            });
            return;
        }
        if p.batch > 1 && !p.accumulate {
            self.for_units(p.batch, &mut |g, index| {
                let whole = (g.iconst(0), g.iconst(p.m));
                g.library_call(p, index, whole, true, bases, [a, b, c]);
                if let Some(expr) = epilogue {
                    g.epilogue(expr, p.n, c, index, whole);
                }
            });
            return;
        }
        // An epilogue runs over whole rows, so a product with one splits over its rows.
        let by_rows = p.m >= p.n || epilogue.is_some();
        let extent = if by_rows { p.m } else { p.n };
        // The units are blocks of rows (or columns), one call each, so that
        // every block is the same call on any number of threads: `gemm` chooses how to
        // block k by the shape it is given, and a call over another slice of C would sum
        // in another order.
        let block = library_block(extent);
        let (first_block, end_block) = self.unit_range(extent.div_ceil(block));
        let limit = self.iconst(extent);
        let block_start = |g: &mut Self, index: Value| {
            let start = g.b.ins().imul_imm_s(index, block as i64);
            g.b.ins().umin(start, limit)
        };
        self.for_dynamic(first_block, end_block, &mut |g, index| {
            let first = block_start(g, index);
            let next = g.b.ins().iadd_imm_s(index, 1);
            let slice = (first, block_start(g, next));
            g.for_range(0, p.batch, 1, &mut |g, index| g.library_call(p, index, slice, by_rows, bases, [a, b, c]));
        });
        if let Some(expr) = epilogue {
            let rows = (block_start(self, first_block), block_start(self, end_block));
            let first = self.iconst(0);
            self.epilogue(expr, p.n, c, first, rows);
        }
    }

    /// One call of `gemm` for product `index`, restricted to rows (or columns) `slice` of
    /// `c`; a sum adds into `c` after its first product.
    fn library_call(
        &mut self,
        p: Product,
        index: Value,
        slice: (Value, Value),
        by_rows: bool,
        bases: [Value; 3],
        [a, b, c]: [&Matrix; 3],
    ) {
        let (first, end) = slice;
        let count = self.b.ins().isub(end, first);
        let (m, n) = if by_rows { (count, self.iconst(p.n)) } else { (self.iconst(p.m), count) };
        let mut args = vec![m, n, self.iconst(p.k)];
        for (which, (matrix, &base)) in [a, b, c].into_iter().zip(&bases).enumerate() {
            let start = self.iconst(matrix.offset);
            let start = self.step(start, index, matrix.batch_stride);
            // Rows of the slice move A and C; columns move B and C.
            let moved = match (by_rows, which) {
                (true, 0) | (true, 2) => Some(matrix.row_stride),
                (false, 1) | (false, 2) => Some(matrix.col_stride),
                _ => None,
            };
            let start = match moved {
                Some(stride) => {
                    let shift = self.b.ins().imul_imm_s(first, stride as i64);
                    self.b.ins().iadd(start, shift)
                }
                None => start,
            };
            let start = self.checked(base, start, 1);
            args.push(self.address(base, start));
            args.push(self.iconst(matrix.row_stride));
            args.push(self.iconst(matrix.col_stride));
        }
        let accumulate = if p.accumulate {
            self.b.ins().icmp_imm_u(IntCC::NotEqual, index, 0)
        } else {
            self.b.ins().iconst(types::I8, 0)
        };
        args.push(self.b.ins().uextend(types::I32, accumulate));
        let gemm = self.gemm;
        self.b.ins().call(gemm, &args);
    }

    /// Packs B (starting at element `start` of its buffer) into the scratch area: panel
    /// `p` holds columns `8p ..` row after row, with zeros past the last column.
    fn pack(&mut self, p: Product, b: &Matrix, start: Value) {
        let scratch = self.scratch();
        let b_base = self.base(b.buffer);
        let (k, full_panels, edge) = (p.k, p.n / PANEL, p.n % PANEL);
        for (first_panel, panels, width) in [(0, full_panels, PANEL), (full_panels, usize::from(edge > 0), edge)] {
            if panels == 0 {
                continue;
            }
            self.for_range(first_panel, first_panel + panels, 1, &mut |g, panel| {
                g.for_range(0, k, 1, &mut |g, kk| {
                    let row = g.b.ins().imul_imm_s(panel, k as i64);
                    let row = g.b.ins().iadd(row, kk);
                    let dest = g.b.ins().imul_imm_s(row, PANEL as i64);
                    let source_row = g.step(start, kk, b.row_stride);
                    let column0 = g.b.ins().imul_imm_s(panel, PANEL as i64);
                    for j in 0..PANEL {
                        let value = if j < width {
                            let column = g.b.ins().iadd_imm_s(column0, j as i64);
                            let at = g.step(source_row, column, b.col_stride);
                            g.load(b_base, at)
                        } else {
                            g.fconst(0.0)
                        };
                        let at = g.b.ins().iadd_imm_s(dest, j as i64);
                        g.store(scratch, at, value);
                    }
                });
            });
        }
    }

    /// Rows `i0 .. i0 + rows` of the product, every panel.
    #[allow(clippy::too_many_arguments)]
    fn matmul_row_block(
        &mut self,
        p: Product,
        i0: Value,
        rows: usize,
        a: &Matrix,
        a_start: Value,
        c: &Matrix,
        c_start: Value,
    ) {
        let full_panels = p.n / PANEL;
        let edge = p.n % PANEL;
        let tile = Tile { i0, rows, a_start, c_start };
        self.for_range(0, full_panels, 1, &mut |g, panel| g.matmul_tile(p, &tile, panel, PANEL, a, c));
        if edge > 0 {
            let panel = self.iconst(full_panels);
            self.matmul_tile(p, &tile, panel, edge, a, c);
        }
    }

    /// One tile: `tile.rows` rows by the `width` valid columns of panel `panel`.
    fn matmul_tile(&mut self, p: Product, tile: &Tile, panel: Value, width: usize, a: &Matrix, c: &Matrix) {
        let scratch = self.scratch();
        let a_base = self.base(a.buffer);
        let c_base = self.base(c.buffer);
        let zero = {
            let z = self.fconst(0.0);
            self.b.ins().splat(types::F32X4, z)
        };
        let accumulators: Vec<[Variable; 2]> =
            (0..tile.rows).map(|_| [self.var(types::F32X4, zero), self.var(types::F32X4, zero)]).collect();
        // Where the tile's first row starts in A.
        let a_row0 = self.step(tile.a_start, tile.i0, a.row_stride);
        let panel_start = self.b.ins().imul_imm_s(panel, (p.k * PANEL) as i64);
        // The positions in the panel and in A's rows are carried from one step of k to the
        // next and advanced by their strides: computed from k instead, the code generator
        // recomputes each inside the loop with a multiplication. (Two steps of k per
        // iteration measured 15% slower than one.)
        // The tile's rows of A are read at constant offsets from the first row's position,
        // one index for all: an index per row kept five integers alive across the loop,
        // which the register allocator spilled to the stack.
        let b_at = self.var(types::I64, panel_start);
        let a_at = self.var(types::I64, a_row0);
        self.for_range(0, p.k, 1, &mut |g, _| {
            let at = g.b.use_var(b_at);
            let b0 = g.load_offset(scratch, at, 0, true);
            let b1 = g.load_offset(scratch, at, 4, true);
            let next = g.b.ins().iadd_imm_s(at, PANEL as i64);
            g.b.def_var(b_at, next);
            let row0 = g.b.use_var(a_at);
            let next = g.b.ins().iadd_imm_s(row0, a.col_stride as i64);
            g.b.def_var(a_at, next);
            for (r, acc) in accumulators.iter().enumerate() {
                let x = g.load_offset(a_base, row0, r * a.row_stride, false);
                let splat = g.b.ins().splat(types::F32X4, x);
                for (h, bv) in [b0, b1].into_iter().enumerate() {
                    let product = g.b.ins().fmul(splat, bv);
                    let old = g.b.use_var(acc[h]);
                    let sum = g.b.ins().fadd(old, product);
                    g.b.def_var(acc[h], sum);
                }
            }
        });
        let column0 = self.b.ins().imul_imm_s(panel, PANEL as i64);
        for (r, acc) in accumulators.iter().enumerate() {
            let i = self.b.ins().iadd_imm_s(tile.i0, r as i64);
            let row = self.step(tile.c_start, i, c.row_stride);
            for (h, &var) in acc.iter().enumerate() {
                let lanes = width.saturating_sub(4 * h).min(4);
                if lanes == 0 {
                    continue;
                }
                let v = self.b.use_var(var);
                let column = self.b.ins().iadd_imm_s(column0, (4 * h) as i64);
                if lanes == 4 && c.col_stride == 1 {
                    let at = self.b.ins().iadd(row, column);
                    let v = if p.accumulate {
                        let old = self.load_vector(c_base, at);
                        self.b.ins().fadd(old, v)
                    } else {
                        v
                    };
                    self.store_vector(c_base, at, v);
                } else {
                    for lane in 0..lanes {
                        let x = self.b.ins().extractlane(v, lane as u8);
                        let col = self.b.ins().iadd_imm_s(column, lane as i64);
                        let at = self.step(row, col, c.col_stride);
                        let x = if p.accumulate {
                            let old = self.load(c_base, at);
                            self.b.ins().fadd(old, x)
                        } else {
                            x
                        };
                        self.store(c_base, at, x);
                    }
                }
            }
        }
    }
}
