//! The shape engine: walks models, functions and queries with symbolic dimensions,
//! applies each op's rule from `layers`, and records rows, facts and diagnostics.

use super::dim::Dim;
use super::layers::{self, Applied, Setting, Settings, Site};
use super::{ModelReport, Row, RowKind, Shape, ShapeAnalysis, ShapeFact};
use crate::builtins::{self, ArgKind, Kind};
use nnc_grammar::{
    Arg, BinaryOp, Code, Diagnostic, Expr, ExprKind, File, FnDef, Item, LineIndex, ModelDef, Span, Stmt,
};
use std::collections::HashMap;

/// How many models or functions may be nested inside each other when one is used in
/// another. Recursion is reported by name resolution; this only stops the walk.
const MAX_DEPTH: usize = 32;

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
}

impl Value {
    pub fn new(shape: Shape) -> Value {
        let why = vec![Vec::new(); shape.rank()];
        Value { shape: Some(shape), why }
    }

    pub fn unknown() -> Value {
        Value::default()
    }

    fn scalar() -> Value {
        Value::new(Shape(Vec::new()))
    }
}

/// Analyses the shapes of every model, function and query in `file`.
pub fn analyze_shapes(file: &File, source: &str) -> ShapeAnalysis {
    let mut engine = Engine {
        source,
        lines: LineIndex::new(source),
        models: HashMap::new(),
        fns: HashMap::new(),
        out: ShapeAnalysis::default(),
        standalone_failed: Vec::new(),
        active: Vec::new(),
        walked: HashMap::new(),
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
    let mut constants: HashMap<String, Value> = HashMap::new();
    for item in &file.items {
        match item {
            Item::Model(def) => {
                let mut frame = Frame::new(0, true);
                let report = engine.model(def, &HashMap::new(), None, &mut frame);
                if frame.diagnostics.iter().any(Diagnostic::is_error) {
                    engine.standalone_failed.push(def.name.name.clone());
                }
                engine.out.diagnostics.append(&mut frame.diagnostics);
                engine.out.facts.append(&mut frame.facts);
                engine.out.models.push(report);
            }
            Item::Fn(def) => {
                let mut frame = Frame::new(0, true);
                frame.tensors = constants.clone();
                for param in &def.params {
                    let value = match &param.shape {
                        Some(shape) => engine.declared_shape(&shape.dims, &mut frame),
                        None => Value::unknown(),
                    };
                    frame.tensors.insert(param.name.name.clone(), value);
                }
                engine.expr(&def.body, &mut frame);
                if frame.diagnostics.iter().any(Diagnostic::is_error) {
                    engine.standalone_failed.push(def.name.name.clone());
                }
                engine.out.diagnostics.append(&mut frame.diagnostics);
                engine.out.facts.append(&mut frame.facts);
            }
            Item::Let(stmt) => {
                let mut frame = Frame::new(0, true);
                frame.tensors = constants.clone();
                let value = engine.expr(&stmt.value, &mut frame);
                engine.out.diagnostics.append(&mut frame.diagnostics);
                engine.out.facts.append(&mut frame.facts);
                if let Some(shape) = &value.shape {
                    engine.out.facts.push(ShapeFact { span: stmt.name.span, shape: shape.clone() });
                }
                constants.insert(stmt.name.name.clone(), value);
            }
            Item::Query(query) => {
                let mut frame = Frame::new(0, true);
                frame.tensors = constants.clone();
                let value = engine.expr(&query.call, &mut frame);
                // A gradient or a Hessian is of one number.
                if matches!(query.kind, nnc_grammar::QueryKind::Grad | nnc_grammar::QueryKind::Hessian)
                    && let Some(shape) = value.shape.as_ref().filter(|s| s.rank() > 0)
                {
                    frame.error(
                        Diagnostic::new(
                            Code::ArgumentShape,
                            format!(
                                "`{}` needs a function that returns one number, but this returns {shape}",
                                query.kind.keyword()
                            ),
                            query.call.span,
                            format!("returns {shape}"),
                        )
                        .with_help("reduce the result, for example with `sum(...)` or `mean(...)`, or use `jacobian`"),
                    );
                }
                engine.out.diagnostics.append(&mut frame.diagnostics);
                engine.out.facts.append(&mut frame.facts);
            }
            Item::Train(def) => {
                let model = def.model.unparenthesized();
                let (name, args): (&str, &[Arg]) = match &model.kind {
                    ExprKind::Name(name) => (name, &[]),
                    ExprKind::Call { callee, args } => (&callee.name, args),
                    _ => continue,
                };
                let Some(&model_def) = engine.models.get(name) else {
                    continue;
                };
                if args.is_empty() {
                    continue;
                }
                let mut frame = Frame::new(1, false);
                let values = engine.model_args(model_def, args, &mut frame);
                let mut inner = Frame::new(1, false);
                engine.model(model_def, &values, None, &mut inner);
                engine.report_nested(&inner, name, model.span, &mut frame);
                engine.out.diagnostics.append(&mut frame.diagnostics);
            }
            Item::Error(_) => {}
        }
    }
    engine.out
}

struct Engine<'a> {
    source: &'a str,
    lines: LineIndex,
    models: HashMap<String, &'a ModelDef>,
    fns: HashMap<String, &'a FnDef>,
    out: ShapeAnalysis,
    /// Models and functions whose own analysis failed: their errors are reported there,
    /// not again at every use.
    standalone_failed: Vec<String>,
    /// The functions and models being walked, innermost last. One met again is recursion,
    /// which name resolution reports; it is not walked again.
    active: Vec<String>,
    /// What walking a function or model gave for given inputs, with the diagnostics inside
    /// it: a definition used many times is walked once per distinct input, so the time is
    /// linear in the file, not exponential in how deeply calls nest.
    walked: HashMap<String, (Applied, Vec<Diagnostic>)>,
}

/// One model or function being walked.
struct Frame {
    /// Model arguments and dimension symbols.
    dims: HashMap<String, Dim>,
    tensors: HashMap<String, Value>,
    diagnostics: Vec<Diagnostic>,
    facts: Vec<ShapeFact>,
    depth: usize,
    /// Whether to keep shape facts (only for the walk over the source as written).
    record: bool,
    batch: Option<String>,
}

impl Frame {
    fn new(depth: usize, record: bool) -> Frame {
        Frame {
            dims: HashMap::new(),
            tensors: HashMap::new(),
            diagnostics: Vec::new(),
            facts: Vec::new(),
            depth,
            record,
            batch: None,
        }
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }
}

impl<'a> Engine<'a> {
    fn text(&self, span: Span) -> &'a str {
        self.source.get(span.range()).unwrap_or("")
    }

    /// The call as a short label: its text on one line, cut at 60 characters.
    fn label(&self, span: Span) -> String {
        let text: String = self.text(span).split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > 60 { format!("{}...", text.chars().take(57).collect::<String>()) } else { text }
    }

    /// A whole-number expression over model arguments and symbols.
    fn dim(&self, expr: &Expr, frame: &Frame) -> Option<Dim> {
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

    fn real(&self, expr: &Expr, frame: &Frame) -> Option<f64> {
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
    fn declared_shape(&self, dims: &[Expr], frame: &mut Frame) -> Value {
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
    fn model_args(&self, def: &ModelDef, args: &[Arg], frame: &mut Frame) -> HashMap<String, Dim> {
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

    fn mentions_tensor(&self, expr: &Expr, frame: &Frame) -> bool {
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
    fn model(
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
            frame.dims.insert(param.name.name.clone(), value);
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
        };
        let mut current = Value::unknown();
        for stmt in &def.body {
            let errors_before = frame.diagnostics.iter().filter(|d| d.is_error()).count();
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
        report
    }

    /// Reports a tensor too large to allocate.
    fn check_size(&self, shape: &Shape, span: Span, what: &str, frame: &mut Frame) {
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
    fn bind_input(&self, def: &ModelDef, declared: &Value, given: &Value, dims: &[Expr], frame: &mut Frame) -> Value {
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
    fn layer_line<'e>(&self, expr: &'e Expr, frame: &Frame) -> Option<(&'e str, &'e [Arg])> {
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
    fn only_known_names(&self, expr: &Expr, frame: &Frame) -> bool {
        let mut known = true;
        expr.walk(&mut |e| match &e.kind {
            ExprKind::Name(name) if !frame.dims.contains_key(name) => known = false,
            ExprKind::Error => known = false,
            _ => {}
        });
        known
    }

    /// Evaluates the settings of a built-in call.
    fn settings(
        &self,
        builtin: &builtins::Builtin,
        params: &'static [builtins::Param],
        args: &[Arg],
        frame: &Frame,
    ) -> Settings {
        let mut settings = Settings::default();
        if builtin.variadic {
            for arg in args {
                match self.dim(&arg.value, frame) {
                    Some(d) => settings.numbers.push((d, arg.value.span)),
                    None => settings.uncomputable.push(arg.value.span),
                }
            }
            return settings;
        }
        for (param, value) in builtins::bind_args(builtin, params, args) {
            let inner = value.unparenthesized();
            let setting = match (param.kind, &inner.kind) {
                (ArgKind::Bool, ExprKind::Bool(b)) => Some(Setting::Bool(*b)),
                (ArgKind::IntOrPair, ExprKind::Tuple(items)) if items.len() == 2 => {
                    self.dim(&items[0], frame).zip(self.dim(&items[1], frame)).map(|(a, b)| Setting::Pair(a, b))
                }
                (ArgKind::Real, _) => self.real(value, frame).map(Setting::Real),
                (ArgKind::Int | ArgKind::IntOrPair, _) => self.dim(value, frame).map(Setting::Int),
                _ => None,
            };
            match setting {
                Some(setting) => settings.named.push((param.name, setting, value.span)),
                // A size of names and numbers that still has no value overflowed, divided
                // by zero or took a negative power; names that are not defined are reported
                // by name resolution.
                None if matches!(param.kind, ArgKind::Int | ArgKind::IntOrPair)
                    && self.only_known_names(value, frame) =>
                {
                    settings.uncomputable.push(value.span)
                }
                None => {}
            }
        }
        settings
    }

    /// Applies the layer or function `name` with settings `args` to `input`.
    fn apply(&mut self, name: &str, args: &[Arg], input: &Value, span: Span, frame: &mut Frame) -> Applied {
        let label = self.label(span);
        if let Some(&def) = self.models.get(name) {
            return self.apply_model(def, args, input, span, frame);
        }
        if let Some(&def) = self.fns.get(name) {
            let mut values = vec![input.clone()];
            values.extend(args.iter().map(|a| self.expr(&a.value, frame)));
            return Applied { value: self.call_fn(def, &values, span, frame), ..Applied::default() };
        }
        let Some(builtin) = builtins::lookup(name) else {
            return Applied { value: Value::unknown(), ..Applied::default() };
        };
        let batch = frame.batch.clone();
        let site = Site { span, label: &label, batch: batch.as_deref() };
        let result = match builtin.kind {
            Kind::Layer | Kind::Activation => {
                let settings = self.settings(builtin, builtin.params, args, frame);
                if let Some(&at) = settings.uncomputable.first() {
                    frame.error(
                        Diagnostic::new(
                            Code::TooLarge,
                            format!("`{label}` has a size that cannot be computed"),
                            at,
                            "too large, a division by zero, or a negative power",
                        )
                        .with_help("sizes are whole numbers from 1 to 18446744073709551615"),
                    );
                    return Applied { value: Value::unknown(), ..Applied::default() };
                }
                match name {
                    "linear" => layers::linear(&site, &settings, input),
                    "conv2d" => layers::conv2d(&site, &settings, input),
                    "maxpool" | "avgpool" => layers::pool(&site, &settings, input),
                    "flatten" => layers::flatten(&site, input),
                    "reshape" => layers::reshape(&site, &settings, input),
                    "softmax" | "log_softmax" => layers::along_axis(&site, &settings, input),
                    "dropout" => layers::dropout(&site, &settings, input),
                    _ => Ok(Applied { value: input.clone(), ..Applied::default() }),
                }
            }
            Kind::Function | Kind::Loss => {
                let mut operands = vec![input.clone()];
                operands.extend(args.iter().filter(|a| a.name.is_none()).map(|a| self.expr(&a.value, frame)));
                let settings = self.settings(builtin, builtin.params, args, frame);
                self.function(name, &operands, &settings, &site)
            }
            _ => Ok(Applied { value: Value::unknown(), ..Applied::default() }),
        };
        match result {
            Ok(mut applied) => {
                frame.diagnostics.append(&mut applied.warnings);
                applied
            }
            Err(diagnostic) => {
                frame.error(diagnostic);
                Applied { value: Value::unknown(), ..Applied::default() }
            }
        }
    }

    /// A user model used as a layer: walked again with its arguments and this input.
    fn apply_model(&mut self, def: &ModelDef, args: &[Arg], input: &Value, span: Span, frame: &mut Frame) -> Applied {
        if frame.depth >= MAX_DEPTH {
            return Applied { value: Value::unknown(), ..Applied::default() };
        }
        let values = self.model_args(def, args, frame);
        let name = def.name.name.clone();
        if self.active.contains(&name) {
            return Applied { value: Value::unknown(), ..Applied::default() };
        }
        let key =
            format!("model {name} {:?} {:?}", values.iter().collect::<std::collections::BTreeMap<_, _>>(), input.shape);
        if let Some((applied, diagnostics)) = self.walked.get(&key).cloned() {
            let inner = Frame { diagnostics, ..Frame::new(frame.depth + 1, false) };
            if self.report_nested(&inner, &name, span, frame) {
                return Applied { value: Value::unknown(), ..applied };
            }
            return applied;
        }
        let mut inner = Frame::new(frame.depth + 1, false);
        self.active.push(name.clone());
        let report = self.model(def, &values, Some(input), &mut inner);
        self.active.pop();
        let failed = self.report_nested(&inner, &def.name.name, span, frame);
        let value = match (&report.output, failed) {
            (Some(shape), false) => {
                let mut value = Value::new(shape.clone());
                if let Some(first) = input.why.first() {
                    value.why[0] = first.clone();
                }
                value
            }
            _ => Value::unknown(),
        };
        let (weights, biases) = report.rows.iter().fold((Dim::default(), Dim::default()), |(w, b), row| {
            (w.checked_add(&row.weights).unwrap_or_default(), b.checked_add(&row.biases).unwrap_or_default())
        });
        let applied = Applied {
            value,
            weights,
            biases,
            mult_adds: report.mult_adds,
            formulas: vec![format!(
                "{} layers of `{}`: {} parameters",
                report.rows.len().saturating_sub(1),
                def.name.name,
                report.params
            )],
            warnings: Vec::new(),
        };
        // Keep what a failure leaves too: its diagnostics are reported again at each use.
        let mut kept = applied.clone();
        if failed {
            kept.value = match &report.output {
                Some(shape) => Value::new(shape.clone()),
                None => Value::unknown(),
            };
        }
        self.walked.insert(key, (kept, inner.diagnostics));
        applied
    }

    /// Reports, at the use, the errors of a model or function walked for that use. Returns
    /// whether it had errors.
    fn report_nested(&self, inner: &Frame, name: &str, span: Span, frame: &mut Frame) -> bool {
        let Some(first) = inner.diagnostics.iter().find(|d| d.is_error()) else {
            return false;
        };
        if self.standalone_failed.iter().any(|n| n == name) {
            return true;
        }
        let mut diagnostic = Diagnostic::new(
            first.code,
            format!("`{}` does not fit here: {}", self.label(span), first.message),
            span,
            "used here",
        )
        .with_secondary(first.primary.span, first.primary.message.clone());
        for label in first.secondary.iter().take(3) {
            diagnostic = diagnostic.with_secondary(label.span, label.message.clone());
        }
        diagnostic.help = first.help.clone();
        frame.error(diagnostic);
        true
    }

    /// Calls a user function with argument values.
    fn call_fn(&mut self, def: &FnDef, values: &[Value], span: Span, frame: &mut Frame) -> Value {
        if frame.depth >= MAX_DEPTH {
            return Value::unknown();
        }
        let mut inner = Frame::new(frame.depth + 1, false);
        for (param, value) in def.params.iter().zip(values) {
            let bound = match (&param.shape, &value.shape) {
                (Some(declared), Some(have)) => {
                    let want = self.declared_shape(&declared.dims, &mut inner);
                    let want_shape = want.shape.clone().unwrap_or_default();
                    let matches = want_shape.rank() == have.rank()
                        && declared.dims.iter().zip(want_shape.0.iter().zip(&have.0)).all(|(expr, (w, h))| {
                            if let ExprKind::Name(name) = &expr.kind
                                && inner.dims.get(name) == Some(&Dim::symbol(name))
                                && *w == Dim::symbol(name)
                            {
                                inner.dims.insert(name.clone(), h.clone());
                                return true;
                            }
                            inner.dims.get(&w.to_string()).unwrap_or(w) == h
                        });
                    if !matches {
                        frame.error(
                            Diagnostic::new(
                                Code::ArgumentShape,
                                format!(
                                    "`{}` takes `{}` of shape {want_shape}, but gets {have}",
                                    def.name.name, param.name.name
                                ),
                                span,
                                format!("`{}` is {have} here", param.name.name),
                            )
                            .with_secondary(declared.span, "declared here"),
                        );
                        return Value::unknown();
                    }
                    value.clone()
                }
                _ => value.clone(),
            };
            inner.tensors.insert(param.name.name.clone(), bound);
        }
        let name = &def.name.name;
        if self.active.contains(name) {
            return Value::unknown();
        }
        let key = format!(
            "fn {name} {:?}",
            inner
                .tensors
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>()
                .values()
                .map(|v| &v.shape)
                .collect::<Vec<_>>()
        );
        let (applied, diagnostics) = match self.walked.get(&key) {
            Some(hit) => hit.clone(),
            None => {
                self.active.push(name.clone());
                let value = self.expr(&def.body, &mut inner);
                self.active.pop();
                let walked = (Applied { value, ..Applied::default() }, inner.diagnostics.clone());
                self.walked.insert(key, walked.clone());
                walked
            }
        };
        inner.diagnostics = diagnostics;
        if self.report_nested(&inner, name, span, frame) { Value::unknown() } else { applied.value }
    }

    /// An expression's value, with the parameters and mult-adds of the layers inside it.
    fn expr_with_costs(&mut self, expr: &Expr, frame: &mut Frame) -> (Value, Applied) {
        let mut costs = Applied::default();
        let value = self.expr_costed(expr, frame, &mut costs);
        (value, costs)
    }

    fn expr(&mut self, expr: &Expr, frame: &mut Frame) -> Value {
        let mut costs = Applied::default();
        self.expr_costed(expr, frame, &mut costs)
    }

    fn expr_costed(&mut self, expr: &Expr, frame: &mut Frame, costs: &mut Applied) -> Value {
        let value = self.expr_inner(expr, frame, costs);
        if frame.record
            && let Some(shape) = &value.shape
        {
            frame.facts.push(ShapeFact { span: expr.span, shape: shape.clone() });
        }
        value
    }

    fn add_costs(costs: &mut Applied, applied: &Applied) {
        costs.weights = costs.weights.checked_add(&applied.weights).unwrap_or_default();
        costs.biases = costs.biases.checked_add(&applied.biases).unwrap_or_default();
        costs.mult_adds = costs.mult_adds.checked_add(&applied.mult_adds).unwrap_or_default();
        costs.formulas.extend(applied.formulas.iter().cloned());
    }

    fn expr_inner(&mut self, expr: &Expr, frame: &mut Frame, costs: &mut Applied) -> Value {
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) => Value::scalar(),
            ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Error | ExprKind::Tuple(_) => Value::unknown(),
            ExprKind::Name(name) => match frame.tensors.get(name) {
                Some(value) => value.clone(),
                None if frame.dims.contains_key(name) => Value::scalar(),
                None => Value::unknown(),
            },
            ExprKind::Paren(inner) | ExprKind::Neg(inner) => self.expr_costed(inner, frame, costs),
            ExprKind::Transpose(inner) => {
                let value = self.expr_costed(inner, frame, costs);
                transpose(&value)
            }
            ExprKind::Array(items) => self.array(expr, items, frame),
            ExprKind::Binary { op: BinaryOp::Pipe, lhs, rhs } => {
                let input = self.expr_costed(lhs, frame, costs);
                let target = rhs.unparenthesized();
                let (name, args): (&str, &[Arg]) = match &target.kind {
                    ExprKind::Name(name) => (name, &[]),
                    ExprKind::Call { callee, args } => (&callee.name, args),
                    _ => return Value::unknown(),
                };
                let applied = self.apply(name, args, &input, target.span, frame);
                Self::add_costs(costs, &applied);
                applied.value
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.expr_costed(lhs, frame, costs);
                let b = self.expr_costed(rhs, frame, costs);
                let label = self.label(expr.span);
                let site = Site { span: expr.span, label: &label, batch: frame.batch.as_deref() };
                let mut result = if *op == BinaryOp::MatMul {
                    matmul(&site, &a, &b, lhs.span, rhs.span)
                } else {
                    broadcast(&site, &a, &b, op.symbol(), lhs.span, rhs.span)
                };
                // `x @ w^T` that does not fit: the transpose, not a missing one, is the problem.
                if let (Err(diagnostic), ExprKind::Transpose(_)) = (&mut result, &rhs.unparenthesized().kind)
                    && diagnostic.help.as_deref().is_some_and(|h| h.starts_with("transpose the right side"))
                {
                    diagnostic.help = Some(
                        "the right side is transposed by `^T`; without it the product fits, or declare it with its dimensions swapped"
                            .to_string(),
                    );
                }
                match result {
                    Ok(applied) => {
                        Self::add_costs(costs, &applied);
                        applied.value
                    }
                    Err(diagnostic) => {
                        frame.error(diagnostic);
                        Value::unknown()
                    }
                }
            }
            ExprKind::Call { callee, args } => {
                let name = callee.name.as_str();
                if let Some(&def) = self.fns.get(name) {
                    let values: Vec<Value> = args.iter().map(|a| self.expr_costed(&a.value, frame, costs)).collect();
                    return self.call_fn(def, &values, expr.span, frame);
                }
                // A layer with its input as the first argument: `linear(h, width)`.
                // A layer's first argument is its input when it is a tensor; an activation
                // takes any first argument (`relu(2)`).
                let activation = builtins::lookup(name).is_some_and(|b| b.kind == Kind::Activation);
                let (input, settings) = match args.first() {
                    Some(first)
                        if first.name.is_none() && (activation || self.mentions_tensor(&first.value, frame)) =>
                    {
                        (Some(&first.value), &args[1..])
                    }
                    _ => (None, args.as_slice()),
                };
                let is_layer = self.models.contains_key(name)
                    || builtins::lookup(name).is_some_and(|b| matches!(b.kind, Kind::Layer | Kind::Activation));
                if is_layer {
                    let Some(input) = input else {
                        return Value::unknown();
                    };
                    let value = self.expr_costed(input, frame, costs);
                    let applied = self.apply(name, settings, &value, expr.span, frame);
                    Self::add_costs(costs, &applied);
                    return applied.value;
                }
                let Some(builtin) = builtins::lookup(name).filter(|b| matches!(b.kind, Kind::Function | Kind::Loss))
                else {
                    return Value::unknown();
                };
                let operands: Vec<Value> = args
                    .iter()
                    .filter(|a| a.name.is_none())
                    .map(|a| self.expr_costed(&a.value, frame, costs))
                    .collect();
                let settings = self.settings(builtin, builtin.params, args, frame);
                let label = self.label(expr.span);
                let site = Site { span: expr.span, label: &label, batch: frame.batch.as_deref() };
                match self.function(name, &operands, &settings, &site) {
                    Ok(applied) => {
                        Self::add_costs(costs, &applied);
                        applied.value
                    }
                    Err(diagnostic) => {
                        frame.error(diagnostic);
                        Value::unknown()
                    }
                }
            }
        }
    }

    /// An array literal: every row has the same shape.
    fn array(&mut self, expr: &Expr, items: &[Expr], frame: &mut Frame) -> Value {
        let values: Vec<Value> = items.iter().map(|item| self.expr(item, frame)).collect();
        let Some(first) = values.first() else {
            return Value::new(Shape(vec![Dim::default()]));
        };
        let Some(inner) = &first.shape else {
            return Value::unknown();
        };
        for (item, value) in items.iter().zip(&values).skip(1) {
            match &value.shape {
                Some(shape) if shape != inner => {
                    frame.error(
                        Diagnostic::new(
                            Code::RaggedArray,
                            format!("this array's rows differ: {inner} and {shape}"),
                            item.span,
                            format!("this row is {shape}"),
                        )
                        .with_secondary(items[0].span, format!("the first row is {inner}"))
                        .with_help("every row of an array must have the same length"),
                    );
                    return Value::unknown();
                }
                None => return Value::unknown(),
                _ => {}
            }
        }
        let _ = expr;
        let mut dims = vec![Dim::constant(items.len() as i128)];
        dims.extend(inner.0.iter().cloned());
        Value::new(Shape(dims))
    }

    /// Built-in functions of tensors.
    fn function(
        &self,
        name: &str,
        operands: &[Value],
        settings: &Settings,
        site: &Site<'_>,
    ) -> Result<Applied, Diagnostic> {
        let Some(x) = operands.first() else {
            return Ok(Applied { value: Value::unknown(), ..Applied::default() });
        };
        let value = match name {
            "transpose" => transpose(x),
            "sum" | "mean" | "max" | "min" => {
                if let Some(y) = operands.get(1) {
                    return broadcast(site, x, y, name, site.span, site.span);
                }
                match (&x.shape, settings.get_axis()) {
                    (Some(shape), Some((axis, span))) => {
                        let index = layers::normalise_axis(site, shape, axis, span)?;
                        let mut dims = shape.0.clone();
                        dims.remove(index);
                        Value::new(Shape(dims))
                    }
                    (Some(_), None) => Value::scalar(),
                    (None, _) => Value::unknown(),
                }
            }
            "softmax" | "log_softmax" => {
                if let (Some(shape), Some((axis, span))) = (&x.shape, settings.get_axis()) {
                    layers::normalise_axis(site, shape, axis, span)?;
                }
                x.clone()
            }
            "conv" => {
                return conv(site, x, operands.get(1).unwrap_or(&Value::unknown()), settings);
            }
            "mse" | "bce" => {
                if let Some(t) = operands.get(1) {
                    broadcast(site, x, t, name, site.span, site.span)?;
                }
                Value::scalar()
            }
            "cross_entropy" => {
                // Logits [N, classes] and integer labels [N].
                if let (Some(y), Some(t)) = (&x.shape, operands.get(1).and_then(|t| t.shape.as_ref()))
                    && (y.rank() != 2 || t.rank() != 1 || y.0[0] != t.0[0])
                {
                    return Err(Diagnostic::new(
                        Code::ArgumentShape,
                        format!("`cross_entropy` takes logits [N, classes] and labels [N], but gets {y} and {t}"),
                        site.span,
                        "shapes do not fit",
                    ));
                }
                Value::scalar()
            }
            _ => x.clone(),
        };
        Ok(Applied { value, ..Applied::default() })
    }
}

impl Settings {
    fn get_axis(&self) -> Option<(i128, Span)> {
        self.named.iter().find(|(n, _, _)| *n == "axis").and_then(|(_, s, span)| match s {
            Setting::Int(d) => d.as_const().map(|v| (v, *span)),
            _ => None,
        })
    }
}

fn transpose(value: &Value) -> Value {
    let Some(shape) = &value.shape else {
        return Value::unknown();
    };
    if shape.rank() < 2 {
        return value.clone();
    }
    let mut out = value.clone();
    let n = shape.rank();
    if let Some(s) = out.shape.as_mut() {
        s.0.swap(n - 2, n - 1);
    }
    out.why.swap(n - 2, n - 1);
    out
}

/// NumPy broadcasting: align from the right; equal dimensions or 1 broadcast.
fn broadcast(
    site: &Site<'_>,
    a: &Value,
    b: &Value,
    op: &str,
    a_span: Span,
    b_span: Span,
) -> Result<Applied, Diagnostic> {
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    let rank = sa.rank().max(sb.rank());
    let mut dims = Vec::with_capacity(rank);
    let mut why = Vec::with_capacity(rank);
    let one = Dim::constant(1);
    for i in 0..rank {
        let da = (i + sa.rank()).checked_sub(rank).map(|j| (&sa.0[j], &a.why[j]));
        let db = (i + sb.rank()).checked_sub(rank).map(|j| (&sb.0[j], &b.why[j]));
        let (dim, reasons) = match (da, db) {
            (Some((x, wx)), Some((y, wy))) if x == y => {
                (x.clone(), if wx.is_empty() { wy.clone() } else { wx.clone() })
            }
            (Some((x, _)), Some((y, wy))) if *x == one => (y.clone(), wy.clone()),
            (Some((x, wx)), Some((y, _))) if *y == one => (x.clone(), wx.clone()),
            (Some((x, _)), None) | (None, Some((x, _))) => {
                let w = da.or(db).map(|(_, w)| w.clone()).unwrap_or_default();
                (x.clone(), w)
            }
            (Some((x, _)), Some((y, _))) => {
                let diagnostic = Diagnostic::new(
                    Code::BroadcastMismatch,
                    format!("`{op}` cannot combine shapes {sa} and {sb}"),
                    site.span,
                    format!("axis {i} from the left is {x} on one side and {y} on the other"),
                )
                .with_secondary(a_span, format!("this is {sa}"))
                .with_secondary(b_span, format!("this is {sb}"))
                .with_note("shapes combine from the right; each pair of dimensions must be equal or one of them 1");
                return Err(layers::explain(
                    layers::explain(diagnostic, a, &[i + sa.rank() - rank]),
                    b,
                    &[i + sb.rank() - rank],
                ));
            }
            (None, None) => unreachable!("i < rank"),
        };
        dims.push(dim);
        why.push(reasons);
    }
    Ok(Applied { value: Value { shape: Some(Shape(dims)), why }, ..Applied::default() })
}

/// The matrix product, with NumPy's rules for vectors and batches.
fn matmul(site: &Site<'_>, a: &Value, b: &Value, a_span: Span, b_span: Span) -> Result<Applied, Diagnostic> {
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    if sa.rank() == 0 || sb.rank() == 0 {
        return Err(Diagnostic::new(
            Code::MatmulMismatch,
            format!("`@` needs vectors or matrices, but gets {sa} and {sb}"),
            site.span,
            "a scalar cannot be multiplied with `@`",
        )
        .with_help("use `*` to multiply by a scalar"));
    }
    let k_a = sa.0[sa.rank() - 1].clone();
    let k_b = if sb.rank() == 1 { sb.0[0].clone() } else { sb.0[sb.rank() - 2].clone() };
    if k_a != k_b {
        let diagnostic = Diagnostic::new(
            Code::MatmulMismatch,
            format!("`@` cannot multiply {sa} by {sb}: the inner dimensions {k_a} and {k_b} differ"),
            site.span,
            format!("{k_a} columns against {k_b} rows"),
        )
        .with_secondary(a_span, format!("this is {sa}"))
        .with_secondary(b_span, format!("this is {sb}"))
        .with_help(if sb.rank() >= 2 && sb.0[sb.rank() - 1] == k_a {
            "transpose the right side: `a @ b^T`".to_string()
        } else {
            "the last dimension of the left must equal the first of the right's last two".to_string()
        });
        return Err(diagnostic);
    }
    let mut dims: Vec<Dim> = sa.0[..sa.rank() - 1].to_vec();
    if sb.rank() >= 2 {
        dims.push(sb.0[sb.rank() - 1].clone());
    }
    // Batch dimensions of the right broadcast with those of the left.
    if sb.rank() > 2 && sb.rank() > sa.rank() {
        let mut batch: Vec<Dim> = sb.0[..sb.rank() - 2].to_vec();
        batch.extend(dims);
        dims = batch;
    }
    let rows: Dim =
        sa.0[..sa.rank() - 1].iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok()).unwrap_or_default();
    let cols = if sb.rank() >= 2 { sb.0[sb.rank() - 1].clone() } else { Dim::constant(1) };
    let mult_adds = rows.checked_mul(&k_a).and_then(|d| d.checked_mul(&cols)).unwrap_or_default();
    let mult_adds = match site.batch {
        Some(batch) => mult_adds.substitute(&|n| (n == batch).then(|| Dim::constant(1))).unwrap_or(mult_adds),
        None => mult_adds,
    };
    let mut value = Value::new(Shape(dims));
    if sa.rank() >= 2 {
        value.why[0] = a.why[0].clone();
    }
    Ok(Applied { value, mult_adds, ..Applied::default() })
}

/// `conv(x, w)`: 2-D `[H, W]` with `[kh, kw]`, or `[N, C, H, W]` with `[O, C, kh, kw]`.
fn conv(site: &Site<'_>, x: &Value, w: &Value, settings: &Settings) -> Result<Applied, Diagnostic> {
    let (Some(sx), Some(sw)) = (&x.shape, &w.shape) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    let stride = settings.int("stride").and_then(|d| d.as_const()).unwrap_or(1);
    let pad = settings.int("pad").and_then(|d| d.as_const()).unwrap_or(0);
    let axis = |n: &Dim, k: &Dim| -> Option<Dim> {
        let out = n
            .checked_add(&Dim::constant(2 * pad))
            .ok()?
            .checked_sub(k)
            .ok()?
            .floor_div(&Dim::constant(stride))?
            .checked_add(&Dim::constant(1))
            .ok()?;
        (!out.is_nonpositive()).then_some(out)
    };
    let (dims, spatial) = match (sx.rank(), sw.rank()) {
        (2, 2) => (vec![], (&sx.0[0], &sx.0[1], &sw.0[0], &sw.0[1])),
        (4, 4) if sx.0[1] == sw.0[1] => {
            (vec![sx.0[0].clone(), sw.0[0].clone()], (&sx.0[2], &sx.0[3], &sw.0[2], &sw.0[3]))
        }
        _ => {
            return Err(Diagnostic::new(
                Code::ArgumentShape,
                format!(
                    "`conv` takes [H, W] with [kh, kw], or [N, C, H, W] with [O, C, kh, kw], but gets {sx} and {sw}"
                ),
                site.span,
                "shapes do not fit",
            ));
        }
    };
    let (Some(ho), Some(wo)) = (axis(spatial.0, spatial.2), axis(spatial.1, spatial.3)) else {
        return Err(Diagnostic::new(
            Code::EmptyDimension,
            format!("`conv` of {sx} with the filter {sw} leaves no output"),
            site.span,
            "the filter is larger than the input",
        ));
    };
    let mut dims = dims;
    dims.push(ho);
    dims.push(wo);
    Ok(Applied { value: Value::new(Shape(dims)), ..Applied::default() })
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
