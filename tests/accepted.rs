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
