//! The reference interpreter: runs an IR function on tensors with naive, obviously correct
//! loops, in f64 or in f32 (every result rounded to f32). It is the oracle for every later
//! stage.

use super::ops::{broadcast_dims, concrete};
use super::{Function, Value};
use std::collections::HashMap;

/// A dense tensor in row-major order.
#[derive(Clone, Debug, PartialEq)]
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

    /// For an index into a tensor of shape `target` that this one broadcasts to, the
    /// index of the element of this tensor it reads.
    pub fn broadcast_index(&self, target: &[usize]) -> impl Fn(usize) -> usize + use<> {
        let rank = target.len();
        let offset = rank - self.shape.len().min(rank);
        // Strides of this tensor per target axis; 0 where it is broadcast.
        let mut strides = vec![0usize; rank];
        let mut stride = 1;
        for axis in (0..self.shape.len()).rev() {
            if axis + offset < rank && self.shape[axis] != 1 {
                strides[axis + offset] = stride;
            }
            stride *= self.shape[axis];
        }
        let target = target.to_vec();
        move |mut i| {
            let mut index = 0;
            for axis in (0..rank).rev() {
                let size = target[axis].max(1);
                index += (i % size) * strides[axis];
                i /= size;
            }
            index
        }
    }

    /// The tensor with its last two axes swapped.
    pub fn transposed(&self) -> Tensor {
        let n = self.shape.len();
        if n < 2 {
            return self.clone();
        }
        let (rows, cols) = (self.shape[n - 2], self.shape[n - 1]);
        let batch = self.data.len() / (rows * cols).max(1);
        let mut data = vec![0.0; self.data.len()];
        for b in 0..batch {
            for r in 0..rows {
                for c in 0..cols {
                    data[b * rows * cols + c * rows + r] = self.data[b * rows * cols + r * cols + c];
                }
            }
        }
        let mut shape = self.shape.clone();
        shape.swap(n - 2, n - 1);
        Tensor { shape, data }
    }

    fn rounded_to_f32(mut self) -> Tensor {
        for v in &mut self.data {
            *v = *v as f32 as f64;
        }
        self
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
        let result = (inst.op.rules().eval)(&inst.op, &inputs);
        let want = concrete(&f.ty(inst.result).shape);
        debug_assert_eq!(result.shape, want, "{} gave {:?}", inst.op.name(), result.shape);
        let result = if result.shape != want { broadcast_to(&result, &want) } else { result };
        env.insert(inst.result, round(result));
    }
    let results = f.results.iter().map(|r| env[r].clone()).collect();
    Ok((results, env))
}

fn broadcast_to(t: &Tensor, shape: &[usize]) -> Tensor {
    let dims = broadcast_dims(&t.shape, shape);
    let index = t.broadcast_index(&dims);
    Tensor { data: (0..dims.iter().product()).map(|i| t.data[index(i)]).collect(), shape: dims }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_reads_the_right_elements() {
        let row = Tensor::new(vec![3], vec![1.0, 2.0, 3.0]);
        let index = row.broadcast_index(&[2, 3]);
        assert_eq!((0..6).map(&index).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
        let column = Tensor::new(vec![2, 1], vec![1.0, 2.0]);
        let index = column.broadcast_index(&[2, 3]);
        assert_eq!((0..6).map(&index).collect::<Vec<_>>(), [0, 0, 0, 1, 1, 1]);
        let m = Tensor::new(vec![2, 3], (0..6).map(f64::from).collect());
        assert_eq!(m.transposed().data, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
