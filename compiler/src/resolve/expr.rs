//! Resolution of expressions: names used as values, calls of layers, functions and models,
//! and numbers where sizes belong.

use super::{Callee, DefKind, Place, Resolver, Scope, kind_phrase, split_input};
use crate::builtins::{self, Kind};
use nnc_grammar::{Arg, BinaryOp, Code, Diagnostic, Expr, ExprKind, Span, closest};

impl Resolver {
    /// An expression that computes a value (a tensor or a number).
    pub(super) fn expr(&mut self, expr: &Expr, scope: &Scope, place: Place) {
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Error => {}
            ExprKind::Name(name) => self.value_name(name, expr.span, scope, place),
            ExprKind::Call { callee, args } => {
                let Some(target) = self.callee(&callee.name, callee.span, scope, place) else {
                    for arg in args {
                        self.expr(&arg.value, scope, place);
                    }
                    return;
                };
                match target {
                    Callee::Builtin(builtin) => {
                        if !self.builtin_allowed(builtin, callee.span, place) {
                            return;
                        }
                        match builtin.kind {
                            Kind::Layer | Kind::Activation => {
                                let (input, settings) = split_input(args);
                                match input {
                                    Some(input) if self.is_tensor(input, scope) => {
                                        self.expr(input, scope, place);
                                        self.args(builtin, expr.span, builtin.params, settings, scope, place);
                                    }
                                    _ => self.needs_input(&callee.name, expr.span, args),
                                }
                            }
                            _ => self.args(builtin, expr.span, builtin.params, args, scope, place),
                        }
                    }
                    Callee::User(def) => {
                        let kind = self.out.definitions[def].kind;
                        if matches!(kind, DefKind::Model | DefKind::Layer)
                            && place == Place::Model
                            && !self.first_is_tensor(args, scope)
                        {
                            self.needs_input(&callee.name, expr.span, args);
                            return;
                        }
                        self.user_call(def, &callee.name, expr.span, args, scope, place, false);
                    }
                }
            }
            ExprKind::Binary { op: BinaryOp::Pipe, lhs, rhs } => {
                self.expr(lhs, scope, place);
                let target = rhs.unparenthesized();
                match &target.kind {
                    ExprKind::Name(name) if scope.get(name).is_none() => {
                        if let Some(callee) = self.callee(name, target.span, scope, place) {
                            self.apply_layer(&callee, name, target.span, &[], scope, place);
                        }
                    }
                    ExprKind::Call { callee, args } if scope.get(&callee.name).is_none() => {
                        if let Some(target_callee) = self.callee(&callee.name, callee.span, scope, place) {
                            self.apply_layer(&target_callee, &callee.name, target.span, args, scope, place);
                        }
                    }
                    _ => self.error(
                        Diagnostic::new(
                            Code::WrongKind,
                            "the right of `|>` must be a layer or function",
                            rhs.span,
                            "not a layer or function",
                        )
                        .with_help("write `x |> linear(10)` or `x |> relu`"),
                    ),
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs, scope, place);
                self.expr(rhs, scope, place);
            }
            ExprKind::Neg(inner) | ExprKind::Transpose(inner) | ExprKind::Paren(inner) => {
                self.expr(inner, scope, place)
            }
            ExprKind::Array(items) | ExprKind::Tuple(items) => {
                for item in items {
                    self.expr(item, scope, place);
                }
            }
        }
    }

    pub(super) fn needs_input(&mut self, name: &str, span: Span, args: &[Arg]) {
        let settings: Vec<String> = args.iter().map(|_| "...".to_string()).collect();
        let with_input =
            if settings.is_empty() { format!("{name}(x)") } else { format!("{name}(x, {})", settings.join(", ")) };
        let piped = if settings.is_empty() { name.to_string() } else { format!("{name}({})", settings.join(", ")) };
        self.error(
            Diagnostic::new(
                Code::LayerNeedsInput,
                format!("`{name}` is used here without an input"),
                span,
                "no input flows into this",
            )
            .with_help(format!("give it its input: `x |> {piped}` or `{with_input}`; on a line of its own in a model it takes the line before")),
        );
    }

    /// A name used as a value.
    pub(super) fn value_name(&mut self, name: &str, span: Span, scope: &Scope, place: Place) {
        if let Some(def) = scope.get(name) {
            self.reference(span, def);
            return;
        }
        if let Some(&def) = self.globals.get(name) {
            self.reference(span, def);
            let kind = self.out.definitions[def].kind;
            self.needs_input_or_call(name, span, kind.describe());
            return;
        }
        if let Some(builtin) = builtins::lookup(name) {
            if self.builtin_allowed(builtin, span, place) {
                self.needs_input_or_call(
                    name,
                    span,
                    kind_phrase(builtin.kind).trim_start_matches("a ").trim_start_matches("an "),
                );
            }
            return;
        }
        self.unknown_name(name, span, scope);
    }

    pub(super) fn needs_input_or_call(&mut self, name: &str, span: Span, what: &str) {
        self.error(
            Diagnostic::new(
                Code::LayerNeedsInput,
                format!("the {what} `{name}` is used as a value"),
                span,
                "no input flows into this",
            )
            .with_help(format!("call it with its input: `{name}(x)`, or write `x |> {name}`")),
        );
    }

    pub(super) fn unknown_name(&mut self, name: &str, span: Span, scope: &Scope) {
        let candidates: Vec<&str> = scope.names.iter().map(|(n, _)| n.as_str()).collect();
        let suggestion = closest(name, candidates).map(str::to_string);
        self.error(
            Diagnostic::new(Code::UnknownName, format!("unknown name `{name}`"), span, "not defined here")
                .with_optional_help(suggestion.map(|s| format!("did you mean `{s}`?"))),
        );
    }

    /// An expression that must be a number, such as a layer size or a dimension.
    pub(super) fn number(&mut self, expr: &Expr, scope: &Scope) {
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Error => {}
            ExprKind::Name(name) => match scope.get(name) {
                Some(def) => {
                    self.reference(expr.span, def);
                    let kind = self.out.definitions[def].kind;
                    if kind.is_tensor() {
                        self.error(
                            Diagnostic::new(
                                Code::TensorInDimension,
                                format!("`{name}` is a tensor, but a number is needed here"),
                                expr.span,
                                format!("the {} `{name}` is a tensor", kind.describe()),
                            )
                            .with_help("sizes and dimensions are whole numbers or model arguments such as `hidden`"),
                        );
                    }
                }
                None => self.unknown_name(name, expr.span, scope),
            },
            ExprKind::Binary { op: BinaryOp::Pipe | BinaryOp::MatMul, .. }
            | ExprKind::Transpose(_)
            | ExprKind::Array(_) => {
                self.error(
                    Diagnostic::new(Code::WrongValue, "a number is needed here", expr.span, "this is not a number")
                        .with_help("sizes are whole numbers, model arguments, or arithmetic on them: `2 * hidden`"),
                );
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                self.number(lhs, scope);
                self.number(rhs, scope);
            }
            ExprKind::Neg(inner) | ExprKind::Paren(inner) => self.number(inner, scope),
            ExprKind::Tuple(items) => {
                for item in items {
                    self.number(item, scope);
                }
            }
            ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Call { .. } => {
                self.error(Diagnostic::new(
                    Code::WrongValue,
                    "a number is needed here",
                    expr.span,
                    "this is not a number",
                ));
            }
        }
    }

    pub(super) fn expr_any(&mut self, expr: &Expr, scope: &Scope, place: Place) {
        if self.is_tensor(expr, scope) { self.expr(expr, scope, place) } else { self.setting_like(expr, scope) }
    }

    /// Resolves names in a value whose kind is not known, without reporting layers.
    pub(super) fn setting_like(&mut self, expr: &Expr, scope: &Scope) {
        expr.walk(&mut |e| {
            if let ExprKind::Name(name) = &e.kind
                && let Some(def) = scope.get(name)
            {
                self.out.references.push((e.span, def));
            }
        });
    }
}
