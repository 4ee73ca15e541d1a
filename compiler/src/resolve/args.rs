//! Resolution of arguments: each argument of a built-in or user call against the parameter
//! it binds to, and the kind of value that parameter takes.

use super::{Place, Resolver, Scope, kind_phrase};
use crate::builtins::{self, ArgKind, BindProblem, Builtin, Kind, Param};
use nnc_grammar::{Arg, Code, Diagnostic, Expr, ExprKind, Ident, Span, closest};

impl Resolver {
    /// Checks the arguments of a call of a built-in against `params` (its parameters, or
    /// those after its input), as the check binds them.
    pub(super) fn args(
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

    pub(super) fn too_many(&mut self, name: &str, count: usize, span: Span, args: &[Arg]) {
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

    pub(super) fn missing(&mut self, name: &str, span: Span, missing: &[&str]) {
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

    pub(super) fn unknown_argument(&mut self, name: &str, arg: &Ident, params: &[Param]) {
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
    pub(super) fn arg_value(&mut self, param: &Param, value: &Expr, scope: &Scope, place: Place) {
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
    pub(super) fn named_builtin(&mut self, value: &Expr, kind: Kind, what: &str, scope: &Scope) {
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

    pub(super) fn initializer(&mut self, init: &Expr, scope: &Scope) {
        self.named_builtin(init, Kind::Initializer, "an initialiser such as `zeros` or `normal(0, 0.01)`", scope);
    }

    /// Checks the arguments of a call of a user model or layer against its arguments.
    pub(super) fn user_args(
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
    pub(super) fn count_user_args(&mut self, name: &str, span: Span, params: &[(String, bool)], args: &[Arg]) {
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
}
