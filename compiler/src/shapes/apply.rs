//! Applying layers and functions: a built-in call's settings evaluated and its shape rule
//! run, a user model walked again for its use, a user function walked for its arguments;
//! each use a node of the instance being built.

use super::dim::Dim;
use super::infer::{Engine, Frame, MAX_DEPTH, Slot, Value};
use super::rules::{Applied, Rule, Setting, Settings, Site};
use crate::builtins::{self, ArgKind, Entry, Form, Kind, activations};
use crate::checked::{Call, InstanceId, InstanceKind, NodeId, NodeKind};
use nnc_grammar::{Arg, Code, Diagnostic, Expr, ExprKind, FnDef, ModelDef, Span};

impl Engine<'_> {
    /// Evaluates the settings of a built-in call.
    pub(super) fn settings(
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
                (ArgKind::Word(_), ExprKind::Name(word)) => Some(Setting::Word(word.clone())),
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
    pub(super) fn apply(&mut self, name: &str, args: &[Arg], input: &Value, span: Span, frame: &mut Frame) -> Applied {
        let label = self.label(span);
        if let Some(&def) = self.models.get(name) {
            return self.apply_model(def, args, input, span, frame);
        }
        if let Some(&def) = self.fns.get(name) {
            let mut values = vec![input.clone()];
            values.extend(args.iter().map(|a| self.expr(&a.value, frame)));
            return Applied { value: self.call_fn(def, &values, span, frame), ..Applied::default() };
        }
        let Some(entry) = builtins::entry(name) else {
            return Applied::unknown();
        };
        let builtin = &entry.builtin;
        let batch = frame.batch.clone();
        let site = Site { span, label: &label, batch: batch.as_deref() };
        let (result, operands) = match builtin.kind {
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
                let result = Self::rule(entry, &site, &settings, std::slice::from_ref(input));
                (result, vec![input.clone()])
            }
            Kind::Function | Kind::Loss => {
                let operands = self.operands(builtin, Some(input.clone()), args, frame, &mut Applied::default());
                let settings = self.settings(builtin, &builtin.params[1..], args, frame);
                (Self::rule(entry, &site, &settings, &operands), operands)
            }
            Kind::Optimizer | Kind::DataSource | Kind::Initializer => {
                (Ok(Applied { value: Value::unknown(), ..Applied::default() }), Vec::new())
            }
        };
        match result {
            Ok(mut applied) => {
                frame.diagnostics.append(&mut applied.warnings);
                Self::call_node(frame, builtin.name, &mut applied, &operands, span);
                applied
            }
            Err(diagnostic) => {
                frame.error(diagnostic);
                Applied { value: Value::unknown(), ..Applied::default() }
            }
        }
    }

    /// Runs a built-in's shape rule on its operands (a layer's input first).
    pub(super) fn rule(entry: &'static Entry, site: &Site<'_>, settings: &Settings, operands: &[Value]) -> Rule {
        if operands.is_empty() {
            return Ok(Applied::unknown());
        }
        match entry.form {
            Form::Rule(rule) => rule(site, settings, operands),
            // An activation keeps the shape; its settings are numbers.
            Form::Activation(lower) => {
                let settings = activations::settings(&entry.builtin, &|n| settings.real(n), &|n| {
                    settings.word(n).map(str::to_string)
                });
                Ok(Applied::same_by(&operands[0], Call::Activation(activations::Use { lower, settings })))
            }
            // Not values: name resolution reports their use as one.
            Form::Optimizer(_) | Form::DataSource(_) | Form::Initializer(_) => Ok(Applied::unknown()),
        }
    }

    /// The tensor operands of a built-in function call, in the order of its parameters:
    /// `input` (piped in, if any) first, then the tensor arguments, by position or name.
    pub(super) fn operands(
        &mut self,
        builtin: &'static builtins::Builtin,
        input: Option<Value>,
        args: &[Arg],
        frame: &mut Frame,
        costs: &mut Applied,
    ) -> Vec<Value> {
        let params = if input.is_some() { &builtin.params[1..] } else { builtin.params };
        let mut bound: Vec<(usize, &Expr)> = builtins::bind_args(builtin, params, args)
            .into_iter()
            .filter(|(param, _)| param.kind == ArgKind::Tensor)
            .map(|(param, expr)| (params.iter().position(|p| std::ptr::eq(p, param)).unwrap_or(usize::MAX), expr))
            .collect();
        bound.sort_by_key(|(position, _)| *position);
        let mut operands: Vec<Value> = input.into_iter().collect();
        for (_, expr) in bound {
            operands.push(self.expr_costed(expr, frame, costs));
        }
        operands
    }

    /// Adds the node of a built-in call, with the nodes of the parameters it creates.
    pub(super) fn call_node(
        frame: &mut Frame,
        name: &'static str,
        applied: &mut Applied,
        operands: &[Value],
        span: Span,
    ) {
        let Some(call) = applied.call.take() else {
            applied.value.node = None;
            return;
        };
        let Some(args) = operands.iter().map(|v| v.node).collect::<Option<Vec<NodeId>>>() else {
            applied.value.node = None;
            return;
        };
        let params: Vec<NodeId> = std::mem::take(&mut applied.params)
            .into_iter()
            .map(|(name, shape)| frame.push(NodeKind::Param { name: name.to_string(), init: None }, Some(shape), span))
            .collect();
        if !params.is_empty() {
            frame.slots.push(Slot::Layer(params.clone()));
        }
        let dropout = matches!(call, Call::Dropout(_));
        let node = frame.push(NodeKind::Call { name, call, args, params }, applied.value.shape.clone(), span);
        if dropout {
            frame.slots.push(Slot::Dropout(node));
        }
        applied.value.node = Some(node);
        applied.value.constant = None;
    }

    /// A user model used as a layer: walked again with its arguments and this input.
    pub(super) fn apply_model(
        &mut self,
        def: &ModelDef,
        args: &[Arg],
        input: &Value,
        span: Span,
        frame: &mut Frame,
    ) -> Applied {
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
        if let Some((applied, diagnostics, instance)) = self.walked.get(&key).cloned() {
            let inner = Frame { diagnostics, ..Frame::new(frame.depth + 1, false) };
            if self.report_nested(&inner, &name, span, frame) {
                return Applied { value: Value::unknown(), ..applied };
            }
            return Self::use_model(frame, applied, instance, input, span);
        }
        let mut inner = self.frame(frame.depth + 1, false);
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
            ..Applied::default()
        };
        // Keep what a failure leaves too: its diagnostics are reported again at each use.
        let mut kept = applied.clone();
        if failed {
            kept.value = match &report.output {
                Some(shape) => Value::new(shape.clone()),
                None => Value::unknown(),
            };
        }
        self.walked.insert(key, (kept, inner.diagnostics, report.instance));
        if failed {
            return applied;
        }
        Self::use_model(frame, applied, report.instance, input, span)
    }

    /// The node that uses a model's instance as a layer; its parameters are named when the
    /// statement ends.
    pub(super) fn use_model(
        frame: &mut Frame,
        mut applied: Applied,
        instance: Option<InstanceId>,
        input: &Value,
        span: Span,
    ) -> Applied {
        applied.value.node = None;
        if let (Some(instance), Some(node), Some(_)) = (instance, input.node, &applied.value.shape) {
            let kind = NodeKind::Use { instance, args: vec![node], prefix: String::new() };
            let node = frame.push(kind, applied.value.shape.clone(), span);
            frame.slots.push(Slot::Model(node));
            applied.value.node = Some(node);
        }
        applied
    }

    /// Reports, at the use, the errors of a model or function walked for that use. Returns
    /// whether it had errors.
    pub(super) fn report_nested(&self, inner: &Frame, name: &str, span: Span, frame: &mut Frame) -> bool {
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

    /// Calls a user function with argument values (in the order of its parameters).
    pub(super) fn call_fn(&mut self, def: &FnDef, values: &[Value], span: Span, frame: &mut Frame) -> Value {
        let Some((value, instance)) = self.walk_fn(def, values, span, frame) else {
            return Value::unknown();
        };
        match values.iter().map(|v| v.node).collect::<Option<Vec<NodeId>>>() {
            Some(args) if values.len() == def.params.len() => {
                let kind = NodeKind::Use { instance, args, prefix: String::new() };
                Self::with_node(frame, value, kind, span)
            }
            _ => value,
        }
    }

    /// Walks a function's body for argument values: the result's shape and the instance,
    /// or `None` where it failed (reported at `span`) or could not be walked.
    pub(super) fn walk_fn(
        &mut self,
        def: &FnDef,
        values: &[Value],
        span: Span,
        frame: &mut Frame,
    ) -> Option<(Value, InstanceId)> {
        if frame.depth >= MAX_DEPTH {
            return None;
        }
        let mut inner = self.frame(frame.depth + 1, false);
        for (i, (param, value)) in def.params.iter().zip(values).enumerate() {
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
                        return None;
                    }
                    value.clone()
                }
                _ => value.clone(),
            };
            let bound = Self::with_node(&mut inner, bound, NodeKind::Input(i), param.span);
            inner.inputs.push((param.name.name.clone(), bound.node.unwrap_or_default()));
            inner.tensors.insert(param.name.name.clone(), bound);
        }
        let name = &def.name.name;
        if self.active.contains(name) {
            return None;
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
        let (applied, diagnostics, instance) = match self.walked.get(&key) {
            Some(hit) => hit.clone(),
            None => {
                self.active.push(name.clone());
                let value = self.expr(&def.body, &mut inner);
                self.active.pop();
                let failed = inner.diagnostics.iter().any(Diagnostic::is_error);
                let id = self.finish(&mut inner, &def.name, InstanceKind::Fn, Vec::new(), value.node, failed);
                let value = Value { node: None, constant: None, ..value };
                let walked = (Applied { value, ..Applied::default() }, inner.diagnostics.clone(), Some(id));
                self.walked.insert(key, walked.clone());
                walked
            }
        };
        inner.diagnostics = diagnostics;
        if self.report_nested(&inner, name, span, frame) {
            return None;
        }
        Some((applied.value, instance?))
    }
}
