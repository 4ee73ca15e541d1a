//! Every op's ONNX rule: each op, derivative ops included, exports to a well-formed graph
//! of ONNX operators of the opset. The numbers are checked against onnxruntime by
//! `scripts/onnx-check`, on the models and gradient graphs of the examples.

use nnc_compiler::ir::{Function, OnnxDim, OnnxGraph, Op, Type, to_onnx};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::Span;
use std::collections::HashSet;

#[path = "common/sweep_cases.rs"]
mod sweep_cases;

/// The ONNX operators (opset 18, default domain) the rules may write.
const OPERATORS: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "Cast",
    "Concat",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Div",
    "Erf",
    "Exp",
    "Expand",
    "Gather",
    "Greater",
    "GreaterOrEqual",
    "Identity",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mul",
    "Neg",
    "OneHot",
    "Pow",
    "ReduceMax",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "ScatterElements",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Slice",
    "Softmax",
    "SoftmaxCrossEntropyLoss",
    "Sqrt",
    "Sub",
    "Tan",
    "Tanh",
    "Transpose",
];

fn dims(values: &[usize]) -> Shape {
    Shape(values.iter().map(|&d| Dim::constant(d as i128)).collect())
}

/// Argument shapes for `op`: the gradient sweep's first case, or shapes that suit the ops
/// the sweep does not differentiate.
fn operands(op: &Op) -> Vec<Shape> {
    if let Some(case) = sweep_cases::cases(op).and_then(|cases| cases.into_iter().next()) {
        return case.inputs.iter().map(|(d, _)| dims(d)).collect();
    }
    match op {
        Op::Const(_) | Op::Literal { .. } | Op::Size(_) => Vec::new(),
        Op::Step | Op::Sign | Op::OneHot { .. } => vec![dims(&[4])],
        Op::GreaterEq => vec![dims(&[2, 3]), dims(&[3])],
        Op::Conv2dInputGrad { .. } => vec![dims(&[1, 1, 2, 2]), dims(&[1, 1, 2, 2])],
        Op::Conv2dWeightGrad { .. } => vec![dims(&[1, 1, 3, 3]), dims(&[1, 1, 2, 2])],
        _ => vec![dims(&[1, 1, 4, 4]); 2],
    }
}

/// A function of one instruction, `op` on arguments of the given shapes, returned as `y`.
fn one_op(op: &Op, shapes: &[Shape]) -> Function {
    let mut f = Function::new("one", Span::default());
    let args: Vec<_> = shapes.iter().enumerate().map(|(i, s)| f.param(&format!("a{i}"), Type::of(s.clone()))).collect();
    let y = f.push(op.clone(), &args, Span::default());
    f.results = vec![y];
    f.result_names = vec!["y".into()];
    f
}

/// Every node reads tensors defined before it, writes tensors no one else writes, and uses
/// an operator of the opset; the graph's output is written by a node.
fn well_formed(graph: &OnnxGraph) -> Result<(), String> {
    let mut defined: HashSet<&str> = graph.inputs.iter().chain(&graph.weights).map(|v| v.name.as_str()).collect();
    for constant in &graph.constants {
        if !defined.insert(&constant.name) {
            return Err(format!("`{}` is defined twice", constant.name));
        }
    }
    for node in &graph.nodes {
        if !OPERATORS.contains(&node.op_type) {
            return Err(format!("`{}` is not an operator the rules may use", node.op_type));
        }
        for input in &node.inputs {
            if !defined.contains(input.as_str()) {
                return Err(format!("`{}` reads `{input}` before it is defined", node.op_type));
            }
        }
        for output in &node.outputs {
            if !defined.insert(output) {
                return Err(format!("`{output}` is written twice"));
            }
        }
    }
    for output in &graph.outputs {
        if !defined.contains(output.name.as_str()) {
            return Err(format!("the output `{}` is never written", output.name));
        }
    }
    Ok(())
}

#[test]
fn every_op_exports_to_a_well_formed_graph_of_opset_operators() {
    for op in Op::samples() {
        let f = one_op(&op, &operands(&op));
        let graph =
            to_onnx(&f, f.params.len()).unwrap_or_else(|e| panic!("`{}` does not export: {}", op.name(), e.message));
        well_formed(&graph).unwrap_or_else(|e| panic!("`{}`: {e}", op.name()));
        assert_eq!(graph.outputs.len(), 1);
        assert_eq!(graph.outputs[0].name, "y", "`{}`", op.name());
    }
}

#[test]
fn a_well_formed_check_that_can_fail() {
    let mut f = Function::new("m", Span::default());
    let x = f.param("x", Type::of(dims(&[2])));
    let y = f.push(Op::Relu, &[x], Span::default());
    f.results = vec![y];
    f.result_names = vec!["y".into()];
    let mut graph = to_onnx(&f, 1).unwrap();
    well_formed(&graph).unwrap();
    graph.nodes[0].inputs[0] = "nowhere".into();
    assert!(well_formed(&graph).unwrap_err().contains("before it is defined"));
    graph.nodes[0].inputs[0] = "x".into();
    graph.nodes[0].op_type = "Relux";
    assert!(well_formed(&graph).unwrap_err().contains("not an operator"));
}

#[test]
fn the_batch_is_a_named_dynamic_dimension_and_reshapes_infer_it() {
    let batch = Dim::symbol("B");
    let mut f = Function::new("m", Span::default());
    let x = f.param("x", Type::of(Shape(vec![batch.clone(), Dim::constant(2), Dim::constant(3)])));
    let flat = batch.checked_mul(&Dim::constant(2)).unwrap();
    let y = f.push(Op::Reshape(Shape(vec![flat, Dim::constant(3)])), &[x], Span::default());
    f.results = vec![y];
    f.result_names = vec!["y".into()];
    let graph = to_onnx(&f, 1).unwrap();
    assert_eq!(graph.inputs[0].dims[0], OnnxDim::Symbol("B".into()));
    assert_eq!(graph.outputs[0].dims, vec![OnnxDim::Symbol("2·B".into()), OnnxDim::Fixed(3)]);
    let shape = graph.constants.iter().find(|c| c.name.ends_with("/shape")).expect("a shape constant");
    assert_eq!(shape.data, nnc_compiler::ir::OnnxData::Int64(vec![-1, 3]));
}

#[test]
fn a_size_that_is_not_the_batch_is_named_in_the_error() {
    let mut f = Function::new("m", Span::default());
    let x = f.param("x", Type::of(Shape(vec![Dim::symbol("B"), Dim::symbol("width")])));
    let y = f.push(Op::Relu, &[x], Span::default());
    f.results = vec![y];
    f.result_names = vec!["y".into()];
    let error = to_onnx(&f, 1).unwrap_err();
    assert!(error.message.contains("`width`"), "{}", error.message);
}

#[test]
fn an_argument_returned_as_it_is_leaves_through_identity() {
    let mut f = Function::new("m", Span::default());
    let x = f.param("x", Type::of(dims(&[2])));
    f.results = vec![x];
    f.result_names = vec!["y".into()];
    let graph = to_onnx(&f, 1).unwrap();
    assert_eq!(graph.nodes.len(), 1);
    assert_eq!(graph.nodes[0].op_type, "Identity");
    assert_eq!(graph.outputs[0].name, "y");
    well_formed(&graph).unwrap();
}
