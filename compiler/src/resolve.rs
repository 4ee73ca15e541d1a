//! Name resolution: every name used in a file is defined, every call has the arguments
//! its layer, model or function takes, and each thing is used where it can be.
//!
//! Resolution reads the syntax tree only and reports problems as diagnostics; it records
//! each user definition and its references for the language server.

use crate::builtins::{self, ArgKind, BindProblem, Builtin, Kind, Param};
use nnc_grammar::{
    Arg, BinaryOp, Code, Diagnostic, Expr, ExprKind, File, FnDef, Ident, Item, ModelDef, ModelKind, QueryKind, Shape,
    Span, Stmt, TrainDef, closest,
};
use std::collections::HashMap;

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

    fn describe(self) -> &'static str {
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

impl Resolver {
    /// An expression that computes a value (a tensor or a number).
    fn expr(&mut self, expr: &Expr, scope: &Scope, place: Place) {
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

    fn needs_input(&mut self, name: &str, span: Span, args: &[Arg]) {
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
    fn value_name(&mut self, name: &str, span: Span, scope: &Scope, place: Place) {
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

    fn needs_input_or_call(&mut self, name: &str, span: Span, what: &str) {
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

    fn unknown_name(&mut self, name: &str, span: Span, scope: &Scope) {
        let candidates: Vec<&str> = scope.names.iter().map(|(n, _)| n.as_str()).collect();
        let suggestion = closest(name, candidates).map(str::to_string);
        self.error(
            Diagnostic::new(Code::UnknownName, format!("unknown name `{name}`"), span, "not defined here")
                .with_optional_help(suggestion.map(|s| format!("did you mean `{s}`?"))),
        );
    }

    /// An expression that must be a number, such as a layer size or a dimension.
    fn number(&mut self, expr: &Expr, scope: &Scope) {
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

    /// Checks the arguments of a built-in against its parameters.
    #[allow(clippy::too_many_arguments)]
    /// Checks the arguments of a call of a built-in against `params` (its parameters, or
    /// those after its input), as the check binds them.
    fn args(
        &mut self,
        builtin: &'static Builtin,
        span: Span,
        params: &'static [Param],
        args: &[Arg],
        scope: &Scope,
        place: Place,
    ) {
        let name = builtin.name;
        if builtin.variadic {
            for arg in args {
                if let Some(arg_name) = &arg.name {
                    self.error(Diagnostic::new(
                        Code::UnknownArgument,
                        format!("`{name}` takes no named arguments"),
                        arg_name.span,
                        "not an argument of this layer",
                    ));
                }
                self.number(&arg.value, scope);
            }
            return;
        }
        let binding = builtins::bind(builtin, params, args);
        for (param, arg) in &binding.bound {
            // `linear(1568, 10)`, `conv2d(1, 6, 5)`: the first number is the input's size,
            // as in PyTorch.
            if builtin.leading.is_some_and(|leading| std::ptr::eq(leading.param, *param)) {
                self.number(&arg.value, scope);
            } else {
                self.arg_value(param, &arg.value, scope, place);
            }
        }
        for problem in binding.problems {
            match problem {
                BindProblem::TooMany(arg) => {
                    self.too_many(name, params.len(), arg.span, args);
                    self.expr_any(&arg.value, scope, place);
                }
                BindProblem::Unknown(arg) => {
                    if let Some(arg_name) = &arg.name {
                        self.unknown_argument(name, arg_name, params);
                    }
                    self.expr_any(&arg.value, scope, place);
                }
                BindProblem::Duplicate { param, first, again } => self.error(
                    Diagnostic::new(
                        Code::DuplicateArgument,
                        format!("`{}` is given twice in this call of `{name}`", param.name),
                        again.span,
                        "given again here",
                    )
                    .with_secondary(first, "first given here")
                    .with_help("remove one of them"),
                ),
                BindProblem::Missing(missing) => self.missing(name, span, &missing),
            }
        }
    }

    fn expr_any(&mut self, expr: &Expr, scope: &Scope, place: Place) {
        if self.is_tensor(expr, scope) { self.expr(expr, scope, place) } else { self.setting_like(expr, scope) }
    }

    /// Resolves names in a value whose kind is not known, without reporting layers.
    fn setting_like(&mut self, expr: &Expr, scope: &Scope) {
        expr.walk(&mut |e| {
            if let ExprKind::Name(name) = &e.kind
                && let Some(def) = scope.get(name)
            {
                self.out.references.push((e.span, def));
            }
        });
    }

    fn too_many(&mut self, name: &str, count: usize, span: Span, args: &[Arg]) {
        let positional = args.iter().filter(|a| a.name.is_none()).count();
        let takes = match count {
            0 => "no arguments".to_string(),
            1 => "1 argument".to_string(),
            n => format!("at most {n} arguments"),
        };
        self.error(
            Diagnostic::new(
                Code::WrongArgumentCount,
                format!("`{name}` takes {takes} but {positional} were given"),
                span,
                "one too many",
            )
            .with_help("remove this argument"),
        );
    }

    fn missing(&mut self, name: &str, span: Span, missing: &[&str]) {
        let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
        let example = missing.iter().map(|m| format!("{m} = ...")).collect::<Vec<_>>().join(", ");
        self.error(
            Diagnostic::new(
                Code::WrongArgumentCount,
                format!("`{name}` needs {list}"),
                span,
                format!("missing {list}"),
            )
            .with_help(format!("give it: `{name}({example})`")),
        );
    }

    fn unknown_argument(&mut self, name: &str, arg: &Ident, params: &[Param]) {
        let alias = params.iter().find(|p| p.aliases.contains(&arg.name.as_str()));
        let help = match alias {
            Some(param) => Some(format!("`{}` is called `{}` here", arg.name, param.name)),
            None => closest(&arg.name, params.iter().map(|p| p.name)).map(|s| format!("did you mean `{s}`?")),
        };
        let known = params.iter().map(|p| format!("`{}`", p.name)).collect::<Vec<_>>().join(", ");
        let note =
            if known.is_empty() { format!("`{name}` takes no arguments") } else { format!("`{name}` takes {known}") };
        self.error(
            Diagnostic::new(
                Code::UnknownArgument,
                format!("`{name}` has no argument `{}`", arg.name),
                arg.span,
                "unknown argument",
            )
            .with_optional_help(help)
            .with_note(note),
        );
    }

    /// Checks one argument against the kind of value its parameter takes.
    fn arg_value(&mut self, param: &Param, value: &Expr, scope: &Scope, place: Place) {
        let inner = value.unparenthesized();
        let wrong = |what: &str| {
            Diagnostic::new(
                Code::WrongValue,
                format!("`{}` must be {what}", param.name),
                value.span,
                format!("expected {what}"),
            )
            .with_note(format!("`{}`: {}", param.name, param.doc))
        };
        match param.kind {
            ArgKind::Tensor => self.expr(value, scope, place),
            ArgKind::Int | ArgKind::Real | ArgKind::IntOrPair => match &inner.kind {
                ExprKind::Tuple(items) if param.kind == ArgKind::IntOrPair && items.len() != 2 => {
                    self.error(wrong("a number or a pair such as `(3, 3)`"));
                }
                ExprKind::Tuple(_) if param.kind != ArgKind::IntOrPair => self.error(wrong("a number")),
                ExprKind::Float(_) if param.kind != ArgKind::Real => self.error(wrong("a whole number")),
                ExprKind::Str(_) | ExprKind::Bool(_) => {
                    self.error(wrong(if param.kind == ArgKind::Real { "a number" } else { "a whole number" }))
                }
                _ => self.number(value, scope),
            },
            ArgKind::Bool => {
                if !matches!(inner.kind, ExprKind::Bool(_) | ExprKind::Error) {
                    self.error(wrong("`true` or `false`"));
                }
            }
            ArgKind::Str => {
                if !matches!(inner.kind, ExprKind::Str(_) | ExprKind::Error) {
                    self.error(wrong("a string such as \"data/file.csv\""));
                }
            }
            ArgKind::Word(words) | ArgKind::IntOrWord(words) => match &inner.kind {
                ExprKind::Name(name) if words.contains(&name.as_str()) => {}
                ExprKind::Int(_) if matches!(param.kind, ArgKind::IntOrWord(_)) => {}
                ExprKind::Error => {}
                ExprKind::Name(name) => {
                    let listed = words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(" or ");
                    let what = if matches!(param.kind, ArgKind::IntOrWord(_)) {
                        format!("a number, {listed}")
                    } else {
                        listed
                    };
                    let suggestion = closest(name, words.iter().copied()).map(|s| format!("did you mean `{s}`?"));
                    self.error(wrong(&what).with_optional_help(suggestion));
                }
                _ => self.error(wrong("one of the listed words")),
            },
            ArgKind::Shape => match &inner.kind {
                ExprKind::Array(items) | ExprKind::Tuple(items) => {
                    for item in items {
                        self.number(item, scope);
                    }
                }
                _ => self.error(wrong("a shape such as `[1, 8, 8]`")),
            },
            ArgKind::Loss => self.named_builtin(value, Kind::Loss, "a loss: `mse`, `cross_entropy` or `bce`", scope),
            ArgKind::Optimizer => {
                self.named_builtin(value, Kind::Optimizer, "an optimiser: `sgd(...)` or `adam(...)`", scope)
            }
            ArgKind::DataSource => {
                self.named_builtin(value, Kind::DataSource, "a data source such as `csv(\"file.csv\")`", scope)
            }
        }
    }

    /// A value that names a built-in of one kind, with its settings: `adam(lr = 0.01)`.
    fn named_builtin(&mut self, value: &Expr, kind: Kind, what: &str, scope: &Scope) {
        let inner = value.unparenthesized();
        let (name, span, args): (&str, Span, &[Arg]) = match &inner.kind {
            ExprKind::Name(name) => (name, inner.span, &[]),
            ExprKind::Call { callee, args } => (&callee.name, callee.span, args),
            ExprKind::Error => return,
            _ => {
                self.error(Diagnostic::new(
                    Code::WrongValue,
                    format!("expected {what}"),
                    value.span,
                    "not allowed here",
                ));
                return;
            }
        };
        match builtins::lookup(name) {
            Some(builtin) if builtin.kind == kind => {
                // A loss is named, not called, in a `train` block; other kinds take settings.
                let params = if kind == Kind::Loss { &[][..] } else { builtin.params };
                self.args(builtin, inner.span, params, args, scope, Place::Function);
            }
            found => {
                let suggestion = closest(name, builtins::names_of(&[kind])).map(|s| format!("did you mean `{s}`?"));
                let code = if found.is_some() { Code::WrongKind } else { Code::UnknownLayer };
                let message = match found {
                    Some(builtin) => {
                        format!("`{name}` is {}; expected {what}", kind_phrase(builtin.kind))
                    }
                    None => format!(
                        "unknown {}: `{name}`",
                        kind_phrase(kind).trim_start_matches("a ").trim_start_matches("an ")
                    ),
                };
                self.error(
                    Diagnostic::new(code, message, span, format!("expected {what}")).with_optional_help(suggestion),
                );
            }
        }
    }

    fn initializer(&mut self, init: &Expr, scope: &Scope) {
        self.named_builtin(init, Kind::Initializer, "an initialiser such as `zeros` or `normal(0, 0.01)`", scope);
    }

    /// Checks the arguments of a call of a user model or layer against its arguments.
    fn user_args(
        &mut self,
        name: &str,
        span: Span,
        params: &[(String, bool)],
        args: &[Arg],
        scope: &Scope,
        place: Place,
    ) {
        self.count_user_args(name, span, params, args);
        for arg in args {
            if self.is_tensor(&arg.value, scope) {
                self.expr(&arg.value, scope, place);
            } else {
                self.number(&arg.value, scope);
            }
        }
    }

    /// Checks counts, names and duplicates of arguments to a user definition.
    fn count_user_args(&mut self, name: &str, span: Span, params: &[(String, bool)], args: &[Arg]) {
        let mut given: Vec<Option<Span>> = vec![None; params.len()];
        let mut positional = 0;
        for arg in args {
            let index = match &arg.name {
                None => {
                    positional += 1;
                    if positional > params.len() {
                        self.too_many(name, params.len(), arg.span, args);
                        continue;
                    }
                    positional - 1
                }
                Some(arg_name) => match params.iter().position(|(p, _)| *p == arg_name.name) {
                    Some(index) => index,
                    None => {
                        let help = closest(&arg_name.name, params.iter().map(|(p, _)| p.as_str()))
                            .map(|s| format!("did you mean `{s}`?"));
                        let known = params.iter().map(|(p, _)| format!("`{p}`")).collect::<Vec<_>>().join(", ");
                        let note = if known.is_empty() {
                            format!("`{name}` takes no arguments")
                        } else {
                            format!("`{name}` takes {known}")
                        };
                        self.error(
                            Diagnostic::new(
                                Code::UnknownArgument,
                                format!("`{name}` has no argument `{}`", arg_name.name),
                                arg_name.span,
                                "unknown argument",
                            )
                            .with_optional_help(help)
                            .with_note(note),
                        );
                        continue;
                    }
                },
            };
            if let Some(first) = given[index] {
                self.error(
                    Diagnostic::new(
                        Code::DuplicateArgument,
                        format!("`{}` is given twice in this call of `{name}`", params[index].0),
                        arg.span,
                        "given again here",
                    )
                    .with_secondary(first, "first given here"),
                );
            }
            given[index] = Some(arg.span);
        }
        let missing: Vec<&str> = params
            .iter()
            .zip(&given)
            .filter(|((_, has_default), g)| !has_default && g.is_none())
            .map(|((p, _), _)| p.as_str())
            .collect();
        if !missing.is_empty() {
            self.missing(name, span, &missing);
        }
    }

    fn query(&mut self, query: &nnc_grammar::Query, constants: &Scope) {
        let call = query.call.unparenthesized();
        let ExprKind::Call { callee, args } = &call.kind else {
            if !matches!(call.kind, ExprKind::Error) {
                self.error(
                    Diagnostic::new(
                        Code::WrongKind,
                        format!("`{}` needs a function call", query.kind.keyword()),
                        query.call.span,
                        "not a call",
                    )
                    .with_help(format!("write `{} f(2, 5)` for a function `f`", query.kind.keyword())),
                );
            }
            return;
        };
        for arg in args {
            self.expr(&arg.value, constants, Place::Function);
        }
        if let Some(along) = &query.along {
            self.expr(along, constants, Place::Function);
            if query.kind != QueryKind::Jvp {
                self.error(Diagnostic::new(
                    Code::MisplacedStatement,
                    "`along` belongs to `jvp`",
                    along.span,
                    "only a `jvp` has a direction",
                ));
            }
        }
        if let (Some(first), false) = (query.wrt.first(), query.kind == QueryKind::Grad) {
            self.error(Diagnostic::new(
                Code::MisplacedStatement,
                format!("`wrt` belongs to `grad`; `{}` ignores it", query.kind.keyword()),
                first.span,
                "only a `grad` chooses its arguments",
            ));
        }
        let params = match self.globals.get(&callee.name).copied() {
            Some(def) if self.out.definitions[def].kind == DefKind::Fn => {
                self.reference(callee.span, def);
                self.named_args(def, args);
                self.arg_names.extend(query.wrt.iter().map(|name| (name.clone(), def)));
                let params = self.fn_params.get(&def).cloned().unwrap_or_default();
                let with_flags: Vec<(String, bool)> = params.iter().map(|p| (p.clone(), false)).collect();
                self.count_user_args(&callee.name, call.span, &with_flags, args);
                params
            }
            Some(def) => {
                self.reference(callee.span, def);
                let kind = self.out.definitions[def].kind;
                self.error(
                    Diagnostic::new(
                        Code::WrongKind,
                        format!(
                            "`{}` is a {}; `{}` takes a function",
                            callee.name,
                            kind.describe(),
                            query.kind.keyword()
                        ),
                        callee.span,
                        "not a function",
                    )
                    .with_help("define the expression with `fn`"),
                );
                return;
            }
            None => match builtins::lookup(&callee.name) {
                Some(builtin) if builtin.kind == Kind::Function => {
                    let names: Vec<String> = builtin.params.iter().map(|p| p.name.to_string()).collect();
                    self.args(builtin, call.span, builtin.params, args, constants, Place::Function);
                    names
                }
                // An activation's input is its first argument; its settings follow.
                Some(builtin) if builtin.kind == Kind::Activation => {
                    let (input, settings) = split_input(args);
                    if input.is_none() {
                        self.needs_input(&callee.name, call.span, args);
                    }
                    self.args(builtin, call.span, builtin.params, settings, constants, Place::Function);
                    vec!["x".to_string()]
                }
                _ => {
                    self.callee(&callee.name, callee.span, constants, Place::Function);
                    return;
                }
            },
        };
        for name in &query.wrt {
            if !params.contains(&name.name) {
                let suggestion =
                    closest(&name.name, params.iter().map(String::as_str)).map(|s| format!("did you mean `{s}`?"));
                self.error(
                    Diagnostic::new(
                        Code::UnknownName,
                        format!("`{}` has no argument `{}`", callee.name, name.name),
                        name.span,
                        "not an argument of the function",
                    )
                    .with_optional_help(suggestion),
                );
            }
        }
    }

    fn train(&mut self, def: &TrainDef, constants: &Scope) {
        let model = def.model.unparenthesized();
        let (name, span, args): (&str, Span, &[Arg]) = match &model.kind {
            ExprKind::Name(name) => (name, model.span, &[]),
            ExprKind::Call { callee, args } => (&callee.name, callee.span, args),
            ExprKind::Error => ("", model.span, &[]),
            _ => {
                self.error(
                    Diagnostic::new(Code::WrongKind, "`train` needs a model", model.span, "not a model")
                        .with_help("write `train Mlp on ...` or `train Mlp(hidden = 64) on ...`"),
                );
                ("", model.span, &[])
            }
        };
        if !name.is_empty() {
            match self.globals.get(name).copied() {
                Some(index) if matches!(self.out.definitions[index].kind, DefKind::Model | DefKind::Layer) => {
                    self.reference(span, index);
                    self.named_args(index, args);
                    let params = self.model_params.get(&index).cloned().unwrap_or_default();
                    self.user_args(name, model.span, &params, args, constants, Place::Function);
                }
                Some(index) => {
                    self.reference(span, index);
                    let kind = self.out.definitions[index].kind;
                    self.error(
                        Diagnostic::new(
                            Code::WrongKind,
                            format!("`{name}` is a {}; only models can be trained", kind.describe()),
                            span,
                            "not a model",
                        )
                        .with_help("define a `model` and train that"),
                    );
                }
                None => {
                    let suggestion =
                        closest(name, self.models.keys().map(String::as_str)).map(|s| format!("did you mean `{s}`?"));
                    self.error(
                        Diagnostic::new(
                            Code::UnknownName,
                            format!("unknown model `{name}`"),
                            span,
                            "no model of this name",
                        )
                        .with_optional_help(suggestion),
                    );
                }
            }
        }
        self.named_builtin(&def.data, Kind::DataSource, "a data source such as `csv(\"file.csv\")`", constants);

        let mut seen: HashMap<&str, Span> = HashMap::new();
        for setting in &def.settings {
            let key = setting.key.name.as_str();
            let Some(param) = builtins::TRAIN_SETTINGS.iter().find(|p| p.name == key) else {
                let alias = builtins::TRAIN_SETTINGS.iter().find(|p| p.aliases.contains(&key));
                let help = match alias {
                    Some(param) => Some(format!("`{key}` is called `{}` here", param.name)),
                    None => closest(key, builtins::TRAIN_SETTINGS.iter().map(|p| p.name))
                        .map(|s| format!("did you mean `{s}`?")),
                };
                let known =
                    builtins::TRAIN_SETTINGS.iter().map(|p| format!("`{}`", p.name)).collect::<Vec<_>>().join(", ");
                self.error(
                    Diagnostic::new(
                        Code::UnknownSetting,
                        format!("`train` has no setting `{key}`"),
                        setting.key.span,
                        "unknown setting",
                    )
                    .with_optional_help(help)
                    .with_note(format!("the settings are {known}")),
                );
                continue;
            };
            if let Some(&first) = seen.get(key) {
                self.error(
                    Diagnostic::new(
                        Code::DuplicateArgument,
                        format!("`{key}` is set twice"),
                        setting.span,
                        "set again here",
                    )
                    .with_secondary(first, "first set here")
                    .with_help("remove one of them"),
                );
            }
            seen.insert(key, setting.span);
            self.arg_value(param, &setting.value, constants, Place::Function);
        }
        if !seen.contains_key("loss") {
            self.error(
                Diagnostic::new(
                    Code::WrongArgumentCount,
                    "this `train` block has no `loss`",
                    def.keyword_span,
                    "no `loss` setting",
                )
                .with_help("add a line such as `loss = cross_entropy`"),
            );
        }
    }

    /// Reports models that use themselves, directly or through others.
    fn recursive_models(&mut self) {
        let mut reported: Vec<usize> = Vec::new();
        let mut starts: Vec<usize> = self.model_uses.keys().copied().collect();
        starts.sort_unstable();
        for start in starts {
            // Depth-first search with an explicit stack, following uses from `start`.
            let mut stack: Vec<(usize, Vec<Span>)> = vec![(start, Vec::new())];
            let mut visited: Vec<usize> = Vec::new();
            while let Some((model, path)) = stack.pop() {
                let uses = self.model_uses.get(&model).cloned().unwrap_or_default();
                for (used, span) in uses {
                    let mut next = path.clone();
                    next.push(span);
                    if used == start {
                        if !reported.contains(&start) {
                            reported.push(start);
                            let name = self.out.definitions[start].name.clone();
                            let mut diagnostic = Diagnostic::new(
                                Code::RecursiveModel,
                                format!("`{name}` uses itself"),
                                next[0],
                                if next.len() == 1 {
                                    "used inside its own body".to_string()
                                } else {
                                    "this use leads back to it".to_string()
                                },
                            )
                            .with_secondary(self.out.definitions[start].span, "defined here")
                            .with_help(
                                if self.out.definitions[start].kind == DefKind::Fn {
                                    "functions are expanded where they are called, so one cannot call itself"
                                } else {
                                    "a network cannot contain itself; use another model here"
                                },
                            );
                            for &later in &next[1..] {
                                diagnostic = diagnostic.with_secondary(later, "which uses");
                            }
                            self.error(diagnostic);
                        }
                    } else if !visited.contains(&used) {
                        visited.push(used);
                        stack.push((used, next));
                    }
                }
            }
        }
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
