//! Row-wise kernels: softmax and log-softmax along an axis, and softmax cross-entropy
//! with its gradient written in the same pass over each row.

use super::generator::Gen;
use crate::kernel::BufferId;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};

impl<'a, 'p> Gen<'a, 'p> {
    /// The maximum of a line and the sum of `exp(x - max)` over it.
    fn line_max_and_total(&mut self, base: Value, start: Value, len: usize, stride: usize) -> (Value, Value) {
        let minus_infinity = self.fconst(f32::NEG_INFINITY);
        let max = self.var(types::F32, minus_infinity);
        self.for_range(0, len, 1, &mut |g, j| {
            let at = g.step(start, j, stride);
            let x = g.load(base, at);
            let old = g.b.use_var(max);
            let new = g.max(old, x);
            g.b.def_var(max, new);
        });
        let zero = self.fconst(0.0);
        let total = self.var(types::F32, zero);
        let max_value = self.b.use_var(max);
        self.for_range(0, len, 1, &mut |g, j| {
            let at = g.step(start, j, stride);
            let x = g.load(base, at);
            let shifted = g.b.ins().fsub(x, max_value);
            let e = g.call("nnc_expf", &[shifted]);
            let old = g.b.use_var(total);
            let new = g.b.ins().fadd(old, e);
            g.b.def_var(total, new);
        });
        let total = self.b.use_var(total);
        (max_value, total)
    }

    pub(super) fn softmax(
        &mut self,
        outer: usize,
        len: usize,
        inner: usize,
        input: BufferId,
        out: BufferId,
        log: bool,
    ) {
        let (x_base, y_base) = (self.base(input), self.base(out));
        self.for_units(outer, &mut |g, o| {
            g.for_range(0, inner, 1, &mut |g, i| {
                let start = g.b.ins().imul_imm_s(o, (len * inner) as i64);
                let start = g.b.ins().iadd(start, i);
                let (max, total) = g.line_max_and_total(x_base, start, len, inner);
                let log_total = {
                    let l = g.call("nnc_logf", &[total]);
                    g.b.ins().fadd(l, max)
                };
                g.for_range(0, len, 1, &mut |g, j| {
                    let at = g.step(start, j, inner);
                    let x = g.load(x_base, at);
                    let y = if log {
                        g.b.ins().fsub(x, log_total)
                    } else {
                        let shifted = g.b.ins().fsub(x, max);
                        let e = g.call("nnc_expf", &[shifted]);
                        g.b.ins().fdiv(e, total)
                    };
                    g.store(y_base, at, y);
                });
            });
        });
    }

    pub(super) fn softmax_cross_entropy(
        &mut self,
        rows: usize,
        classes: usize,
        logits: BufferId,
        labels: BufferId,
        out: BufferId,
        grad: Option<(BufferId, f32)>,
    ) {
        let (x_base, t_base, out_base) = (self.base(logits), self.base(labels), self.base(out));
        let grad = grad.map(|(g, scale)| (self.base(g), scale));
        let zero = self.fconst(0.0);
        let loss = self.var(types::F32, zero);
        self.for_range(0, rows, 1, &mut |g, r| {
            let start = g.b.ins().imul_imm_s(r, classes as i64);
            let (max, total) = g.line_max_and_total(x_base, start, classes, 1);
            let label = g.load(t_base, r);
            let label = g.b.ins().nearest(label);
            // A label outside the classes reads a class within them, as the reference does;
            // never memory outside the row.
            let class = g.b.ins().fcvt_to_uint_sat(types::I64, label);
            let classes_value = g.iconst(classes.max(1));
            let class = g.b.ins().urem(class, classes_value);
            let at = g.b.ins().iadd(start, class);
            let x = g.load(x_base, at);
            let l = g.call("nnc_logf", &[total]);
            let log_total = g.b.ins().fadd(l, max);
            let picked = g.b.ins().fsub(x, log_total);
            let old = g.b.use_var(loss);
            let new = g.b.ins().fsub(old, picked);
            g.b.def_var(loss, new);
            if let Some((grad_base, scale)) = grad {
                // As the unfused gradient computes it: the softmax, less 1 where the class
                // index equals the rounded label (none for a label outside the classes).
                let scale = g.fconst(scale);
                let one = g.fconst(1.0);
                let zero = g.fconst(0.0);
                g.for_range(0, classes, 1, &mut |g, j| {
                    let at = g.b.ins().iadd(start, j);
                    let x = g.load(x_base, at);
                    let shifted = g.b.ins().fsub(x, max);
                    let e = g.call("nnc_expf", &[shifted]);
                    let softmax = g.b.ins().fdiv(e, total);
                    let index = g.b.ins().fcvt_from_uint(types::F32, j);
                    let hit = g.b.ins().fcmp(FloatCC::Equal, index, label);
                    let one_hot = g.b.ins().select(hit, one, zero);
                    let difference = g.b.ins().fsub(softmax, one_hot);
                    let value = g.b.ins().fmul(scale, difference);
                    g.store(grad_base, at, value);
                });
            }
        });
        let total = self.b.use_var(loss);
        let scale = self.fconst(1.0 / rows.max(1) as f32);
        let mean = self.b.ins().fmul(total, scale);
        let at = self.iconst(0);
        self.store(out_base, at, mean);
    }
}
