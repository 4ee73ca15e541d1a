//! Fusion across kernels, after lowering. The elementwise loop that reads a matrix product
//! (a layer's bias and activation, or the activation's derivative in the backward pass)
//! becomes the product's epilogue, applied to each block of the product while it is in
//! cache, and the product's own buffer is no longer needed. Softmax cross-entropy computes
//! its gradient in the same pass as the loss.
//!
//! ```text
//! k0: matmul 32x64x32 v3[32, 1] = x[64, 1] @ 0.weight[1, 64]
//! k1: loop [32, 32] v5[32, 1] = relu(add(v3[32, 1], 0.bias[0, 1]))
//! ```
//! becomes
//! ```text
//! k0: matmul 32x64x32 v5[32, 1] = x[64, 1] @ 0.weight[1, 64] then relu(add(v5[0, 32, 1], 0.bias[0, 0, 1]))
//! ```

use crate::kernel::{Access, BufferId, Combine, Expr, Kernel, Matrix, PoolMode, Program, Role, contiguous_strides};

/// Fuses every loop that can be fused into the product it reads.
pub fn fuse_epilogues(program: &mut Program) {
    fuse_readers(program, epilogue_of);
}

/// Replaces each kernel for which `fused` gives a kernel and the index of the loop it took
/// in, removing that loop, then drops the temporaries no longer used.
fn fuse_readers(program: &mut Program, fused: fn(&Program, usize) -> Option<(usize, Kernel)>) {
    let mut index = 0;
    while index < program.kernels.len() {
        if let Some((reader, kernel)) = fused(program, index) {
            program.kernels[index] = kernel;
            program.kernels.remove(reader);
        }
        index += 1;
    }
    program.drop_unused_temporaries();
}

/// Applies the loop that reads a max-pooling gradient (the activation's derivative before
/// the pooling: `mul(g, step(x))`) as the gradient kernel's epilogue, where the windows tile
/// the input so that the kernel writes every element of its output.
pub fn fuse_pooling_epilogues(program: &mut Program) {
    fuse_readers(program, pooling_epilogue_of);
}

fn pooling_epilogue_of(program: &Program, index: usize) -> Option<(usize, Kernel)> {
    let Kernel::MaxPool { window: w, input, out: gradient, mode: mode @ PoolMode::Grad(cotangent), epilogue: None } =
        &program.kernels[index]
    else {
        return None;
    };
    let dims = [w.n, w.c, w.h, w.w];
    let len: usize = dims.iter().product();
    if !w.tiles() || program.buffer(*gradient).role != Role::Temp || program.buffer(*gradient).len != len {
        return None;
    }
    let (reader, shape, out, expr) = single_loop_reader(program, index, *gradient, len)?;
    if [*input, *cotangent].contains(&out.buffer) {
        return None;
    }
    let groups = group_axes(shape, &dims)?;
    // The loop must write its output where the kernel writes the gradient.
    let own = vec![w.c * w.h * w.w, w.h * w.w, w.w, 1];
    if out.offset != 0 || merge(&out.strides, shape, &groups)? != own {
        return None;
    }
    let mut fused = expr.clone();
    let mut mergeable = true;
    fused.map_loads(&mut |load| {
        if load.buffer == *gradient {
            *load = Access { buffer: out.buffer, offset: 0, strides: own.clone() };
        } else {
            match merge(&load.strides, shape, &groups) {
                // Four lanes along a row read consecutive elements or one.
                Some(strides) if strides[3] <= 1 => load.strides = strides,
                _ => mergeable = false,
            }
        }
    });
    if !mergeable {
        return None;
    }
    let kernel = Kernel::MaxPool { window: *w, input: *input, out: out.buffer, mode: *mode, epilogue: Some(fused) };
    Some((reader, kernel))
}

/// The one kernel after `index` that touches `buffer`, when it is an assigning loop over
/// `len` elements that reads `buffer` in order (and reads no index), and moving it up to
/// `index` changes nothing another kernel sees: its index, shape, output and expression.
fn single_loop_reader(
    program: &Program,
    index: usize,
    buffer: BufferId,
    len: usize,
) -> Option<(usize, &Vec<usize>, &Access, &Expr)> {
    let touches = |kernel: &Kernel| {
        let (reads, writes) = kernel.buffers();
        writes.contains(&buffer) || reads.contains(&buffer)
    };
    let reader = (index + 1..program.kernels.len()).find(|&j| touches(&program.kernels[j]))?;
    if program.kernels[reader + 1..].iter().any(touches) {
        return None;
    }
    let Kernel::Loop { shape, out, expr, combine: Combine::Assign } = &program.kernels[reader] else {
        return None;
    };
    if shape.iter().product::<usize>() != len {
        return None;
    }
    let own = contiguous_strides(shape);
    let loads = expr.loads();
    if expr.reads_index() || loads.iter().any(|l| l.buffer == buffer && (l.offset != 0 || l.strides != own)) {
        return None;
    }
    // Moving the loop up to `index` must not change what it reads or what others read: no
    // kernel in between writes what the loop reads or writes, or reads what it writes.
    for between in &program.kernels[index + 1..reader] {
        let (reads, writes) = between.buffers();
        if writes.contains(&out.buffer)
            || loads.iter().any(|l| writes.contains(&l.buffer))
            || reads.contains(&out.buffer)
        {
            return None;
        }
    }
    Some((reader, shape, out, expr))
}

/// Computes the gradient of softmax cross-entropy in the kernel of the loss: the softmax of
/// the logits, read by the one loop that subtracts the labels' one-hot rows and scales
/// (`mul(c, sub(softmax, eq(i1, round(t))))`, what reverse mode makes of the loss), no longer
/// passes through memory, and each row's maximum and sum are found once.
pub fn fuse_cross_entropy_gradients(program: &mut Program) {
    let mut index = 0;
    while index < program.kernels.len() {
        if let Some((kernel, removed)) = cross_entropy_with_gradient(program, index) {
            program.kernels[index] = kernel;
            let mut removed = removed;
            removed.sort_unstable();
            for k in removed.into_iter().rev() {
                program.kernels.remove(k);
                if k < index {
                    index -= 1;
                }
            }
        }
        index += 1;
    }
    program.drop_unused_temporaries();
}

/// The loss at `index` computing its gradient too, and the kernels (the softmax and the
/// gradient's loop) that it replaces.
fn cross_entropy_with_gradient(program: &Program, index: usize) -> Option<(Kernel, Vec<usize>)> {
    let Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad: None } = program.kernels[index] else {
        return None;
    };
    let kernels = &program.kernels;
    let softmax = kernels.iter().position(|k| {
        matches!(k, Kernel::Softmax { outer, len, inner: 1, input, log: false, .. }
            if *outer == rows && *len == classes && *input == logits)
    })?;
    let Kernel::Softmax { out: probabilities, .. } = kernels[softmax] else { return None };
    if program.buffer(probabilities).role != Role::Temp {
        return None;
    }
    let readers: Vec<usize> = (0..kernels.len()).filter(|&k| kernels[k].buffers().0.contains(&probabilities)).collect();
    let [reader] = readers[..] else { return None };
    let Kernel::Loop { shape, out: gradient, expr, combine: Combine::Assign } = &kernels[reader] else {
        return None;
    };
    let own = contiguous_strides(&[rows, classes]);
    let label_strides = vec![if rows == 1 { 0 } else { 1 }, 0];
    if reader < index
        || *shape != [rows, classes]
        || gradient.offset != 0
        || gradient.strides != own
        || [logits, labels, out].contains(&gradient.buffer)
    {
        return None;
    }
    let scale = gradient_scale(
        expr,
        &Access { buffer: probabilities, offset: 0, strides: own },
        &Access { buffer: labels, offset: 0, strides: label_strides },
    )?;
    // Writing the gradient at the loss instead of at the loop: no kernel in between may
    // read or write it.
    for (k, between) in kernels.iter().enumerate().take(reader).skip(index + 1) {
        let (reads, writes) = between.buffers();
        if k != softmax && (reads.contains(&gradient.buffer) || writes.contains(&gradient.buffer)) {
            return None;
        }
    }
    let kernel =
        Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad: Some((gradient.buffer, scale)) };
    Some((kernel, vec![softmax, reader]))
}

/// `c` when `expr` is `mul(c, sub(softmax, eq(i1, round(labels))))`.
fn gradient_scale(expr: &Expr, softmax: &Access, labels: &Access) -> Option<f32> {
    use crate::kernel::{Binary, Unary};
    let Expr::Binary(Binary::Mul, scale, difference) = expr else { return None };
    let Expr::Const(scale) = **scale else { return None };
    let Expr::Binary(Binary::Sub, probability, one_hot) = &**difference else { return None };
    let Expr::Binary(Binary::Equal, index, label) = &**one_hot else { return None };
    let Expr::Unary(Unary::Round, label) = &**label else { return None };
    let matches = matches!(&**probability, Expr::Load(a) if a == softmax)
        && matches!(**index, Expr::Index(1))
        && matches!(&**label, Expr::Load(a) if a == labels);
    matches.then_some(scale)
}

/// The product at `index` with the loop that reads it as its epilogue, and the index of
/// that loop, when the two can become one kernel.
fn epilogue_of(program: &Program, index: usize) -> Option<(usize, Kernel)> {
    let Kernel::MatMul { batch, m, n, k, a, b, c, accumulate: false, epilogue: None } = &program.kernels[index] else {
        return None;
    };
    let (batch, m, n) = (*batch, *m, *n);
    // The product must be a temporary of its own, stored row after row.
    let product = c.buffer;
    let contiguous = c.offset == 0 && c.col_stride == 1 && c.row_stride == n && (batch == 1 || c.batch_stride == m * n);
    if program.buffer(product).role != Role::Temp || !contiguous || program.buffer(product).len != batch * m * n {
        return None;
    }
    let (reader, shape, out, expr) = single_loop_reader(program, index, product, batch * m * n)?;
    if out.buffer == a.buffer || out.buffer == b.buffer {
        return None;
    }
    // The loop's axes, grouped into the product's (matrix, row, column).
    let groups = group_axes(shape, &[batch, m, n])?;
    let out_strides = merge(&out.strides, shape, &groups)?;
    let output = Matrix {
        buffer: out.buffer,
        offset: out.offset,
        batch_stride: out_strides[0],
        row_stride: out_strides[1],
        col_stride: out_strides[2],
    };
    let mut fused = expr.clone();
    let mut mergeable = true;
    fused.map_loads(&mut |load| {
        if load.buffer == product {
            *load = Access { buffer: output.buffer, offset: output.offset, strides: output.epilogue_strides() };
        } else {
            match merge(&load.strides, shape, &groups) {
                Some(strides) => load.strides = strides,
                None => mergeable = false,
            }
        }
    });
    if !mergeable {
        return None;
    }
    let kernel = Kernel::MatMul {
        batch,
        m,
        n,
        k: *k,
        a: a.clone(),
        b: b.clone(),
        c: output,
        accumulate: false,
        epilogue: Some(fused),
    };
    Some((reader, kernel))
}

/// Splits the axes of `shape` into consecutive groups whose sizes are `dims`, from the
/// right; axes of one element join any group. `None` when the sizes do not line up.
fn group_axes(shape: &[usize], dims: &[usize]) -> Option<Vec<Vec<usize>>> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); dims.len()];
    let mut axis = shape.len();
    for (group, &dim) in dims.iter().enumerate().rev() {
        let mut size = 1;
        while size < dim {
            axis = axis.checked_sub(1)?;
            size *= shape[axis];
            groups[group].push(axis);
        }
        if size != dim {
            return None;
        }
        groups[group].reverse();
    }
    // What is left are axes of one element.
    shape[..axis].iter().all(|&d| d == 1).then_some(groups)
}

/// The strides of an access over the loop's axes, as three strides over the groups: within
/// a group, each axis must step as the one inside it times its size (one stride through
/// the group, as through one axis).
fn merge(strides: &[usize], shape: &[usize], groups: &[Vec<usize>]) -> Option<Vec<usize>> {
    groups
        .iter()
        .map(|group| {
            let axes: Vec<usize> = group.iter().copied().filter(|&a| shape[a] != 1).collect();
            let Some(&innermost) = axes.last() else { return Some(0) };
            let stride = strides[innermost];
            let mut expected = stride;
            for pair in axes.windows(2).rev() {
                let (outer, inner) = (pair[0], pair[1]);
                expected *= shape[inner];
                if strides[outer] != expected {
                    return None;
                }
            }
            Some(stride)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Buffer, Unary};

    /// `p = x @ w` (4×4 by 4×4), then `out = relu(p)`, with `extra` kernels after the product.
    fn product_then_relu(extra: Vec<Kernel>) -> Program {
        let buffer = |name: &str, role| Buffer { name: name.into(), len: 16, role };
        let p = BufferId(2);
        let relu = Kernel::Loop {
            shape: vec![4, 4],
            out: Access { buffer: BufferId(3), offset: 0, strides: vec![4, 1] },
            expr: Expr::unary(Unary::Relu, Expr::Load(Access { buffer: p, offset: 0, strides: vec![4, 1] })),
            combine: Combine::Assign,
        };
        let product = Kernel::MatMul {
            batch: 1,
            m: 4,
            n: 4,
            k: 4,
            a: Matrix::rows(BufferId(0), 4),
            b: Matrix::rows(BufferId(1), 4),
            c: Matrix::rows(p, 4),
            accumulate: false,
            epilogue: None,
        };
        let mut kernels = vec![product];
        kernels.extend(extra);
        kernels.push(relu);
        Program {
            name: "f".into(),
            buffers: vec![
                buffer("x", Role::Param(0)),
                buffer("w", Role::Param(1)),
                buffer("p", Role::Temp),
                buffer("out", Role::Result(0)),
                buffer("other", Role::Result(1)),
            ],
            kernels,
            params: vec![BufferId(0), BufferId(1)],
            results: vec![BufferId(3), BufferId(4)],
        }
    }

    fn copy(from: usize, to: usize) -> Kernel {
        Kernel::Loop {
            shape: vec![16],
            out: Access { buffer: BufferId(to), offset: 0, strides: vec![1] },
            expr: Expr::Load(Access { buffer: BufferId(from), offset: 0, strides: vec![1] }),
            combine: Combine::Assign,
        }
    }

    #[test]
    fn a_loop_reading_a_product_becomes_its_epilogue() {
        let mut program = product_then_relu(vec![]);
        fuse_epilogues(&mut program);
        crate::kernel::verify(&program).unwrap();
        assert_eq!(program.kernels.len(), 1);
        assert_eq!(
            program.kernel_text(&program.kernels[0]),
            "matmul 4x4x4 out[4, 1] = x[4, 1] @ w[4, 1] then relu(out[0, 4, 1])"
        );
        assert_eq!(program.buffers.len(), 4, "the product's own buffer is dropped");
    }

    #[test]
    fn products_read_twice_or_moved_past_a_conflict_stay_apart() {
        // Another kernel reads the product too.
        let mut program = product_then_relu(vec![copy(2, 4)]);
        fuse_epilogues(&mut program);
        assert_eq!(program.kernels.len(), 3);
        // A kernel between the two reads what the loop would write earlier.
        let mut program = product_then_relu(vec![copy(3, 4)]);
        fuse_epilogues(&mut program);
        assert_eq!(program.kernels.len(), 3);
        // One that touches neither lets the loop move up to the product.
        let mut program = product_then_relu(vec![copy(0, 4)]);
        fuse_epilogues(&mut program);
        assert_eq!(program.kernels.len(), 2);
        crate::kernel::verify(&program).unwrap();
    }

    #[test]
    fn only_the_gradient_of_cross_entropy_is_taken_into_the_loss() {
        use crate::kernel::Binary;
        let softmax = Access { buffer: BufferId(1), offset: 0, strides: vec![10, 1] };
        let labels = Access { buffer: BufferId(2), offset: 0, strides: vec![1, 0] };
        let one_hot =
            Expr::binary(Binary::Equal, Expr::Index(1), Expr::unary(Unary::Round, Expr::Load(labels.clone())));
        let gradient = |scale: f32, one_hot: Expr| {
            Expr::binary(
                Binary::Mul,
                Expr::Const(scale),
                Expr::binary(Binary::Sub, Expr::Load(softmax.clone()), one_hot),
            )
        };
        assert_eq!(gradient_scale(&gradient(0.25, one_hot.clone()), &softmax, &labels), Some(0.25));
        // One-hot rows along the other axis are another function.
        let other_axis =
            Expr::binary(Binary::Equal, Expr::Index(0), Expr::unary(Unary::Round, Expr::Load(labels.clone())));
        assert_eq!(gradient_scale(&gradient(0.25, other_axis), &softmax, &labels), None);
        // So is the softmax with the labels added.
        let added = Expr::binary(Binary::Add, Expr::Load(softmax.clone()), one_hot);
        assert_eq!(gradient_scale(&Expr::binary(Binary::Mul, Expr::Const(0.25), added), &softmax, &labels), None);
    }

    #[test]
    fn axes_group_into_matrices_rows_and_columns() {
        // A convolution's [N, O, H, W] output over products of O × (H·W).
        assert_eq!(group_axes(&[64, 8, 28, 28], &[64, 8, 784]), Some(vec![vec![0], vec![1], vec![2, 3]]));
        // A linear layer's [B, out] over one product.
        assert_eq!(group_axes(&[32, 10], &[1, 32, 10]), Some(vec![vec![], vec![0], vec![1]]));
        assert_eq!(group_axes(&[1, 32, 10], &[1, 32, 10]), Some(vec![vec![], vec![1], vec![2]]));
        // Sizes that straddle the groups.
        assert_eq!(group_axes(&[16, 20], &[1, 32, 10]), None);
    }

    #[test]
    fn strides_merge_only_where_a_group_steps_as_one_axis() {
        let groups = [vec![0], vec![1], vec![2, 3]];
        let shape = [64, 8, 28, 28];
        // A bias per channel, broadcast over the batch and the plane.
        assert_eq!(merge(&[0, 1, 0, 0], &shape, &groups), Some(vec![0, 1, 0]));
        // The output itself.
        assert_eq!(merge(&[6272, 784, 28, 1], &shape, &groups), Some(vec![6272, 784, 1]));
        // A transposed plane does not step through the group as one axis.
        assert_eq!(merge(&[6272, 784, 1, 28], &shape, &groups), None);
    }
}
