//! Pooling layers, `maxpool` and `avgpool`: their settings, shape rule (the window
//! arithmetic shared with convolutions) and lowering.

use super::{ArgKind, Entry, Form, Kind, aka, builtin, p};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::rules::{
    Applied, Rule, Settings, Site, check_window, require_rank, shape_of, tiling_warning, window_axis,
};
use crate::shapes::{Dim, Origin, Shape, Value};

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "maxpool",
            Kind::Activation,
            &[
                aka("kernel", ArgKind::IntOrPair, None, &["kernel_size"], "window size"),
                p("stride", ArgKind::IntOrPair, Some("kernel"), "step between windows"),
            ],
            "Max pooling over `[B, C, H, W]`: the largest value of each window.",
        ),
        form: Form::Rule(|site, settings, inputs| pool(site, settings, inputs, true)),
    },
    Entry {
        builtin: builtin(
            "avgpool",
            Kind::Activation,
            &[
                aka("kernel", ArgKind::IntOrPair, None, &["kernel_size"], "window size"),
                p("stride", ArgKind::IntOrPair, Some("kernel"), "step between windows"),
            ],
            "Average pooling over `[B, C, H, W]`: the mean of each window.",
        ),
        form: Form::Rule(|site, settings, inputs| pool(site, settings, inputs, false)),
    },
];

/// Max or average pooling: `[N, C, H, W]` to `[N, C, H', W']`, stride defaulting to the window.
fn pool(site: &Site<'_>, settings: &Settings, inputs: &[Value], max: bool) -> Rule {
    let input = &inputs[0];
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
    let call = Some(Call::Pool(Pool { max, kernel, stride }));
    let formulas = vec![format!("height {fh}"), format!("width {fw}")];
    Ok(Applied { value, formulas, warnings, call, ..Applied::default() })
}

/// Max or average pooling with its window and stride.
#[derive(Clone, Debug)]
pub struct Pool {
    pub max: bool,
    pub kernel: (Dim, Dim),
    pub stride: (Dim, Dim),
}

impl Pool {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.spatial_input(if self.max { "maxpool" } else { "avgpool" })?;
        let (kernel, stride) = (e.pair(&self.kernel)?, e.pair(&self.stride)?);
        let op = if self.max { Op::MaxPool2d { kernel, stride } } else { Op::AvgPool2d { kernel, stride } };
        e.op(op, &[x])
    }
}
