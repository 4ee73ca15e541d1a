//! Each construct the language accepts, one file in `tests/accepted/`, run end to end: the
//! check accepts it without a diagnostic, and every instance of its checked program lowers,
//! differentiates, optimises, verifies, runs on the interpreter and on compiled code with
//! the same numbers, and exports; every query answers (`common::chain`).

mod common;

use common::chain::run_chain;
use nnc_codegen::JitExecutor;

#[test]
fn every_accepted_construct_runs_end_to_end() {
    let files = common::files_with_extension("tests/accepted", "nn");
    assert!(files.len() >= 19, "only {} files in tests/accepted", files.len());
    let jit = JitExecutor::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let analysis = nnc_compiler::analyze(&text);
        if !analysis.diagnostics.is_empty() {
            let messages: Vec<String> =
                analysis.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
            failures.push(format!("{name}: the check reports {}", messages.join("; ")));
            continue;
        }
        match run_chain(&text, &jit) {
            Ok(Some(ran)) if ran.models + ran.functions + ran.constants + ran.queries > 0 => {}
            Ok(Some(ran)) => failures.push(format!("{name}: nothing ran ({ran:?})")),
            Ok(None) => failures.push(format!("{name}: the check rejects it")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "accepted files that do not run:\n{}", failures.join("\n"));
}

/// Every activation of the built-ins table, as a layer and as a function, through the
/// chain: compiled code agrees with the interpreter on each, in both directions.
#[test]
fn every_activation_runs_end_to_end() {
    let activations = nnc_compiler::builtins::activations::ACTIVATIONS;
    let mut source = String::from("model Activations {\n    input x: [B, 5]\n    linear(6)\n");
    for activation in activations {
        source.push_str(&format!("    {}\n    linear(6)\n", activation.builtin.name));
    }
    source.push_str("}\n\n");
    for activation in activations {
        let name = activation.builtin.name;
        source.push_str(&format!("fn f_{name}(x: [4]) = sum({name}(x) * [1, -2, 3, 0.5])\n"));
        source.push_str(&format!("grad f_{name}([-2.5, -0.3, 0.4, 3])\n"));
    }
    let ran = run_chain(&source, &JitExecutor::new()).unwrap_or_else(|e| panic!("{e}\n{source}"));
    let ran = ran.unwrap_or_else(|| panic!("the check rejects:\n{source}"));
    assert_eq!(ran.queries, activations.len(), "{source}");
    assert!(ran.models >= 1 && ran.functions >= activations.len(), "{ran:?}");
}
