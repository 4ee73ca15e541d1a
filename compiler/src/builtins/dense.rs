//! Layers with learned weights, `linear` and `conv2d`: their settings (with PyTorch's
//! leading input size), shape rules, parameters in `state_dict` order, costs and lowering.

use super::{ArgKind, Builtin, Entry, Form, Kind, Leading, Param, aka, p};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::rules::{
    Applied, Rule, Settings, Site, check_window, explain, mul, per_example, require_rank, shape_of, tiling_warning,
    window_axis,
};
use crate::shapes::{Dim, Origin, Shape, Value};
use nnc_grammar::{Code, Diagnostic};

/// A parameter that may come before the others: `linear(1568, 10)` names the input
/// features as PyTorch's `Linear(in, out)` does, and nnc checks them against the input.
pub const LINEAR_IN_FEATURES: Param = Param {
    name: "in_features",
    kind: ArgKind::Int,
    default: Some("from the input"),
    aliases: &[],
    doc: "input features, checked against the input's last dimension (optional)",
};

/// `conv2d(1, 6, 5)` names the input channels as PyTorch's `Conv2d(in, out, kernel)` does,
/// and nnc checks them against the input.
pub const CONV2D_IN_CHANNELS: Param = Param {
    name: "in_channels",
    kind: ArgKind::Int,
    default: Some("from the input"),
    aliases: &[],
    doc: "input channels, checked against the input's channel axis (optional)",
};

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: Builtin {
            name: "linear",
            kind: Kind::Layer,
            params: &[
                aka("out_features", ArgKind::Int, None, &["out", "units", "features"], "number of output features"),
                p("bias", ArgKind::Bool, Some("true"), "whether to add a learned bias"),
            ],
            doc: "A fully connected layer: `y = x W^T + b`, with `weight: [out_features, in_features]` and \
                  `bias: [out_features]` as in PyTorch. The input features are taken from the input's last dimension.",
            variadic: false,
            leading: Some(Leading { param: &LINEAR_IN_FEATURES, count: 2, example: "linear(784, 10)" }),
        },
        form: Form::Rule(linear),
    },
    Entry {
        builtin: Builtin {
            name: "conv2d",
            kind: Kind::Layer,
            params: &[
                aka(
                    "out_channels",
                    ArgKind::Int,
                    None,
                    &["filters", "channels"],
                    "number of filters, the output channels",
                ),
                aka("kernel", ArgKind::IntOrPair, None, &["kernel_size"], "filter size, `3` or `(3, 5)`"),
                p("stride", ArgKind::IntOrPair, Some("1"), "step between filter positions"),
                aka("pad", ArgKind::IntOrPair, Some("0"), &["padding"], "zeros added on each side"),
                p("bias", ArgKind::Bool, Some("true"), "whether to add a learned bias per output channel"),
            ],
            doc: "A 2-D convolution over `[B, C, H, W]` inputs, with `weight: [out_channels, in_channels, kh, kw]` \
                  and `bias: [out_channels]`. Output size: `floor((N + 2 pad - kernel) / stride) + 1`.",
            variadic: false,
            leading: Some(Leading { param: &CONV2D_IN_CHANNELS, count: 3, example: "conv2d(1, 6, 5)" }),
        },
        form: Form::Rule(conv2d),
    },
];

/// `y = x W^T + b`: `[N, in]` to `[N, out]`.
fn linear(site: &Site<'_>, settings: &Settings, inputs: &[Value]) -> Rule {
    let input = &inputs[0];
    let help = match shape_of(input) {
        Some(shape) if shape.rank() > 2 => {
            let factors: Vec<String> = shape.0[1..].iter().map(Dim::factor_string).collect();
            Some(format!(
                "insert `flatten` before `{}`: it turns {shape} into [{}, {}], with {} = {} features",
                site.label,
                shape.0[0],
                flat_text(shape),
                flat_text(shape),
                factors.join("·")
            ))
        }
        _ => None,
    };
    require_rank(site, input, 2, "[batch, features]", help)?;
    let out = settings.int("out_features").unwrap_or_else(|| Dim::constant(1));
    let Some(shape) = shape_of(input) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    let features = shape.0[1].clone();
    if let Some(declared) = settings.int("in_features")
        && declared != features
    {
        let label = settings.span("in_features").unwrap_or(site.span);
        // `linear(0)` would be an error of its own: with no outputs, the help asks for some.
        let help = if out.is_nonpositive() {
            format!("give only the output features, at least 1 (not {out}); its inputs come from the previous layer")
        } else {
            format!("use `linear({out})`; its inputs come from the previous layer")
        };
        let diagnostic = Diagnostic::new(
            Code::FeatureMismatch,
            format!("`{}` expects {declared} input features, but its input has {features}", site.label),
            label,
            format!("{declared} input features declared here"),
        )
        .with_secondary(site.span, format!("the input is {shape}"))
        .with_help(help);
        return Err(explain(diagnostic, input, &[1]));
    }
    let weights = mul(site, &out, &features, "the weight count")?;
    let bias = settings.bool_or("bias", true);
    let biases = if bias { out.clone() } else { Dim::default() };
    let mut value = Value::new(Shape(vec![shape.0[0].clone(), out.clone()]));
    value.why[0] = input.why[0].clone();
    let mut formulas = vec![format!("weight [{out}, {features}]: {out}·{features} = {weights}")];
    let mut params = vec![("weight", Shape(vec![out.clone(), features.clone()]))];
    if bias {
        formulas.push(format!("bias [{out}]: {out}"));
        params.push(("bias", Shape(vec![out.clone()])));
    }
    let call = Some(Call::Linear(Linear { bias }));
    Ok(Applied { value, mult_adds: weights.clone(), weights, biases, formulas, warnings: vec![], call, params })
}

fn flat_text(shape: &Shape) -> String {
    match shape.0[1..].iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok()) {
        Some(d) => d.to_string(),
        None => "...".to_string(),
    }
}

/// 2-D convolution: `[N, C, H, W]` to `[N, out_c, H', W']`.
fn conv2d(site: &Site<'_>, settings: &Settings, inputs: &[Value]) -> Rule {
    let input = &inputs[0];
    let help = match shape_of(input) {
        Some(shape) if shape.rank() == 2 => Some(format!(
            "the input is flat; reshape it first, for example `reshape(1, H, W)` with H·W = {}",
            shape.0[1]
        )),
        Some(shape) if shape.rank() == 3 => {
            Some("add the channel axis: inputs are [batch, channels, height, width]".to_string())
        }
        _ => None,
    };
    require_rank(site, input, 4, "[batch, channels, height, width]", help)?;
    let Some(shape) = shape_of(input) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    let out_c = settings.int("out_channels").unwrap_or_else(|| Dim::constant(1));
    // PyTorch's `Conv2d(in, out, kernel)`: the first of three numbers is the input channels.
    if let Some(declared) = settings.int("in_channels")
        && declared != shape.0[1]
    {
        let channels = &shape.0[1];
        let kernel = settings.int("kernel").map_or("k".to_string(), |k| k.to_string());
        let diagnostic = Diagnostic::new(
            Code::FeatureMismatch,
            format!("`{}` expects {declared} input channels, but its input has {channels}", site.label),
            settings.span("in_channels").unwrap_or(site.span),
            format!("{declared} input channels, as in PyTorch's `Conv2d(in, out, kernel)`"),
        )
        .with_secondary(site.span, format!("the input is {shape}"))
        .with_note("three numbers are read as PyTorch's `Conv2d(in_channels, out_channels, kernel_size)`")
        .with_help(format!(
            "for {declared} output channels, a kernel of {out_c} and a stride of {kernel}, name the stride: \
             `conv2d({declared}, {out_c}, stride = {kernel})`; in PyTorch's form the input's channels, {channels}, \
             come first: `conv2d({channels}, {out_c}, {kernel})`"
        ));
        return Err(explain(diagnostic, input, &[1]));
    }
    let (kh, kw) = settings.pair("kernel").unwrap_or((Dim::constant(1), Dim::constant(1)));
    let (sh, sw) = settings.pair("stride").unwrap_or((Dim::constant(1), Dim::constant(1)));
    let (ph, pw) = settings.pair("pad").unwrap_or((Dim::default(), Dim::default()));
    check_window(
        site,
        settings,
        &[
            (&kh, "kernel", 1),
            (&kw, "kernel", 1),
            (&sh, "stride", 1),
            (&sw, "stride", 1),
            (&ph, "pad", 0),
            (&pw, "pad", 0),
        ],
    )?;
    let channels = shape.0[1].clone();
    let (ho, fh, drop_h) = window_axis(site, input, 2, &shape.0[2], &kh, &sh, Some(&ph))?;
    let (wo, fw, drop_w) = window_axis(site, input, 3, &shape.0[3], &kw, &sw, Some(&pw))?;
    let help = "choose a stride that divides the input size minus the window, or pad the input";
    let warnings = tiling_warning(site, shape, (drop_h, drop_w), (&fh, &fw), "covered", help).into_iter().collect();
    let kernel_size = mul(site, &kh, &kw, "the kernel size")?;
    let per_filter = mul(site, &channels, &kernel_size, "the weight count")?;
    let weights = mul(site, &out_c, &per_filter, "the weight count")?;
    let bias = settings.bool_or("bias", true);
    let biases = if bias { out_c.clone() } else { Dim::default() };
    let positions = mul(site, &ho, &wo, "the output size")?;
    let mult_adds = mul(site, &weights, &positions, "the mult-adds")?;
    let mut value = Value::new(Shape(vec![shape.0[0].clone(), out_c.clone(), ho, wo]));
    value.why[0] = input.why[0].clone();
    let origin = |text: String| vec![Origin { span: site.span, text }];
    value.why[2] = origin(format!("`{}` gives height {fh}", site.label));
    value.why[3] = origin(format!("`{}` gives width {fw}", site.label));
    let mut formulas = vec![
        format!("height {fh}"),
        format!("width {fw}"),
        format!("weight [{out_c}, {channels}, {kh}, {kw}]: {weights}"),
    ];
    let mut params = vec![("weight", Shape(vec![out_c.clone(), channels.clone(), kh.clone(), kw.clone()]))];
    if bias {
        formulas.push(format!("bias [{out_c}]: {out_c}"));
        params.push(("bias", Shape(vec![out_c.clone()])));
    }
    let call = Some(Call::Conv2d(Conv2d { stride: (sh, sw), pad: (ph, pw), bias }));
    let mult_adds = per_example(mult_adds, site.batch);
    Ok(Applied { value, weights, biases, mult_adds, formulas, warnings, call, params })
}

/// A `linear` layer: `y = x W^T + b`, on `x`, `weight [out, in]` and, with a bias, `bias [out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub bias: bool,
}

impl Linear {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.input(0)?;
        let weight = e.param(0)?;
        let wt = e.op(Op::Transpose, &[weight])?;
        let y = e.op(Op::MatMul, &[x, wt])?;
        if !self.bias {
            return Ok(y);
        }
        let bias = e.param(1)?;
        e.op(Op::Add, &[y, bias])
    }
}

/// A `conv2d` layer on `x [N, C, H, W]`, `weight [O, C, kh, kw]` and, with a bias, `bias [O]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub stride: (Dim, Dim),
    pub pad: (Dim, Dim),
    pub bias: bool,
}

impl Conv2d {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.spatial_input("conv2d")?;
        let (stride, pad) = (e.pair(&self.stride)?, e.pair(&self.pad)?);
        let weight = e.param(0)?;
        let y = e.op(Op::Conv2d { stride, pad }, &[x, weight])?;
        if !self.bias {
            return Ok(y);
        }
        let bias = e.param(1)?;
        // One bias per output channel, added at every position.
        let out = e.shape(bias).0[0].clone();
        let one = Dim::constant(1);
        let column = e.op(Op::Reshape(Shape(vec![out, one.clone(), one])), &[bias])?;
        e.op(Op::Add, &[y, column])
    }
}
