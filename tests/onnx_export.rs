//! `nnc export --onnx`: the files it writes decode as ONNX models of opset 18 with the batch
//! as a named dynamic dimension and the given weights as initializers, and its errors name
//! what is wrong. onnxruntime runs the files in `scripts/onnx-check`.

use nnc_onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use nnc_onnx::proto::{ModelProto, ValueInfoProto};
use nnc_runtime::checkpoint;
use std::path::{Path, PathBuf};

mod common;
use common::nnc_in;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-onnx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).display().to_string()
}

fn dims(value: &ValueInfoProto) -> Vec<String> {
    let Some(nnc_onnx::proto::type_proto::Value::TensorType(tensor)) = value.r#type.as_ref().unwrap().value.as_ref()
    else {
        panic!("not a tensor")
    };
    tensor
        .shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            DimValue::DimValue(n) => n.to_string(),
            DimValue::DimParam(s) => s.clone(),
        })
        .collect()
}

fn export(file: &str, model: &str, extra: &[&str], dir: &Path) -> ModelProto {
    let out = dir.join(format!("{model}.onnx"));
    let mut args = vec!["export", file, model, "--onnx", out.to_str().unwrap()];
    args.extend(extra);
    let output = nnc_in(&args, dir);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    nnc_onnx::decode(&std::fs::read(out).unwrap()).unwrap()
}

#[test]
fn every_example_model_exports_with_a_dynamic_batch() {
    let dir = scratch("examples");
    let models = [
        ("digits_cnn.nn", "DigitsCnn", vec![], vec!["64"], vec!["10"]),
        ("digits_mlp.nn", "Mlp", vec![], vec!["64"], vec!["10"]),
        ("iris.nn", "Iris", vec![], vec!["4"], vec!["3"]),
        ("xor.nn", "TwoHidden", vec![], vec!["2"], vec!["1"]),
        ("mnist.nn", "MnistCnn", vec![], vec!["1", "28", "28"], vec!["10"]),
        ("conv_exercises.nn", "TenFilters", vec![], vec!["3", "32", "32"], vec!["10", "32", "32"]),
        ("residual.nn", "Deep", vec![], vec!["16"], vec!["1"]),
        ("residual.nn", "Residual", vec!["--arg", "width=8"], vec!["8"], vec!["8"]),
        ("residual.nn", "Logistic", vec!["--arg", "out=2", "--arg", "in=5"], vec!["5"], vec!["2"]),
    ];
    for (file, model, extra, input, output) in models {
        let proto = export(&example(file), model, &extra, &dir);
        assert_eq!(proto.ir_version, Some(8), "{model}");
        assert_eq!(proto.opset_import[0].version, Some(18), "{model}");
        assert_eq!(proto.producer_name.as_deref(), Some("nnc"));
        let graph = proto.graph.unwrap();
        assert_eq!(graph.input.len(), 1, "{model}: only the data is an input; the weights are initializers");
        let mut want_in = vec!["B".to_string()];
        want_in.extend(input.iter().map(|s| s.to_string()));
        assert_eq!(dims(&graph.input[0]), want_in, "{model}");
        let mut want_out = vec!["B".to_string()];
        want_out.extend(output.iter().map(|s| s.to_string()));
        assert_eq!(dims(&graph.output[0]), want_out, "{model}");
        assert_eq!(graph.output[0].name.as_deref(), Some("y"));
        assert!(graph.node.iter().all(|n| n.doc_string.as_deref().is_some_and(|d| d.contains(".nn:"))));
    }
}

#[test]
fn the_given_weights_are_the_initializers_bit_for_bit() {
    let dir = scratch("weights");
    std::fs::write(
        dir.join("tiny.nn"),
        "/// Two outputs.\nmodel Tiny {\n    input [B, 3]\n    linear(2)\n    relu\n}\n",
    )
    .unwrap();
    let weight: Vec<f64> = vec![0.1, -0.2, 0.3, 1e-7, 5.0, -6.5];
    checkpoint::save(
        &dir.join("w.safetensors"),
        &[("0.weight".into(), vec![2, 3], weight.clone()), ("0.bias".into(), vec![2], vec![0.25, -1.0])],
    )
    .unwrap();
    let proto = export("tiny.nn", "Tiny", &["--weights", "w.safetensors"], &dir);
    assert_eq!(proto.doc_string.as_deref(), Some("Two outputs."));
    let graph = proto.graph.unwrap();
    let init = graph.initializer.iter().find(|t| t.name.as_deref() == Some("0.weight")).unwrap();
    assert_eq!(init.dims, vec![2, 3]);
    let values: Vec<f32> =
        init.raw_data.as_ref().unwrap().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values, weight.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    assert_eq!(ops, ["Transpose", "MatMul", "Add", "Relu"]);
}

#[test]
fn weights_of_another_shape_or_name_are_refused_with_their_names() {
    let dir = scratch("wrong");
    std::fs::write(dir.join("tiny.nn"), "model Tiny {\n    input [B, 3]\n    linear(2)\n}\n").unwrap();
    checkpoint::save(
        &dir.join("shape.safetensors"),
        &[("0.weight".into(), vec![3, 3], vec![0.0; 9]), ("0.bias".into(), vec![2], vec![0.0; 2])],
    )
    .unwrap();
    let output = nnc_in(&["export", "tiny.nn", "Tiny", "--onnx", "t.onnx", "--weights", "shape.safetensors"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`0.weight` is [3, 3], but the model needs [2, 3]"), "{stderr}");
    checkpoint::save(&dir.join("name.safetensors"), &[("1.weight".into(), vec![2, 3], vec![0.0; 6])]).unwrap();
    let output = nnc_in(&["export", "tiny.nn", "Tiny", "--onnx", "t.onnx", "--weights", "name.safetensors"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no weights for `0.weight` (there are 1.weight)"), "{stderr}");
    assert!(!dir.join("t.onnx").exists(), "nothing is written when the export fails");
}

#[test]
fn open_sizes_and_unknown_models_get_errors_that_say_what_to_give() {
    let dir = scratch("errors");
    let residual = example("residual.nn");
    let output = nnc_in(&["export", &residual, "Residual", "--onnx", "r.onnx"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the size `width` has no value"), "{stderr}");
    assert!(stderr.contains("residual.nn:3:7"), "{stderr}");
    assert!(stderr.contains("--arg width=16"), "{stderr}");

    let output = nnc_in(&["export", &residual, "Residual", "--onnx", "r.onnx", "--arg", "depth=2"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`Residual` has no argument or input size `depth`; they are `width`"), "{stderr}");

    let output = nnc_in(&["export", &residual, "Residual", "--onnx", "r.onnx", "--arg", "width=0"], &dir);
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a size"));

    let output = nnc_in(&["export", &residual, "Resdual", "--onnx", "r.onnx"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `Residual`?"), "{stderr}");

    let output = nnc_in(&["export", &residual, "Deep", "--onnx", "/nonexistent-dir/d.onnx"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write `/nonexistent-dir/d.onnx`"), "{stderr}");
}

#[test]
fn without_weights_the_export_holds_the_weights_a_run_starts_from() {
    // Training with a learning rate of 0 saves the initial weights unchanged.
    let dir = scratch("initial");
    std::fs::write(
        dir.join("m.nn"),
        "model M {\n    input [B, 2]\n    linear(3)\n    tanh\n    linear(1)\n}\n\n\
         train M on xor(samples = 8) {\n    loss = mse\n    optimizer = sgd(lr = 0)\n    epochs = 1\n    seed = 11\n    save = \"m.safetensors\"\n}\n",
    )
    .unwrap();
    let run = nnc_in(&["run", "m.nn", "--out", "run"], &dir);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let saved = checkpoint::load(&dir.join("m.safetensors")).unwrap();
    let proto = export("m.nn", "M", &[], &dir);
    let graph = proto.graph.unwrap();
    for (name, shape, values) in &saved {
        let init = graph.initializer.iter().find(|t| t.name.as_deref() == Some(name.as_str())).unwrap();
        assert_eq!(init.dims, shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
        let exported: Vec<f32> =
            init.raw_data.as_ref().unwrap().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(exported, values.iter().map(|&v| v as f32).collect::<Vec<_>>(), "{name}");
    }
    let seed = proto.metadata_props.iter().find(|p| p.key.as_deref() == Some("weights")).unwrap();
    assert!(seed.value.as_deref().unwrap().contains("seed 11"));
}

#[test]
fn the_gradient_graph_takes_inputs_and_targets_and_returns_the_loss_and_every_gradient() {
    let dir = scratch("grad");
    let proto = export(&example("digits_cnn.nn"), "DigitsCnn", &["--grad"], &dir);
    let graph = proto.graph.unwrap();
    let inputs: Vec<(&str, Vec<String>)> = graph.input.iter().map(|v| (v.name.as_deref().unwrap(), dims(v))).collect();
    assert_eq!(inputs, [("x", vec!["B".to_string(), "64".to_string()]), ("t", vec!["B".to_string()])]);
    let outputs: Vec<&str> = graph.output.iter().map(|v| v.name.as_deref().unwrap()).collect();
    assert_eq!(
        outputs,
        ["loss", "1.weight_bar", "1.bias_bar", "4.weight_bar", "4.bias_bar", "8.weight_bar", "8.bias_bar"]
    );
    assert!(dims(&graph.output[0]).is_empty(), "the loss is a scalar");
    let ops: std::collections::HashSet<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    for op in ["ConvTranspose", "ScatterElements", "SoftmaxCrossEntropyLoss", "OneHot"] {
        assert!(ops.contains(op), "no {op} in {ops:?}");
    }

    let output = nnc_in(&["export", &example("residual.nn"), "Deep", "--grad", "--onnx", "d.onnx"], &dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give `--loss cross_entropy`, `mse` or `bce`"), "{stderr}");
    let proto = export(&example("residual.nn"), "Deep", &["--grad", "--loss", "bce"], &dir);
    assert_eq!(proto.graph.unwrap().input[1].name.as_deref(), Some("t"));
}
