//! Reshaping layers, `flatten` and `reshape`: their shape rules and lowering, a reshape to
//! the shape the check computed.

use super::{Builtin, Entry, Form, Kind, builtin};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::rules::{Applied, Rule, Settings, Site, explain, mul, shape_of};
use crate::shapes::{Dim, Origin, Shape, Value};
use nnc_grammar::{Code, Diagnostic};

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "flatten",
            Kind::Activation,
            &[],
            "Flattens every dimension after the batch into one: `[B, 8, 14, 14]` becomes `[B, 1568]`.",
        ),
        form: Form::Rule(flatten),
    },
    Entry {
        builtin: Builtin {
            name: "reshape",
            kind: Kind::Activation,
            params: &[],
            doc: "Reshapes every dimension after the batch: `reshape(1, 8, 8)` turns `[B, 64]` into `[B, 1, 8, 8]`. \
                  One dimension may be `-1`, inferred from the others.",
            variadic: true,
            leading: None,
        },
        form: Form::Rule(reshape),
    },
];

/// `[N, a, b, ...]` to `[N, a·b·...]`.
fn flatten(site: &Site<'_>, _: &Settings, inputs: &[Value]) -> Rule {
    let input = &inputs[0];
    let Some(shape) = shape_of(input) else {
        return Ok(Applied::same(input));
    };
    if shape.rank() < 2 {
        return Err(Diagnostic::new(
            Code::LayerInputShape,
            format!("`flatten` needs a batch and at least one more dimension, but gets {shape}"),
            site.span,
            "nothing to flatten",
        ));
    }
    let mut product = Dim::constant(1);
    for dim in &shape.0[1..] {
        product = mul(site, &product, dim, "the flattened size")?;
    }
    let factors: Vec<String> = shape.0[1..].iter().map(Dim::factor_string).collect();
    let formula = format!("{product} = {}", factors.join("·"));
    let mut value = Value::new(Shape(vec![shape.0[0].clone(), product.clone()]));
    value.why[0] = input.why[0].clone();
    let mut why = vec![Origin { span: site.span, text: format!("`flatten` gives {formula}") }];
    for axis_why in &input.why[1..] {
        for origin in axis_why {
            if !why.iter().any(|o| o.span == origin.span) {
                why.push(origin.clone());
            }
        }
    }
    value.why[1] = why;
    Ok(Applied { value, formulas: vec![formula], call: Some(Call::Reshape(Reshape)), ..Applied::default() })
}

/// `reshape(1, 8, 8)`: every dimension after the batch; one may be `-1`.
fn reshape(site: &Site<'_>, settings: &Settings, inputs: &[Value]) -> Rule {
    let input = &inputs[0];
    let Some(shape) = shape_of(input) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    if settings.numbers.is_empty() {
        return Err(Diagnostic::new(
            Code::ReshapeMismatch,
            format!("`{}` needs the dimensions to reshape to, such as `reshape(1, 8, 8)`", site.label),
            site.span,
            "no dimensions",
        ));
    }
    if shape.rank() == 0 {
        return Err(Diagnostic::new(
            Code::LayerInputShape,
            "`reshape` needs a batch dimension, but gets a scalar",
            site.span,
            "no batch",
        ));
    }
    let mut total = Dim::constant(1);
    for dim in &shape.0[1..] {
        total = mul(site, &total, dim, "the element count")?;
    }
    let inferred: Vec<usize> =
        settings.numbers.iter().enumerate().filter(|(_, (d, _))| d.as_const() == Some(-1)).map(|(i, _)| i).collect();
    if inferred.len() > 1 {
        return Err(Diagnostic::new(
            Code::ReshapeMismatch,
            "`reshape` can infer one dimension, but two are `-1`",
            settings.numbers[inferred[1]].1,
            "second `-1`",
        ));
    }
    let mut known = Dim::constant(1);
    for (i, (dim, span)) in settings.numbers.iter().enumerate() {
        if inferred.contains(&i) {
            continue;
        }
        if dim.is_nonpositive() {
            return Err(Diagnostic::new(
                Code::EmptyDimension,
                format!("`reshape` dimension {dim} is not positive"),
                *span,
                "must be at least 1",
            ));
        }
        known = mul(site, &known, dim, "the element count")?;
    }
    let mut dims: Vec<Dim> = settings.numbers.iter().map(|(d, _)| d.clone()).collect();
    let requested: Vec<String> = dims.iter().map(Dim::factor_string).collect();
    if let Some(&at) = inferred.first() {
        match total.floor_div(&known) {
            Some(q) if q.checked_mul(&known).ok().as_ref() == Some(&total) => dims[at] = q,
            _ => {
                return Err(explain(
                    Diagnostic::new(
                        Code::ReshapeMismatch,
                        format!("`{}` cannot infer its `-1`: {total} elements do not divide into {known}", site.label),
                        site.span,
                        format!("the input {shape} has {total} elements per example"),
                    ),
                    input,
                    &(1..shape.rank()).collect::<Vec<_>>(),
                ));
            }
        }
    } else if known != total {
        let diagnostic = Diagnostic::new(
            Code::ReshapeMismatch,
            format!(
                "`{}` makes {known} = {} elements per example, but its input {shape} has {total}",
                site.label,
                requested.join("·")
            ),
            site.span,
            format!("{known} elements, not {total}"),
        )
        .with_help(
            "the dimensions after the batch must multiply to the same count; one of them may be `-1`".to_string(),
        );
        return Err(explain(diagnostic, input, &(1..shape.rank()).collect::<Vec<_>>()));
    }
    let mut all = vec![shape.0[0].clone()];
    all.extend(dims);
    let mut value = Value::new(Shape(all));
    value.why[0] = input.why[0].clone();
    let formulas = vec![format!("{total} elements per example")];
    Ok(Applied { value, formulas, call: Some(Call::Reshape(Reshape)), ..Applied::default() })
}

/// A reshape to the shape of the node that holds it (flattening is one).
#[derive(Clone, Debug)]
pub struct Reshape;

impl Reshape {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.input(0)?;
        let shape = e.output_shape()?;
        e.op(Op::Reshape(shape), &[x])
    }
}
