use proptest::prelude::*;

fn examples() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for dir in ["examples", "tests/shape_errors", "tests/malformed"] {
        for e in std::fs::read_dir(format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nn") && std::fs::metadata(&p).unwrap().len() < 5000 {
                v.push(std::fs::read(p).unwrap());
            }
        }
    }
    v
}

const INS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "+",
    "-",
    "*",
    "/",
    "^",
    "@",
    "|>",
    "\n",
    "x",
    "B",
    "0",
    "1",
    "-1",
    "2^64",
    "18446744073709551615",
    "1e308",
    "linear",
    "relu",
    "input",
    "param",
    "let",
    "model",
    "fn",
    "train",
    "on",
    "wrt",
    "along",
    "^T",
    "flatten",
    "conv2d(1, kernel = 3)",
    "maxpool(2)",
    "reshape(-1)",
    "[B, 0]",
    "(0, 0)",
    "axis = -1",
    "9",
    "\"s\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100000))]
    #[test]
    fn mutate(which in any::<prop::sample::Index>(), edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..3, prop::sample::select(INS), 1usize..8), 1..6)) {
        let ex = examples();
        let mut text = ex[which.index(ex.len())].clone();
        for (at, kind, ins, len) in edits {
            let i = at.index(text.len() + 1);
            match kind {
                0 => { let end = (i + len).min(text.len()); text.drain(i..end); }
                1 => { text.splice(i..i, ins.bytes()); }
                _ => { let end = (i + len).min(text.len()); let chunk: Vec<u8> = text[i..end].to_vec(); text.splice(i..i, chunk); }
            }
        }
        let t = text.clone();
        let r = std::panic::catch_unwind(move || {
            let a = nnc_compiler::analyze_bytes(&t);
            for d in &a.diagnostics { for l in std::iter::once(&d.primary).chain(&d.secondary) { assert!(l.span.start <= l.span.end && l.span.end <= a.text.len(), "{d:?}"); } }
            let _ = nnc_grammar::render(&a.diagnostics, "x.nn", &a.text, false);
        });
        prop_assert!(r.is_ok(), "panic on {:?}", String::from_utf8_lossy(&text));
    }
}
