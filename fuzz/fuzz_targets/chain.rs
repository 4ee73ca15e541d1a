//! Fuzz target: the promise "what `nnc check` accepts, runs", on arbitrary text. A text the
//! check accepts goes through the whole chain of `tests/common/chain.rs` (every instance
//! lowered, verified, differentiated in both modes, run on the interpreter and compiled
//! code with the same numbers, exported; every query answered); any failure there is a
//! bug, and so is a panic.
#![no_main]

#[path = "../../tests/common/chain.rs"]
mod chain;

use libfuzzer_sys::fuzz_target;
use nnc_codegen::JitExecutor;

thread_local! {
    static JIT: JitExecutor = JitExecutor::new();
}

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    // Large sizes are the check's to refuse; keep each run short.
    if text.len() > 4096 {
        return;
    }
    JIT.with(|jit| {
        if let Err(failure) = chain::run_chain(&text, jit) {
            panic!("the check accepted what a later stage refused: {failure}\n{text}");
        }
    });
});
