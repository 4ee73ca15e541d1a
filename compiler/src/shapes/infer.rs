//! The check's one walk over a file: every model, function, constant and query with
//! symbolic dimensions, each body walked once per distinct use. It records rows, facts and
//! diagnostics for people, and builds the checked program (`crate::checked`) for the
//! stages after it. This file holds the walk over the file and over model bodies;
//! `expr`, `apply` and `items` hold the rest.

use super::dim::Dim;
use super::rules::Applied;
use super::train::{Quiet, Reader};
use super::{ModelReport, Row, RowKind, Shape, ShapeAnalysis, ShapeFact};
use crate::builtins::{self, Form};
use crate::checked::{Call, InstanceId, InstanceKind, Node, NodeId, NodeKind, Statement};
use crate::ir::ParamInit;
use nnc_grammar::{
    Arg, BinaryOp, Code, Diagnostic, Expr, ExprKind, File, FnDef, Item, LineIndex, ModelDef, Span, Stmt,
};
use std::collections::HashMap;

/// How many models or functions may be nested inside each other when one is used in
/// another. Recursion is reported by name resolution; this only stops the walk.
pub(super) const MAX_DEPTH: usize = 32;

/// Tensors larger than this many elements (16 TiB of f32) cannot be allocated anywhere
/// nnc runs; a model that needs one has a mistake in a size.
const MAX_ELEMENTS: i128 = 1 << 42;

/// Why a dimension has its value: the line that made it, in words.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Origin {
    pub span: Span,
    pub text: String,
}

/// A tensor's shape as far as it is known, with the origin of each dimension.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Value {
    /// `None`: not known (an unannotated function argument, or after an error).
    pub shape: Option<Shape>,
    /// One list per dimension, most recent first.
    pub why: Vec<Vec<Origin>>,
    /// The node of the instance being walked that computes it; `None` after an error.
    pub node: Option<NodeId>,
    /// For a top-level constant: its instance, used anew wherever its name appears.
    pub constant: Option<InstanceId>,
}

impl Value {
    pub fn new(shape: Shape) -> Value {
        let why = vec![Vec::new(); shape.rank()];
        Value { shape: Some(shape), why, node: None, constant: None }
    }

    pub fn unknown() -> Value {
        Value::default()
    }

    pub(crate) fn scalar() -> Value {
        Value::new(Shape(Vec::new()))
    }
}

/// Analyses the shapes of every model, function and query in `file`.
pub fn analyze_shapes(file: &File, source: &str) -> ShapeAnalysis {
    analyze_with(file, source, None)
}

/// Something to check beyond the file as written, for a command or the runtime.
pub enum Override<'o> {
    /// A model with argument values given from outside the source (`--arg`), which may
    /// also name the size symbols of its input (`in` of `input [B, in]`).
    Model { name: &'o str, args: &'o HashMap<String, Dim> },
    /// A function for arguments of these shapes.
    Function { name: &'o str, shapes: &'o [Shape] },
    /// An expression over the file's constants and functions.
    Value(&'o Expr),
}

/// `analyze_shapes`, with one more thing checked: its instance, report and diagnostics are
/// in `ShapeAnalysis::overridden`.
pub fn analyze_with(file: &File, source: &str, over: Option<Override<'_>>) -> ShapeAnalysis {
    let mut engine = Engine {
        source,
        lines: LineIndex::new(source),
        models: HashMap::new(),
        fns: HashMap::new(),
        out: ShapeAnalysis::default(),
        standalone_failed: Vec::new(),
        active: Vec::new(),
        walked: HashMap::new(),
        constants: HashMap::new(),
    };
    for item in &file.items {
        match item {
            Item::Model(def) => {
                engine.models.entry(def.name.name.clone()).or_insert(def);
            }
            Item::Fn(def) => {
                engine.fns.entry(def.name.name.clone()).or_insert(def);
            }
            _ => {}
        }
    }
    // Constants first, in order, so that models and functions anywhere in the file can use them.
    for item in &file.items {
        if let Item::Let(stmt) = item {
            engine.constant(stmt);
        }
    }
    for item in &file.items {
        match item {
            Item::Model(def) => {
                let mut frame = engine.frame(0, true);
                let report = engine.model(def, &HashMap::new(), None, &mut frame);
                if frame.diagnostics.iter().any(Diagnostic::is_error) {
                    engine.standalone_failed.push(def.name.name.clone());
                }
                engine.out.diagnostics.append(&mut frame.diagnostics);
                engine.out.facts.append(&mut frame.facts);
                engine.out.models.push(report);
            }
            Item::Fn(def) => {
                let mut frame = engine.frame(0, true);
                for (i, param) in def.params.iter().enumerate() {
                    let value = match &param.shape {
                        Some(shape) => engine.declared_shape(&shape.dims, &mut frame),
                        None => Value::unknown(),
                    };
                    let value = Engine::with_node(&mut frame, value, NodeKind::Input(i), param.span);
                    frame.inputs.push((param.name.name.clone(), value.node.unwrap_or_default()));
                    frame.tensors.insert(param.name.name.clone(), value);
                }
                let value = engine.expr(&def.body, &mut frame);
                let failed = frame.diagnostics.iter().any(Diagnostic::is_error);
                if failed {
                    engine.standalone_failed.push(def.name.name.clone());
                }
                let id = engine.finish(&mut frame, &def.name, InstanceKind::Fn, Vec::new(), value.node, failed);
                engine.out.fns.push((def.name.name.clone(), id));
                engine.out.diagnostics.append(&mut frame.diagnostics);
                engine.out.facts.append(&mut frame.facts);
            }
            Item::Query(query) => engine.query(query),
            Item::Train(def) => engine.train(def),
            Item::Let(_) | Item::Error(_) => {}
        }
    }
    if let Some(over) = over {
        engine.out.overridden = Some(engine.instantiate(over));
    }
    engine.out
}

pub(super) struct Engine<'a> {
    pub(super) source: &'a str,
    pub(super) lines: LineIndex,
    pub(super) models: HashMap<String, &'a ModelDef>,
    pub(super) fns: HashMap<String, &'a FnDef>,
    pub(super) out: ShapeAnalysis,
    /// Models and functions whose own analysis failed: their errors are reported there,
    /// not again at every use.
    pub(super) standalone_failed: Vec<String>,
    /// The functions and models being walked, innermost last. One met again is recursion,
    /// which name resolution reports; it is not walked again.
    pub(super) active: Vec<String>,
    /// What walking a function or model gave for given inputs, with the diagnostics inside
    /// it: a definition used many times is walked once per distinct input, so the time is
    /// linear in the file, not exponential in how deeply calls nest.
    pub(super) walked: HashMap<String, (Applied, Vec<Diagnostic>, Option<InstanceId>)>,
    /// The file's constants (top-level `let`s) so far, by name.
    pub(super) constants: HashMap<String, Value>,
}

/// One model or function being walked.
pub(super) struct Frame {
    /// Model arguments and dimension symbols.
    pub(super) dims: HashMap<String, Dim>,
    pub(super) tensors: HashMap<String, Value>,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) facts: Vec<ShapeFact>,
    pub(super) depth: usize,
    /// Whether to keep shape facts (only for the walk over the source as written).
    pub(super) record: bool,
    pub(super) batch: Option<String>,
    /// The instance being built: its nodes, inputs and statements.
    pub(super) nodes: Vec<Node>,
    pub(super) inputs: Vec<(String, NodeId)>,
    pub(super) statements: Vec<Statement>,
    /// What the statement being walked names: its layers with parameters, the models it
    /// uses as layers and its dropouts, in order.
    pub(super) slots: Vec<Slot>,
}

/// Something in a statement of a model body that takes a `state_dict` name.
pub(super) enum Slot {
    /// The parameter nodes of a layer (`weight`, then `bias`).
    Layer(Vec<NodeId>),
    /// A model used as a layer: the node that uses it.
    Model(NodeId),
    /// A dropout: the node, whose mask is named after the statement.
    Dropout(NodeId),
}

impl Frame {
    pub(super) fn new(depth: usize, record: bool) -> Frame {
        Frame {
            dims: HashMap::new(),
            tensors: HashMap::new(),
            diagnostics: Vec::new(),
            facts: Vec::new(),
            depth,
            record,
            batch: None,
            nodes: Vec::new(),
            inputs: Vec::new(),
            statements: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Adds a node to the instance being built.
    pub(super) fn push(&mut self, kind: NodeKind, shape: Option<Shape>, span: Span) -> NodeId {
        self.nodes.push(Node { kind, shape, span });
        self.nodes.len() - 1
    }

    pub(super) fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }
}

impl<'a> Engine<'a> {
    pub(super) fn text(&self, span: Span) -> &'a str {
        self.source.get(span.range()).unwrap_or("")
    }

    /// The call as a short label: its text on one line, cut at 60 characters.
    pub(super) fn label(&self, span: Span) -> String {
        let text: String = self.text(span).split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > 60 { format!("{}...", text.chars().take(57).collect::<String>()) } else { text }
    }

    /// A whole-number expression over model arguments and symbols.
    pub(super) fn dim(&self, expr: &Expr, frame: &Frame) -> Option<Dim> {
        match &expr.kind {
            ExprKind::Int(v) => Some(Dim::constant(*v as i128)),
            ExprKind::Float(v) if v.fract() == 0.0 && v.abs() < 1e18 => Some(Dim::constant(*v as i128)),
            ExprKind::Name(name) => frame.dims.get(name).cloned(),
            ExprKind::Paren(inner) => self.dim(inner, frame),
            ExprKind::Neg(inner) => Some(self.dim(inner, frame)?.checked_neg()),
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.dim(lhs, frame)?, self.dim(rhs, frame)?);
                match op {
                    BinaryOp::Add => a.checked_add(&b).ok(),
                    BinaryOp::Sub => a.checked_sub(&b).ok(),
                    BinaryOp::Mul => a.checked_mul(&b).ok(),
                    BinaryOp::Div => a.floor_div(&b),
                    BinaryOp::Pow => {
                        let exponent = b.as_const().filter(|e| (0..=128).contains(e))?;
                        (0..exponent).try_fold(Dim::constant(1), |acc, _| acc.checked_mul(&a).ok())
                    }
                    BinaryOp::MatMul | BinaryOp::Pipe => None,
                }
            }
            _ => None,
        }
    }

    pub(super) fn real(&self, expr: &Expr, frame: &Frame) -> Option<f64> {
        match &expr.kind {
            ExprKind::Float(v) => Some(*v),
            ExprKind::Paren(inner) => self.real(inner, frame),
            ExprKind::Neg(inner) => self.real(inner, frame).map(|v| -v),
            ExprKind::Binary { op: BinaryOp::Div, lhs, rhs } => Some(self.real(lhs, frame)? / self.real(rhs, frame)?),
            _ => self.dim(expr, frame).and_then(|d| d.as_const()).map(|v| v as f64),
        }
    }

    /// A declared shape (`input [B, 64]`, `x: [N]`): names that are not yet known become
    /// dimension symbols.
    pub(super) fn declared_shape(&self, dims: &[Expr], frame: &mut Frame) -> Value {
        let mut shape = Vec::new();
        for dim in dims {
            if let ExprKind::Name(name) = &dim.kind
                && !frame.dims.contains_key(name)
            {
                frame.dims.insert(name.clone(), Dim::symbol(name));
            }
            match self.dim(dim, frame) {
                Some(d) => shape.push(d),
                None => return Value::unknown(),
            }
        }
        Value::new(Shape(shape))
    }

    /// The values of a model's arguments for a call: given, default, or a symbol.
    pub(super) fn model_args(&self, def: &ModelDef, args: &[Arg], frame: &mut Frame) -> HashMap<String, Dim> {
        let mut values: HashMap<String, Dim> = HashMap::new();
        let mut positional = def.params.iter();
        for arg in args.iter().filter(|a| !self.mentions_tensor(&a.value, frame)) {
            let param = match &arg.name {
                Some(name) => def.params.iter().find(|p| p.name.name == name.name),
                None => positional.next(),
            };
            if let (Some(param), Some(value)) = (param, self.dim(&arg.value, frame)) {
                values.insert(param.name.name.clone(), value);
            }
        }
        values
    }

    pub(super) fn mentions_tensor(&self, expr: &Expr, frame: &Frame) -> bool {
        let mut found = false;
        expr.walk(&mut |e| match &e.kind {
            ExprKind::Name(name) if frame.tensors.contains_key(name) => found = true,
            ExprKind::Array(_) => found = true,
            _ => {}
        });
        found
    }

    /// Walks a model body. `input` is the value flowing in when the model is used as a
    /// layer; `args` the argument values given.
    pub(super) fn model(
        &mut self,
        def: &ModelDef,
        args: &HashMap<String, Dim>,
        input: Option<&Value>,
        frame: &mut Frame,
    ) -> ModelReport {
        for param in &def.params {
            let value = match args.get(&param.name.name) {
                Some(value) => value.clone(),
                None => match param.default.as_ref().and_then(|d| self.dim(d, frame)) {
                    Some(value) => value,
                    None => Dim::symbol(&param.name.name),
                },
            };
            if value.is_nonpositive() {
                let span = param.default.as_ref().map_or(param.span, |d| d.span);
                frame.error(Diagnostic::new(
                    Code::EmptyDimension,
                    format!("`{}` is {value}, but sizes must be at least 1", param.name.name),
                    span,
                    "not a positive size",
                ));
            }
            frame.tensors.remove(&param.name.name);
            frame.dims.insert(param.name.name.clone(), value);
        }
        // Values given for other names bind the size symbols of the input (`in` of
        // `input x: [B, in]`), for a model checked on its own with values from outside.
        if input.is_none() {
            for (name, value) in args {
                if !frame.dims.contains_key(name) {
                    frame.tensors.remove(name);
                    frame.dims.insert(name.clone(), value.clone());
                }
            }
        }
        let mut report = ModelReport {
            name: def.name.name.clone(),
            span: def.name.span,
            args: def.params.iter().map(|p| (p.name.name.clone(), frame.dims[&p.name.name].to_string())).collect(),
            batch: None,
            input: None,
            output: None,
            rows: Vec::new(),
            params: Dim::default(),
            mult_adds: Dim::default(),
            failed: false,
            instance: None,
            doc: def.doc.as_ref().map(|d| d.text.trim().to_string()),
        };
        let mut current = Value::unknown();
        let mut index = 0;
        for stmt in &def.body {
            let errors_before = frame.diagnostics.iter().filter(|d| d.is_error()).count();
            let first_node = frame.nodes.len();
            let mut row = Row {
                kind: RowKind::Expr,
                label: self.label(stmt.span()),
                span: stmt.span(),
                line: self.lines.position(self.source, stmt.span().start).line + 1,
                shape: None,
                weights: Dim::default(),
                biases: Dim::default(),
                mult_adds: Dim::default(),
                formulas: Vec::new(),
                failed: false,
            };
            match stmt {
                Stmt::Input(input_stmt) => {
                    row.kind = RowKind::Input;
                    if report.input.is_some() {
                        continue;
                    }
                    let declared = self.declared_shape(&input_stmt.shape.dims, frame);
                    current = match input {
                        Some(given) => self.bind_input(def, &declared, given, &input_stmt.shape.dims, frame),
                        None => declared,
                    };
                    current = Self::with_node(frame, current, NodeKind::Input(0), input_stmt.span);
                    let name = input_stmt.name.as_ref().map_or("x", |n| n.name.as_str());
                    frame.inputs.push((name.to_string(), current.node.unwrap_or_default()));
                    if let Some(ExprKind::Name(batch)) = input_stmt.shape.dims.first().map(|d| &d.kind)
                        && frame.dims.get(batch).is_some_and(|d| *d == Dim::symbol(batch))
                    {
                        frame.batch = Some(batch.clone());
                        report.batch = Some(batch.clone());
                    }
                    report.input = current.shape.clone();
                    if let Some(name) = &input_stmt.name {
                        frame.tensors.insert(name.name.clone(), current.clone());
                    }
                    row.shape = current.shape.clone();
                }
                Stmt::Param(param) => {
                    row.kind = RowKind::Param;
                    let value = self.declared_shape(&param.shape.dims, frame);
                    if let Some(shape) = &value.shape {
                        let count = shape.elements().unwrap_or_default();
                        if shape.rank() == 1 {
                            row.biases = count
                        } else {
                            row.weights = count
                        }
                        row.formulas.push(format!(
                            "{} [{}]: {}",
                            param.name.name,
                            shape.0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                            row.params()
                        ));
                        self.check_size(shape, param.span, &param.name.name, frame);
                    }
                    row.shape = value.shape.clone();
                    let init = param.init.as_ref().and_then(|e| self.param_init(e, frame));
                    let kind = NodeKind::Param { name: param.name.name.clone(), init };
                    let value = Self::with_node(frame, value, kind, param.span);
                    frame.tensors.insert(param.name.name.clone(), value);
                }
                Stmt::Let(let_stmt) => {
                    row.kind = RowKind::Let;
                    let (value, applied) = self.expr_with_costs(&let_stmt.value, frame);
                    row.weights = applied.weights;
                    row.biases = applied.biases;
                    row.mult_adds = applied.mult_adds;
                    row.shape = value.shape.clone();
                    if frame.record
                        && let Some(shape) = &value.shape
                    {
                        frame.facts.push(ShapeFact { span: let_stmt.name.span, shape: shape.clone() });
                    }
                    frame.tensors.insert(let_stmt.name.name.clone(), value);
                    Self::end_statement(frame, index, stmt.span(), first_node);
                    index += 1;
                }
                Stmt::Expr(expr) => {
                    let (value, applied) = match self.layer_line(expr, frame) {
                        Some((name, args)) => {
                            row.kind = RowKind::Layer;
                            let applied = self.apply(name, args, &current, expr.span, frame);
                            (applied.value.clone(), applied)
                        }
                        None => self.expr_with_costs(expr, frame),
                    };
                    row.weights = applied.weights;
                    row.biases = applied.biases;
                    row.mult_adds = applied.mult_adds;
                    row.formulas = applied.formulas;
                    current = value;
                    row.shape = current.shape.clone();
                    Self::end_statement(frame, index, stmt.span(), first_node);
                    index += 1;
                }
                Stmt::Error(_) => {
                    row.failed = true;
                    current = Value::unknown();
                }
            }
            if frame.diagnostics.iter().filter(|d| d.is_error()).count() > errors_before {
                row.failed = true;
                current = if row.kind == RowKind::Input || row.kind == RowKind::Param || row.kind == RowKind::Let {
                    current
                } else {
                    Value::unknown()
                };
                row.shape = row.shape.filter(|_| row.kind != RowKind::Layer && row.kind != RowKind::Expr);
            }
            if let Some(shape) = &row.shape
                && !row.failed
                && let Some(axis) = shape.0.iter().position(Dim::is_nonpositive)
            {
                frame.error(
                    Diagnostic::new(
                        Code::EmptyDimension,
                        format!(
                            "`{}` gives {shape}: dimension {axis} is {}, but sizes must be at least 1",
                            row.label, shape.0[axis]
                        ),
                        row.span,
                        format!("makes {shape}"),
                    )
                    .with_help("check the sizes of this line and the model arguments it uses"),
                );
                row.failed = true;
                current = Value::unknown();
            }
            if let Some(shape) = &row.shape {
                // The batch does not count: a tensor too large for one example is the mistake.
                let one = match &frame.batch {
                    Some(batch) => shape.substitute(batch, &Dim::constant(1)),
                    None => shape.clone(),
                };
                self.check_size(&one, row.span, &row.label, frame);
            }
            if let Some(count) = row.params().as_const().filter(|&n| n > MAX_ELEMENTS) {
                frame.error(
                    Diagnostic::new(
                        Code::TooLarge,
                        format!(
                            "`{}` needs {} parameters, too many to allocate",
                            row.label,
                            group_digits(&count.to_string())
                        ),
                        row.span,
                        format!("{} parameters", group_digits(&count.to_string())),
                    )
                    .with_note(format!(
                        "the limit is {} elements (16 TiB of f32)",
                        group_digits(&MAX_ELEMENTS.to_string())
                    ))
                    .with_help("check the sizes of this line"),
                );
            }
            report.failed |= row.failed;
            report.params = report.params.checked_add(&row.params()).unwrap_or_default();
            report.mult_adds = report.mult_adds.checked_add(&row.mult_adds).unwrap_or_default();
            report.rows.push(row);
        }
        report.output = current.shape.clone();
        let failed = frame.diagnostics.iter().any(Diagnostic::is_error);
        let args = def.params.iter().map(|p| (p.name.name.clone(), frame.dims[&p.name.name].clone())).collect();
        report.instance = Some(self.finish(frame, &def.name, InstanceKind::Model, args, current.node, failed));
        report
    }

    /// Names what a statement of a model body created, as PyTorch's `state_dict` does for
    /// `nn.Sequential`: statement `index`'s layer has `{index}.weight`; a statement with
    /// several layers with parameters names them `{index}.{k}`; a model used as a layer
    /// prefixes its own names with that (`2.1.weight`); a dropout's mask is `{index}.mask`.
    pub(super) fn end_statement(frame: &mut Frame, index: usize, span: Span, first_node: NodeId) {
        let slots = std::mem::take(&mut frame.slots);
        let several = slots.iter().filter(|s| !matches!(s, Slot::Dropout(_))).count() > 1;
        let mut k = 0;
        for slot in slots {
            let name = if several { format!("{index}.{k}") } else { index.to_string() };
            match slot {
                Slot::Layer(params) => {
                    k += 1;
                    for param in params {
                        if let NodeKind::Param { name: local, .. } = &mut frame.nodes[param].kind {
                            *local = format!("{name}.{local}");
                        }
                    }
                }
                Slot::Model(node) => {
                    k += 1;
                    if let NodeKind::Use { prefix, .. } = &mut frame.nodes[node].kind {
                        *prefix = format!("{name}.");
                    }
                }
                Slot::Dropout(node) => {
                    if let NodeKind::Call { call: Call::Dropout(dropout), .. } = &mut frame.nodes[node].kind {
                        dropout.mask = format!("{index}.mask");
                    }
                }
            }
        }
        frame.statements.push(Statement { span, nodes: first_node..frame.nodes.len() });
    }

    /// The initialiser written after a `param`'s `=`.
    pub(super) fn param_init(&self, expr: &Expr, frame: &Frame) -> Option<ParamInit> {
        let (name, args) = expr.call_parts()?;
        let entry = builtins::entry(name)?;
        let Form::Initializer(build) = entry.form else {
            // Name resolution reports what is not an initialiser.
            return None;
        };
        // Numbers are evaluated where they are written, without diagnostics: name
        // resolution reports what is wrong.
        let quiet = |expr: &Expr| self.real(expr, frame);
        build(&mut Reader::new(&entry.builtin, args, Quiet(&quiet)))
    }

    /// Reports a tensor too large to allocate.
    pub(super) fn check_size(&self, shape: &Shape, span: Span, what: &str, frame: &mut Frame) {
        let elements = shape.elements();
        let too_large = match &elements {
            None => true,
            Some(count) => count.as_const().is_some_and(|n| n > MAX_ELEMENTS),
        };
        if too_large && !frame.diagnostics.iter().any(|d| d.code == Code::TooLarge && d.primary.span == span) {
            let count =
                elements.map_or_else(|| "more than 18446744073709551615".to_string(), |c| group_digits(&c.to_string()));
            frame.error(
                Diagnostic::new(
                    Code::TooLarge,
                    format!("`{what}` makes a tensor {shape} of {count} elements, too large to allocate"),
                    span,
                    "this size",
                )
                .with_note(format!("the limit is {} elements (16 TiB of f32)", group_digits(&MAX_ELEMENTS.to_string())))
                .with_help("check the sizes of this line"),
            );
        }
    }

    /// Binds a model's declared input to the value given to it, reporting a mismatch.
    pub(super) fn bind_input(
        &self,
        def: &ModelDef,
        declared: &Value,
        given: &Value,
        dims: &[Expr],
        frame: &mut Frame,
    ) -> Value {
        let (Some(want), Some(have)) = (&declared.shape, &given.shape) else {
            return given.clone();
        };
        let mismatch = want.rank() != have.rank()
            || dims.iter().zip(want.0.iter().zip(&have.0)).any(|(expr, (w, h))| {
                // A declared name that is a fresh symbol binds to whatever comes in.
                if let ExprKind::Name(name) = &expr.kind
                    && frame.dims.get(name) == Some(&Dim::symbol(name))
                    && *w == Dim::symbol(name)
                {
                    frame.dims.insert(name.clone(), h.clone());
                    return false;
                }
                // A symbol bound earlier in this shape (`[B, N, N]`) must agree with itself.
                let bound = w.substitute(&|n| frame.dims.get(n).cloned()).unwrap_or_else(|_| w.clone());
                bound != *h
            });
        if mismatch {
            let want_now = Shape(
                want.0
                    .iter()
                    .map(|d| d.substitute(&|n| frame.dims.get(n).cloned()).unwrap_or_else(|_| d.clone()))
                    .collect(),
            );
            let declared_span = dims.first().map_or(def.name.span, |d| d.span.cover(dims.last().unwrap_or(d).span));
            let declared_text = self.text(declared_span);
            let label = if format!("[{declared_text}]") == want_now.to_string() {
                format!("`{}` declares its input {want_now} here", def.name.name)
            } else {
                format!("`{}` declares its input [{declared_text}] = {want_now} here", def.name.name)
            };
            frame.error(Diagnostic::new(
                Code::ArgumentShape,
                format!("`{}` takes input {want_now}, but gets {have}", def.name.name),
                declared_span,
                label,
            ));
            return Value::unknown();
        }
        given.clone()
    }

    /// A body line that applies a layer to the value so far: its name and settings.
    pub(super) fn layer_line<'e>(&self, expr: &'e Expr, frame: &Frame) -> Option<(&'e str, &'e [Arg])> {
        let inner = expr.unparenthesized();
        match &inner.kind {
            ExprKind::Name(name) if !frame.tensors.contains_key(name) && !frame.dims.contains_key(name) => {
                Some((name, &[]))
            }
            ExprKind::Call { callee, args }
                if !frame.tensors.contains_key(&callee.name)
                    && !args.first().is_some_and(|a| a.name.is_none() && self.mentions_tensor(&a.value, frame)) =>
            {
                Some((&callee.name, args))
            }
            _ => None,
        }
    }

    /// Whether every name in `expr` has a value here and no part of it was already
    /// reported (an error node, such as a number out of range).
    pub(super) fn only_known_names(&self, expr: &Expr, frame: &Frame) -> bool {
        let mut known = true;
        expr.walk(&mut |e| match &e.kind {
            ExprKind::Name(name) if !frame.dims.contains_key(name) => known = false,
            ExprKind::Error => known = false,
            _ => {}
        });
        known
    }
}

/// `1234567` as `1,234,567`.
pub fn group_digits(text: &str) -> String {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.to_string();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}
