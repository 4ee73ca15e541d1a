//! The lecture's exercises on output sizes and parameter counts, asserted number by number,
//! and `nnc summary` on every example pinned by snapshots.

use nnc_compiler::analyze;
use nnc_compiler::shapes::{Dim, ModelReport};
use std::process::Command;

fn model(source: &str, name: &str) -> ModelReport {
    let analysis = analyze(source);
    let errors: Vec<_> = analysis.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    analysis.shapes.model(name).expect("the model is analysed").clone()
}

fn conv_model(input: &str, layer: &str) -> ModelReport {
    model(&format!("model M {{\n    input {input}\n    {layer}\n}}\n"), "M")
}

fn c(value: i128) -> Dim {
    Dim::constant(value)
}

#[test]
fn seven_by_seven_with_a_three_by_three_filter() {
    let report = conv_model("[B, 1, 7, 7]", "conv2d(1, kernel = 3)");
    let row = &report.rows[1];
    assert_eq!(row.shape.as_ref().unwrap().to_string(), "[B, 1, 5, 5]");
    assert_eq!((row.weights.clone(), row.biases.clone()), (c(9), c(1)));
    assert_eq!(report.params, c(10));
}

#[test]
fn stride_two_gives_three_by_three_and_stride_three_warns() {
    let report = conv_model("[B, 1, 7, 7]", "conv2d(1, kernel = 3, stride = 2)");
    assert_eq!(report.rows[1].shape.as_ref().unwrap().to_string(), "[B, 1, 3, 3]");

    let source = "model M {\n    input [B, 1, 7, 7]\n    conv2d(1, kernel = 3, stride = 3)\n}\n";
    let analysis = analyze(source);
    let warning = analysis.diagnostics.iter().find(|d| d.code.as_str() == "W0201").expect("a warning");
    assert!(!warning.is_error());
    assert!(warning.message.contains("the last 1 row and 1 column"), "{}", warning.message);
    assert_eq!(analysis.shapes.model("M").unwrap().rows[1].shape.as_ref().unwrap().to_string(), "[B, 1, 2, 2]");
}

#[test]
fn ten_five_by_five_filters_with_padding_two() {
    let report = conv_model("[B, 3, 32, 32]", "conv2d(10, kernel = 5, stride = 1, pad = 2)");
    assert_eq!(report.output.as_ref().unwrap().to_string(), "[B, 10, 32, 32]");
    assert_eq!(report.params, c(760));
    assert_eq!((report.rows[1].weights.clone(), report.rows[1].biases.clone()), (c(750), c(10)));
}

#[test]
fn five_three_by_three_filters_on_three_channels() {
    let report = conv_model("[B, 3, 32, 32]", "conv2d(5, kernel = 3)");
    assert_eq!(report.params, c(140));
}

#[test]
fn a_flattened_200_by_200_image_into_500_units() {
    let report = model("model M {\n    input [B, 200, 200]\n    flatten\n    linear(500)\n}\n", "M");
    assert_eq!(report.rows[1].shape.as_ref().unwrap().to_string(), "[B, 40000]");
    assert_eq!(report.params, c(20_000_500));
}

#[test]
fn the_five_by_five_convolution_example_gives_three_by_three() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/conv_exercises.nn")).unwrap();
    let analysis = analyze(&source);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    let call = source.find("conv(image, filter)").unwrap();
    let fact = analysis.shapes.shape_at(call).expect("the call has a shape");
    assert_eq!(fact.shape.to_string(), "[3, 3]");
}

#[test]
fn the_digits_models_count_as_pytorch_does() {
    let mlp = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits_mlp.nn")).unwrap();
    let report = model(&mlp, "Mlp");
    let counts: Vec<Dim> = report.rows.iter().map(|r| r.params()).collect();
    assert_eq!(counts, [c(0), c(2080), c(0), c(330)]);
    assert_eq!(report.params, c(2410));

    let cnn = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits_cnn.nn")).unwrap();
    let report = model(&cnn, "DigitsCnn");
    assert_eq!(report.output.as_ref().unwrap().to_string(), "[B, 10]");
    assert_eq!(report.params, c(80 + 1168 + 650));
}

#[test]
fn symbolic_arguments_stay_symbolic() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/residual.nn")).unwrap();
    let analysis = analyze(&source);
    let residual = analysis.shapes.model("Residual").unwrap();
    assert_eq!(residual.params.to_string(), "2·width^2 + 2·width");
    let deep = analysis.shapes.model("Deep").unwrap();
    assert_eq!(deep.params, c(2 * 2 * (16 * 16 + 16) + 17));
}

#[test]
fn oversized_layers_are_diagnostics_not_allocations() {
    for (layer, code) in [
        ("linear(10^12)", "E0207"),
        ("linear(18446744073709551615)", "E0207"),
        ("reshape(4294967296, 4294967296)", "E0207"),
    ] {
        let source = format!("model M {{\n    input [B, 64]\n    {layer}\n}}\n");
        let analysis = analyze(&source);
        let codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert!(codes.contains(&code), "{layer}: {codes:?}");
    }
    // An element count past u64 in the input itself.
    let analysis = analyze("model M {\n    input [B, 4294967296, 4294967296, 4294967296]\n    flatten\n}\n");
    assert!(analysis.diagnostics.iter().any(|d| d.code.as_str() == "E0207"), "{:?}", analysis.diagnostics);
}

#[test]
fn arguments_that_make_a_dimension_empty_are_errors() {
    let analysis = analyze("model M(hidden = 0) {\n    input [B, 4]\n    linear(hidden)\n}\n");
    assert!(analysis.diagnostics.iter().any(|d| d.code.as_str() == "E0205"), "{:?}", analysis.diagnostics);
}

fn nnc(args: &[&str]) -> (String, String, Option<i32>) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_nnc")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code(),
    )
}

#[test]
fn summary_of_every_example() {
    for example in ["conv_exercises", "digits_cnn", "digits_mlp", "lecture", "residual", "xor"] {
        let path = format!("examples/{example}.nn");
        let (stdout, stderr, code) = nnc(&["summary", &path, "--color", "never"]);
        assert_eq!(code, Some(0), "{stderr}");
        insta::assert_snapshot!(format!("summary_{example}"), stdout);
    }
}

#[test]
fn summary_json_carries_the_same_facts() {
    let (stdout, _, code) =
        nnc(&["summary", "examples/digits_cnn.nn", "DigitsCnn", "--format", "json", "--batch", "32"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["model"], "DigitsCnn");
    assert_eq!(json["total_params"], "1898");
    assert_eq!(json["output_shape"], serde_json::json!(["32", "10"]));
    assert_eq!(json["rows"][2]["output_shape"], serde_json::json!(["32", "8", "8", "8"]));
    assert_eq!(json["rows"][2]["weights"], "72");
    assert_eq!(json["rows"][2]["biases"], "8");
}

#[test]
fn summary_marks_the_failing_row_and_keeps_the_others() {
    let dir = std::env::temp_dir().join(format!("nnc-shapes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("missing_flatten.nn");
    std::fs::write(&path, "model Cnn {\n    input [B, 1, 28, 28]\n    conv2d(8, kernel = 3, pad = 1)\n    relu\n    maxpool(2)\n    linear(10)\n    relu\n}\n").unwrap();
    let (stdout, stderr, code) = nnc(&["summary", path.to_str().unwrap(), "--color", "never"]);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("[B, 8, 14, 14]"), "{stdout}");
    assert!(stdout.contains("✗ linear(10)"), "{stdout}");
    assert!(stdout.contains("relu"), "the row after the failure is shown: {stdout}");
    assert!(stderr.contains("insert `flatten` before `linear(10)`"), "{stderr}");
    assert!(stderr.contains("[B, 8, 14, 14]"), "{stderr}");
}

#[test]
fn the_analysis_answers_for_any_offset() {
    let cnn = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits_cnn.nn")).unwrap();
    let analysis = analyze(&cnn);
    let offset = cnn.find("conv2d(8").unwrap() + 3;
    let (model, row) = analysis.shapes.row_at(offset).expect("a layer row there");
    assert_eq!(model.name, "DigitsCnn");
    assert_eq!(row.shape.as_ref().unwrap().to_string(), "[B, 8, 8, 8]");
    assert_eq!((row.weights.clone(), row.biases.clone()), (c(72), c(8)));
    assert!(row.formulas.contains(&"height (8 + 2·1 - 3) / 1 + 1 = 8".to_string()), "{:?}", row.formulas);
    assert!(row.formulas.contains(&"weight [8, 1, 3, 3]: 72".to_string()), "{:?}", row.formulas);

    let residual = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/residual.nn")).unwrap();
    let analysis = analyze(&residual);
    let h = residual.find("let h").unwrap() + 4;
    assert_eq!(analysis.shapes.shape_at(h).unwrap().shape.to_string(), "[B, width]");
    let product = residual.find("x @ w^T").unwrap() + 2;
    assert_eq!(analysis.shapes.shape_at(product).unwrap().shape.to_string(), "[B, out]");
}

#[test]
fn a_symbol_repeated_in_an_input_binds_once() {
    let source = "model M {\n    input [B, N, N]\n    flatten\n}\nmodel K {\n    input [B, 3, 3]\n    M\n}\n";
    let analysis = analyze(source);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    assert_eq!(analysis.shapes.model("K").unwrap().output.as_ref().unwrap().to_string(), "[B, 9]");
    let wrong = analyze(&source.replace("[B, 3, 3]", "[B, 3, 4]"));
    assert!(wrong.diagnostics.iter().any(|d| d.code.as_str() == "E0210"));
}
