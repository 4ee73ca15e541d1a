//! The items of a file beyond models: constants, queries and the models of `train` blocks,
//! each made an instance of the checked program; and what a command asks to check on request.

use super::dim::Dim;
use super::infer::{Engine, Frame, Override, Value};
use super::{Instantiated, QueryCheck, ShapeFact};
use crate::checked::{Instance, InstanceId, InstanceKind, NodeId, NodeKind};
use nnc_grammar::{Code, Diagnostic, Ident, LetStmt, Span};

impl Engine<'_> {
    /// A frame for a body that sees the file's constants.
    pub(super) fn frame(&self, depth: usize, record: bool) -> Frame {
        let mut frame = Frame::new(depth, record);
        frame.tensors = self.constants.clone();
        frame
    }

    /// `value` computed by a new node of the instance being built.
    pub(super) fn with_node(frame: &mut Frame, value: Value, kind: NodeKind, span: Span) -> Value {
        let node = frame.push(kind, value.shape.clone(), span);
        Value { node: Some(node), constant: None, ..value }
    }

    /// `value` computed by `kind` over `args`, or without a node when an argument has none
    /// (it failed, and said so).
    pub(super) fn node_over(
        frame: &mut Frame,
        value: Value,
        args: &[&Value],
        kind: impl FnOnce(Vec<NodeId>) -> NodeKind,
        span: Span,
    ) -> Value {
        match args.iter().map(|a| a.node).collect::<Option<Vec<NodeId>>>() {
            Some(nodes) => Self::with_node(frame, value, kind(nodes), span),
            None => Value { node: None, constant: None, ..value },
        }
    }

    /// Moves the instance built in `frame` into the checked program.
    pub(super) fn finish(
        &mut self,
        frame: &mut Frame,
        name: &Ident,
        kind: InstanceKind,
        args: Vec<(String, Dim)>,
        output: Option<NodeId>,
        failed: bool,
    ) -> InstanceId {
        let instance = Instance {
            name: name.name.clone(),
            kind,
            span: name.span,
            args,
            nodes: std::mem::take(&mut frame.nodes),
            inputs: std::mem::take(&mut frame.inputs),
            output,
            batch: frame.batch.clone(),
            statements: std::mem::take(&mut frame.statements),
            failed,
        };
        self.out.checked.instances.push(instance);
        self.out.checked.instances.len() - 1
    }

    /// A top-level `let`: an instance of its own, used wherever its name appears.
    pub(super) fn constant(&mut self, stmt: &LetStmt) {
        let mut frame = self.frame(0, true);
        let value = self.expr(&stmt.value, &mut frame);
        let failed = frame.diagnostics.iter().any(Diagnostic::is_error);
        let id = self.finish(&mut frame, &stmt.name, InstanceKind::Constant, Vec::new(), value.node, failed);
        self.out.diagnostics.append(&mut frame.diagnostics);
        self.out.facts.append(&mut frame.facts);
        if let Some(shape) = &value.shape {
            self.out.facts.push(ShapeFact { span: stmt.name.span, shape: shape.clone() });
        }
        self.out.constants.push((stmt.name.name.clone(), id));
        self.constants.insert(stmt.name.name.clone(), Value { node: None, constant: Some(id), ..value });
    }

    pub(super) fn query(&mut self, query: &nnc_grammar::Query) {
        let mut frame = self.frame(0, true);
        let value = self.expr(&query.call, &mut frame);
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
        let along = query.along.as_ref().map(|along| self.expr(along, &mut frame));
        let failed = frame.diagnostics.iter().any(Diagnostic::is_error);
        let name = Ident { name: query.kind.keyword().to_string(), span: query.span };
        let instance = self.finish(&mut frame, &name, InstanceKind::Constant, Vec::new(), value.node, failed);
        let wrt = query.wrt.iter().map(|w| w.name.clone()).collect();
        let along = along.and_then(|a| a.node);
        self.out.queries.push(QueryCheck { span: query.span, kind: query.kind, wrt, instance, along });
        self.out.diagnostics.append(&mut frame.diagnostics);
        self.out.facts.append(&mut frame.facts);
    }

    /// Checks what a command asks for beyond the file as written.
    pub(super) fn instantiate(&mut self, over: Override<'_>) -> Instantiated {
        let mut frame = self.frame(0, false);
        let (report, instance) = match over {
            Override::Model { name, args } => match self.models.get(name).copied() {
                Some(def) => {
                    let report = self.model(def, args, None, &mut frame);
                    let instance = report.instance;
                    (Some(report), instance)
                }
                None => (None, None),
            },
            Override::Function { name, shapes } => match self.fns.get(name).copied() {
                Some(def) => {
                    let values: Vec<Value> = shapes.iter().map(|s| Value::new(s.clone())).collect();
                    (None, self.walk_fn(def, &values, def.name.span, &mut frame).map(|(_, id)| id))
                }
                None => (None, None),
            },
            Override::Value(expr) => {
                let value = self.expr(expr, &mut frame);
                let failed = frame.diagnostics.iter().any(Diagnostic::is_error);
                let name = Ident { name: "value".to_string(), span: expr.span };
                (None, Some(self.finish(&mut frame, &name, InstanceKind::Constant, Vec::new(), value.node, failed)))
            }
        };
        Instantiated { report, instance, diagnostics: frame.diagnostics }
    }
}
