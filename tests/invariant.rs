//! "What `nnc check` accepts, runs", on generated programs: stacks of every built-in layer
//! with varied settings, functions with constants, model arguments used as sizes and as
//! numbers, layers with symbolic sizes used at several sizes, nested models, graph-style
//! bodies with broadcasting, reductions of every kind, queries and `train` blocks. Each
//! program the check accepts goes through the whole chain (`common::chain`); one it
//! rejects must say why at a place. `NNC_INVARIANT_CASES` sets how many (500 by default).

mod common;

use common::chain::{Rng, run_chain};
use nnc_codegen::JitExecutor;
use std::fmt::Write;

/// Choices drawn from the chain's generator.
impl Rng {
    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.next() < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.range(0, items.len() - 1)]
    }
}

/// Every activation of the built-ins table, with its default settings, so that a new one is
/// in the generated programs without a change here.
fn activations() -> Vec<&'static str> {
    nnc_compiler::builtins::activations::ACTIVATIONS.iter().map(|entry| entry.builtin.name).collect()
}
/// Functions of numbers. Activations take tensors (`sigmoid(0.4)` is refused), so a
/// function of numbers applies them only to its arguments (`e0`).
const UNARY: &[&str] = &["exp", "sin", "cos", "abs"];
const REDUCTIONS: &[&str] = &["sum", "mean", "max", "min"];

/// One generated file, with the names of what it defines for later items to use.
struct Program {
    text: String,
    /// Constants of rank 1: name and length.
    vectors: Vec<(String, usize)>,
    /// Functions of one tensor that keep its shape and take any length (elementwise).
    elementwise: Vec<String>,
    /// Layers of symbolic feature size `[B, F]` to `[B, F]`.
    dense_layers: Vec<String>,
    /// Layers of symbolic size `[B, C, H, W]` to the same.
    image_layers: Vec<String>,
    /// Models of `[B, n]` to `[B, m]` usable as layers: name, arguments, n, m.
    models: Vec<(String, String, usize, usize)>,
}

fn scalar_expr(rng: &mut Rng, vars: &[&str], depth: usize) -> String {
    if depth == 0 || rng.chance(0.3) {
        return match rng.range(0, 2) {
            0 => format!("{}", rng.range(1, 5)),
            1 => format!("{}.{}", rng.range(0, 2), rng.range(1, 9)),
            _ => rng.pick(vars).to_string(),
        };
    }
    match rng.range(0, 3) {
        0 => format!("{}({})", rng.pick(UNARY), scalar_expr(rng, vars, depth - 1)),
        1 => {
            let op = rng.pick(&["+", "-", "*"]);
            format!("({} {op} {})", scalar_expr(rng, vars, depth - 1), scalar_expr(rng, vars, depth - 1))
        }
        2 => format!("ln(1 + abs({}))", scalar_expr(rng, vars, depth - 1)),
        _ => format!("{} / (2 + abs({}))", scalar_expr(rng, vars, depth - 1), scalar_expr(rng, vars, depth - 1)),
    }
}

fn numbers(rng: &mut Rng, n: usize) -> String {
    let items: Vec<String> = (0..n).map(|_| format!("{}.{}", rng.range(0, 2), rng.range(0, 9))).collect();
    format!("[{}]", items.join(", "))
}

impl Program {
    fn new() -> Program {
        Program {
            text: String::new(),
            vectors: Vec::new(),
            elementwise: Vec::new(),
            dense_layers: Vec::new(),
            image_layers: Vec::new(),
            models: Vec::new(),
        }
    }

    fn constants(&mut self, rng: &mut Rng) {
        for i in 0..rng.range(0, 2) {
            let n = rng.range(2, 4);
            writeln!(self.text, "let v{i} = {}", numbers(rng, n)).unwrap();
            self.vectors.push((format!("v{i}"), n));
        }
        if rng.chance(0.5) {
            writeln!(self.text, "let k = {} * 0.5", rng.range(1, 4)).unwrap();
        }
    }

    fn functions(&mut self, rng: &mut Rng) {
        // Of numbers, with queries.
        for i in 0..rng.range(1, 2) {
            let body = scalar_expr(rng, &["a", "b"], 3);
            writeln!(self.text, "fn s{i}(a, b) = {body}").unwrap();
            let (a, b) = (rng.range(1, 3), rng.range(1, 3));
            let query = rng.pick(&["eval", "grad", "hessian", "jacobian"]);
            writeln!(self.text, "{query} s{i}({a}, {b})").unwrap();
            if rng.chance(0.3) {
                writeln!(self.text, "jvp s{i}(b = {b}, a = {a}) along [1, 0]").unwrap();
            }
        }
        // Elementwise, usable as layers; with a constant when one is defined.
        let scale = match self.text.contains("let k =") {
            true => " * k",
            false => "",
        };
        let act = rng.pick(&["exp", "sin", "cos", "abs", "tanh", "sigmoid", "relu"]);
        writeln!(self.text, "fn e0(x) = {act}(x){scale} + 0.5").unwrap();
        self.elementwise.push("e0".to_string());
        // Of declared shapes, with a reduction.
        let (m, n) = (rng.range(2, 4), rng.range(2, 4));
        let reduction = rng.pick(REDUCTIONS);
        let axis = match rng.range(0, 4) {
            0 => String::new(),
            1 => ", axis = 0".to_string(),
            2 => ", axis = -1".to_string(),
            3 => ", axis = 1, keepdim = true".to_string(),
            _ => ", keepdim = true".to_string(),
        };
        writeln!(self.text, "fn r0(x: [{m}, {n}], w: [{n}]) = sum({reduction}(e0(x) * w{axis}))").unwrap();
        let rows: Vec<String> = (0..m).map(|_| numbers(rng, n)).collect();
        writeln!(self.text, "grad r0([{}], {})", rows.join(", "), numbers(rng, n)).unwrap();
        if let Some((name, len)) = self.vectors.first().cloned() {
            writeln!(self.text, "fn c0(x: [{len}]) = sum(x * {name}) + max(x, {name}) @ {name}").unwrap();
            writeln!(self.text, "grad c0({})", numbers(rng, len)).unwrap();
        }
    }

    fn layers(&mut self, rng: &mut Rng) {
        if rng.chance(0.7) {
            let act = rng.pick(&activations());
            let body = match rng.range(0, 2) {
                0 => format!("    input [B, F]\n    linear(F)\n    {act}\n"),
                1 => format!("    input x: [B, F]\n    let h = x |> linear(F) |> {act}\n    x + linear(h, F)\n"),
                _ => format!("    input [B, F]\n    linear(F, F)\n    dropout(0.{})\n", rng.range(1, 5)),
            };
            writeln!(self.text, "layer D0 {{\n{body}}}").unwrap();
            self.dense_layers.push("D0".to_string());
        }
        if rng.chance(0.6) {
            let act = rng.pick(&activations());
            let kernel = rng.pick(&["3, pad = 1", "(3, 1), pad = (1, 0)", "1"]);
            writeln!(self.text, "layer I0 {{\n    input [B, C, H, W]\n    conv2d(C, kernel = {kernel})\n    {act}\n}}")
                .unwrap();
            self.image_layers.push("I0".to_string());
        }
    }

    /// A stack of dense layers from `n` features; returns the lines and the features out.
    /// `in_known`: whether the input features are the same for every use of the model, so
    /// that `linear(in, out)` may name them.
    fn dense_stack(&mut self, rng: &mut Rng, mut n: usize, lines: usize, sizes: &[(&str, usize)]) -> (String, usize) {
        let in_known = sizes.is_empty();
        let mut body = String::new();
        for _ in 0..lines {
            let line = match rng.range(0, 10) {
                0..=2 => {
                    let (text, out) = match sizes.get(rng.range(0, sizes.len())) {
                        Some(&(name, value)) if rng.chance(0.5) => (name.to_string(), value),
                        _ => {
                            let out = rng.range(1, 6);
                            (out.to_string(), out)
                        }
                    };
                    let line = match rng.range(0, 2) {
                        1 if in_known => format!("linear({n}, {text})"),
                        0 | 1 => format!("linear({text})"),
                        _ => format!("linear(out_features = {text}, bias = {})", rng.chance(0.5)),
                    };
                    n = out;
                    line
                }
                3 => rng.pick(&activations()).to_string(),
                4 => format!("dropout({})", rng.pick(&["0.1", "0.5", "p = 0"])),
                5 => rng.pick(&["softmax", "log_softmax", "softmax(axis = 1)", "log_softmax(-1)"]).to_string(),
                6 if !self.dense_layers.is_empty() => self.dense_layers[0].clone(),
                7 if !self.elementwise.is_empty() => self.elementwise[0].clone(),
                8 => match self.models.iter().find(|m| m.2 == n).cloned() {
                    Some((name, args, _, out)) => {
                        n = out;
                        format!("{name}{args}")
                    }
                    None => "relu".to_string(),
                },
                _ => match self.vectors.iter().find(|v| v.1 == n) {
                    // A constant of the right length multiplies as a layer would not: by
                    // a function, which broadcasts it.
                    Some(_) if !self.elementwise.is_empty() => self.elementwise[0].clone(),
                    _ => "tanh".to_string(),
                },
            };
            writeln!(body, "    {line}").unwrap();
        }
        (body, n)
    }

    fn dense_model(&mut self, rng: &mut Rng, index: usize) {
        let n = rng.range(1, 5);
        let with_args = rng.chance(0.5);
        let hidden = rng.range(2, 6);
        let header = if with_args { format!("(hidden = {hidden})") } else { String::new() };
        let sizes: Vec<(&str, usize)> =
            if with_args { vec![("hidden", hidden), ("2 * hidden", 2 * hidden)] } else { vec![] };
        let lines = rng.range(1, 5);
        let (body, out) = self.dense_stack(rng, n, lines, &sizes);
        writeln!(self.text, "model M{index}{header} {{\n    input [B, {n}]\n{body}}}").unwrap();
        let args = if with_args && rng.chance(0.5) { format!("(hidden = {})", rng.range(2, 5)) } else { String::new() };
        if args.is_empty() || !body.contains("hidden") {
            self.models.push((format!("M{index}"), String::new(), n, out));
        }
        if rng.chance(0.3) {
            let loss = if out >= 2 { "cross_entropy" } else { "mse" };
            let source = if n == 2 { "xor(samples = 20)" } else { "blobs(samples = 20)" };
            if n == 2 {
                writeln!(self.text, "train M{index}{args} on {source} {{\n    loss = {loss}\n    epochs = 1\n}}")
                    .unwrap();
            }
        }
    }

    fn image_model(&mut self, rng: &mut Rng, index: usize) {
        let (c, side) = (rng.range(1, 3), rng.range(4, 9));
        let mut body = String::new();
        let (mut c_now, mut h, mut w) = (c, side, side);
        if rng.chance(0.5) {
            writeln!(self.text, "model M{index} {{\n    input [B, {}]", c * side * side).unwrap();
            writeln!(body, "    reshape({c}, {side}, -1)").unwrap();
        } else {
            writeln!(self.text, "model M{index} {{\n    input [B, {c}, {side}, {side}]").unwrap();
        }
        for _ in 0..rng.range(1, 5) {
            let line = match rng.range(0, 6) {
                0 | 1 => {
                    let (out, k, s, p) = (rng.range(1, 4), rng.range(1, 3), rng.range(1, 2), rng.range(0, 1));
                    let line = match rng.range(0, 1) {
                        0 => format!("conv2d({out}, kernel = {k}, stride = {s}, pad = {p})"),
                        _ => format!("conv2d(out_channels = {out}, kernel = ({k}, {k}), pad = {p}, bias = false)"),
                    };
                    c_now = out;
                    h = (h + 2 * p).saturating_sub(k) / s + 1;
                    w = (w + 2 * p).saturating_sub(k) / s + 1;
                    line
                }
                2 if h >= 2 && w >= 2 => {
                    let pool = rng.pick(&["maxpool", "avgpool"]);
                    h /= 2;
                    w /= 2;
                    format!("{pool}(2)")
                }
                3 if !self.image_layers.is_empty() => self.image_layers[0].clone(),
                4 => rng.pick(&activations()).to_string(),
                _ => "relu".to_string(),
            };
            writeln!(body, "    {line}").unwrap();
        }
        let out = rng.range(2, 4);
        let _ = (c_now, h, w);
        write!(self.text, "{body}    flatten\n    linear({out})\n}}\n").unwrap();
    }

    fn graph_model(&mut self, rng: &mut Rng, index: usize) {
        let n = rng.range(2, 4);
        let m = rng.range(2, 4);
        let act = rng.pick(&activations());
        let mut text = format!("model M{index}(k = {}) {{\n    input x: [B, {n}]\n", rng.range(2, 5));
        writeln!(text, "    param w: [{m}, {n}] = normal(0, 0.1)").unwrap();
        writeln!(text, "    param b: [{m}] = zeros").unwrap();
        writeln!(text, "    let h = {act}(x @ w^T + b) / k").unwrap();
        let r = rng.pick(REDUCTIONS);
        let extra = match rng.range(0, 3) {
            0 => format!("h * {r}(h, axis = 1) @ [[1], [1], [1]][0:0]"),
            _ => String::new(),
        };
        let _ = extra;
        let last = match rng.range(0, 2) {
            0 => format!("    h + linear(h, {m})\n"),
            1 => format!("    let g = h |> linear({m}) |> {act}\n    g - h * 0.5\n"),
            _ => format!("    linear(x, {m}) + h\n"),
        };
        text.push_str(&last);
        text.push_str("}\n");
        self.text.push_str(&text);
        self.models.push((format!("M{index}"), String::new(), n, m));
    }
}

fn generate(seed: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut program = Program::new();
    program.constants(&mut rng);
    program.functions(&mut rng);
    program.layers(&mut rng);
    for index in 0..rng.range(1, 4) {
        match rng.range(0, 3) {
            0 | 1 => program.dense_model(&mut rng, index),
            2 => program.image_model(&mut rng, index),
            _ => program.graph_model(&mut rng, index),
        }
    }
    if rng.chance(0.5) {
        let index = 9;
        program.graph_model(&mut rng, index);
        let (_, _, n, out) = program.models.last().cloned().unwrap();
        let (body, _) = program.dense_stack(&mut rng, out, 2, &[]);
        writeln!(program.text, "model N{index} {{\n    input [B, {n}]\n    M{index}\n{body}}}").unwrap();
    }
    program.text
}

#[test]
fn what_check_accepts_runs_on_generated_programs() {
    let cases: u64 = std::env::var("NNC_INVARIANT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let jit = JitExecutor::new();
    let (mut accepted, mut rejected) = (0, 0);
    let mut failures = Vec::new();
    for seed in 0..cases {
        let text = generate(seed);
        match run_chain(&text, &jit) {
            Ok(Some(_)) => accepted += 1,
            Ok(None) => {
                // A rejection names its place.
                let analysis = nnc_compiler::analyze(&text);
                if let Some(d) = analysis.diagnostics.iter().find(|d| d.is_error() && d.span().is_empty()) {
                    failures.push(format!("seed {seed}: {} has no place\n{text}", d.message));
                }
                rejected += 1;
            }
            Err(e) => failures.push(format!("seed {seed}: {e}\n{text}")),
        }
        if failures.len() >= 5 {
            break;
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n\n"));
    // Nearly every generated program is accepted (a few windows are larger than their
    // input), so the chain runs on many.
    assert!(
        accepted * 10 >= cases * 9,
        "only {accepted} of {cases} generated programs are accepted ({rejected} rejected)"
    );
    println!("{accepted} of {cases} generated programs accepted and run; {rejected} rejected at a place");
}
