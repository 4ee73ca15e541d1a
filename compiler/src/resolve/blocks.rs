//! Resolution of queries, `train` blocks and the calls between models (recursion).

use super::{DefKind, Place, Resolver, Scope, split_input};
use crate::builtins::{self, Kind};
use nnc_grammar::{Arg, Code, Diagnostic, ExprKind, QueryKind, Span, TrainDef, closest};
use std::collections::HashMap;

impl Resolver {
    pub(super) fn query(&mut self, query: &nnc_grammar::Query, constants: &Scope) {
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

    pub(super) fn train(&mut self, def: &TrainDef, constants: &Scope) {
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
    pub(super) fn recursive_models(&mut self) {
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
