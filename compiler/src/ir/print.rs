//! The IR's text form: values named as the lecture names them, scalar constants written
//! where they are used, one instruction a line.
//!
//! ```text
//! fn f(x1: f32, x2: f32) -> f32 {            // examples/lecture.nn:4
//!   v1 = ln x1
//!   v2 = mul x1, x2
//!   ret v5
//! }
//! ```

use super::{Function, Op, Type, Value};
use std::fmt::Write;

fn type_text(ty: &Type) -> String {
    if ty.shape.rank() == 0 { "f32".to_string() } else { format!("f32{}", ty.shape) }
}

/// A number as the IR prints it: `2`, `0.5`, `-1`.
pub(crate) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value}") }
}

/// The operand text of `value`: a scalar constant's number, or the value's name.
fn operand(f: &Function, value: Value) -> String {
    if let Some(Op::Const(c)) = f.def(value).map(|inst| &inst.op) { number(*c) } else { f.name_of(value).to_string() }
}

/// Keyed pairs as the attributes of windowed ops write them: `[stride=1x1, pad=0x0]`.
pub(crate) fn pairs(pairs: &[(&str, (usize, usize))]) -> String {
    let keyed: Vec<String> = pairs.iter().map(|(key, (a, b))| format!("{key}={a}x{b}")).collect();
    format!("[{}]", keyed.join(", "))
}

/// The axis of a reduction, which writes nothing when it reduces over all of them.
pub(crate) fn optional_axis(axis: Option<usize>) -> String {
    match axis {
        Some(axis) => format!("[axis={axis}]"),
        None => String::new(),
    }
}

/// The function as text. `location` (such as `examples/lecture.nn:4`) goes in a comment on
/// the first line.
pub fn print_function(f: &Function, location: Option<&str>) -> String {
    let params: Vec<String> = f.params.iter().map(|p| format!("{}: {}", p.name, type_text(f.ty(p.value)))).collect();
    let results: Vec<String> = f
        .results
        .iter()
        .enumerate()
        .map(|(i, &r)| match f.result_names.get(i) {
            Some(name) => format!("{name}: {}", type_text(f.ty(r))),
            None => type_text(f.ty(r)),
        })
        .collect();
    let returns = if results.len() == 1 { results[0].clone() } else { format!("({})", results.join(", ")) };
    let header = format!("fn {}({}) -> {returns} {{", f.name, params.join(", "));
    let mut out = match location {
        Some(location) => format!("{header:<44} // {location}\n"),
        None => format!("{header}\n"),
    };
    for inst in &f.body {
        if matches!(inst.op, Op::Const(_)) {
            continue;
        }
        let args: Vec<String> = inst.args.iter().map(|&a| operand(f, a)).collect();
        let sep = if args.is_empty() { "" } else { " " };
        let _ = writeln!(
            out,
            "  {} = {}{}{sep}{}",
            f.name_of(inst.result),
            inst.op.name(),
            inst.op.attributes(),
            args.join(", ")
        );
    }
    let rets: Vec<String> = f.results.iter().map(|&r| operand(f, r)).collect();
    let _ = writeln!(out, "  ret {}", rets.join(", "));
    out.push_str("}\n");
    out
}
