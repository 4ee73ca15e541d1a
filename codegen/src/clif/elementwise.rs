//! Elementwise loops and reductions: loop nests over strided accesses with their axes
//! merged, the scalar and four-lane forms of an expression, and how a value is combined
//! into the output.

use super::generator::Gen;
use super::ops;
use crate::kernel::{Access, Binary, Combine, Expr, Unary};
use cranelift_codegen::ir::{InstBuilder, Value, types};

impl<'a, 'p> Gen<'a, 'p> {
    pub(super) fn loop_kernel(&mut self, shape: &[usize], out: &Access, expr: &Expr, combine: Combine) {
        let (shape, accesses) = canonical(shape, out, expr);
        match combine {
            Combine::Assign => {}
            Combine::Add => self.fill(out.buffer, 0.0),
            Combine::Max => self.fill(out.buffer, f32::NEG_INFINITY),
        }
        if shape.contains(&0) {
            return;
        }
        let offsets: Vec<Value> =
            accesses.iter().map(|a| a.offset).collect::<Vec<_>>().into_iter().map(|o| self.iconst(o)).collect();
        let bases: Vec<Value> =
            accesses.iter().map(|a| a.buffer).collect::<Vec<_>>().into_iter().map(|b| self.base(b)).collect();
        let expr = number_loads(expr, &mut 0);
        self.loop_level(&shape, &accesses, &bases, offsets, Vec::new(), &expr, combine);
    }

    /// One level of a loop nest: `offsets` are the element offsets of every access (the
    /// output first) at the enclosing indices.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn loop_level(
        &mut self,
        shape: &[usize],
        accesses: &[Access],
        bases: &[Value],
        offsets: Vec<Value>,
        indices: Vec<Value>,
        expr: &Numbered,
        combine: Combine,
    ) {
        let level = indices.len();
        if level == shape.len() {
            let value = self.scalar_expr(expr, bases, &offsets, &indices);
            self.combine_scalar(bases[0], offsets[0], value, combine);
            return;
        }
        let inner = level + 1 == shape.len();
        let n = shape[level];
        if inner && n >= 4 && vectorizable(expr, accesses, level, combine) {
            let out_stride = accesses[0].strides[level];
            let vector_end = n - n % 4;
            let acc = if out_stride == 0 {
                let init = match combine {
                    Combine::Max => self.fconst(f32::NEG_INFINITY),
                    Combine::Add | Combine::Assign => self.fconst(0.0),
                };
                let v = self.b.ins().splat(types::F32X4, init);
                Some(self.var(types::F32X4, v))
            } else {
                None
            };
            self.for_range(0, vector_end, 4, &mut |g, i| {
                let here: Vec<Value> =
                    offsets.iter().zip(accesses).map(|(&o, a)| g.step(o, i, a.strides[level])).collect();
                let value = g.vector_expr(expr, bases, &here, accesses, level, &indices);
                match acc {
                    Some(acc) => {
                        let old = g.b.use_var(acc);
                        let new = match combine {
                            Combine::Max => g.b.ins().fmax(old, value),
                            Combine::Add | Combine::Assign => g.b.ins().fadd(old, value),
                        };
                        g.b.def_var(acc, new);
                    }
                    None => {
                        let value = match combine {
                            Combine::Assign => value,
                            Combine::Add => {
                                let old = g.load_vector(bases[0], here[0]);
                                g.b.ins().fadd(old, value)
                            }
                            Combine::Max => {
                                let old = g.load_vector(bases[0], here[0]);
                                g.b.ins().fmax(old, value)
                            }
                        };
                        g.store_vector(bases[0], here[0], value);
                    }
                }
            });
            if let Some(acc) = acc {
                // Fold the four lanes, then into the output element.
                let v = self.b.use_var(acc);
                let mut total = self.b.ins().extractlane(v, 0);
                for lane in 1..4u8 {
                    let x = self.b.ins().extractlane(v, lane);
                    total = match combine {
                        Combine::Max => self.b.ins().fmax(total, x),
                        Combine::Add | Combine::Assign => self.b.ins().fadd(total, x),
                    };
                }
                self.combine_scalar(bases[0], offsets[0], total, combine);
            }
            self.for_range(vector_end, n, 1, &mut |g, i| {
                let here: Vec<Value> =
                    offsets.iter().zip(accesses).map(|(&o, a)| g.step(o, i, a.strides[level])).collect();
                let mut all = indices.clone();
                all.push(i);
                let value = g.scalar_expr(expr, bases, &here, &all);
                g.combine_scalar(bases[0], here[0], value, combine);
            });
            return;
        }
        let mut body = |g: &mut Gen<'a, 'p>, i| {
            let here: Vec<Value> = offsets.iter().zip(accesses).map(|(&o, a)| g.step(o, i, a.strides[level])).collect();
            let mut all = indices.clone();
            all.push(i);
            g.loop_level(shape, accesses, bases, here, all, expr, combine);
        };
        // Every index of the outermost axis writes its own elements when assigning (a sum
        // or maximum may gather several into one), so that axis can be split.
        if level == 0 && combine == Combine::Assign {
            self.for_units(n, &mut body);
        } else {
            self.for_range(0, n, 1, &mut body);
        }
    }

    fn combine_scalar(&mut self, base: Value, offset: Value, value: Value, combine: Combine) {
        let value = match combine {
            Combine::Assign => value,
            Combine::Add => {
                let old = self.load(base, offset);
                self.b.ins().fadd(old, value)
            }
            Combine::Max => {
                let old = self.load(base, offset);
                self.max(old, value)
            }
        };
        self.store(base, offset, value);
    }

    pub(super) fn scalar_expr(&mut self, e: &Numbered, bases: &[Value], offsets: &[Value], indices: &[Value]) -> Value {
        match e {
            Numbered::Load(k) => self.load(bases[*k], offsets[*k]),
            Numbered::Const(c) => self.fconst(*c),
            Numbered::Index(axis) => {
                let i = indices[*axis];
                self.b.ins().fcvt_from_uint(types::F32, i)
            }
            Numbered::Unary(op, x) => {
                let x = self.scalar_expr(x, bases, offsets, indices);
                let zero = self.fconst(0.0);
                ops::unary(*op).scalar()(self, x, zero)
            }
            Numbered::Binary(op, a, b) => {
                let a = self.scalar_expr(a, bases, offsets, indices);
                let b = self.scalar_expr(b, bases, offsets, indices);
                ops::binary(*op).scalar()(self, a, b)
            }
        }
    }

    /// Four lanes of an expression at consecutive indices of the innermost axis `level`.
    pub(super) fn vector_expr(
        &mut self,
        e: &Numbered,
        bases: &[Value],
        offsets: &[Value],
        accesses: &[Access],
        level: usize,
        indices: &[Value],
    ) -> Value {
        match e {
            Numbered::Load(k) => {
                if accesses[*k].strides[level] == 0 {
                    let x = self.load(bases[*k], offsets[*k]);
                    self.b.ins().splat(types::F32X4, x)
                } else {
                    self.load_vector(bases[*k], offsets[*k])
                }
            }
            Numbered::Const(c) => {
                let x = self.fconst(*c);
                self.b.ins().splat(types::F32X4, x)
            }
            Numbered::Index(axis) => {
                // An outer axis: the same index in every lane.
                let x = self.b.ins().fcvt_from_uint(types::F32, indices[*axis]);
                self.b.ins().splat(types::F32X4, x)
            }
            Numbered::Unary(op, x) => {
                let x = self.vector_expr(x, bases, offsets, accesses, level, indices);
                let zero = {
                    let z = self.fconst(0.0);
                    self.b.ins().splat(types::F32X4, z)
                };
                let code = ops::unary(*op).vector().expect(NOT_VECTORISED);
                code(self, x, zero)
            }
            Numbered::Binary(op, a, b) => {
                let a = self.vector_expr(a, bases, offsets, accesses, level, indices);
                let b = self.vector_expr(b, bases, offsets, accesses, level, indices);
                let code = ops::binary(*op).vector().expect(NOT_VECTORISED);
                code(self, a, b)
            }
        }
    }
}

/// Loops whose ops lack four-lane code are not vectorised (`vectorizable`).
const NOT_VECTORISED: &str = "an op without four-lane code in a vectorised loop";

/// An expression whose loads are numbered: access `k` is the k-th of the kernel's
/// accesses after the output.
#[derive(Clone, Debug)]
pub(super) enum Numbered {
    Load(usize),
    Const(f32),
    Index(usize),
    Unary(Unary, Box<Numbered>),
    Binary(Binary, Box<Numbered>, Box<Numbered>),
}

/// Numbers the loads of `expr` from 1 in the order `canonical` lists them (0 is the output).
pub(super) fn number_loads(expr: &Expr, next: &mut usize) -> Numbered {
    match expr {
        Expr::Load(_) => {
            *next += 1;
            Numbered::Load(*next)
        }
        Expr::Const(c) => Numbered::Const(*c),
        Expr::Index(a) => Numbered::Index(*a),
        Expr::Unary(op, x) => Numbered::Unary(*op, Box::new(number_loads(x, next))),
        Expr::Binary(op, a, b) => {
            let a = number_loads(a, next);
            let b = number_loads(b, next);
            Numbered::Binary(*op, Box::new(a), Box::new(b))
        }
    }
}

/// The loop's shape with axes of one element dropped and neighbouring axes merged where
/// every access steps through them as through one; the accesses (output first, then the
/// loads in order) with strides to match. Loops that read an index keep their axes.
fn canonical(shape: &[usize], out: &Access, expr: &Expr) -> (Vec<usize>, Vec<Access>) {
    let mut accesses = vec![out.clone()];
    accesses.extend(expr.loads().into_iter().cloned());
    if expr.reads_index() {
        return (shape.to_vec(), accesses);
    }
    let keep: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != 1).collect();
    let mut dims: Vec<usize> = keep.iter().map(|&a| shape[a]).collect();
    for access in &mut accesses {
        access.strides = keep.iter().map(|&a| access.strides[a]).collect();
    }
    // Merge axis a+1 into a where stride[a] == stride[a+1] * dims[a+1] for every access.
    let mut axis = dims.len();
    while axis > 1 {
        axis -= 1;
        let (outer, inner) = (axis - 1, axis);
        if accesses.iter().all(|a| a.strides[outer] == a.strides[inner] * dims[inner]) {
            dims[outer] *= dims[inner];
            dims.remove(inner);
            for a in &mut accesses {
                a.strides[outer] = a.strides[inner];
                a.strides.remove(inner);
            }
        }
    }
    (dims, accesses)
}

/// Whether the innermost axis `level` can run four lanes at a time: every load steps by 0
/// or 1, the output by 1 (or by 0 for a sum or maximum), and no lane calls a function or
/// reads the innermost index.
pub(super) fn vectorizable(expr: &Numbered, accesses: &[Access], level: usize, combine: Combine) -> bool {
    let out = accesses[0].strides[level];
    if !(out == 1 || (out == 0 && combine != Combine::Assign)) {
        return false;
    }
    if accesses[1..].iter().any(|a| a.strides[level] > 1) {
        return false;
    }
    fn ok(e: &Numbered, level: usize) -> bool {
        match e {
            Numbered::Load(_) | Numbered::Const(_) => true,
            Numbered::Index(axis) => *axis != level,
            Numbered::Unary(op, x) => ops::unary(*op).vector().is_some() && ok(x, level),
            Numbered::Binary(op, a, b) => ops::binary(*op).vector().is_some() && ok(a, level) && ok(b, level),
        }
    }
    ok(expr, level)
}
