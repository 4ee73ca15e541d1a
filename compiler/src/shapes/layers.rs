//! The shape rule, parameter count and mult-adds of every built-in layer and function,
//! one function per op, with the explanation of each result.

use super::Shape;
use super::dim::{Dim, Window, WindowError, window};
use super::infer::{Origin, Value};
use crate::checked::Call;
use nnc_grammar::{Code, Diagnostic, Span};

/// A setting of a layer call, evaluated.
#[derive(Clone, Debug)]
pub(super) enum Setting {
    Int(Dim),
    Pair(Dim, Dim),
    Real(f64),
    Bool(bool),
    /// One of a parameter's listed words.
    Word(String),
}

/// The evaluated settings of one call, by parameter name, plus the numbers of a variadic
/// call (`reshape(1, 8, 8)`).
#[derive(Clone, Debug, Default)]
pub(super) struct Settings {
    pub named: Vec<(&'static str, Setting, Span)>,
    pub numbers: Vec<(Dim, Span)>,
    /// Sizes whose value could not be computed.
    pub uncomputable: Vec<Span>,
}

impl Settings {
    fn get(&self, name: &str) -> Option<&Setting> {
        self.named.iter().find(|(n, _, _)| *n == name).map(|(_, s, _)| s)
    }

    fn span(&self, name: &str) -> Option<Span> {
        self.named.iter().find(|(n, _, _)| *n == name).map(|(_, _, s)| *s)
    }

    pub fn int(&self, name: &str) -> Option<Dim> {
        match self.get(name)? {
            Setting::Int(d) => Some(d.clone()),
            _ => None,
        }
    }

    fn pair(&self, name: &str) -> Option<(Dim, Dim)> {
        match self.get(name)? {
            Setting::Int(d) => Some((d.clone(), d.clone())),
            Setting::Pair(a, b) => Some((a.clone(), b.clone())),
            _ => None,
        }
    }

    fn bool_or(&self, name: &str, default: bool) -> bool {
        match self.get(name) {
            Some(Setting::Bool(b)) => *b,
            _ => default,
        }
    }

    pub fn word(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Setting::Word(word) => Some(word),
            _ => None,
        }
    }

    pub fn real(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Setting::Real(r) => Some(*r),
            Setting::Int(d) => d.as_const().map(|v| v as f64),
            _ => None,
        }
    }
}

/// What applying a layer gives: the output, its parameters and cost, and how they were
/// computed.
#[derive(Clone, Debug, Default)]
pub(super) struct Applied {
    pub value: Value,
    pub weights: Dim,
    pub biases: Dim,
    pub mult_adds: Dim,
    pub formulas: Vec<String>,
    pub warnings: Vec<Diagnostic>,
    /// The built-in call this is, with its settings, when the input's shape is known.
    pub call: Option<Call>,
    /// The shapes of the parameters it creates, in `state_dict` order (`weight`, `bias`).
    pub params: Vec<(&'static str, Shape)>,
}

impl Applied {
    fn same(input: &Value) -> Applied {
        Applied { value: input.clone(), ..Applied::default() }
    }

    /// The input unchanged in shape, computed by `call`.
    pub fn same_by(input: &Value, call: Call) -> Applied {
        Applied { value: input.clone(), call: input.shape.is_some().then_some(call), ..Applied::default() }
    }
}

type Rule = Result<Applied, Diagnostic>;

/// The context of one application: where it is and what it is called in the source.
pub(super) struct Site<'a> {
    pub span: Span,
    /// The call as written, such as `linear(10)`.
    pub label: &'a str,
    /// The batch symbol, so that mult-adds are per example.
    pub batch: Option<&'a str>,
}

fn overflow(site: &Site<'_>, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TooLarge,
        format!("`{}` is too large: {what} does not fit in 64 bits", site.label),
        site.span,
        "too large",
    )
    .with_help("use smaller sizes")
}

fn mul(site: &Site<'_>, a: &Dim, b: &Dim, what: &str) -> Result<Dim, Diagnostic> {
    a.checked_mul(b).map_err(|_| overflow(site, what))
}

fn per_example(dim: Dim, batch: Option<&str>) -> Dim {
    match batch {
        Some(b) => dim.substitute(&|name| (name == b).then(|| Dim::constant(1))).unwrap_or(dim),
        None => dim,
    }
}

/// Adds the explanations of the input's dimensions to a diagnostic, as labels.
pub(super) fn explain(mut diagnostic: Diagnostic, input: &Value, axes: &[usize]) -> Diagnostic {
    let mut shown: Vec<Span> = Vec::new();
    for &axis in axes {
        for origin in input.why.get(axis).map(Vec::as_slice).unwrap_or(&[]) {
            if shown.len() < 4 && !shown.contains(&origin.span) && origin.span != diagnostic.primary.span {
                shown.push(origin.span);
                diagnostic = diagnostic.with_secondary(origin.span, origin.text.clone());
            }
        }
    }
    diagnostic
}

fn shape_of(input: &Value) -> Option<&Shape> {
    input.shape.as_ref()
}

/// Requires `rank` dimensions, reporting the layer's expected layout otherwise.
fn require_rank(
    site: &Site<'_>,
    input: &Value,
    rank: usize,
    layout: &str,
    help: Option<String>,
) -> Result<(), Diagnostic> {
    let Some(shape) = shape_of(input) else {
        return Ok(());
    };
    if shape.rank() == rank {
        return Ok(());
    }
    let diagnostic = Diagnostic::new(
        Code::LayerInputShape,
        format!("`{}` needs a {rank}-dimensional input {layout}, but gets {shape}", site.label),
        site.span,
        format!("the input here is {shape}"),
    )
    .with_optional_help(help);
    Err(diagnostic)
}

/// `y = x W^T + b`: `[N, in]` to `[N, out]`.
pub(super) fn linear(site: &Site<'_>, settings: &Settings, input: &Value) -> Rule {
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
    let call = Some(Call::Linear { bias });
    Ok(Applied { value, mult_adds: weights.clone(), weights, biases, formulas, warnings: vec![], call, params })
}

fn flat_text(shape: &Shape) -> String {
    match shape.0[1..].iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok()) {
        Some(d) => d.to_string(),
        None => "...".to_string(),
    }
}

/// One spatial axis of a convolution or pooling window: `floor((n + 2p - k) / s) + 1`.
/// `pad` is `None` for pooling, which takes no padding, so that its help never offers one.
#[allow(clippy::too_many_arguments)]
fn window_axis(
    site: &Site<'_>,
    input: &Value,
    axis: usize,
    n: &Dim,
    kernel: &Dim,
    stride: &Dim,
    pad: Option<&Dim>,
) -> Result<(Dim, String, i128), Diagnostic> {
    let pads = pad.is_some();
    let zero = Dim::default();
    let pad = pad.unwrap_or(&zero);
    let Window { out, span } = match window(n, kernel, stride, pad) {
        Ok(window) => window,
        Err(WindowError::Overflow) => return Err(overflow(site, "the output size")),
        Err(WindowError::Stride) => {
            return Err(Diagnostic::new(
                Code::EmptyDimension,
                format!("`{}` has stride {stride}", site.label),
                site.span,
                "the stride must be positive",
            ));
        }
    };
    let pad_text = if pad.as_const() == Some(0) { String::new() } else { format!(" + 2·{}", pad.factor_string()) };
    // The lecture's formula, (N - F + 2 pad) / stride + 1, with the floor shown when the
    // division is not exact.
    let exact = span.as_const().zip(stride.as_const()).is_some_and(|(a, b)| b != 0 && a % b == 0);
    let formula = if exact {
        format!("({}{pad_text} - {}) / {} + 1 = {}", n.factor_string(), kernel.factor_string(), stride, out)
    } else {
        format!("floor(({}{pad_text} - {}) / {}) + 1 = {}", n.factor_string(), kernel.factor_string(), stride, out)
    };
    if out.is_nonpositive() {
        let diagnostic = Diagnostic::new(
            Code::EmptyDimension,
            format!(
                "`{}` leaves no output: the window {kernel} is larger than the input {n}{}",
                site.label,
                if pad_text.is_empty() { String::new() } else { format!(" padded by {pad} on each side") }
            ),
            site.span,
            format!("output size {formula}"),
        )
        .with_help(no_output_help(n, kernel, pads));
        return Err(explain(diagnostic, input, &[axis]));
    }
    // A stride that does not tile the input drops the last rows or columns.
    let dropped = match (span.as_const(), stride.as_const()) {
        (Some(span_value), Some(stride_value)) if stride_value > 1 && span_value >= 0 => span_value % stride_value,
        _ => 0,
    };
    Ok((out, formula, dropped))
}

/// How to give a window that is larger than its input an output. A convolution can pad
/// its input: the help names the padding that keeps an odd kernel's output the input's
/// size, or the least that makes the padded input as large as the kernel if that is more.
/// Pooling takes no padding, so its help names the largest kernel that fits instead.
fn no_output_help(n: &Dim, kernel: &Dim, pads: bool) -> String {
    match (pads, n.as_const(), kernel.as_const()) {
        (true, Some(n), Some(k)) => {
            let pad = ((k - n + 1) / 2).max((k - 1) / 2);
            format!("use a smaller kernel, or pad the input (`pad = {pad}`)")
        }
        (true, ..) => "use a smaller kernel, or pad the input".to_string(),
        (false, Some(n), _) => format!("use a kernel of at most {n}, or remove this layer; pooling takes no padding"),
        (false, None, _) => "use a smaller kernel; pooling takes no padding".to_string(),
    }
}

/// The warning for windows that do not tile the input: how many rows and columns of each
/// input are never read.
fn tiling_warning(
    site: &Site<'_>,
    input: &Shape,
    dropped: (i128, i128),
    formulas: (&str, &str),
    action: &str,
    help: &str,
) -> Option<Diagnostic> {
    let plural = |n: i128, one: &str, many: &str| {
        if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
    };
    let what = match dropped {
        (0, 0) => return None,
        (rows, 0) => plural(rows, "row", "rows"),
        (0, columns) => plural(columns, "column", "columns"),
        (rows, columns) => format!("{} and {}", plural(rows, "row", "rows"), plural(columns, "column", "columns")),
    };
    let verb = if matches!(dropped, (1, 0) | (0, 1)) { "is" } else { "are" };
    let (h, w) = (&input.0[input.rank() - 2], &input.0[input.rank() - 1]);
    Some(
        Diagnostic::new(
            Code::StrideDropsInput,
            format!("`{}` does not tile its {h}x{w} input: the last {what} {verb} never {action}", site.label),
            site.span,
            format!("drops the last {what}"),
        )
        .with_note(format!("height {}; width {}", formulas.0, formulas.1))
        .with_help(help),
    )
}

/// Reports a kernel or stride below 1, or a padding below 0.
fn check_window(site: &Site<'_>, settings: &Settings, sizes: &[(&Dim, &str, i128)]) -> Result<(), Diagnostic> {
    for &(value, name, least) in sizes {
        if value.as_const().is_some_and(|v| v < least) {
            return Err(Diagnostic::new(
                Code::EmptyDimension,
                format!("`{}` has {name} {value}, but it must be at least {least}", site.label),
                settings.span(name).unwrap_or(site.span),
                format!("{name} below {least}"),
            ));
        }
    }
    Ok(())
}

/// 2-D convolution: `[N, C, H, W]` to `[N, out_c, H', W']`.
pub(super) fn conv2d(site: &Site<'_>, settings: &Settings, input: &Value) -> Rule {
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
    let call = Some(Call::Conv2d { stride: (sh, sw), pad: (ph, pw), bias });
    let mult_adds = per_example(mult_adds, site.batch);
    Ok(Applied { value, weights, biases, mult_adds, formulas, warnings, call, params })
}

/// Max or average pooling: `[N, C, H, W]` to `[N, C, H', W']`, stride defaulting to the window.
pub(super) fn pool(site: &Site<'_>, settings: &Settings, input: &Value, max: bool) -> Rule {
    require_rank(site, input, 4, "[batch, channels, height, width]", None)?;
    let Some(shape) = shape_of(input) else {
        return Ok(Applied::same(input));
    };
    let (kh, kw) = settings.pair("kernel").unwrap_or((Dim::constant(2), Dim::constant(2)));
    let (sh, sw) = settings.pair("stride").unwrap_or((kh.clone(), kw.clone()));
    check_window(site, settings, &[(&kh, "kernel", 1), (&kw, "kernel", 1), (&sh, "stride", 1), (&sw, "stride", 1)])?;
    let (ho, fh, drop_h) = window_axis(site, input, 2, &shape.0[2], &kh, &sh, None)?;
    let (wo, fw, drop_w) = window_axis(site, input, 3, &shape.0[3], &kw, &sw, None)?;
    // Pooling takes no padding: only the kernel and the stride can make the windows tile.
    let help = "choose a stride that divides the input size minus the kernel (with the default stride, a kernel \
                that divides the input size); pooling takes no padding";
    let warnings = tiling_warning(site, shape, (drop_h, drop_w), (&fh, &fw), "pooled", help).into_iter().collect();
    let mut value = Value::new(Shape(vec![shape.0[0].clone(), shape.0[1].clone(), ho.clone(), wo.clone()]));
    value.why[0] = input.why[0].clone();
    value.why[1] = input.why[1].clone();
    let describe = |n: &Dim, out: &Dim, formula: &str| {
        if kh == sh && n.as_const().zip(out.as_const()).is_some_and(|(a, b)| kh.as_const().is_some_and(|k| b * k == a))
        {
            if kh.as_const() == Some(2) {
                format!("`{}` halves {n} to {out}", site.label)
            } else {
                format!("`{}` divides {n} by {kh} to {out}", site.label)
            }
        } else {
            format!("`{}` gives {formula}", site.label)
        }
    };
    value.why[2] = vec![Origin { span: site.span, text: describe(&shape.0[2], &ho, &fh) }];
    value.why[3] = vec![Origin { span: site.span, text: describe(&shape.0[3], &wo, &fw) }];
    let (kernel, stride) = ((kh.clone(), kw.clone()), (sh.clone(), sw.clone()));
    let call = Some(if max { Call::MaxPool { kernel, stride } } else { Call::AvgPool { kernel, stride } });
    let formulas = vec![format!("height {fh}"), format!("width {fw}")];
    Ok(Applied { value, formulas, warnings, call, ..Applied::default() })
}

/// `[N, a, b, ...]` to `[N, a·b·...]`.
pub(super) fn flatten(site: &Site<'_>, input: &Value) -> Rule {
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
    Ok(Applied { value, formulas: vec![formula], call: Some(Call::Reshape), ..Applied::default() })
}

/// `reshape(1, 8, 8)`: every dimension after the batch; one may be `-1`.
pub(super) fn reshape(site: &Site<'_>, settings: &Settings, input: &Value) -> Rule {
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
    Ok(Applied { value, formulas, call: Some(Call::Reshape), ..Applied::default() })
}

/// Softmax and log-softmax: same shape; the axis (the last by default) must exist.
pub(super) fn along_axis(site: &Site<'_>, settings: &Settings, input: &Value, log: bool) -> Rule {
    let Some(shape) = shape_of(input) else {
        return Ok(Applied::same(input));
    };
    let axis = match settings.int("axis") {
        Some(axis) => axis.as_const().ok_or_else(|| {
            Diagnostic::new(
                Code::AxisOutOfRange,
                format!("`{}` needs a whole number for its axis, not {axis}", site.label),
                settings.span("axis").unwrap_or(site.span),
                "not a number",
            )
        })?,
        None => -1,
    };
    let axis = normalise_axis(site, shape, axis, settings.span("axis").unwrap_or(site.span))?;
    Ok(Applied::same_by(input, if log { Call::LogSoftmax { axis } } else { Call::Softmax { axis } }))
}

/// The axis as an index, with negative axes counted from the end.
pub(super) fn normalise_axis(site: &Site<'_>, shape: &Shape, axis: i128, span: Span) -> Result<usize, Diagnostic> {
    let rank = shape.rank() as i128;
    let index = if axis < 0 { axis + rank } else { axis };
    if index < 0 || index >= rank {
        return Err(Diagnostic::new(
            Code::AxisOutOfRange,
            format!("`{}` uses axis {axis}, but its input {shape} has {rank} axes", site.label),
            span,
            format!("axes are 0..{} (or -{rank}..-1)", (rank - 1).max(0)),
        ));
    }
    Ok(index as usize)
}

/// Dropout: same shape; `p` must be a probability below 1.
pub(super) fn dropout(site: &Site<'_>, settings: &Settings, input: &Value) -> Rule {
    if let Some(p) = settings.real("p")
        && !(0.0..1.0).contains(&p)
    {
        return Err(Diagnostic::new(
            Code::WrongValue,
            format!("`{}` drops with probability {p}, which is not in [0, 1)", site.label),
            settings.span("p").unwrap_or(site.span),
            "must be at least 0 and below 1",
        )
        .with_help("`dropout(0.5)` zeroes half of the values while training"));
    }
    let p = settings.real("p").unwrap_or(0.5);
    Ok(Applied::same_by(input, Call::Dropout { p, mask: String::new() }))
}
