//! The reference interpreter: runs an IR function on tensors with naive, obviously correct
//! loops, in f64 or in f32 (every result rounded to f32). It is the oracle for every later
//! stage.

use super::ops::concrete;
use super::{Function, Inst, Value};
use std::collections::HashMap;

/// A dense tensor in row-major order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn scalar(value: f64) -> Tensor {
        Tensor { shape: Vec::new(), data: vec![value] }
    }

    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape {shape:?} for {} values", data.len());
        Tensor { shape, data }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor { shape, data: vec![0.0; n] }
    }

    /// For an index into a tensor of shape `target` that this one broadcasts to, the
    /// index of the element of this tensor it reads.
    pub fn broadcast_index(&self, target: &[usize]) -> BroadcastIndex {
        let rank = target.len();
        let offset = rank - self.shape.len().min(rank);
        // Strides of this tensor per target axis; 0 where it is broadcast.
        let mut strides = Axes::zeros(rank);
        let mut stride = 1;
        for axis in (0..self.shape.len()).rev() {
            if axis + offset < rank && self.shape[axis] != 1 {
                strides.as_mut()[axis + offset] = stride;
            }
            stride *= self.shape[axis];
        }
        let mut sizes = Axes::zeros(rank);
        for (slot, &size) in sizes.as_mut().iter_mut().zip(target) {
            *slot = size.max(1);
        }
        BroadcastIndex { strides, sizes }
    }

    /// The tensor with its last two axes swapped.
    pub fn transposed(&self) -> Tensor {
        let mut shape = self.shape.clone();
        let n = shape.len();
        if n >= 2 {
            shape.swap(n - 2, n - 1);
        }
        let mut out = Tensor::zeros(shape);
        self.transpose_into(&mut out);
        out
    }

    /// Writes this tensor with its last two axes swapped into `out`.
    pub fn transpose_into(&self, out: &mut Tensor) {
        let n = self.shape.len();
        if n < 2 {
            out.data.copy_from_slice(&self.data);
            return;
        }
        let (rows, cols) = (self.shape[n - 2], self.shape[n - 1]);
        let batch = self.data.len() / (rows * cols).max(1);
        for b in 0..batch {
            for r in 0..rows {
                for c in 0..cols {
                    out.data[b * rows * cols + c * rows + r] = self.data[b * rows * cols + r * cols + c];
                }
            }
        }
    }

    fn rounded_to_f32(mut self) -> Tensor {
        for v in &mut self.data {
            *v = *v as f32 as f64;
        }
        self
    }
}

/// Per-axis numbers of a tensor, inline up to eight axes so that indexing allocates
/// nothing for the ranks networks use.
#[derive(Clone, Debug)]
struct Axes {
    len: usize,
    inline: [usize; 8],
    heap: Vec<usize>,
}

impl Axes {
    fn zeros(len: usize) -> Axes {
        Axes { len, inline: [0; 8], heap: if len > 8 { vec![0; len] } else { Vec::new() } }
    }

    fn as_ref(&self) -> &[usize] {
        if self.len > 8 { &self.heap } else { &self.inline[..self.len] }
    }

    fn as_mut(&mut self) -> &mut [usize] {
        if self.len > 8 { &mut self.heap } else { &mut self.inline[..self.len] }
    }
}

/// Maps an index into a broadcast shape to the index of the element it reads.
#[derive(Clone, Debug)]
pub struct BroadcastIndex {
    strides: Axes,
    sizes: Axes,
}

impl BroadcastIndex {
    pub fn at(&self, mut i: usize) -> usize {
        let mut index = 0;
        for (&size, &stride) in self.sizes.as_ref().iter().zip(self.strides.as_ref()).rev() {
            index += (i % size) * stride;
            i /= size;
        }
        index
    }
}

/// The precision the interpreter computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

/// Runs `f` on `args`, returning its results and every value it computed (for traces).
pub fn eval_function(
    f: &Function,
    args: &[Tensor],
    precision: Precision,
) -> Result<(Vec<Tensor>, HashMap<Value, Tensor>), String> {
    if args.len() != f.params.len() {
        return Err(format!("`{}` takes {} arguments, got {}", f.name, f.params.len(), args.len()));
    }
    let round = |t: Tensor| if precision == Precision::F32 { t.rounded_to_f32() } else { t };
    let mut env: HashMap<Value, Tensor> = HashMap::new();
    for (param, arg) in f.params.iter().zip(args) {
        let want = &f.ty(param.value).shape;
        if want.0.iter().any(|d| !d.is_const()) || concrete(want) != arg.shape {
            return Err(format!("argument `{}` is {:?}, but the function takes {want}", param.name, arg.shape));
        }
        env.insert(param.value, round(arg.clone()));
    }
    for inst in &f.body {
        let inputs: Vec<&Tensor> = inst.args.iter().map(|a| &env[a]).collect();
        let mut result = Tensor::zeros(concrete(&f.ty(inst.result).shape));
        (inst.op.rules().eval)(&inst.op, &inputs, &mut result);
        env.insert(inst.result, round(result));
    }
    let results = f.results.iter().map(|r| env[r].clone()).collect();
    Ok((results, env))
}

/// The interpreter prepared for one function of concrete shapes: a buffer per value,
/// allocated once, so that running it again allocates nothing. Executors run training
/// steps on it.
pub struct Interpreter {
    function: Function,
    values: Vec<Tensor>,
    precision: Precision,
}

impl Interpreter {
    /// Prepares `f`, whose every shape must be concrete.
    pub fn new(f: &Function, precision: Precision) -> Result<Interpreter, String> {
        let mut values = Vec::with_capacity(f.values.len());
        for (ty, name) in &f.values {
            if ty.shape.0.iter().any(|d| !d.is_const()) {
                return Err(format!("`{name}` of `{}` has the symbolic shape {}", f.name, ty.shape));
            }
            values.push(Tensor::zeros(concrete(&ty.shape)));
        }
        Ok(Interpreter { function: f.clone(), values, precision })
    }

    pub fn function(&self) -> &Function {
        &self.function
    }

    /// The buffer of argument `index`, to fill before `run`.
    pub fn arg_mut(&mut self, index: usize) -> &mut Tensor {
        &mut self.values[self.function.params[index].value.0 as usize]
    }

    /// Result `index` of the last run.
    pub fn result(&self, index: usize) -> &Tensor {
        &self.values[self.function.results[index].0 as usize]
    }

    /// Evaluates the body on the arguments in place.
    pub fn run(&mut self) {
        if self.precision == Precision::F32 {
            for param in &self.function.params {
                round_in_place(&mut self.values[param.value.0 as usize]);
            }
        }
        let placeholder = Tensor::default();
        for inst in &self.function.body {
            let slot = inst.result.0 as usize;
            // The result's buffer leaves the arena while the op reads its inputs from it.
            let mut out = std::mem::take(&mut self.values[slot]);
            let mut inputs = [&placeholder; 4];
            for (input, arg) in inputs.iter_mut().zip(&inst.args) {
                *input = &self.values[arg.0 as usize];
            }
            (inst.op.rules().eval)(&inst.op, &inputs[..inst.args.len()], &mut out);
            if self.precision == Precision::F32 {
                round_in_place(&mut out);
            }
            self.values[slot] = out;
        }
    }

    /// The first instruction of the last run whose result has a value that is not finite
    /// while its inputs are all finite: where a NaN or an infinity was born.
    pub fn first_non_finite(&self) -> Option<&Inst> {
        let finite = |v: &Value| self.values[v.0 as usize].data.iter().all(|x| x.is_finite());
        self.function.body.iter().find(|inst| !finite(&inst.result) && inst.args.iter().all(finite))
    }
}

fn round_in_place(t: &mut Tensor) {
    for v in &mut t.data {
        *v = *v as f32 as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_reads_the_right_elements() {
        let row = Tensor::new(vec![3], vec![1.0, 2.0, 3.0]);
        let index = row.broadcast_index(&[2, 3]);
        assert_eq!((0..6).map(|i| index.at(i)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
        let column = Tensor::new(vec![2, 1], vec![1.0, 2.0]);
        let index = column.broadcast_index(&[2, 3]);
        assert_eq!((0..6).map(|i| index.at(i)).collect::<Vec<_>>(), [0, 0, 0, 1, 1, 1]);
        let m = Tensor::new(vec![2, 3], (0..6).map(f64::from).collect());
        assert_eq!(m.transposed().data, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
