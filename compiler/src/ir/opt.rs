//! Optimisation passes on the IR, run until nothing changes: constant folding, algebraic
//! simplification (no `mul x, 1`, `add x, 0`, `neg 1`), common-subexpression elimination
//! and dead-code elimination. What users read of gradient IR is their output.

use super::interp::Tensor;
use super::{Function, Op, Value};
use std::collections::HashMap;

/// `f` simplified, with its values renumbered.
pub fn optimize(f: &Function) -> Function {
    let mut f = f.clone();
    for _ in 0..32 {
        let before = f.body.len();
        let changed = simplify(&mut f);
        dead_code(&mut f);
        if !changed && f.body.len() == before {
            break;
        }
    }
    // A result that simplification left as a temporary takes the result's name (`a0_bar`).
    for (i, &result) in f.results.clone().iter().enumerate() {
        let name = f.name_of(result).to_string();
        let is_temporary = name.starts_with('t') && name[1..].bytes().all(|b| b.is_ascii_digit());
        if let Some(wanted) = f.result_names.get(i).cloned()
            && is_temporary
            && !f.params.iter().map(|p| p.value).chain(f.body.iter().map(|i| i.result)).any(|v| f.name_of(v) == wanted)
        {
            f.values[result.0 as usize].1 = wanted;
        }
    }
    f.name_temporaries();
    f
}

fn constant(f: &Function, v: Value) -> Option<f64> {
    match f.def(v)?.op {
        Op::Const(c) => Some(c),
        _ => None,
    }
}

/// One pass of folding, simplification and CSE. Returns whether anything changed.
fn simplify(f: &mut Function) -> bool {
    let mut replaced: HashMap<Value, Value> = HashMap::new();
    let mut seen: HashMap<String, Value> = HashMap::new();
    let mut changed = false;
    let body = std::mem::take(&mut f.body);
    for mut inst in body {
        for arg in &mut inst.args {
            if let Some(&r) = replaced.get(arg) {
                *arg = r;
            }
        }
        // Constant folding: every input a scalar constant.
        if !matches!(inst.op, Op::Const(_) | Op::Literal { .. })
            && !inst.args.is_empty()
            && f.ty(inst.result).shape.rank() == 0
            && let Some(values) = inst.args.iter().map(|&a| constant(f, a)).collect::<Option<Vec<f64>>>()
        {
            let inputs: Vec<Tensor> = values.iter().map(|&v| Tensor::scalar(v)).collect();
            let refs: Vec<&Tensor> = inputs.iter().collect();
            let mut folded = Tensor::scalar(0.0);
            (inst.op.rules().eval)(&inst.op, &refs, &mut folded);
            inst.op = Op::Const(folded.data[0]);
            inst.args.clear();
            changed = true;
        }
        match rewrite(f, &inst.op, &inst.args, inst.result) {
            Some(Rewrite::Use(value)) => {
                replaced.insert(inst.result, value);
                changed = true;
                f.body.push(inst);
                continue;
            }
            Some(Rewrite::Into(op, args)) => {
                inst.op = op;
                inst.args = args;
                changed = true;
            }
            None => {}
        }
        // Common subexpressions: the same op on the same values.
        let key = format!("{:?} {:?}", inst.op, inst.args);
        if let Some(&earlier) = seen.get(&key) {
            replaced.insert(inst.result, earlier);
            changed = true;
        } else {
            seen.insert(key, inst.result);
        }
        f.body.push(inst);
    }
    for result in &mut f.results {
        if let Some(&r) = replaced.get(result) {
            *result = r;
        }
    }
    changed
}

enum Rewrite {
    /// The instruction's value is this existing value.
    Use(Value),
    /// The instruction becomes this op on these values.
    Into(Op, Vec<Value>),
}

fn rewrite(f: &Function, op: &Op, args: &[Value], result: Value) -> Option<Rewrite> {
    let shape = &f.ty(result).shape;
    let same_shape = |v: Value| f.ty(v).shape == *shape;
    let c = |i: usize| constant(f, args[i]);
    let negated = |v: Value| match f.def(v) {
        Some(inst) if inst.op == Op::Neg => Some(inst.args[0]),
        _ => None,
    };
    match op {
        Op::Add => {
            if c(0) == Some(0.0) && same_shape(args[1]) {
                return Some(Rewrite::Use(args[1]));
            }
            if c(1) == Some(0.0) && same_shape(args[0]) {
                return Some(Rewrite::Use(args[0]));
            }
            if let Some(x) = negated(args[1]) {
                return Some(Rewrite::Into(Op::Sub, vec![args[0], x]));
            }
            if let Some(x) = negated(args[0]) {
                return Some(Rewrite::Into(Op::Sub, vec![args[1], x]));
            }
        }
        Op::Sub => {
            if c(1) == Some(0.0) && same_shape(args[0]) {
                return Some(Rewrite::Use(args[0]));
            }
            if c(0) == Some(0.0) && same_shape(args[1]) {
                return Some(Rewrite::Into(Op::Neg, vec![args[1]]));
            }
            if let Some(x) = negated(args[1]) {
                return Some(Rewrite::Into(Op::Add, vec![args[0], x]));
            }
        }
        Op::Mul => {
            for (k, other) in [(0, 1), (1, 0)] {
                match c(k) {
                    Some(1.0) if same_shape(args[other]) => return Some(Rewrite::Use(args[other])),
                    Some(-1.0) if same_shape(args[other]) => return Some(Rewrite::Into(Op::Neg, vec![args[other]])),
                    _ => {}
                }
            }
            // (-a) * b = -(a * b) is not simpler; but (-a) * (-b) = a * b is.
            if let (Some(a), Some(b)) = (negated(args[0]), negated(args[1])) {
                return Some(Rewrite::Into(Op::Mul, vec![a, b]));
            }
        }
        Op::Div if c(1) == Some(1.0) && same_shape(args[0]) => return Some(Rewrite::Use(args[0])),
        Op::Pow if c(1) == Some(1.0) && same_shape(args[0]) => return Some(Rewrite::Use(args[0])),
        Op::Neg => {
            if let Some(x) = negated(args[0]) {
                return Some(Rewrite::Use(x));
            }
        }
        Op::Reshape(_) | Op::Broadcast(_) | Op::SumTo(_) if same_shape(args[0]) => return Some(Rewrite::Use(args[0])),
        Op::Transpose => {
            if let Some(inst) = f.def(args[0])
                && inst.op == Op::Transpose
            {
                return Some(Rewrite::Use(inst.args[0]));
            }
            if f.ty(args[0]).shape.rank() < 2 {
                return Some(Rewrite::Use(args[0]));
            }
        }
        _ => {}
    }
    None
}

/// Removes instructions whose values no result needs.
fn dead_code(f: &mut Function) {
    let mut live = vec![false; f.values.len()];
    for r in &f.results {
        live[r.0 as usize] = true;
    }
    for inst in f.body.iter().rev() {
        if live[inst.result.0 as usize] {
            for a in &inst.args {
                live[a.0 as usize] = true;
            }
        }
    }
    f.body.retain(|inst| live[inst.result.0 as usize]);
}
