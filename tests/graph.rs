//! `nnc graph`: the DOT of every example, with and without the adjoint, pinned by
//! snapshots; a check that each is a well-formed Graphviz graph; and the errors for an
//! unknown name, for pictures without Graphviz and for pictures of several graphs.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

mod common;
use common::nnc;

/// The examples' stems, sorted: `conv_exercises`, `digits_cnn`, ...
fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    stems.sort();
    stems
}

/// The DOT `nnc graph` prints for an example, checked to be well formed.
fn graph(example: &str, extra: &[&str]) -> String {
    let path = format!("examples/{example}.nn");
    let mut args = vec!["graph", path.as_str()];
    args.extend(extra);
    let output = nnc(&args);
    assert!(output.status.success(), "{example} {extra:?}: {}", String::from_utf8_lossy(&output.stderr));
    let dot = String::from_utf8(output.stdout).expect("DOT is UTF-8");
    if let Err(error) = check_dot(&dot) {
        panic!("{example} {extra:?}: {error}\n{dot}");
    }
    dot
}

/// Splits a DOT line into its tokens: words, quoted strings (kept with their quotes), `->`
/// and single punctuation characters.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = line.chars().collect();
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '#' | '.');
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        match chars[i] {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        Some('\\') => i += 2,
                        Some('"') => break,
                        Some(_) => i += 1,
                        None => return Err(format!("an unclosed string: {line}")),
                    }
                }
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'>') => i += 2,
            c if word(c) => {
                while i < chars.len() && word(chars[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        out.push(chars[start..i.min(chars.len())].iter().collect());
    }
    Ok(out)
}

/// Whether a token is an attribute list's contents: `key=value, key=value`.
fn attributes_ok(tokens: &[&str]) -> bool {
    tokens.split(|t| *t == "," || *t == ";").filter(|a| !a.is_empty()).all(|a| a.len() == 3 && a[1] == "=")
}

/// A check of the DOT that `nnc graph` writes, line by line: one `digraph` after another,
/// braces balanced, every statement a graph setting, a node, an edge or a cluster, node
/// ids declared once, and every edge between declared nodes.
fn check_dot(text: &str) -> Result<usize, String> {
    let mut graphs = 0;
    let mut depth = 0usize;
    let mut nodes: HashSet<String> = HashSet::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    let mut clusters: HashSet<String> = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let at = |message: &str| format!("line {}: {message}: {line}", number + 1);
        let t = tokens(line).map_err(|e| at(&e))?;
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        match t.as_slice() {
            [] if depth == 0 => {}
            ["digraph", name, "{"] if depth == 0 && name.starts_with('"') => {
                graphs += 1;
                depth = 1;
                nodes.clear();
                edges.clear();
                clusters.clear();
            }
            ["}"] if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    for (from, to) in &edges {
                        if !nodes.contains(from) || !nodes.contains(to) {
                            return Err(format!("graph {graphs}: the edge {from} -> {to} joins undeclared nodes"));
                        }
                    }
                }
            }
            ["subgraph", name, "{"] if depth > 0 => {
                if !name.starts_with("cluster_") || !clusters.insert(name.to_string()) {
                    return Err(at("a subgraph that is not a new cluster"));
                }
                depth += 1;
            }
            ["graph" | "node" | "edge", "[", inner @ .., "]", ";"] if depth == 1 => {
                if !attributes_ok(inner) {
                    return Err(at("a malformed attribute list"));
                }
            }
            [from, "->", to, rest @ ..] if depth > 0 => {
                match rest {
                    [";"] => {}
                    ["[", inner @ .., "]", ";"] if attributes_ok(inner) => {}
                    _ => return Err(at("a malformed edge")),
                }
                edges.push((from.to_string(), to.to_string()));
            }
            [id, "[", inner @ .., "]", ";"]
                if depth > 0 && !id.starts_with('"') && id.chars().all(|c| c.is_alphanumeric()) =>
            {
                if !attributes_ok(inner) || !inner.contains(&"label") {
                    return Err(at("a node without a well-formed label"));
                }
                if !nodes.insert(id.to_string()) {
                    return Err(at("a node declared twice"));
                }
            }
            // A cluster's settings: `label="primal"; style=rounded; ...`.
            inner if depth > 1 && attributes_ok(inner) => {}
            _ => return Err(at("not a statement of nnc's DOT")),
        }
    }
    if depth != 0 {
        return Err(format!("{depth} unclosed braces at the end"));
    }
    if graphs == 0 {
        return Err("no digraph".into());
    }
    Ok(graphs)
}

#[test]
fn the_dot_check_finds_broken_graphs() {
    let good = "digraph \"g\" {\n  graph [rankdir=LR];\n  n0 [label=\"x\"];\n  n1 [label=\"y = f(x)\"];\n  n0 -> n1 [label=\"[2]\"];\n}\n";
    assert_eq!(check_dot(good), Ok(1));
    assert_eq!(check_dot(&format!("{good}\n{good}")), Ok(2));
    let undeclared = good.replace("n0 -> n1", "n0 -> n2");
    assert!(check_dot(&undeclared).unwrap_err().contains("undeclared"));
    let twice = good.replace("n1 [label=\"y = f(x)\"]", "n0 [label=\"y = f(x)\"]");
    assert!(check_dot(&twice).unwrap_err().contains("declared twice"));
    assert!(check_dot(&good.replace("}\n", "")).unwrap_err().contains("unclosed"));
    assert!(check_dot(&good.replace("label=\"x\"", "label=\"x")).unwrap_err().contains("unclosed string"));
    assert!(check_dot(&format!("{good}}}\n")).is_err());
    let cluster = good
        .replace("  n1 [", "  subgraph cluster_a {\n    label=\"a\"; style=rounded;\n    n1 [")
        .replace("  n0 -> n1", "  }\n  n0 -> n1");
    assert_eq!(check_dot(&cluster), Ok(1));
    assert!(check_dot(&cluster.replace("cluster_a", "a")).is_err());
}

#[test]
fn graph_of_every_example() {
    for example in examples() {
        let dot = graph(&example, &[]);
        insta::assert_snapshot!(format!("graph_{example}"), dot);
    }
}

#[test]
fn graph_grad_of_every_example() {
    for example in examples() {
        let dot = graph(&example, &["--grad"]);
        assert!(dot.contains("subgraph cluster_primal") && dot.contains("subgraph cluster_adjoint"), "{example}");
        insta::assert_snapshot!(format!("graph_grad_{example}"), dot);
    }
}

#[test]
fn one_digraph_per_function_and_model() {
    assert_eq!(check_dot(&graph("lecture", &[])), Ok(2));
    assert_eq!(check_dot(&graph("xor", &[])), Ok(3));
    assert_eq!(check_dot(&graph("lecture", &["logistic"])), Ok(1));
    // The optimised adjoint is a well-formed graph too, and shorter.
    let plain = graph("digits_mlp", &["--grad"]);
    let optimised = graph("digits_mlp", &["--grad", "--opt"]);
    assert!(optimised.lines().count() < plain.lines().count());
}

#[test]
fn the_lecture_function_reads_like_its_trace() {
    let dot = graph("lecture", &["f", "--grad"]);
    for label in ["x1 = v-1", "x2 = v0", "v1 = ln(v-1)", "v2 = v-1 × v0", "v3 = sin(v0)", "v5 = v4 - v3", "y_bar = 1"]
    {
        assert!(dot.contains(&format!("label=\"{label}\"")), "{label}");
    }
    assert!(dot.contains("rankdir=LR"));
    // Scalars flow along the edges, so none is labelled.
    assert!(!dot.lines().any(|l| l.contains("->") && l.contains("label=")));
}

#[test]
fn a_models_layers_show_their_source_and_parameter_counts() {
    let dot = graph("digits_cnn", &["DigitsCnn"]);
    for label in [
        "conv2d(8, kernel = 3, pad = 1)\\n80 params",
        "conv2d(16, kernel = 3, pad = 1)\\n1,168 params",
        "linear(classes)\\n650 params",
        "maxpool(2)",
    ] {
        assert!(dot.contains(&format!("label=\"{label}\"")), "{label}");
    }
    assert!(dot.contains("label=\"1.weight: [8, 1, 3, 3]\""));
    assert!(dot.contains("label=\"[B, 8, 8, 8]\""), "edges carry shapes");
}

#[test]
fn a_model_without_a_train_block_is_differentiated_as_nnc_ir_does() {
    // `nnc ir --grad` takes the output's cotangent `y_bar` as an argument; so does the graph.
    let ir = nnc(&["ir", "examples/conv_exercises.nn", "SevenByThree", "--grad"]);
    assert!(String::from_utf8_lossy(&ir.stdout).contains("y_bar: f32[B, 1, 5, 5]"));
    let dot = graph("conv_exercises", &["SevenByThree", "--grad"]);
    assert!(dot.contains("label=\"y_bar: [B, 1, 5, 5]\""), "{dot}");
    assert!(dot.contains("label=\"0.weight_bar\""));
}

#[test]
fn an_unknown_name_lists_what_there_is() {
    let output = nnc(&["graph", "--color", "never", "examples/lecture.nn", "logistc"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no function or model `logistc`; did you mean `logistic`?"), "{stderr}");
    assert!(output.stdout.is_empty());

    let output = nnc(&["graph", "--color", "never", "examples/lecture.nn", "Mlp"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("its functions and models are `f`, `logistic`"), "{stderr}");
}

#[test]
fn pictures_without_graphviz_say_how_to_install_it() {
    let empty = std::env::temp_dir().join(format!("nnc-graph-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = empty.join("cnn.png");
    for args in [
        vec!["graph", "--color", "never", "examples/lecture.nn", "f", "--format", "svg"],
        // The format from the extension of `-o`.
        vec!["graph", "--color", "never", "examples/digits_cnn.nn", "-o", out.to_str().unwrap()],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", &empty)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Graphviz's `dot` was not found on PATH"), "{stderr}");
        assert!(stderr.contains("sudo apt install graphviz") && stderr.contains("brew install graphviz"), "{stderr}");
        assert!(stderr.contains("--format dot"), "{stderr}");
    }
    assert!(!out.exists());
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn a_picture_of_several_graphs_needs_a_name_or_a_path() {
    let output = nnc(&["graph", "--color", "never", "examples/lecture.nn", "--format", "svg"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has 2 functions and models (`f`, `logistic`)"), "{stderr}");
    assert!(stderr.contains("-o FILE.svg"), "{stderr}");
}

#[test]
fn dot_goes_to_the_output_file() {
    let dir = std::env::temp_dir().join(format!("nnc-graph-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lecture.dot");
    let output = nnc(&["graph", "examples/lecture.nn", "-o", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), graph("lecture", &[]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_with_shape_errors_are_reported() {
    let dir = std::env::temp_dir().join(format!("nnc-graph-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.nn");
    std::fs::write(&path, "model M {\n    input [B, 4, 4]\n    linear(3)\n    conv2d(2, kernel = 3)\n}\n").unwrap();
    let output = nnc(&["graph", "--color", "never", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Error"));
    assert!(output.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn a_failing_dot_shows_what_it_said() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("nnc-graph-fake-dot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A stand-in for Graphviz that reads the graph and rejects it.
    let dot = dir.join("dot");
    std::fs::write(&dot, "#!/bin/sh\ncat > /dev/null\necho 'Error: <stdin>: syntax error in line 3' >&2\nexit 1\n")
        .unwrap();
    std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["graph", "--color", "never", "examples/lecture.nn", "f", "--format", "svg"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", format!("{}:/bin:/usr/bin", dir.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Graphviz's `dot` failed"), "{stderr}");
    assert!(stderr.contains("syntax error in line 3"), "{stderr}");
    assert!(output.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
