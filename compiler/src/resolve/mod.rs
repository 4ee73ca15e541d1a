//! Name resolution: every name used in a file is defined, every call has the arguments
//! its layer, model or function takes, and each thing is used where it can be.
//!
//! Resolution reads the syntax tree only and reports problems as diagnostics; it records
//! each user definition and its references for the language server.

use crate::builtins::{self, Builtin, Kind, Param};
use nnc_grammar::{
    Arg, Code, Diagnostic, Expr, ExprKind, File, FnDef, Ident, Item, ModelDef, ModelKind, Shape, Span, Stmt, closest,
};
use std::collections::HashMap;

mod args;
mod blocks;
mod expr;

/// What a user-defined name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Fn,
    Model,
    Layer,
    /// A top-level `let`: a constant tensor.
    Constant,
    /// A `fn` parameter.
    FnParam,
    /// A model argument such as `hidden`: a whole number.
    ModelArg,
    /// A dimension named in an input shape, such as `B`.
    ShapeSymbol,
    /// The named input of a model.
    Input,
    /// A `let` in a model body.
    Local,
    /// A `param` of a layer.
    Param,
}

impl DefKind {
    fn is_tensor(self) -> bool {
        matches!(self, DefKind::Constant | DefKind::FnParam | DefKind::Input | DefKind::Local | DefKind::Param)
    }

    /// What a definition of this kind is, in words (`function argument`).
    pub fn describe(self) -> &'static str {
        match self {
            DefKind::Fn => "function",
            DefKind::Model => "model",
            DefKind::Layer => "layer",
            DefKind::Constant => "constant",
            DefKind::FnParam => "function argument",
            DefKind::ModelArg => "model argument",
            DefKind::ShapeSymbol => "dimension",
            DefKind::Input => "input",
            DefKind::Local => "`let` value",
            DefKind::Param => "parameter",
        }
    }
}

/// A user definition.
#[derive(Clone, Debug)]
pub struct Definition {
    pub name: String,
    pub kind: DefKind,
    pub span: Span,
}

/// What resolution found: the definitions with their references, and the diagnostics.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    pub definitions: Vec<Definition>,
    /// `(span of a use, index into definitions)`.
    pub references: Vec<(Span, usize)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolves every name in `file`.
pub fn resolve(file: &File) -> Resolution {
    let mut resolver = Resolver::default();
    resolver.file(file);
    resolver.out
}

/// The names visible at a point: innermost last.
#[derive(Clone, Default)]
struct Scope {
    names: Vec<(String, usize)>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<usize> {
        self.names.iter().rev().find(|(n, _)| n == name).map(|&(_, def)| def)
    }
}

/// Where an expression is being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In a `fn` body or a top-level `let`: no layers with parameters.
    Function,
    /// In a `model` or `layer` body.
    Model,
}

#[derive(Default)]
struct Resolver {
    out: Resolution,
    /// Top-level functions, models and layers by name.
    globals: HashMap<String, usize>,
    models: HashMap<String, &'static str>,
    /// Model or layer definition -> its arguments, with whether each has a default.
    model_params: HashMap<usize, Vec<(String, bool)>>,
    /// Function definition -> its parameter names.
    fn_params: HashMap<usize, Vec<String>>,
    /// Model name -> the user models it uses, with the span of each use.
    model_uses: HashMap<usize, Vec<(usize, Span)>>,
    current_model: Option<usize>,
    /// Model, layer or function definition -> the definitions of its arguments.
    arg_defs: HashMap<usize, Vec<usize>>,
    /// Argument names written at calls (`Mlp(hidden = 64)`, `grad f(2, 5) wrt x1`), with the
    /// definition called: they refer to its arguments, once every definition is known.
    arg_names: Vec<(Ident, usize)>,
}

/// The callable that a name in call position refers to.
enum Callee {
    Builtin(&'static Builtin),
    User(usize),
}

impl Resolver {
    fn define(&mut self, ident: &Ident, kind: DefKind) -> usize {
        self.out.definitions.push(Definition { name: ident.name.clone(), kind, span: ident.span });
        self.out.definitions.len() - 1
    }

    fn reference(&mut self, span: Span, def: usize) {
        self.out.references.push((span, def));
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.out.diagnostics.push(diagnostic);
    }

    fn duplicate(&mut self, ident: &Ident, first: usize, what: &str) {
        let first_span = self.out.definitions[first].span;
        self.error(
            Diagnostic::new(
                Code::DuplicateDefinition,
                format!("`{}` is defined twice", ident.name),
                ident.span,
                format!("{what} `{}` defined again here", ident.name),
            )
            .with_secondary(first_span, "first defined here")
            .with_help("rename one of them"),
        );
    }

    /// Adds `ident` to `scope`, reporting a duplicate among `local` names of the same scope.
    fn bind(&mut self, scope: &mut Scope, local_from: usize, ident: &Ident, kind: DefKind) -> usize {
        if let Some(&(_, first)) = scope.names[local_from..].iter().find(|(n, _)| *n == ident.name) {
            self.duplicate(ident, first, kind.describe());
        }
        let def = self.define(ident, kind);
        scope.names.push((ident.name.clone(), def));
        def
    }

    fn file(&mut self, file: &File) {
        // Functions, models and layers are visible everywhere; constants only after their `let`.
        for item in &file.items {
            let (ident, kind) = match item {
                Item::Fn(def) => (&def.name, DefKind::Fn),
                Item::Model(def) if def.kind == ModelKind::Model => (&def.name, DefKind::Model),
                Item::Model(def) => (&def.name, DefKind::Layer),
                _ => continue,
            };
            if let Some(&first) = self.globals.get(&ident.name) {
                self.duplicate(ident, first, kind.describe());
                continue;
            }
            let def = self.define(ident, kind);
            self.globals.insert(ident.name.clone(), def);
            match item {
                Item::Model(model) => {
                    self.models.insert(ident.name.clone(), model.kind.keyword());
                    let params = model.params.iter().map(|p| (p.name.name.clone(), p.default.is_some())).collect();
                    self.model_params.insert(def, params);
                }
                Item::Fn(function) => {
                    self.fn_params.insert(def, function.params.iter().map(|p| p.name.name.clone()).collect());
                }
                _ => {}
            }
        }
        let mut constants = Scope::default();
        for item in &file.items {
            match item {
                Item::Fn(def) => self.fn_def(def, &constants),
                Item::Model(def) => self.model_def(def, &constants),
                Item::Let(stmt) => {
                    self.expr(&stmt.value, &constants, Place::Function);
                    if let Some(&first) = self.globals.get(&stmt.name.name) {
                        self.duplicate(&stmt.name, first, "constant");
                    }
                    self.bind(&mut constants, 0, &stmt.name, DefKind::Constant);
                }
                Item::Query(query) => self.query(query, &constants),
                Item::Train(def) => self.train(def, &constants),
                Item::Error(_) => {}
            }
        }
        self.argument_references();
        self.recursive_models();
    }

    /// Records the names of arguments at calls as references to the arguments they name.
    /// Names that are not arguments of the callee were reported where they were met.
    fn argument_references(&mut self) {
        for (ident, callee) in std::mem::take(&mut self.arg_names) {
            let args = self.arg_defs.get(&callee).map(Vec::as_slice).unwrap_or_default();
            if let Some(&def) = args.iter().find(|&&def| self.out.definitions[def].name == ident.name) {
                self.out.references.push((ident.span, def));
            }
        }
    }

    /// Remembers the named arguments of a call of the user definition `callee`.
    fn named_args(&mut self, callee: usize, args: &[Arg]) {
        self.arg_names.extend(args.iter().filter_map(|arg| arg.name.clone()).map(|name| (name, callee)));
    }

    /// The index of the definition of the item named `name`, if it is this one (and not
    /// an earlier item of the same name).
    fn own_index(&self, name: &Ident) -> Option<usize> {
        self.globals.get(&name.name).copied().filter(|&def| self.out.definitions[def].span == name.span)
    }

    fn fn_def(&mut self, def: &FnDef, constants: &Scope) {
        // Calls from this function are recorded, so that recursion is found.
        self.current_model = self.globals.get(&def.name.name).copied();
        let mut scope = constants.clone();
        let local_from = scope.names.len();
        for param in &def.params {
            if let Some(shape) = &param.shape {
                self.shape(shape, &mut scope, true);
            }
        }
        let symbols_end = scope.names.len();
        let mut args = Vec::new();
        for param in &def.params {
            args.push(self.bind(&mut scope, symbols_end.max(local_from), &param.name, DefKind::FnParam));
        }
        if let Some(own) = self.own_index(&def.name) {
            self.arg_defs.insert(own, args);
        }
        self.expr(&def.body, &scope, Place::Function);
        self.current_model = None;
    }

    /// Resolves the dimensions of a shape. In an input shape (`introduce`), a name that is
    /// not defined introduces a new dimension symbol.
    fn shape(&mut self, shape: &Shape, scope: &mut Scope, introduce: bool) {
        for dim in &shape.dims {
            if introduce && let ExprKind::Name(name) = &dim.kind {
                match scope.get(name) {
                    Some(def) => self.reference(dim.span, def),
                    None => {
                        let ident = Ident { name: name.clone(), span: dim.span };
                        let def = self.define(&ident, DefKind::ShapeSymbol);
                        scope.names.push((name.clone(), def));
                    }
                }
                continue;
            }
            self.number(dim, scope);
        }
    }

    fn model_def(&mut self, def: &ModelDef, constants: &Scope) {
        let model_index = self.globals.get(&def.name.name).copied();
        self.current_model = model_index;
        let mut scope = constants.clone();
        let local_from = scope.names.len();
        for param in &def.params {
            if let Some(default) = &param.default {
                if matches!(default.unparenthesized().kind, ExprKind::Float(_)) {
                    self.error(
                        Diagnostic::new(
                            Code::WrongValue,
                            format!("`{}` must be a whole number: model arguments are sizes", param.name.name),
                            default.span,
                            "not a whole number",
                        )
                        .with_help("write a whole number, such as `16`"),
                    );
                }
                self.number(default, &scope);
            }
            let arg = self.bind(&mut scope, local_from, &param.name, DefKind::ModelArg);
            if let Some(own) = self.own_index(&def.name) {
                self.arg_defs.entry(own).or_default().push(arg);
            }
        }
        let mut input: Option<Span> = None;
        for stmt in &def.body {
            match stmt {
                Stmt::Input(stmt) => {
                    if let Some(first) = input {
                        self.error(
                            Diagnostic::new(
                                Code::MisplacedStatement,
                                format!("`{}` has a second `input`", def.name.name),
                                stmt.span,
                                "second `input`",
                            )
                            .with_secondary(first, "the first `input` is here")
                            .with_help("a model or layer has one input; combine them or use two models"),
                        );
                        continue;
                    }
                    input = Some(stmt.span);
                    self.shape(&stmt.shape, &mut scope, true);
                    if let Some(name) = &stmt.name {
                        self.bind(&mut scope, local_from, name, DefKind::Input);
                    }
                }
                Stmt::Param(stmt) => {
                    self.require_input(def, input, stmt.span);
                    self.shape(&stmt.shape, &mut scope, false);
                    if let Some(init) = &stmt.init {
                        self.initializer(init, &scope);
                    }
                    self.bind(&mut scope, local_from, &stmt.name, DefKind::Param);
                }
                Stmt::Let(stmt) => {
                    self.require_input(def, input, stmt.span);
                    self.expr(&stmt.value, &scope, Place::Model);
                    self.bind(&mut scope, local_from, &stmt.name, DefKind::Local);
                }
                Stmt::Expr(expr) => {
                    self.require_input(def, input, expr.span);
                    self.layer_line(expr, &scope);
                }
                Stmt::Error(_) => {}
            }
        }
        if input.is_none() && !def.body.iter().any(|stmt| matches!(stmt, Stmt::Error(_))) {
            self.error(
                Diagnostic::new(
                    Code::MissingInput,
                    format!("{} `{}` has no `input`", def.kind.keyword(), def.name.name),
                    def.name.span,
                    "no `input` statement in this body",
                )
                .with_help("start the body with the input's shape, such as `input [B, 64]`"),
            );
        }
        self.current_model = None;
    }

    /// Reports a statement that comes before the body's `input`; only the first is reported.
    fn require_input(&mut self, def: &ModelDef, input: Option<Span>, span: Span) {
        let already =
            self.out.diagnostics.iter().any(|d| d.code == Code::MissingInput && d.primary.span == def.name.span);
        let has_input_later = def.body.iter().any(|s| matches!(s, Stmt::Input(_)));
        if input.is_none() && has_input_later && !already {
            self.error(
                Diagnostic::new(
                    Code::MissingInput,
                    format!("`{}` uses its input before the `input` statement", def.name.name),
                    span,
                    "this comes before `input`",
                )
                .with_secondary(def.name.span, "in this definition")
                .with_help("move the `input` statement to the start of the body"),
            );
        }
    }

    /// A statement of a model body: a layer applied to the value so far, or an expression.
    fn layer_line(&mut self, expr: &Expr, scope: &Scope) {
        let inner = expr.unparenthesized();
        match &inner.kind {
            ExprKind::Name(name) if scope.get(name).is_none() => {
                if let Some(callee) = self.callee(name, inner.span, scope, Place::Model) {
                    self.apply_layer(&callee, name, inner.span, &[], scope, Place::Model);
                }
            }
            ExprKind::Call { callee, args }
                if scope.get(&callee.name).is_none() && !self.first_is_tensor(args, scope) =>
            {
                if let Some(target) = self.callee(&callee.name, callee.span, scope, Place::Model) {
                    self.apply_layer(&target, &callee.name, inner.span, args, scope, Place::Model);
                }
            }
            _ => self.expr(expr, scope, Place::Model),
        }
    }

    /// Whether the first positional argument mentions a tensor, so that it is a layer's input.
    fn first_is_tensor(&self, args: &[Arg], scope: &Scope) -> bool {
        args.first().is_some_and(|arg| arg.name.is_none() && self.is_tensor(&arg.value, scope))
    }

    fn is_tensor(&self, expr: &Expr, scope: &Scope) -> bool {
        let mut found = false;
        expr.walk(&mut |e| {
            if let ExprKind::Name(name) = &e.kind
                && let Some(def) = scope.get(name)
                && self.out.definitions[def].kind.is_tensor()
            {
                found = true;
            }
            if matches!(e.kind, ExprKind::Array(_)) {
                found = true;
            }
        });
        found
    }

    /// Finds what a called name refers to, reporting unknown names.
    fn callee(&mut self, name: &str, span: Span, scope: &Scope, place: Place) -> Option<Callee> {
        if let Some(def) = scope.get(name) {
            let kind = self.out.definitions[def].kind;
            self.reference(span, def);
            self.error(Diagnostic::new(
                Code::WrongKind,
                format!("`{name}` is a {}, not a layer or function", kind.describe()),
                span,
                "cannot be called",
            ));
            return None;
        }
        if let Some(&def) = self.globals.get(name) {
            self.reference(span, def);
            return Some(Callee::User(def));
        }
        if let Some(builtin) = builtins::lookup(name) {
            return Some(Callee::Builtin(builtin));
        }
        let mut candidates: Vec<&str> =
            builtins::names_of(&[Kind::Layer, Kind::Activation, Kind::Function, Kind::Loss]).collect();
        candidates.extend(self.globals.keys().map(String::as_str));
        let suggestion = closest(name, candidates.iter().copied()).map(str::to_string);
        let what = if place == Place::Model { "layer or function" } else { "function" };
        self.error(
            Diagnostic::new(Code::UnknownLayer, format!("unknown {what} `{name}`"), span, "not defined")
                .with_optional_help(suggestion.map(|s| format!("did you mean `{s}`?"))),
        );
        None
    }

    /// Checks a layer, model or function applied to an input that flows in from elsewhere
    /// (the previous line, or the left of `|>`); `args` are its settings.
    fn apply_layer(&mut self, callee: &Callee, name: &str, span: Span, args: &[Arg], scope: &Scope, place: Place) {
        match callee {
            Callee::Builtin(builtin) => {
                self.builtin_allowed(builtin, span, place);
                let params: &'static [Param] = match builtin.kind {
                    // A function applied to the flowing value: that value is its first operand.
                    Kind::Function | Kind::Loss => builtin.params.get(1..).unwrap_or(&[]),
                    _ => builtin.params,
                };
                self.args(builtin, span, params, args, scope, place);
            }
            Callee::User(def) => self.user_call(*def, name, span, args, scope, place, true),
        }
    }

    /// Reports built-ins used where they cannot be.
    fn builtin_allowed(&mut self, builtin: &Builtin, span: Span, place: Place) -> bool {
        let problem = match (builtin.kind, place) {
            (Kind::Layer, Place::Function) => Some((
                format!("`{}` is a layer with parameters; functions have none", builtin.name),
                "define a `model` to use layers with parameters".to_string(),
            )),
            (Kind::Optimizer | Kind::DataSource, _) => Some((
                format!("`{}` is {}, not a layer or function", builtin.name, kind_phrase(builtin.kind)),
                format!("use `{}` in a `train` block", builtin.name),
            )),
            (Kind::Initializer, _) => Some((
                format!("`{}` is an initialiser, not a layer or function", builtin.name),
                format!("use it to initialise a parameter: `param w: [4, 4] = {}`", builtin.name),
            )),
            _ => None,
        };
        if let Some((message, help)) = problem {
            self.error(Diagnostic::new(Code::WrongKind, message, span, "not allowed here").with_help(help));
            return false;
        }
        true
    }

    /// A call of a user function, model or layer. `input_flows` says whether its input
    /// comes from elsewhere rather than from `args`.
    #[allow(clippy::too_many_arguments)]
    fn user_call(
        &mut self,
        def: usize,
        name: &str,
        span: Span,
        args: &[Arg],
        scope: &Scope,
        place: Place,
        input_flows: bool,
    ) {
        let kind = self.out.definitions[def].kind;
        match kind {
            DefKind::Model | DefKind::Layer => {
                if place == Place::Function {
                    self.error(
                        Diagnostic::new(
                            Code::WrongKind,
                            format!("`{name}` is a {}; functions cannot use models", kind.describe()),
                            span,
                            "not allowed in a function",
                        )
                        .with_help("use it in a `model` body"),
                    );
                    return;
                }
                if let Some(current) = self.current_model {
                    self.model_uses.entry(current).or_default().push((def, span));
                }
                self.named_args(def, args);
                let params = self.model_params.get(&def).cloned().unwrap_or_default();
                let (input, settings) = if input_flows { (None, args) } else { split_input(args) };
                if let Some(input) = input {
                    self.expr(input, scope, place);
                }
                self.user_args(name, span, &params, settings, scope, place);
            }
            DefKind::Fn => {
                if let Some(current) = self.current_model {
                    self.model_uses.entry(current).or_default().push((def, span));
                }
                self.named_args(def, args);
                let params = self.fn_params.get(&def).cloned().unwrap_or_default();
                let params: Vec<(String, bool)> = params.into_iter().map(|p| (p, false)).collect();
                let params = if input_flows { params.get(1..).unwrap_or(&[]).to_vec() } else { params };
                for arg in args {
                    self.expr(&arg.value, scope, place);
                }
                self.count_user_args(name, span, &params, args);
            }
            _ => {}
        }
    }
}

/// The first positional argument, as a layer's input, and the rest.
fn split_input(args: &[Arg]) -> (Option<&Expr>, &[Arg]) {
    match args.first() {
        Some(arg) if arg.name.is_none() => (Some(&arg.value), &args[1..]),
        _ => (None, args),
    }
}

fn kind_phrase(kind: Kind) -> &'static str {
    match kind {
        Kind::Layer => "a layer",
        Kind::Activation => "an activation",
        Kind::Function => "a function",
        Kind::Loss => "a loss",
        Kind::Optimizer => "an optimiser",
        Kind::DataSource => "a data source",
        Kind::Initializer => "an initialiser",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_names_at_calls_refer_to_the_arguments() {
        let text = "model Block(width = 8) {\n    input [B, width]\n    linear(width)\n}\n\
                    model Net {\n    input [B, 8]\n    Block(width = 8)\n}\n\
                    train Block(width = 4) on xor() {\n    loss = mse\n}\n\
                    fn f(x, y) = x * y\n\
                    grad f(y = 1, x = 2) wrt y\n";
        let parsed = nnc_grammar::parse(text);
        let resolution = resolve(&parsed.file);
        let width =
            resolution.definitions.iter().position(|d| d.name == "width" && d.kind == DefKind::ModelArg).unwrap();
        let lines: Vec<usize> = resolution
            .references
            .iter()
            .filter(|(_, d)| *d == width)
            .map(|(span, _)| text[..span.start].matches('\n').count())
            .collect();
        // The shape and the layer inside the model, the call in `Net` and the `train` block.
        assert_eq!(lines, vec![1, 2, 6, 8]);
        let y = resolution.definitions.iter().position(|d| d.name == "y" && d.kind == DefKind::FnParam).unwrap();
        let y_uses = resolution.references.iter().filter(|(_, d)| *d == y).count();
        // `x * y`, `y = 1` and `wrt y`.
        assert_eq!(y_uses, 3);
    }
}
