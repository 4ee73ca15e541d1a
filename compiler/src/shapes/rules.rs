//! What the shape rules of the built-ins share: their evaluated settings, what a rule
//! gives (output, parameters, cost, the typed call), and the checks and explanations of
//! windows, ranks, axes and broadcasting. Each built-in's own rule is in its family's file
//! under `builtins/`.

use super::Shape;
use super::dim::{Dim, Window, WindowError, window};
use super::infer::Value;
use crate::checked::Call;
use nnc_grammar::{Code, Diagnostic, Span};

/// A setting of a layer call, evaluated.
#[derive(Clone, Debug)]
pub(crate) enum Setting {
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
pub(crate) struct Settings {
    pub named: Vec<(&'static str, Setting, Span)>,
    pub numbers: Vec<(Dim, Span)>,
    /// Sizes whose value could not be computed.
    pub uncomputable: Vec<Span>,
}

impl Settings {
    pub(crate) fn get(&self, name: &str) -> Option<&Setting> {
        self.named.iter().find(|(n, _, _)| *n == name).map(|(_, s, _)| s)
    }

    pub(crate) fn span(&self, name: &str) -> Option<Span> {
        self.named.iter().find(|(n, _, _)| *n == name).map(|(_, _, s)| *s)
    }

    pub fn int(&self, name: &str) -> Option<Dim> {
        match self.get(name)? {
            Setting::Int(d) => Some(d.clone()),
            _ => None,
        }
    }

    pub(crate) fn pair(&self, name: &str) -> Option<(Dim, Dim)> {
        match self.get(name)? {
            Setting::Int(d) => Some((d.clone(), d.clone())),
            Setting::Pair(a, b) => Some((a.clone(), b.clone())),
            _ => None,
        }
    }

    pub(crate) fn bool_or(&self, name: &str, default: bool) -> bool {
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

    /// The `axis` setting, as written, with its place.
    pub(crate) fn axis(&self) -> Option<(i128, Span)> {
        self.named.iter().find(|(n, _, _)| *n == "axis").and_then(|(_, s, span)| match s {
            Setting::Int(d) => d.as_const().map(|v| (v, *span)),
            _ => None,
        })
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
pub(crate) struct Applied {
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
    /// Nothing known: the input's shape could not be computed, and the check said why.
    pub(crate) fn unknown() -> Applied {
        Applied { value: Value::unknown(), ..Applied::default() }
    }

    pub(crate) fn same(input: &Value) -> Applied {
        Applied { value: input.clone(), ..Applied::default() }
    }

    /// The input unchanged in shape, computed by `call`.
    pub fn same_by(input: &Value, call: Call) -> Applied {
        Applied { value: input.clone(), call: input.shape.is_some().then_some(call), ..Applied::default() }
    }
}

/// What a shape rule gives: the application, or the error at its place.
pub(crate) type Rule = Result<Applied, Diagnostic>;

/// A built-in's shape rule: from its operands (a layer's input first) and its evaluated
/// settings to its output, the parameters it creates, its cost and the typed call.
pub(crate) type ShapeRule = fn(&Site<'_>, &Settings, &[Value]) -> Rule;

/// The context of one application: where it is and what it is called in the source.
pub(crate) struct Site<'a> {
    pub span: Span,
    /// The call as written, such as `linear(10)`.
    pub label: &'a str,
    /// The batch symbol, so that mult-adds are per example.
    pub batch: Option<&'a str>,
}

pub(crate) fn overflow(site: &Site<'_>, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TooLarge,
        format!("`{}` is too large: {what} does not fit in 64 bits", site.label),
        site.span,
        "too large",
    )
    .with_help("use smaller sizes")
}

pub(crate) fn mul(site: &Site<'_>, a: &Dim, b: &Dim, what: &str) -> Result<Dim, Diagnostic> {
    a.checked_mul(b).map_err(|_| overflow(site, what))
}

pub(crate) fn per_example(dim: Dim, batch: Option<&str>) -> Dim {
    match batch {
        Some(b) => dim.substitute(&|name| (name == b).then(|| Dim::constant(1))).unwrap_or(dim),
        None => dim,
    }
}

/// Adds the explanations of the input's dimensions to a diagnostic, as labels.
pub(crate) fn explain(mut diagnostic: Diagnostic, input: &Value, axes: &[usize]) -> Diagnostic {
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

pub(crate) fn shape_of(input: &Value) -> Option<&Shape> {
    input.shape.as_ref()
}

/// Requires `rank` dimensions, reporting the layer's expected layout otherwise.
pub(crate) fn require_rank(
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

/// One spatial axis of a convolution or pooling window: `floor((n + 2p - k) / s) + 1`.
/// `pad` is `None` for pooling, which takes no padding, so that its help never offers one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn window_axis(
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
pub(crate) fn tiling_warning(
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
pub(crate) fn check_window(
    site: &Site<'_>,
    settings: &Settings,
    sizes: &[(&Dim, &str, i128)],
) -> Result<(), Diagnostic> {
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

/// The axis as an index, with negative axes counted from the end.
pub(crate) fn normalise_axis(site: &Site<'_>, shape: &Shape, axis: i128, span: Span) -> Result<usize, Diagnostic> {
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

/// NumPy broadcasting: align from the right; equal dimensions or 1 broadcast.
pub(crate) fn broadcast(
    site: &Site<'_>,
    a: &Value,
    b: &Value,
    op: &str,
    a_span: Span,
    b_span: Span,
) -> Result<Applied, Diagnostic> {
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    let rank = sa.rank().max(sb.rank());
    let mut dims = Vec::with_capacity(rank);
    let mut why = Vec::with_capacity(rank);
    let one = Dim::constant(1);
    for i in 0..rank {
        let da = (i + sa.rank()).checked_sub(rank).map(|j| (&sa.0[j], &a.why[j]));
        let db = (i + sb.rank()).checked_sub(rank).map(|j| (&sb.0[j], &b.why[j]));
        let (dim, reasons) = match (da, db) {
            (Some((x, wx)), Some((y, wy))) if x == y => {
                (x.clone(), if wx.is_empty() { wy.clone() } else { wx.clone() })
            }
            (Some((x, _)), Some((y, wy))) if *x == one => (y.clone(), wy.clone()),
            (Some((x, wx)), Some((y, _))) if *y == one => (x.clone(), wx.clone()),
            (Some((x, _)), None) | (None, Some((x, _))) => {
                let w = da.or(db).map(|(_, w)| w.clone()).unwrap_or_default();
                (x.clone(), w)
            }
            (Some((x, _)), Some((y, _))) => {
                let diagnostic = Diagnostic::new(
                    Code::BroadcastMismatch,
                    format!("`{op}` cannot combine shapes {sa} and {sb}"),
                    site.span,
                    format!("axis {i} from the left is {x} on one side and {y} on the other"),
                )
                .with_secondary(a_span, format!("this is {sa}"))
                .with_secondary(b_span, format!("this is {sb}"))
                .with_note("shapes combine from the right; each pair of dimensions must be equal or one of them 1");
                return Err(explain(explain(diagnostic, a, &[i + sa.rank() - rank]), b, &[i + sb.rank() - rank]));
            }
            (None, None) => unreachable!("i < rank"),
        };
        dims.push(dim);
        why.push(reasons);
    }
    Ok(Applied { value: Value { shape: Some(Shape(dims)), why, ..Value::default() }, ..Applied::default() })
}
