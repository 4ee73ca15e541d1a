//! The IR's text form: printing and parsing are inverses on every function the examples
//! give (primal, gradient and tangent IR), and the filetests in `tests/ir/` pin, for each
//! primitive, its input IR and the optimised adjoint IR that reverse mode makes of it.
//! Run with `NNC_BLESS=1` to rewrite the expected halves, then read the difference.

mod common;

use nnc_compiler::analyze;
use nnc_compiler::driver;
use nnc_compiler::ir::{Function, forward, optimize, parse_function, print_function, reverse, verify};
use nnc_compiler::shapes::Shape;
use nnc_grammar::Item;
use std::collections::HashMap;
use std::path::Path;

const SEPARATOR: &str = "// ==== adjoint (reverse mode, optimised) ====";

fn round_trip(f: &Function) {
    let text = print_function(f, None);
    let parsed = parse_function(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    verify(&parsed).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(print_function(&parsed, None), text);
}

#[test]
fn printing_and_parsing_are_inverses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "nn") {
            continue;
        }
        let analysis = analyze(&std::fs::read_to_string(&path).unwrap());
        for item in &analysis.file.items {
            let f = match item {
                Item::Fn(def) => {
                    driver::function(&analysis, &def.name.name, &vec![Shape(Vec::new()); def.params.len()]).unwrap()
                }
                Item::Model(def) => {
                    driver::inference(&analysis.model(&def.name.name, &HashMap::new()).unwrap(), None).unwrap()
                }
                _ => continue,
            };
            let first = if matches!(item, Item::Model(_)) { 1 } else { 0 };
            let wrt: Vec<usize> = (first..f.params.len()).collect();
            for g in [f.clone(), reverse(&f, &wrt).0, optimize(&reverse(&f, &wrt).0), optimize(&forward(&f, &wrt).0)] {
                let mut g = g;
                g.name_temporaries();
                round_trip(&g);
                count += 1;
            }
        }
    }
    assert!(count >= 40, "only {count} functions");
}

#[test]
fn parse_errors_name_the_line() {
    let error = parse_function("fn f(x: f32) -> y: f32 {\n  v1 = frobnicate x\n  ret v1\n}\n").unwrap_err();
    assert_eq!(error.line, 2);
    assert!(error.message.contains("unknown op `frobnicate`"));
    let error = parse_function("fn f(x: f32[2]) -> y: f32 {\n  v1 = matmul x, y\n  ret v1\n}\n").unwrap_err();
    assert!(error.message.contains("`y` is not defined"), "{error}");
}

#[test]
fn adjoint_filetests() {
    let files = common::files_with_extension("tests/ir", "ir");
    assert!(files.len() >= 35, "only {} filetests", files.len());
    let bless = std::env::var_os("NNC_BLESS").is_some();
    let mut stale = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let (input, _) = text.split_once(SEPARATOR).unwrap_or((&text, ""));
        let heading: String = input.lines().take_while(|l| l.starts_with("//")).map(|l| format!("{l}\n")).collect();
        let f = parse_function(input).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        verify(&f).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let wrt: Vec<usize> = (0..f.params.len()).collect();
        let (grad, _) = reverse(&f, &wrt);
        verify(&grad).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let grad = optimize(&grad);
        verify(&grad).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected = format!("{heading}{}{SEPARATOR}\n{}", print_function(&f, None), print_function(&grad, None));
        if expected != text {
            if bless {
                std::fs::write(&path, expected).unwrap();
            } else {
                stale.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(stale.is_empty(), "these filetests differ from what nnc makes (NNC_BLESS=1 rewrites them): {stale:?}");
}
