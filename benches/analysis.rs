//! How long the analysis that runs on every keystroke takes: parse, resolve names and infer
//! shapes for a 2,000-line file. Run with `cargo bench --bench analysis`.

use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

/// A realistic file of about `lines` lines: MLPs, CNNs and residual blocks with docs.
fn source(lines: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    while out.lines().count() < lines {
        out.push_str(&format!(
            "/// Block {n}.\nmodel Mlp{n}(hidden = {h}, classes = 10) {{\n    input [B, 64]\n    linear(hidden)\n    relu\n    dropout(0.1)\n    linear(classes)\n}}\n\n\
             model Cnn{n} {{\n    input [B, 1, 28, 28]\n    conv2d(8, kernel = 3, pad = 1)\n    relu\n    maxpool(2)\n    conv2d(16, kernel = 3, pad = 1)\n    relu\n    maxpool(2)\n    flatten\n    linear(10)\n}}\n\n\
             model Res{n}(width = 32) {{\n    input x: [B, width]\n    let h = x |> linear(width) |> relu\n    x + linear(h, width)\n}}\n\n\
             fn f{n}(x1, x2) = ln(x1) + x1 * x2 - sin(x2)\n\n",
            h = 16 + n % 48
        ));
        n += 1;
    }
    out
}

#[divan::bench(args = [500, 2000])]
fn analyze(bencher: Bencher, lines: usize) {
    let text = source(lines);
    bencher.counter(divan::counter::BytesCount::of_str(&text)).bench(|| nnc_compiler::analyze(black_box(&text)));
}

#[divan::bench(args = [2000])]
fn parse_only(bencher: Bencher, lines: usize) {
    let text = source(lines);
    bencher.bench(|| nnc_grammar::parse(black_box(&text)));
}
