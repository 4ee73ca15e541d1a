//! Inlay hints: fixtures that pin hints under their lines, and snapshots of every example.

mod support;

use nnc_lsp::{Analyzed, HintMode, inlay_hints};
use support::{example, expected_hints, label, render_hints};

/// Checks that the hints of `fixture` are exactly the ones its `//^` lines expect.
fn check(fixture: &str, mode: HintMode) {
    let analyzed = Analyzed::new(fixture);
    let mut actual: Vec<(usize, String)> =
        inlay_hints(&analyzed, None, mode).iter().map(|h| (analyzed.offset(h.position), label(h))).collect();
    actual.sort();
    let mut expected = expected_hints(fixture);
    expected.sort();
    assert_eq!(actual, expected, "\n{}", render_hints(&analyzed, &inlay_hints(&analyzed, None, mode)));
}

#[test]
fn layer_lines_show_their_shape_and_parameters() {
    check(
        r#"
model Mlp(hidden = 32, classes = 10) {
//                                    ^ [B, 64] → [B, 10] · 2,410 params
    input [B, 64]
    linear(hidden)
//                ^ [B, 32] · 2,080 params
    relu
//      ^ [B, 32]
    linear(classes)
//                 ^ [B, 10] · 330 params
}
"#,
        HintMode::Both,
    );
}

#[test]
fn lets_show_their_shape_after_their_name() {
    check(
        r#"
let image = [[1, 2, 3], [4, 5, 6]]
//       ^ : [2, 3]
model Residual(width = 8) {
//                         ^ [B, 8] → [B, 8] · 144 params
    input x: [B, width]
    let h = x |> linear(width) |> relu
//       ^ : [B, 8]
//                                    ^ 72 params
    x + linear(h, width)
//                      ^ [B, 8] · 72 params
}
"#,
        HintMode::Both,
    );
}

#[test]
fn the_mode_chooses_shapes_or_parameters() {
    let fixture = |shapes: &str, params: &str, relu: &str| {
        format!(
            "model M {{\n//       ^ {shapes}\n    input [B, 4]\n    linear(2)\n//           ^ {params}\n    relu\n{relu}}}\n"
        )
    };
    check(&fixture("[B, 4] → [B, 2]", "[B, 2]", "//      ^ [B, 2]\n"), HintMode::Shapes);
    check(&fixture("10 params", "10 params", ""), HintMode::Params);
    assert!(inlay_hints(&Analyzed::new(&fixture("", "", "")), None, HintMode::None).is_empty());
}

#[test]
fn a_line_with_an_error_has_no_hint_and_neither_has_its_model() {
    check(
        r#"
model Broken {
    input [B, 64]
    conv2d(8, kernel = 3)
    linear(10)
}
"#,
        HintMode::Both,
    );
}

#[test]
fn a_range_asks_for_the_hints_inside_it() {
    let text = example("digits_cnn.nn");
    let analyzed = Analyzed::new(&text);
    let start = text.find("maxpool").unwrap();
    let end = text[start..].find('\n').unwrap() + start;
    let hints = inlay_hints(&analyzed, Some(nnc_grammar::Span::new(start, end)), HintMode::Both);
    assert_eq!(hints.iter().map(label).collect::<Vec<_>>(), vec!["[B, 8, 4, 4]"]);
}

/// The example of the issue: every layer line of `digits_cnn.nn` shows its shape, and the
/// lines with parameters their count.
#[test]
fn every_layer_line_of_the_digits_cnn_has_a_hint() {
    let text = example("digits_cnn.nn");
    let analyzed = Analyzed::new(&text);
    let hints = inlay_hints(&analyzed, None, HintMode::Both);
    let report = analyzed.analysis.shapes.model("DigitsCnn").expect("the example defines DigitsCnn");
    let layers: Vec<_> = report.rows.iter().filter(|row| row.kind == nnc_compiler::shapes::RowKind::Layer).collect();
    assert_eq!(layers.len(), 9);
    for row in layers {
        let line = analyzed.position(row.span.start).line;
        let hint = hints.iter().find(|h| h.position.line == line).unwrap_or_else(|| panic!("no hint on {}", row.label));
        assert!(label(hint).starts_with("[B, "), "{}", label(hint));
        if row.params() != Default::default() {
            assert!(label(hint).ends_with(" params"), "{}", label(hint));
        }
    }
}

#[test]
fn hints_of_the_examples() {
    for name in ["digits_cnn.nn", "digits_mlp.nn", "residual.nn", "mnist.nn", "conv_exercises.nn"] {
        let analyzed = Analyzed::new(&example(name));
        let hints = inlay_hints(&analyzed, None, HintMode::Both);
        insta::assert_snapshot!(name, render_hints(&analyzed, &hints));
    }
}
