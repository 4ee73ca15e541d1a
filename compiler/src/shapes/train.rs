//! `train` blocks: the model checked with the block's arguments, and every setting read
//! into a typed `TrainConfig`, its numbers evaluated, with a diagnostic at the setting for
//! a value the runtime could not use.

use super::TrainCheck;
use super::infer::Engine;
use crate::builtins::{self, Builtin, Form, Param};
use crate::checked::InstanceKind;
use crate::ir::{Loss, Precision, evaluate};
use crate::optim::Optimizer;
use crate::train::{DataSource, TrainConfig};
use nnc_grammar::{Arg, Code, Diagnostic, Expr, ExprKind, Ident, TrainDef};

/// Text written as a setting.
fn text(expr: &Expr) -> Option<String> {
    match &expr.unparenthesized().kind {
        ExprKind::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// How the numbers of settings are evaluated.
pub(super) trait Evaluate {
    fn number(&mut self, expr: &Expr) -> Option<f64>;
    /// A whole number at least `least`, for the setting `what`.
    fn whole(&mut self, expr: &Expr, what: &str, least: f64) -> Option<usize>;
}

/// Evaluation without diagnostics, for initialisers, whose errors name resolution reports.
pub(super) struct Quiet<'f>(pub &'f dyn Fn(&Expr) -> Option<f64>);

impl Evaluate for Quiet<'_> {
    fn number(&mut self, expr: &Expr) -> Option<f64> {
        (self.0)(expr)
    }

    fn whole(&mut self, expr: &Expr, _: &str, _: f64) -> Option<usize> {
        (self.0)(expr).filter(|v| v.fract() == 0.0 && *v >= 0.0).map(|v| v as usize)
    }
}

/// Evaluation in a `train` block, with a diagnostic at a value that cannot be used.
struct Reporting<'e, 'a>(&'e mut Engine<'a>);

impl Evaluate for Reporting<'_, '_> {
    fn number(&mut self, expr: &Expr) -> Option<f64> {
        self.0.number(expr)
    }

    fn whole(&mut self, expr: &Expr, what: &str, least: f64) -> Option<usize> {
        self.0.whole(expr, what, least)
    }
}

/// The settings of a call bound to its built-in's parameters, read as the entry's builder
/// asks: the value written, or else the parameter's default.
pub(super) struct Reader<'e, E> {
    builtin: &'static Builtin,
    bound: Vec<(&'static Param, &'e Expr)>,
    evaluate: E,
}

impl<'e, E: Evaluate> Reader<'e, E> {
    pub(super) fn new(builtin: &'static Builtin, args: &'e [Arg], evaluate: E) -> Reader<'e, E> {
        Reader { builtin, bound: builtins::bind_args(builtin, builtin.params, args), evaluate }
    }

    fn given(&self, name: &str) -> Option<&'e Expr> {
        self.bound.iter().find(|(p, _)| p.name == name).map(|(_, e)| *e)
    }

    fn default(&self, name: &str) -> Option<&'static Param> {
        self.builtin.params.iter().find(|p| p.name == name)
    }
}

impl<E: Evaluate> builtins::Read for Reader<'_, E> {
    fn real(&mut self, name: &str) -> Option<f64> {
        match self.given(name) {
            Some(expr) => self.evaluate.number(expr),
            None => self.default(name).and_then(builtins::default_number),
        }
    }

    fn whole(&mut self, name: &str, least: f64) -> Option<usize> {
        match self.given(name) {
            Some(expr) => self.evaluate.whole(expr, name, least),
            None => self.default(name).and_then(builtins::default_number).map(|v| v as usize),
        }
    }

    fn text(&mut self, name: &str) -> Option<String> {
        match self.given(name).map(|e| &e.unparenthesized().kind) {
            Some(ExprKind::Str(text)) => Some(text.clone()),
            // Text of another kind is reported by name resolution.
            Some(_) => None,
            None => self.default(name).and_then(|p| p.default).map(str::to_string),
        }
    }

    fn flag(&mut self, name: &str) -> Option<bool> {
        match self.given(name).map(|e| &e.unparenthesized().kind) {
            Some(ExprKind::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn word(&mut self, name: &str) -> Option<String> {
        match self.given(name).map(|e| &e.unparenthesized().kind) {
            Some(ExprKind::Name(word)) => Some(word.clone()),
            Some(_) => None,
            None => self.default(name).and_then(|p| p.default).map(str::to_string),
        }
    }
}

impl Engine<'_> {
    /// The model of a `train` block, checked with the block's arguments, and its settings.
    pub(super) fn train(&mut self, def: &TrainDef) {
        let model = def.model.unparenthesized();
        let Some((name, args)) = model.call_parts() else {
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
        let loss = Self::setting(def, "loss").and_then(Expr::call_parts).and_then(|(name, _)| Loss::from_name(name));
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
            Some(expr) => expr.call_parts()?,
            None => ("sgd", &[][..]),
        };
        let entry = builtins::entry(name)?;
        // Name resolution reports what is not an optimiser.
        let Form::Optimizer(build) = entry.form else {
            return None;
        };
        let optimizer = build(&mut Reader::new(&entry.builtin, args, Reporting(self)))?;
        if let (Err(message), Some(expr)) = (optimizer.check(), expr) {
            self.wrong(expr, message, "refused settings", "give `momentum` a value above 0 and no `dampening`");
            return None;
        }
        Some(optimizer)
    }

    /// A data source such as `csv("digits.csv")` or `xor(samples = 100)`.
    fn data_source(&mut self, expr: &Expr) -> Option<DataSource> {
        let (name, args) = expr.call_parts()?;
        let entry = builtins::entry(name)?;
        // Name resolution reports what is not a data source.
        let Form::DataSource(build) = entry.form else {
            return None;
        };
        build(&mut Reader::new(&entry.builtin, args, Reporting(self)))
    }
}
