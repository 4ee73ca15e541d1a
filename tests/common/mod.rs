//! What the end-to-end tests share: running the `nnc` binary.

#![allow(dead_code)] // Each test file uses the helpers it needs.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `nnc` with `args` in the project's folder, so that `examples/...` paths resolve.
pub fn nnc(args: &[&str]) -> Output {
    nnc_in(args, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// Runs `nnc` with `args` in `dir`.
pub fn nnc_in(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnc")).args(args).current_dir(dir).output().expect("the nnc binary runs")
}

/// The files of the project's folder `folder` whose name ends in `.ext`, sorted by name.
pub fn files_with_extension(folder: &str, ext: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}
pub mod chain;
