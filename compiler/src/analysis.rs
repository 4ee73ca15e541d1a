//! One call from source to everything the front end knows about it: the tree, the names,
//! the shapes, and every diagnostic, sorted. No I/O: the caller reads the file.

use crate::checked::{Checked, CheckedModel, InstanceId};
use crate::ir::{Loss, LowerError, Precision, Tensor, evaluate};
use crate::resolve::{Resolution, resolve};
use crate::shapes::{Dim, Instantiated, Override, Shape, ShapeAnalysis, analyze_shapes, analyze_with};
use crate::train::CheckedTrain;
use nnc_grammar::{Diagnostic, Expr, File, Span, decode, parse, sort_diagnostics};
use std::collections::HashMap;

/// What the front end found in one source text.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The text that was analysed; invalid UTF-8 bytes are replaced by spaces.
    pub text: String,
    pub file: File,
    pub resolution: Resolution,
    /// Shapes, parameter counts and costs of every model, function and query.
    pub shapes: ShapeAnalysis,
    /// Every diagnostic, syntax and names, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Checks one more thing against the file: the file's own diagnostics are not repeated.
    fn instantiate(&self, over: Override<'_>) -> (Checked, Instantiated) {
        let mut shapes = analyze_with(&self.file, &self.text, Some(over));
        let instantiated = shapes.overridden.take().expect("asked for");
        (shapes.checked, instantiated)
    }

    /// The model `name`, checked with these values for its arguments and input sizes (none:
    /// as written). `Err` holds what checking it reported; it is empty when the file has no
    /// such model.
    pub fn model(&self, name: &str, args: &HashMap<String, Dim>) -> Result<CheckedModel, Vec<Diagnostic>> {
        if args.is_empty() {
            let report = self.shapes.model(name).ok_or_else(Vec::new)?;
            if report.failed || report.instance.is_some_and(|id| self.shapes.checked.get(id).failed) {
                let errors = self.diagnostics.iter().filter(|d| d.is_error()).cloned().collect();
                return Err(errors);
            }
            return Ok(CheckedModel { checked: self.shapes.checked.clone(), report: report.clone() });
        }
        let (checked, instantiated) = self.instantiate(Override::Model { name, args });
        let failed = instantiated.instance.is_none_or(|id| checked.get(id).failed);
        match instantiated.report {
            Some(report) if !failed => Ok(CheckedModel { checked, report }),
            _ => Err(instantiated.diagnostics.into_iter().filter(Diagnostic::is_error).collect()),
        }
    }

    /// The loss of the `train` block of model `model`, if it has one whose settings checked.
    pub fn loss_of(&self, model: &str) -> Option<Loss> {
        let train = self.shapes.trains.iter().find(|train| train.model.name == model)?;
        train.config.as_ref().map(|config| config.loss)
    }

    /// The model of the `train` block at `span`, checked with the block's arguments.
    pub fn train_model(&self, span: Span) -> Option<CheckedModel> {
        let train = self.shapes.trains.iter().find(|t| t.span == span)?;
        Some(CheckedModel { checked: self.shapes.checked.clone(), report: train.model.clone() })
    }

    /// The `train` blocks of the file, in order, each with its model and settings; `Err`
    /// for a block whose settings the check refused (its diagnostics say why).
    pub fn trains(&self) -> Vec<Result<CheckedTrain, Span>> {
        self.shapes
            .trains
            .iter()
            .map(|train| match &train.config {
                Some(config) => Ok(CheckedTrain {
                    config: config.clone(),
                    model: CheckedModel { checked: self.shapes.checked.clone(), report: train.model.clone() },
                }),
                None => Err(train.span),
            })
            .collect()
    }

    /// The function `name`, checked for arguments of these shapes: the checked program and
    /// its instance. `Err` holds what checking it reported; it is empty when the file has no
    /// such function.
    pub fn function(&self, name: &str, shapes: &[Shape]) -> Result<(Checked, InstanceId), Vec<Diagnostic>> {
        let (checked, instantiated) = self.instantiate(Override::Function { name, shapes });
        match instantiated.instance {
            Some(id) if !checked.get(id).failed => Ok((checked, id)),
            // Without an instance, what the walk reported is why; nothing, if there is no
            // such function.
            _ => Err(instantiated.diagnostics.into_iter().filter(Diagnostic::is_error).collect()),
        }
    }

    /// The value of an expression over the file's constants and functions, such as a
    /// setting of a `train` block.
    pub fn evaluate(&self, expr: &Expr) -> Result<Tensor, LowerError> {
        let (checked, instantiated) = self.instantiate(Override::Value(expr));
        let failed = |message: String| LowerError { message, span: expr.span };
        if let Some(error) = instantiated.diagnostics.iter().find(|d| d.is_error()) {
            return Err(failed(error.message.clone()));
        }
        let id = instantiated.instance.ok_or_else(|| failed("this has no value".to_string()))?;
        evaluate(&checked, id, None, Precision::F64)
    }
}

/// The first of the errors that stop model `model` (what [`Analysis::model`] reported), in
/// words.
pub fn first_error(model: &str, errors: &[Diagnostic]) -> String {
    match errors.first() {
        Some(error) => format!("`{model}` does not check: {}", error.message),
        None => format!("the file has no model `{model}`"),
    }
}

/// Analyses a source text.
pub fn analyze(text: &str) -> Analysis {
    analyze_decoded(text.to_string(), Vec::new())
}

/// Analyses the bytes of a file, reporting bytes that are not UTF-8.
pub fn analyze_bytes(bytes: &[u8]) -> Analysis {
    let (text, diagnostics) = decode(bytes);
    analyze_decoded(text, diagnostics)
}

fn analyze_decoded(text: String, mut diagnostics: Vec<Diagnostic>) -> Analysis {
    let parsed = parse(&text);
    diagnostics.extend(parsed.diagnostics);
    let resolution = resolve(&parsed.file);
    diagnostics.extend(resolution.diagnostics.iter().cloned());
    let shapes = analyze_shapes(&parsed.file, &text);
    diagnostics.extend(shapes.diagnostics.iter().cloned());
    sort_diagnostics(&mut diagnostics);
    Analysis { text, file: parsed.file, resolution, shapes, diagnostics }
}
