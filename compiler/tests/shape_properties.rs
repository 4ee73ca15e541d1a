//! Properties of shape inference over random layer stacks: the total is the sum of the
//! rows, and each row's shape and parameter count follow from the row before it by the
//! layer's formula, computed here independently of the compiler.

use nnc_compiler::analyze;
use nnc_compiler::shapes::Dim;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Layer {
    Linear(u32),
    Conv { out: u32, kernel: u32, pad: u32, stride: u32 },
    MaxPool(u32),
    Relu,
    Flatten,
}

impl Layer {
    fn text(&self) -> String {
        match self {
            Layer::Linear(n) => format!("linear({n})"),
            Layer::Conv { out, kernel, pad, stride } => {
                format!("conv2d({out}, kernel = {kernel}, pad = {pad}, stride = {stride})")
            }
            Layer::MaxPool(k) => format!("maxpool({k})"),
            Layer::Relu => "relu".to_string(),
            Layer::Flatten => "flatten".to_string(),
        }
    }
}

fn layer() -> impl Strategy<Value = Layer> {
    prop_oneof![
        (1u32..40).prop_map(Layer::Linear),
        (1u32..9, 1u32..6, 0u32..3, 1u32..3).prop_map(|(out, kernel, pad, stride)| Layer::Conv {
            out,
            kernel,
            pad,
            stride
        }),
        (1u32..4).prop_map(Layer::MaxPool),
        Just(Layer::Relu),
        Just(Layer::Flatten),
    ]
}

/// The shape after `layer`, and its parameter count, by the textbook formulas; `None` when
/// the layer cannot take the input.
fn expected(input: &[i128], layer: &Layer) -> Option<(Vec<i128>, i128)> {
    match layer {
        Layer::Relu => Some((input.to_vec(), 0)),
        Layer::Flatten => (input.len() >= 2).then(|| (vec![input[0], input[1..].iter().product()], 0)),
        Layer::Linear(n) => (input.len() == 2).then(|| (vec![input[0], *n as i128], (input[1] + 1) * *n as i128)),
        Layer::Conv { out, kernel, pad, stride } => {
            if input.len() != 4 {
                return None;
            }
            let size = |n: i128| (n + 2 * *pad as i128 - *kernel as i128).div_euclid(*stride as i128) + 1;
            let (h, w) = (size(input[2]), size(input[3]));
            (h > 0 && w > 0)
                .then(|| (vec![input[0], *out as i128, h, w], *out as i128 * (input[1] * (*kernel as i128).pow(2) + 1)))
        }
        Layer::MaxPool(k) => {
            if input.len() != 4 {
                return None;
            }
            let k = *k as i128;
            let size = |n: i128| (n - k).div_euclid(k) + 1;
            let (h, w) = (size(input[2]), size(input[3]));
            (h > 0 && w > 0).then(|| (vec![input[0], input[1], h, w], 0))
        }
    }
}

fn input_shape() -> impl Strategy<Value = Vec<i128>> {
    prop_oneof![
        (1i128..50).prop_map(|f| vec![4, f]),
        (1i128..4, 1i128..20, 1i128..20).prop_map(|(c, h, w)| vec![4, c, h, w]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rows_follow_the_layer_formulas(input in input_shape(), layers in prop::collection::vec(layer(), 1..8)) {
        let dims: Vec<String> = input.iter().map(|d| d.to_string()).collect();
        let mut source = format!("model M {{\n    input [{}]\n", dims.join(", "));
        for layer in &layers {
            source.push_str(&format!("    {}\n", layer.text()));
        }
        source.push_str("}\n");
        let analysis = analyze(&source);
        let report = analysis.shapes.model("M").expect("the model is analysed");

        // The total is the sum of the rows, always.
        let sum = report.rows.iter().fold(Dim::default(), |acc, row| acc.checked_add(&row.params()).unwrap());
        prop_assert_eq!(&report.params, &sum);

        // Walk the stack with the textbook formulas: every row agrees until the first layer
        // that cannot take its input, which is the first and only failing row.
        // One row per line, the input's first: zipping fewer rows would check nothing.
        prop_assert_eq!(report.rows.len(), layers.len() + 1, "rows of\n{}", source);
        let mut shape = input.clone();
        for (layer, row) in layers.iter().zip(&report.rows[1..]) {
            match expected(&shape, layer) {
                Some((next, params)) => {
                    prop_assert!(!row.failed, "{} failed on {:?}:\n{}", layer.text(), shape, source);
                    let got: Vec<i128> = row.shape.as_ref().unwrap().0.iter().map(|d| d.as_const().unwrap()).collect();
                    prop_assert_eq!(&got, &next, "{}", source);
                    prop_assert_eq!(row.params(), Dim::constant(params));
                    shape = next;
                }
                None => {
                    prop_assert!(row.failed, "{} should fail on {:?}:\n{}", layer.text(), shape, source);
                    prop_assert!(analysis.has_errors());
                    break;
                }
            }
        }
    }
}
