//! `train` blocks: the model checked with the block's arguments, and every setting read
//! into a typed `TrainConfig`, its numbers evaluated, with a diagnostic at the setting for
//! a value the runtime could not use.

use super::TrainCheck;
use super::infer::Engine;
use crate::builtins;
use crate::checked::InstanceKind;
use crate::ir::{Loss, Precision, evaluate};
use crate::optim::Optimizer;
use crate::train::{DataSource, Generator, LabelColumn, TrainConfig};
use nnc_grammar::{Arg, Code, Diagnostic, Expr, ExprKind, Ident, TrainDef};

/// The name and arguments of `name(args)` or `name`.
fn call_parts(expr: &Expr) -> Option<(&str, &[Arg])> {
    match &expr.unparenthesized().kind {
        ExprKind::Name(name) => Some((name, &[])),
        ExprKind::Call { callee, args } => Some((&callee.name, args)),
        _ => None,
    }
}

/// The arguments of a call bound to the built-in's parameters, by name.
struct Bound<'e>(Vec<(&'static str, &'e Expr)>);

impl<'e> Bound<'e> {
    fn of(name: &str, args: &'e [Arg]) -> Bound<'e> {
        match builtins::lookup(name) {
            Some(builtin) => Bound(
                builtins::bind_args(builtin, builtin.params, args).into_iter().map(|(p, e)| (p.name, e)).collect(),
            ),
            None => Bound(Vec::new()),
        }
    }

    fn get(&self, name: &str) -> Option<&'e Expr> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
    }
}

fn text(expr: &Expr) -> Option<String> {
    match &expr.unparenthesized().kind {
        ExprKind::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn boolean(expr: &Expr) -> Option<bool> {
    match &expr.unparenthesized().kind {
        ExprKind::Bool(b) => Some(*b),
        _ => None,
    }
}

impl Engine<'_> {
    /// The model of a `train` block, checked with the block's arguments, and its settings.
    pub(super) fn train(&mut self, def: &TrainDef) {
        let model = def.model.unparenthesized();
        let Some((name, args)) = call_parts(model) else {
            return;
        };
        let Some(&model_def) = self.models.get(name) else {
            return;
        };
        let mut frame = self.frame(1, false);
        let values = self.model_args(model_def, args, &mut frame);
        let mut inner = self.frame(1, false);
        let report = self.model(model_def, &values, None, &mut inner);
        // Without arguments this is the model as written, whose errors are reported there.
        if !args.is_empty() {
            self.report_nested(&inner, name, model.span, &mut frame);
        }
        self.out.diagnostics.append(&mut frame.diagnostics);
        let config = self.train_config(def, name);
        self.out.trains.push(TrainCheck { span: def.span, model: report, config });
    }

    fn wrong(&mut self, expr: &Expr, message: String, label: &str, help: &str) {
        self.out.diagnostics.push(Diagnostic::new(Code::WrongValue, message, expr.span, label).with_help(help));
    }

    /// The value of a number written in a setting, evaluated; `None` after a diagnostic.
    fn number(&mut self, expr: &Expr) -> Option<f64> {
        // Text, truth values and tuples where a number belongs are reported by name
        // resolution, which knows each setting's kind.
        if matches!(
            expr.unparenthesized().kind,
            ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Tuple(_) | ExprKind::Array(_) | ExprKind::Error
        ) {
            return None;
        }
        let mut frame = self.frame(0, false);
        let value = self.expr(expr, &mut frame);
        let failed = frame.diagnostics.iter().any(Diagnostic::is_error);
        self.out.diagnostics.append(&mut frame.diagnostics);
        if failed {
            return None;
        }
        let name = Ident { name: "setting".to_string(), span: expr.span };
        let id = self.finish(&mut frame, &name, InstanceKind::Constant, Vec::new(), value.node, false);
        match evaluate(&self.out.checked, id, None, Precision::F64) {
            Ok(tensor) if tensor.data.len() == 1 && tensor.data[0].is_finite() => Some(tensor.data[0]),
            Ok(tensor) => {
                let shown =
                    if tensor.data.len() == 1 { tensor.data[0].to_string() } else { format!("{:?}", tensor.shape) };
                self.wrong(expr, format!("this setting is {shown}, not a number"), "not a number", "write a number");
                None
            }
            // Names resolution reports what has no value.
            Err(_) => None,
        }
    }

    /// A whole number at least `least`.
    fn whole(&mut self, expr: &Expr, what: &str, least: f64) -> Option<usize> {
        let value = self.number(expr)?;
        // A fraction written out is reported by name resolution, which knows it is a count.
        if value.fract() != 0.0 && matches!(expr.unparenthesized().kind, ExprKind::Float(_)) {
            return None;
        }
        if value.fract() != 0.0 || value < least || value > u32::MAX as f64 {
            self.wrong(
                expr,
                format!("`{what}` is {value}, but it must be a whole number of at least {least}"),
                "not a count",
                &format!("write a whole number, such as `{what} = {}`", least.max(1.0)),
            );
            return None;
        }
        Some(value as usize)
    }

    fn setting<'d>(def: &'d TrainDef, key: &str) -> Option<&'d Expr> {
        def.settings.iter().find(|s| s.key.name == key).map(|s| &s.value)
    }

    fn train_config(&mut self, def: &TrainDef, model: &str) -> Option<TrainConfig> {
        let errors_before = self.out.diagnostics.iter().filter(|d| d.is_error()).count();
        // A missing or unknown loss is reported by name resolution.
        let loss = Self::setting(def, "loss").and_then(call_parts).and_then(|(name, _)| Loss::from_name(name));
        let optimizer = self.optimizer(Self::setting(def, "optimizer"));
        let data = self.data_source(&def.data);
        let test = Self::setting(def, "test").map(|e| self.data_source(e));
        let real = |engine: &mut Self, key: &str, default: f64| match Self::setting(def, key) {
            Some(expr) => engine.number(expr),
            None => Some(default),
        };
        let split = real(self, "split", 0.8);
        if let (Some(split), Some(expr)) = (split, Self::setting(def, "split"))
            && !(split > 0.0 && split <= 1.0)
        {
            self.wrong(
                expr,
                format!("`split` is {split}, but it is the fraction of the data to train on"),
                "not in (0, 1]",
                "write a fraction such as `split = 0.8`, or give a `test` set",
            );
        }
        let count = |engine: &mut Self, key: &str, default: usize, least: f64| match Self::setting(def, key) {
            Some(expr) => engine.whole(expr, key, least),
            None => Some(default),
        };
        let batch = count(self, "batch", 32, 1.0);
        let epochs = count(self, "epochs", 10, 0.0);
        let seed = count(self, "seed", 0, 0.0);
        let path = |key: &str| Self::setting(def, key).and_then(text);
        let errors = self.out.diagnostics.iter().filter(|d| d.is_error()).count();
        if errors > errors_before {
            return None;
        }
        Some(TrainConfig {
            span: def.span,
            model: model.to_string(),
            data: data?,
            test: match test {
                Some(test) => Some(test?),
                None => None,
            },
            loss: loss?,
            optimizer: optimizer?,
            split: split?,
            batch: batch?,
            epochs: epochs?,
            seed: seed? as u64,
            save: path("save"),
            out: path("out"),
            init: path("init"),
        })
    }

    /// `sgd(...)` or `adam(...)`, PyTorch's defaults for what is not given.
    fn optimizer(&mut self, expr: Option<&Expr>) -> Option<Optimizer> {
        let (name, args) = match expr {
            Some(expr) => call_parts(expr)?,
            None => ("sgd", &[][..]),
        };
        let bound = Bound::of(name, args);
        let get = |engine: &mut Self, key: &str, default: f64| match bound.get(key) {
            Some(expr) => engine.number(expr),
            None => Some(default),
        };
        let optimizer = match name {
            "sgd" => Optimizer::Sgd {
                lr: get(self, "lr", 0.01)?,
                momentum: get(self, "momentum", 0.0)?,
                dampening: get(self, "dampening", 0.0)?,
                nesterov: bound.get("nesterov").and_then(boolean).unwrap_or(false),
                weight_decay: get(self, "weight_decay", 0.0)?,
            },
            "adam" => Optimizer::Adam {
                lr: get(self, "lr", 0.001)?,
                beta1: get(self, "beta1", 0.9)?,
                beta2: get(self, "beta2", 0.999)?,
                eps: get(self, "eps", 1e-8)?,
                weight_decay: get(self, "weight_decay", 0.0)?,
            },
            // Name resolution reports what is not an optimiser.
            _ => return None,
        };
        if let (Err(message), Some(expr)) = (optimizer.check(), expr) {
            self.wrong(expr, message, "refused settings", "give `momentum` a value above 0 and no `dampening`");
            return None;
        }
        Some(optimizer)
    }

    /// A data source such as `csv("digits.csv")` or `xor(samples = 100)`.
    fn data_source(&mut self, expr: &Expr) -> Option<DataSource> {
        let (name, args) = call_parts(expr)?;
        let bound = Bound::of(name, args);
        let real = |engine: &mut Self, key: &str, default: f64| match bound.get(key) {
            Some(expr) => engine.number(expr),
            None => Some(default),
        };
        let path = |key: &str| bound.get(key).and_then(text);
        match name {
            "csv" => {
                let label = match bound.get("label").map(|e| &e.unparenthesized().kind) {
                    None => LabelColumn::Last,
                    Some(ExprKind::Name(word)) if word == "first" => LabelColumn::First,
                    Some(ExprKind::Name(_)) => LabelColumn::Last,
                    Some(_) => LabelColumn::Index(self.whole(bound.get("label")?, "label", 0.0)?),
                };
                let scale = real(self, "scale", 1.0)?;
                Some(DataSource::Csv {
                    path: path("path")?,
                    label,
                    scale,
                    header: bound.get("header").and_then(boolean),
                })
            }
            "idx" => {
                let scale = real(self, "scale", 1.0 / 255.0)?;
                Some(DataSource::Idx { images: path("images")?, labels: path("labels")?, scale })
            }
            "npy" => {
                let scale = real(self, "scale", 1.0)?;
                Some(DataSource::Npy { inputs: path("inputs")?, labels: path("labels")?, scale })
            }
            other => {
                let kind = Generator::from_name(other)?;
                let default_classes = if kind == Generator::Blobs { 3 } else { 2 };
                let count = |engine: &mut Self, key: &str, default: usize, least: f64| match bound.get(key) {
                    Some(expr) => engine.whole(expr, key, least),
                    None => Some(default),
                };
                let samples = count(self, "samples", 400, 1.0)?;
                let classes = count(self, "classes", default_classes, 1.0)?;
                let seed = count(self, "seed", 0, 0.0)? as u64;
                let noise = real(self, "noise", 0.1)?;
                Some(DataSource::Generated { kind, samples, noise, classes, seed })
            }
        }
    }
}
