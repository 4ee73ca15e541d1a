//! Constants: scalars, array literals, and the sizes of dimensions known when a function runs.

use super::{Op, Rules, no_attributes, no_jvp, no_vjp, scalar};
use crate::ir::onnx::OnnxData;
use crate::ir::parse::{Attributes, numbers};
use crate::ir::print::number;
use crate::shapes::{Dim, Shape};

/// `[2, 2; 1, 0, 0, 1]`: the shape, then the values in row-major order.
fn literal_attributes(op: &Op) -> String {
    let Op::Literal { shape, data } = op else { unreachable!() };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let values: Vec<String> = data.iter().map(|v| number(*v)).collect();
    format!("[{}; {}]", dims.join(", "), values.join(", "))
}

fn parse_literal(attributes: &Attributes<'_>) -> Result<Op, String> {
    let (dims, data) = attributes.text().split_once(';').ok_or("`literal[shape; values]`")?;
    let shape: Vec<usize> = numbers(dims)?;
    let data: Vec<f64> = numbers(data)?;
    if shape.iter().product::<usize>() != data.len() {
        return Err("the literal's values do not fill its shape".into());
    }
    Ok(Op::Literal { shape, data })
}

pub(super) static CONST: Rules = Rules {
    name: "const",
    attributes: no_attributes,
    parse: |_| Err("constants are written where they are used".into()),
    shape: scalar,
    eval: |op, _, out| {
        let Op::Const(c) = op else { unreachable!() };
        out.data[0] = *c
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, _, y| {
        let Op::Const(c) = op else { unreachable!() };
        e.constant_named(&y.name, Vec::new(), OnnxData::Float(vec![*c as f32]));
        Ok(())
    },
};

pub(super) static SIZE: Rules = Rules {
    name: "size",
    attributes: |op| {
        let Op::Size(dim) = op else { unreachable!() };
        format!("[{dim}]")
    },
    parse: |a| Ok(Op::Size(a.dim()?)),
    shape: scalar,
    eval: |op, _, out| {
        let Op::Size(dim) = op else { unreachable!() };
        out.data[0] = dim.as_const().expect("a concrete size") as f64
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, _, y| {
        let Op::Size(dim) = op else { unreachable!() };
        let size = e.size(&y.name, dim)?;
        e.node("Identity", &[&size], &y.name, Vec::new());
        Ok(())
    },
};

pub(super) static LITERAL: Rules = Rules {
    name: "literal",
    attributes: literal_attributes,
    parse: parse_literal,
    shape: |op, _| {
        let Op::Literal { shape, .. } = op else { unreachable!() };
        Ok(Shape(shape.iter().map(|&d| Dim::constant(d as i128)).collect()))
    },
    eval: |op, _, out| {
        let Op::Literal { data, .. } = op else { unreachable!() };
        out.data.copy_from_slice(data)
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, _, y| {
        let Op::Literal { shape, data } = op else { unreachable!() };
        let dims = shape.iter().map(|&d| d as i64).collect();
        e.constant_named(&y.name, dims, OnnxData::Float(data.iter().map(|&v| v as f32).collect()));
        Ok(())
    },
};
