//! `nnc fmt`: rewrites `.nn` files in the canonical style, or with `--check` shows what
//! would change; `-` (or no file) formats standard input to standard output.

use crate::output::{ColorChoice, print_diagnostics, print_error};
use nnc_grammar::{Diagnostic, decode, format_source, parse};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How many removed and added lines the diff of `--check` shows at most.
const DIFF_LINES: usize = 8;

/// Lines before a difference that the diff shows for context.
const CONTEXT_LINES: usize = 2;

/// How many following lines must agree again for a difference to end.
const SYNC_LINES: usize = 3;

/// How far (in removed plus added lines) the diff looks for the end of the first difference.
const SEARCH_LINES: usize = 400;

/// What happened to the files, for the exit status.
#[derive(Default)]
struct Outcome {
    /// A file had syntax errors (or bytes that are not UTF-8) and was left as it was.
    errors: bool,
    /// With `--check`: a file is not formatted.
    unformatted: bool,
    /// A file could not be read or written.
    failed: bool,
}

/// Formats each file (or checks it); exit 0 when all went well, 1 when a file has syntax
/// errors or, with `--check`, is not formatted, 2 when a file cannot be read or written.
pub fn run(files: &[PathBuf], check: bool, color: ColorChoice) -> ExitCode {
    let mut outcome = Outcome::default();
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    for path in files {
        if path.as_os_str() == "-" {
            format_stdin(check, color, &mut outcome);
        } else {
            format_file(path, check, color, &mut outcome);
        }
    }
    if outcome.failed {
        ExitCode::from(2)
    } else if outcome.errors || outcome.unformatted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The formatted text of a file's bytes, or None after printing why it cannot be formatted.
fn formatted(bytes: &[u8], name: &str, color: ColorChoice, outcome: &mut Outcome) -> Option<String> {
    let (text, mut diagnostics) = decode(bytes);
    // Bytes that are not UTF-8 are read as spaces; writing the text back would lose them.
    let formatted = if diagnostics.is_empty() { format_source(&text) } else { None };
    if formatted.is_none() {
        diagnostics.extend(parse(&text).diagnostics);
        nnc_grammar::sort_diagnostics(&mut diagnostics);
        print_diagnostics(&diagnostics, name, &text, color);
        outcome.errors |= diagnostics.iter().any(Diagnostic::is_error);
    }
    formatted
}

fn format_file(path: &Path, check: bool, color: ColorChoice, outcome: &mut Outcome) {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            print_error(&format!("cannot read `{name}`: {error}"), color);
            outcome.failed = true;
            return;
        }
    };
    let Some(formatted) = formatted(&bytes, &name, color, outcome) else { return };
    if formatted.as_bytes() == bytes {
        return;
    }
    if check {
        outcome.unformatted = true;
        print_stdout(&diff(&String::from_utf8_lossy(&bytes), &formatted, &name));
        return;
    }
    match write_atomically(path, &formatted) {
        Ok(()) => print_stdout(&format!("formatted {name}\n")),
        Err(error) => {
            print_error(&format!("cannot write `{name}`: {error}"), color);
            outcome.failed = true;
        }
    }
}

fn format_stdin(check: bool, color: ColorChoice, outcome: &mut Outcome) {
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut bytes) {
        print_error(&format!("cannot read standard input: {error}"), color);
        outcome.failed = true;
        return;
    }
    let Some(formatted) = formatted(&bytes, "<stdin>", color, outcome) else { return };
    if !check {
        print_stdout(&formatted);
    } else if formatted.as_bytes() != bytes {
        outcome.unformatted = true;
        print_stdout(&diff(&String::from_utf8_lossy(&bytes), &formatted, "<stdin>"));
    }
}

fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Replaces the file at `path` (or, for a symbolic link, the file it points to) by
/// `contents`: written to a new file in the same directory first, then renamed over it, so
/// that a crash leaves either the old text or the new one.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    let directory = target.parent().unwrap_or(Path::new("."));
    let file_name = target.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = directory.join(format!(".{file_name}.nnc-fmt-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.set_permissions(std::fs::metadata(&target)?.permissions())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// A short unified diff of the first place where `old` and `formatted` differ.
fn diff(old: &str, formatted: &str, name: &str) -> String {
    let lines = |text: &str| -> Vec<String> {
        // Tabs and carriage returns are shown escaped, since they are often all that differs.
        text.split_inclusive('\n')
            .map(|line| line.strip_suffix('\n').unwrap_or(line).replace('\t', "\\t").replace('\r', "\\r"))
            .collect()
    };
    let (old, new) = (lines(old), lines(formatted));
    let mut out = format!("--- {name}\n+++ {name} (formatted)\n");
    let start = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    if start == old.len() && start == new.len() {
        // The lines agree: only the newline at the end of the file differs.
        let last = old.last().map_or("", String::as_str);
        out.push_str(&format!("@@ -{0} +{0} @@\n-{last}\n\\ No newline at end of file\n+{last}\n", old.len()));
        return out;
    }
    // The end of the difference: the fewest removed plus added lines after which the next
    // lines agree again (or both texts end).
    let agrees = |removed: usize, added: usize| {
        (0..SYNC_LINES).all(|k| old.get(start + removed + k) == new.get(start + added + k))
    };
    let (removed, added) = (1..=SEARCH_LINES)
        .flat_map(|total| (0..=total).map(move |removed| (removed, total - removed)))
        .filter(|&(removed, added)| start + removed <= old.len() && start + added <= new.len())
        .find(|&(removed, added)| agrees(removed, added))
        .unwrap_or((old.len() - start, new.len() - start));
    let context = start.min(CONTEXT_LINES);
    let first = start - context;
    out.push_str(&format!("@@ -{},{} +{},{} @@\n", first + 1, context + removed, first + 1, context + added));
    for line in &old[first..start] {
        out.push_str(&format!(" {line}\n"));
    }
    for (sign, lines) in [('-', &old[start..start + removed]), ('+', &new[start..start + added])] {
        for line in lines.iter().take(DIFF_LINES) {
            out.push_str(&format!("{sign}{line}\n"));
        }
        match lines.len().saturating_sub(DIFF_LINES) {
            0 => {}
            1 => out.push_str(&format!("{sign}... 1 more line\n")),
            more => out.push_str(&format!("{sign}... {more} more lines\n")),
        }
    }
    if old[start + removed..] != new[start + added..] {
        out.push_str("(more differences follow)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn the_diff_shows_the_first_difference_with_context() {
        let old = "a\nb\nc\nd  \ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\ne\nf\ng\nh\n";
        assert_eq!(diff(old, new, "x.nn"), "--- x.nn\n+++ x.nn (formatted)\n@@ -2,3 +2,3 @@\n b\n c\n-d  \n+d\n");
    }

    #[test]
    fn the_diff_resynchronises_after_removed_lines_and_says_when_more_follow() {
        let old = "a\n\n\n\nb\nc\nd\ne\n x\n";
        let new = "a\n\nb\nc\nd\ne\nx\n";
        assert_eq!(
            diff(old, new, "y.nn"),
            "--- y.nn\n+++ y.nn (formatted)\n@@ -1,4 +1,2 @@\n a\n \n-\n-\n(more differences follow)\n"
        );
    }

    #[test]
    fn the_diff_shows_tabs_carriage_returns_and_a_missing_final_newline() {
        assert_eq!(
            diff("\tx\r\n", "    x\n", "t.nn"),
            "--- t.nn\n+++ t.nn (formatted)\n@@ -1,1 +1,1 @@\n-\\tx\\r\n+    x\n"
        );
        assert_eq!(
            diff("a\nb", "a\nb\n", "n.nn"),
            "--- n.nn\n+++ n.nn (formatted)\n@@ -2 +2 @@\n-b\n\\ No newline at end of file\n+b\n"
        );
    }

    #[test]
    fn long_differences_are_cut_short() {
        let old: String = (0..20).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..20).map(|i| format!("new {i}\n")).collect();
        let shown = diff(&old, &new, "z.nn");
        assert!(shown.starts_with("--- z.nn\n+++ z.nn (formatted)\n@@ -1,20 +1,20 @@\n-old 0\n"), "{shown}");
        assert!(shown.contains("-old 7\n-... 12 more lines\n+new 0\n"), "{shown}");
        assert!(shown.ends_with("+new 7\n+... 12 more lines\n"), "{shown}");
    }
}
