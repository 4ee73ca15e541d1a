//! The lecture's three tables for a function at a point: the forward primal trace (each
//! intermediate `v` with its expression and value), the forward tangent trace (each `v̇`
//! for one input direction) and the reverse adjoint trace (each `v̄`, from the output back).

use super::autodiff::{forward, reverse};
use super::interp::{Precision, Tensor, eval_function};
use super::print::number;
use super::{Function, Op, Value};
use serde::Serialize;
use std::collections::HashMap;

/// One line of a trace: `v2 = v-1 × v0 = 10`.
#[derive(Clone, Debug, Serialize)]
pub struct TraceRow {
    pub name: String,
    pub expr: String,
    pub value: Vec<f64>,
    pub shape: Vec<usize>,
}

/// The three traces of a function at a point.
#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    pub function: String,
    pub primal: Vec<TraceRow>,
    /// The input the tangent trace differentiates by.
    pub tangent_wrt: String,
    pub tangent: Vec<TraceRow>,
    pub adjoint: Vec<TraceRow>,
}

const DOT: char = '\u{307}';
const BAR: char = '\u{304}';

/// The lecture's names: inputs `v-1, v0` (for two inputs), intermediates `v1, v2, ...`.
fn lecture_names(f: &Function) -> HashMap<Value, String> {
    let n = f.params.len() as i64;
    let mut names: HashMap<Value, String> = HashMap::new();
    for (i, p) in f.params.iter().enumerate() {
        names.insert(p.value, format!("v{}", i as i64 + 1 - n));
    }
    let mut k = 0;
    for inst in &f.body {
        if !matches!(inst.op, Op::Const(_)) {
            k += 1;
            names.insert(inst.result, format!("v{k}"));
        }
    }
    names
}

/// `v2` with a mark over its first letter: `v̇2`, `v̄2`.
fn marked(name: &str, mark: char) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{mark}{}", chars.as_str()),
        None => String::new(),
    }
}

/// The names a trace writes values by: the lecture's where `names` has one, else the IR's.
pub(crate) struct Names<'a> {
    pub(crate) f: &'a Function,
    pub(crate) names: HashMap<Value, String>,
}

impl Names<'_> {
    pub(crate) fn of(&self, v: Value) -> String {
        if let Some(name) = self.names.get(&v) {
            return name.clone();
        }
        match self.f.def(v).map(|i| &i.op) {
            Some(Op::Const(c)) => number(*c),
            _ => self.f.name_of(v).to_string(),
        }
    }

    fn is_const(&self, v: Value) -> bool {
        self.f.def(v).is_some_and(|i| matches!(i.op, Op::Const(_) | Op::Literal { .. }))
    }

    /// The primal expression of an instruction.
    pub(crate) fn primal(&self, op: &Op, args: &[Value]) -> String {
        let a = |i: usize| self.of(args[i]);
        match op {
            Op::Add => format!("{} + {}", a(0), a(1)),
            Op::Sub => format!("{} - {}", a(0), a(1)),
            Op::Mul => format!("{} × {}", a(0), a(1)),
            Op::Div => format!("{} / {}", a(0), a(1)),
            Op::Pow => format!("{} ^ {}", a(0), a(1)),
            Op::MatMul => format!("{} @ {}", a(0), a(1)),
            Op::Neg => format!("-{}", a(0)),
            _ => format!("{}({})", op.name(), args.iter().map(|&v| self.of(v)).collect::<Vec<_>>().join(", ")),
        }
    }

    /// The tangent expression of an instruction, leaving out inputs with no tangent.
    fn tangent(&self, op: &Op, args: &[Value]) -> String {
        let a = |i: usize| self.of(args[i]);
        let d = |i: usize| (!self.is_const(args[i])).then(|| marked(&self.of(args[i]), DOT));
        let terms: Vec<String> = match op {
            Op::Add => (0..2).filter_map(d).collect(),
            Op::Sub => {
                let mut t: Vec<String> = d(0).into_iter().collect();
                if let Some(b) = d(1) {
                    t.push(format!("-{b}"));
                }
                t
            }
            Op::Mul => [d(0).map(|x| format!("{x} × {}", a(1))), d(1).map(|x| format!("{} × {x}", a(0)))]
                .into_iter()
                .flatten()
                .collect(),
            Op::Div => [d(0).map(|x| format!("{x} / {}", a(1))), d(1).map(|x| format!("-{} × {x} / {}²", a(0), a(1)))]
                .into_iter()
                .flatten()
                .collect(),
            Op::Neg => d(0).map(|x| format!("-{x}")).into_iter().collect(),
            Op::Ln => d(0).map(|x| format!("{x} / {}", a(0))).into_iter().collect(),
            Op::Exp => d(0).map(|x| format!("exp({}) × {x}", a(0))).into_iter().collect(),
            Op::Sqrt => d(0).map(|x| format!("{x} / (2 sqrt({}))", a(0))).into_iter().collect(),
            Op::Sin => d(0).map(|x| format!("cos({}) × {x}", a(0))).into_iter().collect(),
            Op::Cos => d(0).map(|x| format!("-sin({}) × {x}", a(0))).into_iter().collect(),
            Op::Tanh => d(0).map(|x| format!("(1 - tanh({})²) × {x}", a(0))).into_iter().collect(),
            Op::Sigmoid => d(0).map(|x| format!("σ({0})(1 - σ({0})) × {x}", a(0))).into_iter().collect(),
            _ => (0..args.len()).filter_map(|i| d(i).map(|x| format!("∂{}/∂{} × {x}", op.name(), a(i)))).collect(),
        };
        if terms.is_empty() { "0".into() } else { terms.join(" + ").replace("+ -", "- ") }
    }

    /// The contribution of one use (input `k` of an instruction with output `y`) to the
    /// input's adjoint.
    fn adjoint(&self, op: &Op, args: &[Value], k: usize, y: Value) -> String {
        let a = |i: usize| self.of(args[i]);
        let bar = marked(&self.of(y), BAR);
        match (op, k) {
            (Op::Add, _) | (Op::Sub, 0) => bar,
            (Op::Sub, _) | (Op::Neg, _) => format!("-{bar}"),
            (Op::Mul, 0) => format!("{bar} × {}", a(1)),
            (Op::Mul, _) => format!("{bar} × {}", a(0)),
            (Op::Div, 0) => format!("{bar} / {}", a(1)),
            (Op::Div, _) => format!("-{bar} × {} / {}²", a(0), a(1)),
            (Op::Ln, _) => format!("{bar} / {}", a(0)),
            (Op::Exp, _) => format!("{bar} × exp({})", a(0)),
            (Op::Sqrt, _) => format!("{bar} / (2 sqrt({}))", a(0)),
            (Op::Sin, _) => format!("{bar} × cos({})", a(0)),
            (Op::Cos, _) => format!("-{bar} × sin({})", a(0)),
            (Op::Tanh, _) => format!("{bar} × (1 - tanh({})²)", a(0)),
            (Op::Sigmoid, _) => format!("{bar} × σ({0})(1 - σ({0}))", a(0)),
            _ => format!("{bar} × ∂{}/∂{}", op.name(), a(k)),
        }
    }
}

fn row(name: String, expr: String, value: Option<&Tensor>) -> TraceRow {
    let value = value.cloned().unwrap_or_else(|| Tensor::scalar(0.0));
    TraceRow { name, expr, shape: value.shape, value: value.data }
}

/// The traces of `f` at `args`; the tangent trace differentiates by argument `wrt`.
pub fn trace(f: &Function, args: &[Tensor], wrt: usize, precision: Precision) -> Result<Trace, String> {
    let names = Names { f, names: lecture_names(f) };
    let (_, primal_values) = eval_function(f, args, precision)?;
    let mut primal = Vec::new();
    for p in &f.params {
        primal.push(row(names.of(p.value), p.name.clone(), primal_values.get(&p.value)));
    }
    for inst in f.body.iter().filter(|i| !matches!(i.op, Op::Const(_))) {
        primal.push(row(names.of(inst.result), names.primal(&inst.op, &inst.args), primal_values.get(&inst.result)));
    }
    primal.push(row("y".into(), names.of(f.results[0]), primal_values.get(&f.results[0])));

    // Tangents: the forward-mode function with a one-hot direction for `wrt`.
    let all: Vec<usize> = (0..f.params.len()).collect();
    let (jvp, tangent_map) = forward(f, &all);
    let mut inputs = args.to_vec();
    for (i, arg) in args.iter().enumerate() {
        let fill = if i == wrt { 1.0 } else { 0.0 };
        inputs.push(Tensor::new(arg.shape.clone(), vec![fill; arg.data.len()]));
    }
    let (_, tangent_values) = eval_function(&jvp, &inputs, precision)?;
    let tangent_of: HashMap<Value, Value> = tangent_map.into_iter().collect();
    let zero = Tensor::scalar(0.0);
    let mut tangent = Vec::new();
    for p in &f.params {
        let value = tangent_of.get(&p.value).and_then(|t| tangent_values.get(t)).unwrap_or(&zero);
        tangent.push(row(marked(&names.of(p.value), DOT), marked(&p.name, DOT), Some(value)));
    }
    for inst in f.body.iter().filter(|i| !matches!(i.op, Op::Const(_))) {
        let value = tangent_of.get(&inst.result).and_then(|t| tangent_values.get(t)).unwrap_or(&zero);
        tangent.push(row(marked(&names.of(inst.result), DOT), names.tangent(&inst.op, &inst.args), Some(value)));
    }
    let y_dot = tangent_of.get(&f.results[0]).and_then(|t| tangent_values.get(t)).unwrap_or(&zero);
    tangent.push(row("ẏ".into(), marked(&names.of(f.results[0]), DOT), Some(y_dot)));

    // Adjoints: the reverse-mode function; each value's adjoint sums one term per use.
    let (grad, adjoint_map) = reverse(f, &all);
    let mut grad_args = args.to_vec();
    if grad.params.len() > f.params.len() {
        return Err(format!(
            "the adjoint trace needs a scalar function; `{}` returns {:?}",
            f.name, primal_values[&f.results[0]].shape
        ));
    }
    grad_args.truncate(grad.params.len());
    let (_, adjoint_values) = eval_function(&grad, &grad_args, precision)?;
    let adjoint_of: HashMap<Value, Value> = adjoint_map.into_iter().collect();
    let mut uses: HashMap<Value, Vec<String>> = HashMap::new();
    for inst in &f.body {
        for (k, &arg) in inst.args.iter().enumerate() {
            if !names.is_const(arg) {
                uses.entry(arg).or_default().push(names.adjoint(&inst.op, &inst.args, k, inst.result));
            }
        }
    }
    let mut adjoint = vec![row("ȳ".into(), "1".into(), Some(&Tensor::scalar(1.0)))];
    let ordered: Vec<Value> = f
        .body
        .iter()
        .filter(|i| !matches!(i.op, Op::Const(_)))
        .map(|i| i.result)
        .rev()
        .chain(f.params.iter().rev().map(|p| p.value))
        .collect();
    for value in ordered {
        let expr = if value == f.results[0] {
            "ȳ".to_string()
        } else {
            uses.get(&value).map_or("0".to_string(), |u| u.join(" + ").replace("+ -", "- "))
        };
        let computed = adjoint_of.get(&value).and_then(|a| adjoint_values.get(a)).unwrap_or(&zero);
        adjoint.push(row(marked(&names.of(value), BAR), expr, Some(computed)));
    }
    for p in &f.params {
        let computed = adjoint_of.get(&p.value).and_then(|a| adjoint_values.get(a)).unwrap_or(&zero);
        adjoint.push(row(marked(&p.name, BAR), marked(&names.of(p.value), BAR), Some(computed)));
    }
    Ok(Trace {
        function: f.name.clone(),
        primal,
        tangent_wrt: f.params.get(wrt).map(|p| p.name.clone()).unwrap_or_default(),
        tangent,
        adjoint,
    })
}
