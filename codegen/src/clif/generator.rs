//! The code generator of one kernel's function (`Gen`) and its basic helpers: buffer
//! addresses, loads and stores (checked when asked), loops, constants, the maximum as the
//! reference takes it, calls, and the dispatch of a kernel to the code of its kind.

use super::matmul::Product;
use super::scratch_len;
use crate::kernel::{BufferId, Kernel, Program};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{FuncRef, InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::HashMap;

pub(super) struct Gen<'a, 'p> {
    pub(super) b: FunctionBuilder<'a>,
    pub(super) table: Value,
    /// This call's space for packed matrices.
    pub(super) scratch: Value,
    /// The function's range of units, until the loop that splits the kernel takes it.
    pub(super) split: Option<(Value, Value)>,
    /// The units that loop runs over (1 while none took the range).
    pub(super) units: usize,
    pub(super) pointer: types::Type,
    pub(super) math: HashMap<&'static str, FuncRef>,
    pub(super) gemm: FuncRef,
    /// `nnc_dot_products`, the AVX-512 sums of products over a batch.
    pub(super) dot_products: FuncRef,
    /// `nnc_out_of_bounds`, when accesses are checked.
    pub(super) bounds: Option<FuncRef>,
    pub(super) kernel_index: usize,
    pub(super) library_products: usize,
    /// Buffer addresses loaded in the kernel's first block.
    pub(super) bases: HashMap<usize, Value>,
    /// The buffer (the scratch area counting as buffer `buffers.len()`) and length in
    /// floats behind each base address, for bounds checks.
    pub(super) lengths: HashMap<Value, (usize, usize)>,
    pub(super) program: &'p Program,
}

/// A loop body: gets the generator and the loop index.
type Body<'b, 'a, 'p> = &'b mut dyn FnMut(&mut Gen<'a, 'p>, Value);

impl<'a, 'p> Gen<'a, 'p> {
    pub(super) fn base(&mut self, buffer: BufferId) -> Value {
        if let Some(&v) = self.bases.get(&buffer.0) {
            return v;
        }
        let v =
            self.b.ins().load(self.pointer, MemFlagsData::trusted().with_readonly(), self.table, (buffer.0 * 8) as i32);
        self.bases.insert(buffer.0, v);
        self.lengths.insert(v, (buffer.0, self.program.buffer(buffer).len));
        v
    }

    pub(super) fn scratch(&mut self) -> Value {
        let v = self.scratch;
        self.lengths.insert(v, (self.program.buffers.len(), scratch_len(self.program)));
        v
    }

    /// The range of units this call computes when the kernel splits into `units` parts;
    /// the whole `0..units` for a loop after the first that asks (the first took the range).
    pub(super) fn unit_range(&mut self, units: usize) -> (Value, Value) {
        match self.split.take() {
            Some(range) if units > 1 => {
                self.units = units;
                range
            }
            _ => (self.iconst(0), self.iconst(units)),
        }
    }

    /// `for i in begin..end { body(i) }` with bounds known when running.
    pub(super) fn for_dynamic(&mut self, begin: Value, end: Value, body: Body<'_, 'a, 'p>) {
        let header = self.b.create_block();
        let inside = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        self.b.ins().jump(header, &[begin.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, i, end);
        self.b.ins().brif(more, inside, &[], exit, &[]);
        self.b.switch_to_block(inside);
        self.b.seal_block(inside);
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().jump(header, &[next.into()]);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    /// `for i in 0..n { body(i) }`, the loop that splits the kernel into `n` units when it
    /// is the first to ask.
    pub(super) fn for_units(&mut self, n: usize, body: Body<'_, 'a, 'p>) {
        if self.split.is_some() && n > 1 {
            let (begin, end) = self.unit_range(n);
            self.for_dynamic(begin, end, body);
        } else {
            self.for_range(0, n, 1, body);
        }
    }

    pub(super) fn iconst(&mut self, n: usize) -> Value {
        self.b.ins().iconst(types::I64, n as i64)
    }

    pub(super) fn fconst(&mut self, x: f32) -> Value {
        self.b.ins().f32const(x)
    }

    /// The address of element `index` (an i64 value) of a buffer.
    pub(super) fn address(&mut self, base: Value, index: Value) -> Value {
        let bytes = self.b.ins().ishl_imm_u(index, 2);
        self.b.ins().iadd(base, bytes)
    }

    /// `index`, or with bounds checks, `index` when `lanes` elements from it lie inside
    /// the buffer at `base` and 0 (after reporting) when they do not.
    pub(super) fn checked(&mut self, base: Value, index: Value, lanes: usize) -> Value {
        let (Some(report_fn), Some(&(buffer, len))) = (self.bounds, self.lengths.get(&base)) else {
            return index;
        };
        let inside = if len >= lanes {
            self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, index, (len - lanes + 1) as i64)
        } else {
            self.b.ins().iconst(types::I8, 0)
        };
        let outside = self.b.create_block();
        let after = self.b.create_block();
        self.b.append_block_param(after, types::I64);
        self.b.ins().brif(inside, after, &[index.into()], outside, &[]);
        self.b.switch_to_block(outside);
        self.b.seal_block(outside);
        let report = self.b.ins().load(
            self.pointer,
            MemFlagsData::trusted().with_readonly(),
            self.table,
            (self.program.buffers.len() * 8) as i32,
        );
        let kernel = self.iconst(self.kernel_index);
        let buffer = self.iconst(buffer);
        self.b.ins().call(report_fn, &[report, kernel, buffer, index]);
        let zero = self.iconst(0);
        self.b.ins().jump(after, &[zero.into()]);
        self.b.switch_to_block(after);
        self.b.seal_block(after);
        self.b.block_params(after)[0]
    }

    pub(super) fn load(&mut self, base: Value, index: Value) -> Value {
        let index = self.checked(base, index, 1);
        let at = self.address(base, index);
        self.b.ins().load(types::F32, MemFlagsData::trusted(), at, 0)
    }

    pub(super) fn store(&mut self, base: Value, index: Value, value: Value) {
        let index = self.checked(base, index, 1);
        let at = self.address(base, index);
        self.b.ins().store(MemFlagsData::trusted(), value, at, 0);
    }

    /// Element `index + offset` of the buffer at `base`, with `offset` a constant: the
    /// offset goes into the instruction, so that loads at several offsets from one index
    /// share its address arithmetic (and the registers it needs).
    pub(super) fn load_offset(&mut self, base: Value, index: Value, offset: usize, vector: bool) -> Value {
        let ty = if vector { types::F32X4 } else { types::F32 };
        let flags = if vector { MemFlagsData::new().with_notrap() } else { MemFlagsData::trusted() };
        match i32::try_from(offset * 4) {
            Ok(bytes) if self.bounds.is_none() => {
                let at = self.address(base, index);
                self.b.ins().load(ty, flags, at, bytes)
            }
            _ => {
                let index = self.b.ins().iadd_imm_s(index, offset as i64);
                let index = self.checked(base, index, if vector { 4 } else { 1 });
                let at = self.address(base, index);
                self.b.ins().load(ty, flags, at, 0)
            }
        }
    }

    // Vectors are read and written at any 4-byte boundary: buffers are f32 slices.
    pub(super) fn load_vector(&mut self, base: Value, index: Value) -> Value {
        let index = self.checked(base, index, 4);
        let at = self.address(base, index);
        self.b.ins().load(types::F32X4, MemFlagsData::new().with_notrap(), at, 0)
    }

    pub(super) fn store_vector(&mut self, base: Value, index: Value, value: Value) {
        let index = self.checked(base, index, 4);
        let at = self.address(base, index);
        self.b.ins().store(MemFlagsData::new().with_notrap(), value, at, 0);
    }

    /// Four lanes or one value.
    pub(super) fn load_lanes(&mut self, vector: bool, base: Value, index: Value) -> Value {
        if vector { self.load_vector(base, index) } else { self.load(base, index) }
    }

    pub(super) fn store_lanes(&mut self, vector: bool, base: Value, index: Value, value: Value) {
        if vector { self.store_vector(base, index, value) } else { self.store(base, index, value) }
    }

    /// `start + index * stride` for i64 values and a constant stride.
    pub(super) fn step(&mut self, start: Value, index: Value, stride: usize) -> Value {
        match stride {
            0 => start,
            1 => self.b.ins().iadd(start, index),
            _ => {
                let scaled = self.b.ins().imul_imm_s(index, stride as i64);
                self.b.ins().iadd(start, scaled)
            }
        }
    }

    /// `for i in (start..end).step_by(step) { body(i) }` with constant bounds.
    pub(super) fn for_range(&mut self, start: usize, end: usize, step: usize, body: Body<'_, 'a, 'p>) {
        if start >= end {
            return;
        }
        if end - start <= step {
            let i = self.iconst(start);
            body(self, i);
            return;
        }
        // The loop runs at least twice, so it tests at its end: one branch per iteration
        // instead of a jump back to a test at the top.
        let inside = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(inside, types::I64);
        let first = self.iconst(start);
        self.b.ins().jump(inside, &[first.into()]);
        self.b.switch_to_block(inside);
        let i = self.b.block_params(inside)[0];
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        let more = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, next, end as i64);
        self.b.ins().brif(more, inside, &[next.into()], exit, &[]);
        self.b.seal_block(inside);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    /// Runs `body` only when `condition` (an i8 truth value) holds.
    pub(super) fn when(&mut self, condition: Value, body: &mut dyn FnMut(&mut Gen<'a, 'p>)) {
        let then = self.b.create_block();
        let after = self.b.create_block();
        self.b.ins().brif(condition, then, &[], after, &[]);
        self.b.switch_to_block(then);
        self.b.seal_block(then);
        body(self);
        self.b.ins().jump(after, &[]);
        self.b.switch_to_block(after);
        self.b.seal_block(after);
    }

    pub(super) fn var(&mut self, ty: types::Type, initial: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, initial);
        v
    }

    pub(super) fn fill(&mut self, buffer: BufferId, value: f32) {
        let len = self.program.buffer(buffer).len;
        let base = self.base(buffer);
        let vector_end = len - len % 4;
        let splat = {
            let x = self.fconst(value);
            self.b.ins().splat(types::F32X4, x)
        };
        self.for_range(0, vector_end, 4, &mut |g, i| g.store_vector(base, i, splat));
        let x = self.fconst(value);
        self.for_range(vector_end, len, 1, &mut |g, i| g.store(base, i, x));
    }

    pub(super) fn kernel(&mut self, kernel: &Kernel) {
        // Every address the kernel needs, loaded where they dominate all of its loops.
        let (reads, writes) = kernel.buffers();
        for b in reads.into_iter().chain(writes) {
            self.base(b);
        }
        match kernel {
            Kernel::Loop { shape, out, expr, combine } => self.loop_kernel(shape, out, expr, *combine),
            Kernel::MatMul { batch, m, n, k, a, b, c, accumulate, epilogue } => {
                let p = Product { batch: *batch, m: *m, n: *n, k: *k, accumulate: *accumulate };
                self.matmul(p, a, b, c, epilogue.as_ref())
            }
            Kernel::Im2Col { window, input, out } => self.im2col(window, *input, *out, false),
            Kernel::Col2Im { window, input, out } => self.im2col(window, *out, *input, true),
            Kernel::Softmax { outer, len, inner, input, out, log } => {
                self.softmax(*outer, *len, *inner, *input, *out, *log)
            }
            Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad } => {
                self.softmax_cross_entropy(*rows, *classes, *logits, *labels, *out, *grad)
            }
            Kernel::MaxPool { window, input, out, mode, epilogue } => {
                self.maxpool(window, *input, *out, *mode, epilogue.as_ref())
            }
            Kernel::AvgPool { window, input, out, backward } => self.avgpool(window, *input, *out, *backward),
        }
    }

    /// The larger of two values, as the reference takes it (`f64::max` ignores a NaN).
    pub(super) fn max(&mut self, a: Value, b: Value) -> Value {
        self.extreme(FloatCC::GreaterThan, a, b)
    }

    /// `b` where it compares `beats` against `a` or where `a` is NaN, else `a`: the maximum
    /// or minimum as `f64::max` and `f64::min` take them, for scalars or f32x4 lanes.
    pub(super) fn extreme(&mut self, beats: FloatCC, a: Value, b: Value) -> Value {
        let better = self.b.ins().fcmp(beats, b, a);
        let a_nan = self.b.ins().fcmp(FloatCC::Unordered, a, a);
        let take_b = self.b.ins().bor(better, a_nan);
        if self.b.func.dfg.value_type(a).is_vector() {
            let mask = self.mask(take_b);
            self.b.ins().bitselect(mask, b, a)
        } else {
            self.b.ins().select(take_b, b, a)
        }
    }

    pub(super) fn call(&mut self, name: &'static str, args: &[Value]) -> Value {
        let f = self.math[name];
        let call = self.b.ins().call(f, args);
        self.b.inst_results(call)[0]
    }

    /// A lane mask of a vector comparison (i32x4) as f32x4 bits, for `bitselect`.
    pub(super) fn mask(&mut self, mask: Value) -> Value {
        self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), mask)
    }

    /// `dest[0..len] = 0`.
    pub(super) fn zero_run(&mut self, base: Value, dest: Value, len: usize) {
        let zero = self.fconst(0.0);
        let zeros = self.b.ins().splat(types::F32X4, zero);
        let vector_end = len - len % 4;
        self.for_range(0, vector_end, 4, &mut |g, j| {
            let to = g.b.ins().iadd(dest, j);
            g.store_vector(base, to, zeros);
        });
        self.for_range(vector_end, len, 1, &mut |g, j| {
            let to = g.b.ins().iadd(dest, j);
            g.store(base, to, zero);
        });
    }
}
