//! The ONNX form of a function: ONNX operator nodes over named tensors, built by each op's
//! `onnx` rule in `ops` (beside its shape, evaluation and derivative rules). The crate
//! `nnc-onnx` encodes this graph, with the weights, as an ONNX protobuf model.

use super::{Function, Value};
use crate::shapes::{Dim, Shape};
use nnc_grammar::Span;
use std::collections::{HashMap, HashSet};

/// The ONNX operator set the rules are written for: 18 has every reduction take its axes
/// as an input, and onnxruntime, TensorRT and the framework importers all read it.
pub const ONNX_OPSET: i64 = 18;

/// The ONNX IR version that goes with `ONNX_OPSET` (IR 8 covers opsets up to 18).
pub const ONNX_IR_VERSION: i64 = 8;

/// ONNX's code of the element type f32 (`TensorProto.DataType.FLOAT`).
pub const ONNX_FLOAT: i64 = 1;
/// ONNX's code of the element type i64 (`TensorProto.DataType.INT64`).
pub const ONNX_INT64: i64 = 7;

/// A dimension of a graph input or output: a number, or a named dynamic size (the batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnnxDim {
    Fixed(i64),
    Symbol(String),
}

impl std::fmt::Display for OnnxDim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnnxDim::Fixed(n) => write!(f, "{n}"),
            OnnxDim::Symbol(s) => f.write_str(s),
        }
    }
}

/// A named f32 tensor of the graph's interface: an input, a weight or an output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxValue {
    pub name: String,
    pub dims: Vec<OnnxDim>,
}

/// Dimensions as `[B, 64]`.
pub fn dims_text(dims: &[OnnxDim]) -> String {
    format!("[{}]", dims.iter().map(OnnxDim::to_string).collect::<Vec<_>>().join(", "))
}

/// An attribute of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum OnnxAttr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    String(&'static str),
}

/// One ONNX operator application.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxNode {
    pub op_type: &'static str,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(&'static str, OnnxAttr)>,
    /// The source of the IR instruction the node comes from.
    pub span: Span,
}

/// The elements of a constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum OnnxData {
    Float(Vec<f32>),
    Int64(Vec<i64>),
}

/// A constant tensor the nodes use: a number of the source, or the shape or axes an
/// operator takes as an input.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxConstant {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: OnnxData,
}

/// A function as an ONNX graph. The weights are the function's arguments after its data
/// inputs; they become initializers, whose values the caller gives by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxGraph {
    pub name: String,
    pub inputs: Vec<OnnxValue>,
    pub weights: Vec<OnnxValue>,
    pub outputs: Vec<OnnxValue>,
    pub constants: Vec<OnnxConstant>,
    pub nodes: Vec<OnnxNode>,
}

/// Why a function has no ONNX form, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxError {
    pub message: String,
    pub span: Span,
    /// The size symbol without a value that stopped the export, if that is what did.
    pub open_size: Option<String>,
}

/// An operand of an op's ONNX rule: the tensor's name in the graph and its shape.
#[derive(Clone, Debug)]
pub struct OnnxArg {
    pub name: String,
    pub shape: Shape,
}

/// What an op's ONNX rule writes into: nodes and constants, with fresh names.
pub struct OnnxEmit<'g> {
    graph: &'g mut OnnxGraph,
    used: &'g mut HashSet<String>,
    /// The symbol of the dynamic batch dimension, if the function has one.
    batch: Option<String>,
    /// The graph input whose first dimension is the batch, to read its size from.
    batch_source: Option<String>,
    span: Span,
}

impl OnnxEmit<'_> {
    /// A name no other tensor of the graph has, starting with `base`.
    pub fn fresh(&mut self, base: &str) -> String {
        unique(self.used, base)
    }

    /// Appends the node `op_type(inputs) -> output`.
    pub fn node(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<(&'static str, OnnxAttr)>,
    ) {
        self.graph.nodes.push(OnnxNode {
            op_type,
            name: format!("{output}/{op_type}"),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
            attributes,
            span: self.span,
        });
    }

    /// Appends a node with several outputs, such as `MaxPool` with the indices of the maxima.
    pub fn node_outputs(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<(&'static str, OnnxAttr)>,
    ) {
        self.graph.nodes.push(OnnxNode {
            op_type,
            name: format!("{}/{op_type}", outputs[0]),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes,
            span: self.span,
        });
    }

    /// Appends `op_type(inputs)` into a fresh tensor named after `base`, and returns it.
    pub fn temp(
        &mut self,
        base: &str,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, OnnxAttr)>,
    ) -> String {
        let name = self.fresh(&format!("{base}/{}", op_type.to_lowercase()));
        self.node(op_type, inputs, &name, attributes);
        name
    }

    /// A constant tensor named `name`.
    pub fn constant_named(&mut self, name: &str, dims: Vec<i64>, data: OnnxData) {
        self.graph.constants.push(OnnxConstant { name: name.to_string(), dims, data });
    }

    /// A one-dimensional i64 constant (a shape, axes), with a fresh name.
    pub fn ints(&mut self, base: &str, values: Vec<i64>) -> String {
        let name = self.fresh(base);
        self.constant_named(&name, vec![values.len() as i64], OnnxData::Int64(values));
        name
    }

    /// An f32 constant of the given dimensions, with a fresh name.
    pub fn floats(&mut self, base: &str, dims: Vec<i64>, values: Vec<f32>) -> String {
        let name = self.fresh(base);
        self.constant_named(&name, dims, OnnxData::Float(values));
        name
    }

    /// A shape as the i64 tensor `Reshape` takes: every size known but the batch, which is
    /// `-1` (inferred from the element count), and which may appear only once.
    pub fn reshape_dims(&self, shape: &Shape) -> Result<Vec<i64>, String> {
        let mut inferred = false;
        let mut dims = Vec::with_capacity(shape.rank());
        for dim in &shape.0 {
            match dim.as_const() {
                Some(n) => dims.push(n as i64),
                None if !inferred && self.only_batch(dim) => {
                    inferred = true;
                    dims.push(-1);
                }
                None => {
                    return Err(format!("the shape {shape} has more than one size that is known only when it runs"));
                }
            }
        }
        Ok(dims)
    }

    /// A shape as an i64 tensor computed when the model runs: the known sizes as constants,
    /// the batch read from the input's shape. Every size must be known or the batch itself.
    pub fn shape_tensor(&mut self, base: &str, shape: &Shape) -> Result<String, String> {
        let known: Option<Vec<i64>> = shape.0.iter().map(|d| d.as_const().map(|n| n as i64)).collect();
        if let Some(dims) = known {
            return Ok(self.ints(&format!("{base}/shape"), dims));
        }
        let batch =
            self.batch_size(base).ok_or_else(|| format!("the shape {shape} has sizes known only when it runs"))?;
        let mut parts = Vec::new();
        for dim in &shape.0 {
            match dim.as_const() {
                Some(n) => parts.push(self.ints(&format!("{base}/dim"), vec![n as i64])),
                None if self.batch.as_ref().is_some_and(|b| *dim == Dim::symbol(b)) => parts.push(batch.clone()),
                None => return Err(format!("the size {dim} of {shape} is neither known nor the batch")),
            }
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(self.temp(base, "Concat", &parts, vec![("axis", OnnxAttr::Int(0))]))
    }

    /// The batch size as a one-element i64 tensor, read from the input's shape when the
    /// model runs; `None` when the function has no batch.
    fn batch_size(&mut self, base: &str) -> Option<String> {
        let source = self.batch_source.clone().filter(|_| self.batch.is_some())?;
        let attributes = vec![("start", OnnxAttr::Int(0)), ("end", OnnxAttr::Int(1))];
        Some(self.temp(base, "Shape", &[&source], attributes))
    }

    /// Whether `dim` depends on no symbol but the batch.
    fn only_batch(&self, dim: &Dim) -> bool {
        let symbols = dim.symbols();
        !symbols.is_empty() && symbols.iter().all(|s| Some(s) == self.batch.as_ref())
    }

    /// The value of a dimension as an f32 scalar tensor: a constant, or a multiple of the
    /// batch size, read from the input's shape when the model runs.
    pub fn size(&mut self, base: &str, dim: &Dim) -> Result<String, String> {
        if let Some(n) = dim.as_const() {
            return Ok(self.floats(base, Vec::new(), vec![n as f32]));
        }
        let not_batch =
            || format!("the size {dim} is not a multiple of the batch, the only size ONNX reads when it runs");
        let batch = Dim::symbol(self.batch.as_ref().ok_or_else(not_batch)?);
        // `dim` = factor × batch, the form of the element counts that means divide by.
        let factor = dim.floor_div(&batch).and_then(|q| q.as_const()).filter(|&q| q > 0).ok_or_else(not_batch)?;
        if batch.checked_mul(&Dim::constant(factor)).ok().as_ref() != Some(dim) {
            return Err(not_batch());
        }
        let shape = self.batch_size(base).ok_or_else(not_batch)?;
        let float = self.temp(base, "Cast", &[&shape], vec![("to", OnnxAttr::Int(ONNX_FLOAT))]);
        let scalar = self.ints(&format!("{base}/scalar"), Vec::new());
        let size = self.temp(base, "Reshape", &[&float, &scalar], Vec::new());
        if factor == 1 {
            return Ok(size);
        }
        let factor = self.floats(&format!("{base}/factor"), Vec::new(), vec![factor as f32]);
        Ok(self.temp(base, "Mul", &[&size, &factor], Vec::new()))
    }
}

/// `base`, or `base_2`, `base_3`, ... : the first that is not taken yet, now taken.
fn unique(used: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut n = 1;
    while used.contains(&name) {
        n += 1;
        name = format!("{base}_{n}");
    }
    used.insert(name.clone());
    name
}

/// The function `f` as an ONNX graph: its first `data_inputs` arguments are graph inputs,
/// the rest weights. Every size must be known but the batch (the first dimension of the
/// first input), which becomes a named dynamic dimension.
pub fn to_onnx(f: &Function, data_inputs: usize) -> Result<OnnxGraph, OnnxError> {
    let batch =
        f.params.first().and_then(|p| f.ty(p.value).shape.0.first()).and_then(|d| match d.symbols().as_slice() {
            [only] if *d == Dim::symbol(only) => Some(only.clone()),
            _ => None,
        });
    let mut graph = OnnxGraph { name: f.name.clone(), ..OnnxGraph::default() };
    let mut used = HashSet::new();
    let mut names: HashMap<Value, String> = HashMap::new();
    let interface = |value: Value, name: &str| -> Result<OnnxValue, OnnxError> {
        let dims = f.ty(value).shape.0.iter().map(|d| onnx_dim(d, batch.as_deref())).collect::<Result<_, _>>();
        dims.map(|dims| OnnxValue { name: name.to_string(), dims }).map_err(|(message, open_size)| OnnxError {
            message: format!("`{name}`: {message}"),
            span: f.span,
            open_size,
        })
    };
    for (i, param) in f.params.iter().enumerate() {
        let name = unique(&mut used, &param.name);
        let value = interface(param.value, &name)?;
        if i < data_inputs {
            graph.inputs.push(value)
        } else {
            graph.weights.push(value)
        }
        names.insert(param.value, name);
    }
    // The results keep their names (`y`), unless a result is an argument or comes twice.
    let mut result_names: HashMap<Value, String> = HashMap::new();
    for (value, name) in f.results.iter().zip(&f.result_names) {
        if !names.contains_key(value) && !result_names.contains_key(value) {
            result_names.insert(*value, unique(&mut used, name));
        }
    }
    let batch_source = graph.inputs.first().filter(|_| batch.is_some()).map(|v| v.name.clone());
    for inst in &f.body {
        let args: Vec<OnnxArg> =
            inst.args.iter().map(|a| OnnxArg { name: names[a].clone(), shape: f.ty(*a).shape.clone() }).collect();
        let name = match result_names.get(&inst.result) {
            Some(name) => name.clone(),
            None => unique(&mut used, f.name_of(inst.result)),
        };
        let out = OnnxArg { name: name.clone(), shape: f.ty(inst.result).shape.clone() };
        let mut emit = OnnxEmit {
            graph: &mut graph,
            used: &mut used,
            batch: batch.clone(),
            batch_source: batch_source.clone(),
            span: inst.span,
        };
        (inst.op.rules().onnx)(&mut emit, &inst.op, &args, &out).map_err(|reason| OnnxError {
            message: format!("the op `{}` has no ONNX form here: {reason}", inst.op.name()),
            span: inst.span,
            open_size: None,
        })?;
        names.insert(inst.result, name);
    }
    for (value, name) in f.results.iter().zip(&f.result_names) {
        let output = match result_names.get(value) {
            Some(own) if names.get(value) == Some(own) => own.clone(),
            _ => {
                // An argument returned as it is, or a value returned twice, leaves through
                // an `Identity` of its own, since a graph output is a tensor of its own name.
                let copy = unique(&mut used, name);
                graph.nodes.push(OnnxNode {
                    op_type: "Identity",
                    name: format!("{copy}/Identity"),
                    inputs: vec![names[value].clone()],
                    outputs: vec![copy.clone()],
                    attributes: Vec::new(),
                    span: f.span,
                });
                copy
            }
        };
        result_names.remove(value);
        graph.outputs.push(interface(*value, &output)?);
    }
    Ok(graph)
}

/// A dimension of the interface: known, or the batch symbol; else why not, with the first
/// symbol that has no value.
fn onnx_dim(dim: &Dim, batch: Option<&str>) -> Result<OnnxDim, (String, Option<String>)> {
    if let Some(n) = dim.as_const() {
        return Ok(OnnxDim::Fixed(n as i64));
    }
    let symbols = dim.symbols();
    match batch {
        Some(batch) if symbols.iter().all(|s| s == batch) => Ok(OnnxDim::Symbol(dim.to_string())),
        _ => {
            let unknown: Vec<&String> = symbols.iter().filter(|s| Some(s.as_str()) != batch).collect();
            let named: Vec<String> = unknown.iter().map(|s| format!("`{s}`")).collect();
            let message = format!(
                "the size `{dim}` has no value; ONNX needs every size but the batch, so give {} a value",
                named.join(", ")
            );
            Err((message, unknown.first().map(|s| s.to_string())))
        }
    }
}
