//! End-to-end tests of training with `nnc run`: the digits MLP reaches its accuracy and
//! leaves its files, two runs with one seed give identical weights, a run killed or
//! stopped by Ctrl-C resumes to the same weights, and every corrupt or mismatched data
//! file gives an error that names the file and the line, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory with the digits data and the given program.
fn workspace(name: &str, program: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(examples.join("data/digits.csv.gz"), dir.join("data/digits.csv.gz")).unwrap();
    std::fs::write(dir.join("model.nn"), program).unwrap();
    dir
}

fn run(dir: &Path) -> (String, String, Option<i32>) {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", "--color", "never", "model.nn"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code(),
    )
}

fn digits_mlp() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.nn")).unwrap()
}

#[test]
fn the_digits_mlp_reaches_95_percent_and_leaves_its_files() {
    let dir = workspace("mlp", &digits_mlp());
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    let metrics = std::fs::read_to_string(dir.join("runs/Mlp/metrics.csv")).unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines[0], "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds");
    assert_eq!(lines.len(), 21, "a header and 20 epochs");
    let test_accuracy: f64 = lines[20].split(',').nth(4).unwrap().parse().unwrap();
    assert!(test_accuracy >= 0.95, "test accuracy {test_accuracy}");
    assert!(stdout.contains("confusion matrix of the test set"), "{stdout}");

    // The checkpoint has PyTorch's names and shapes.
    let tensors = nnc_runtime::checkpoint::load(&dir.join("mlp.safetensors")).unwrap();
    let names: Vec<(&str, &[usize])> = tensors.iter().map(|(n, s, _)| (n.as_str(), s.as_slice())).collect();
    assert_eq!(
        names,
        [("0.bias", &[32][..]), ("0.weight", &[32, 64][..]), ("2.bias", &[10][..]), ("2.weight", &[10, 32][..])]
    );
}

#[test]
fn two_runs_with_one_seed_give_identical_weights() {
    let short = digits_mlp().replace("epochs    = 20", "epochs    = 2");
    let a = workspace("seed-a", &short);
    let b = workspace("seed-b", &short);
    assert_eq!(run(&a).2, Some(0));
    assert_eq!(run(&b).2, Some(0));
    assert_eq!(std::fs::read(a.join("mlp.safetensors")).unwrap(), std::fs::read(b.join("mlp.safetensors")).unwrap());
    // A second run in the same place keeps the first checkpoint as `.previous`.
    assert_eq!(run(&a).2, Some(0));
    assert!(a.join("mlp.safetensors.previous").exists());
}

#[test]
fn a_model_that_does_not_take_the_data_is_an_error() {
    let program = digits_mlp().replace("input [B, 64]", "input [B, 63]");
    let (_, stderr, code) = run(&workspace("shape", &program));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("has 64 features per example, but `Mlp` takes input [B, 63]"), "{stderr}");
}

#[test]
fn corrupt_data_files_are_clear_errors() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corrupt");
    let mut files: Vec<_> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 12);
    let expected = [
        ("binary_noise.csv", "line"),
        ("empty.csv", "has no data rows"),
        ("fractional_label.csv", "line 1: the label `0.5` is not a class number"),
        ("header_only.csv", "has no data rows"),
        ("infinite_value.csv", "line 1: field 3"),
        ("label_beyond_outputs.csv", "has labels up to 7, but `M` has 3 outputs"),
        ("negative_label.csv", "line 2: the label `-1` is not a class number"),
        ("non_numeric_cell.csv", "line 2: field 2 is `two`, not a number"),
        ("not_gzip_at_all.csv.gz", "is not a valid gzip file"),
        ("ragged_rows.csv", "line 2: has 4 fields, but the rows before it have 5"),
        ("single_column.csv", "needs at least one feature and a label"),
        ("too_many_features.csv", "has 5 features per example, but `M` takes input [B, 4]"),
        ("truncated.csv.gz", "is not a valid gzip file"),
    ];
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let program = format!(
            "model M {{\n    input [B, 4]\n    linear(3)\n}}\ntrain M on csv(\"data/{name}\") {{\n    loss = cross_entropy\n    epochs = 1\n}}\n"
        );
        let dir = workspace(&name.replace('.', "-"), &program);
        std::fs::copy(&path, dir.join("data").join(&name)).unwrap();
        let (_, stderr, code) = run(&dir);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.contains(&name), "{name}: the error names the file: {stderr}");
        let (_, wanted) =
            expected.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no expectation for {name}"));
        assert!(stderr.contains(wanted), "{name}: expected `{wanted}` in {stderr}");
    }
}

#[test]
fn xor_draws_three_decision_boundaries() {
    let program = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/xor.nn")).unwrap();
    let dir = workspace("xor", &program);
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    for run_dir in ["xor-0-hidden", "xor-1-hidden", "xor-2-hidden"] {
        for image in ["boundary.png", "curves.png"] {
            let bytes = std::fs::read(dir.join("runs").join(run_dir).join(image)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{run_dir}/{image} is a PNG");
        }
        let svg = std::fs::read_to_string(dir.join("runs").join(run_dir).join("boundary.svg")).unwrap();
        assert!(svg.contains("<svg"));
    }
    // One hidden layer separates XOR; none cannot.
    let accuracy = |run_dir: &str| -> f64 {
        let metrics = std::fs::read_to_string(dir.join("runs").join(run_dir).join("metrics.csv")).unwrap();
        metrics.lines().last().unwrap().split(',').nth(4).unwrap().parse().unwrap()
    };
    assert!(accuracy("xor-0-hidden") < 0.7, "{stdout}");
    assert!(accuracy("xor-1-hidden") > 0.85, "{stdout}");
}

/// An IDX file: magic (0, 0, type, rank), big-endian dimensions, bytes.
fn idx(shape: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for d in shape {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// A `.npy` file of f32 values.
fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let tensor = nnc_compiler::ir::Tensor::new(shape.to_vec(), data.iter().map(|&v| v as f64).collect());
    nnc_runtime::interchange::npy_bytes(&tensor)
}

/// Images of two classes that a CNN tells apart at once: a bright top half, or a bright
/// bottom half, with some noise.
fn two_patterns(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut images = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as u8;
        for row in 0..28 {
            for col in 0..28 {
                let bright = (row < 14) == (class == 0);
                let noise = ((i * 31 + row * 7 + col * 13) % 50) as u8;
                images.push(if bright { 200 + noise } else { noise });
            }
        }
        labels.push(class);
    }
    (images, labels)
}

#[test]
fn the_mnist_example_trains_on_idx_files() {
    let program = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mnist.nn")).unwrap();
    let dir = workspace("mnist", &program.replace("epochs    = 2", "epochs    = 1"));
    let (images, labels) = two_patterns(128);
    std::fs::create_dir_all(dir.join("data/mnist")).unwrap();
    let gz = |bytes: &[u8]| {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    std::fs::write(dir.join("data/mnist/train-images-idx3-ubyte.gz"), gz(&idx(&[128, 28, 28], &images))).unwrap();
    std::fs::write(dir.join("data/mnist/train-labels-idx1-ubyte.gz"), gz(&idx(&[128], &labels))).unwrap();
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    let metrics = std::fs::read_to_string(dir.join("runs/MnistCnn/metrics.csv")).unwrap();
    let accuracy: f64 = metrics.lines().last().unwrap().split(',').nth(4).unwrap().parse().unwrap();
    assert!(accuracy > 0.9, "{stdout}");
}

#[test]
fn npy_inputs_and_labels_train() {
    let program = "model M {\n    input [B, 4]\n    linear(2)\n}\ntrain M on npy(\"data/x.npy\", \"data/y.npy\") {\n    loss = cross_entropy\n    optimizer = sgd(lr = 0.5)\n    epochs = 30\n}\n";
    let dir = workspace("npy", program);
    let n = 64;
    let x: Vec<f32> = (0..n * 4)
        .map(|i| if (i / 4) % 2 == 0 { (i % 4) as f32 * 0.25 } else { 1.0 - (i % 4) as f32 * 0.25 })
        .collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    std::fs::write(dir.join("data/x.npy"), npy_f32(&[n, 4], &x)).unwrap();
    std::fs::write(dir.join("data/y.npy"), npy_f32(&[n], &y)).unwrap();
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("test accuracy 1.000"), "{stdout}");
}

#[test]
fn corrupt_idx_and_npy_files_are_clear_errors() {
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("wrong_magic.idx", b"\x08\x03\x00\x00rest".to_vec(), "is not an IDX file"),
        ("truncated.idx", idx(&[10, 28, 28], &[0; 100]), "should hold 7840 elements"),
        ("not_numpy.npy", b"PK\x03\x04 a zip file".to_vec(), "is not a NumPy .npy file"),
        (
            "complex.npy",
            npy_f32(&[2], &[1.0, 2.0]).iter().map(|&b| if b == b'f' { b'c' } else { b }).collect(),
            "holds `<c4`",
        ),
        (
            "short.npy",
            {
                let full = npy_f32(&[4], &[1.0, 2.0, 3.0, 4.0]);
                full[..full.len() - 8].to_vec()
            },
            "should hold 4 elements",
        ),
    ];
    for (name, bytes, wanted) in cases {
        let source = if name.ends_with(".idx") { "idx" } else { "npy" };
        let program = format!(
            "model M {{\n    input [B, 4]\n    linear(2)\n}}\ntrain M on {source}(\"data/{name}\", \"data/{name}\") {{\n    loss = cross_entropy\n}}\n"
        );
        let dir = workspace(&name.replace('.', "-"), &program);
        std::fs::write(dir.join("data").join(name), bytes).unwrap();
        let (_, stderr, code) = run(&dir);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(wanted), "{name}: expected `{wanted}` in {stderr}");
    }
}

/// `nnc run` stopped from outside, by SIGKILL and by SIGINT, at a moment the test observes
/// (a run in progress, not finished) rather than after a guessed time; the in-process
/// stops at exact steps are in `tests/resume.rs`.
#[cfg(target_os = "linux")]
mod stopped_from_outside {
    use super::{digits_mlp, workspace};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::sync::OnceLock;

    /// Epochs of the digits MLP: more than a page of epoch lines, so that a run whose
    /// output goes unread cannot finish (see `start`).
    const EPOCHS: usize = 60;

    fn program() -> String {
        let program = digits_mlp().replace("epochs    = 20", &format!("epochs    = {EPOCHS}"));
        assert!(program.contains(&format!("epochs    = {EPOCHS}")), "the example's epochs moved");
        program
    }

    /// `metrics.csv` of a run directory without its last column, the seconds an epoch took.
    fn metrics(dir: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("runs/Mlp/metrics.csv")).unwrap();
        text.lines().map(|line| line.rsplit_once(',').unwrap().0.to_string()).collect()
    }

    /// The run never stopped: its saved weights and its metrics.
    fn reference() -> &'static (Vec<u8>, Vec<String>) {
        static REFERENCE: OnceLock<(Vec<u8>, Vec<String>)> = OnceLock::new();
        REFERENCE.get_or_init(|| {
            let dir = workspace("stopped-reference", &program());
            let (_, stderr, code) = super::run(&dir);
            assert_eq!(code, Some(0), "{stderr}");
            (std::fs::read(dir.join("mlp.safetensors")).unwrap(), metrics(&dir))
        })
    }

    /// Starts `nnc run` in `dir` with its output in a pipe of one page, and reads it a byte
    /// at a time to the end of the second epoch's line, so that the checkpoint of the first
    /// is written. An epoch line is more than 80 bytes, so while the test reads no more the
    /// run blocks within about 50 epochs of the second: it cannot finish, however it is
    /// scheduled.
    fn start(dir: &Path) -> (Child, ChildStdout) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["run", "--color", "never", "model.nn"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // SAFETY: `fcntl` on a pipe this process holds open, with an integer argument.
        let size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(size > 0 && (size as usize) < (EPOCHS - 2) * 80, "the pipe holds {size} bytes");
        let (mut stdout, mut line, mut epochs) = (stdout, Vec::new(), 0);
        while epochs < 2 {
            let mut byte = [0u8];
            assert_eq!(stdout.read(&mut byte).unwrap(), 1, "the run ended before its second epoch");
            line.push(byte[0]);
            if byte[0] == b'\n' {
                epochs += usize::from(line.starts_with(b"  epoch "));
                line.clear();
            }
        }
        (child, stdout)
    }

    /// The epoch of the run checkpoint in `dir`, which must be of a run not finished.
    fn checkpoint_epoch(dir: &Path) -> usize {
        let (tensors, metadata) = nnc_runtime::checkpoint::load_with(&dir.join("runs/Mlp/checkpoint.safetensors"))
            .expect("the checkpoint left by a stopped run loads");
        assert!(tensors.iter().any(|(n, _, _)| n == "0.weight"));
        let epoch: usize = metadata["epoch"].parse().unwrap();
        assert!((1..EPOCHS).contains(&epoch), "the run was stopped after epoch {epoch} of {EPOCHS}");
        assert!(metrics(dir).len() <= EPOCHS, "metrics.csv has every epoch: the run had finished");
        epoch
    }

    /// Runs `nnc run --resume` in `dir`, which must start after `epoch`, and requires the
    /// weights and metrics of the run never stopped.
    fn resume_to_the_reference(dir: &Path, epoch: usize) {
        let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["run", "--color", "never", "--resume", "model.nn"])
            .current_dir(dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let first = stdout.lines().find(|line| line.starts_with("  epoch ")).expect("an epoch line");
        assert!(first.starts_with(&format!("  epoch {:>3} ", epoch + 1)), "resumed after epoch {epoch}: {first}");
        let (weights, rows) = reference();
        assert!(std::fs::read(dir.join("mlp.safetensors")).unwrap() == *weights, "the weights differ");
        assert_eq!(metrics(dir), *rows, "metrics.csv");
    }

    #[test]
    fn a_run_killed_while_running_resumes_to_the_same_weights() {
        let dir = workspace("killed", &program());
        let (mut child, _stdout) = start(&dir);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the run was not killed: {status}");
        let epoch = checkpoint_epoch(&dir);
        resume_to_the_reference(&dir, epoch);
    }

    #[test]
    fn ctrl_c_while_running_saves_a_checkpoint_and_resume_finishes_the_run() {
        let dir = workspace("ctrl-c", &program());
        let (mut child, mut stdout) = start(&dir);
        // SAFETY: `kill` with the id of a child this test started and has not waited for.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
        // The run, blocked on its output, goes on to the end of its next step and stops.
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let last = rest.lines().last().unwrap_or_default();
        assert_eq!(status.code(), Some(1), "not stopped by Ctrl-C: {stderr}the last line of its output: {last}");
        assert!(stderr.contains("interrupted in epoch") && stderr.contains("--resume"), "{stderr}");
        let (_, metadata) = nnc_runtime::checkpoint::load_with(&dir.join("runs/Mlp/checkpoint.safetensors")).unwrap();
        assert!(metadata["step"].parse::<usize>().unwrap() > 0, "{metadata:?}");
        let epoch = checkpoint_epoch(&dir);
        resume_to_the_reference(&dir, epoch);
    }
}

#[test]
fn init_starts_from_saved_weights_and_test_names_a_test_set() {
    let dir = workspace("init", &digits_mlp());
    assert_eq!(run(&dir).2, Some(0));
    std::fs::rename(dir.join("mlp.safetensors"), dir.join("trained.safetensors")).unwrap();
    // One epoch at a tiny learning rate from the trained weights keeps their accuracy;
    // the test set is the whole file.
    let program = digits_mlp()
        .replace("epochs    = 20", "epochs    = 1\n    init      = \"trained.safetensors\"\n    test      = csv(\"data/digits.csv.gz\", label = last, scale = 1/16)")
        .replace("lr = 0.1", "lr = 0.0001");
    std::fs::write(dir.join("model.nn"), program).unwrap();
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1797 training and 1797 test examples"), "{stdout}");
    let metrics = std::fs::read_to_string(dir.join("runs/Mlp/metrics.csv")).unwrap();
    let accuracy: f64 = metrics.lines().last().unwrap().split(',').nth(4).unwrap().parse().unwrap();
    assert!(accuracy > 0.97, "{stdout}");
}

#[test]
fn dropout_trains_reproducibly_with_its_mask() {
    let program =
        digits_mlp().replace("    relu\n", "    relu\n    dropout(0.2)\n").replace("epochs    = 20", "epochs    = 3");
    let (a, b) = (workspace("dropout-a", &program), workspace("dropout-b", &program));
    let (stdout, stderr, code) = run(&a);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(run(&b).2, Some(0));
    assert_eq!(std::fs::read(a.join("mlp.safetensors")).unwrap(), std::fs::read(b.join("mlp.safetensors")).unwrap());
    // The mask is an argument of the training step, not a parameter: the checkpoint has
    // only the layers' weights and biases.
    let names: Vec<String> =
        nnc_runtime::checkpoint::load(&a.join("mlp.safetensors")).unwrap().into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(names, ["0.bias", "0.weight", "3.bias", "3.weight"], "{stdout}");
    let ir = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["ir", "model.nn", "Mlp", "--grad", "--opt"])
        .current_dir(&a)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ir.stdout).contains("mul v5, 2.mask"), "{}", String::from_utf8_lossy(&ir.stdout));
}

#[test]
fn each_param_starts_from_its_own_initialiser() {
    // Two layers with a parameter of the same name, and one named like a layer's weight.
    let program = "layer A {\n    input x: [B, 2]\n    param w: [2, 2] = zeros\n    x @ w\n}\n\
                   layer C {\n    input x: [B, 2]\n    param w: [2, 2] = ones\n    param weight: [2] = uniform(5, 6)\n    x @ w + weight\n}\n\
                   model M {\n    input [B, 2]\n    A\n    C\n}\n\
                   train M on xor(samples = 20) {\n    loss = mse\n    optimizer = sgd(lr = 0)\n    epochs = 1\n    save = \"m.safetensors\"\n}\n";
    let dir = workspace("inits", program);
    let (_, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    let tensors = nnc_runtime::checkpoint::load(&dir.join("m.safetensors")).unwrap();
    let get = |name: &str| tensors.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone()).unwrap();
    assert_eq!(get("0.w"), [0.0; 4]);
    assert_eq!(get("1.w"), [1.0; 4]);
    assert!(get("1.weight").iter().all(|v| (5.0..6.0).contains(v)), "{:?}", get("1.weight"));
}

#[test]
fn a_diverging_run_names_the_step_and_the_op_and_saves_nothing() {
    let program = digits_mlp().replace("lr = 0.1", "lr = 1e30");
    assert!(program.contains("lr = 1e30"), "the example's learning rate moved");
    let dir = workspace("diverge", &program);
    let (_, stderr, code) = run(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("at epoch 1, step 2, first produced by `matmul` at model.nn:"), "{stderr}");
    assert!(stderr.contains("nothing was saved from this run"), "{stderr}");
    assert!(!dir.join("runs/Mlp/checkpoint.safetensors").exists());
    assert!(!dir.join("mlp.safetensors").exists());
}

/// The last line of a run directory's metrics: test loss and test accuracy.
fn last_test_metrics(dir: &Path, model: &str) -> (String, String) {
    let metrics = std::fs::read_to_string(dir.join(format!("runs/{model}/metrics.csv"))).unwrap();
    let last: Vec<String> = metrics.lines().last().unwrap().split(',').map(String::from).collect();
    (last[3].clone(), last[4].clone())
}

#[test]
fn compiled_and_interpreted_steps_train_to_the_same_accuracy() {
    let program = digits_mlp().replace("epochs    = 20", "epochs    = 3");
    let mut results = Vec::new();
    for executor in ["jit", "interp"] {
        let dir = workspace(&format!("executor-{executor}"), &program);
        let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["run", "--color", "never", "--executor", executor, "model.nn"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        results.push(last_test_metrics(&dir, "Mlp"));
    }
    // Both compute in f32; their sums differ in order, so the losses agree to about 1e-4.
    let loss = |s: &str| s.parse::<f64>().unwrap();
    assert_eq!(results[0].1, results[1].1, "test accuracy, compiled and interpreted: {results:?}");
    assert!((loss(&results[0].0) - loss(&results[1].0)).abs() < 1e-3, "{results:?}");
}

#[test]
fn bench_reports_the_time_to_the_first_step_and_steps_per_second() {
    let dir = workspace("bench", &digits_mlp());
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["bench", "--color", "never", "--seconds", "0.05", "--threads", "2", "model.nn"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("train Mlp (jit executor, 2 threads, batch 32)"), "{stdout}");
    assert!(stdout.contains("time to first step") && stdout.contains("steps per second"), "{stdout}");
    assert!(!stdout.contains("where a step's time goes"), "{stdout}");

    // With --profile, every kernel of the step with its share of the time.
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["bench", "--color", "never", "--seconds", "0.05", "--threads", "1", "--profile", "model.nn"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (_, table) = stdout.split_once("where a step's time goes (").expect("a profile");
    let kernels: usize = table.split_once(' ').unwrap().0.parse().unwrap();
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), kernels, "{stdout}");
    let shares: f64 = rows.iter().map(|row| row.split('%').next().unwrap().trim().parse::<f64>().unwrap()).sum();
    assert!((shares - 100.0).abs() < 0.5 + 0.05 * kernels as f64, "the shares add up to {shares}: {stdout}");
    assert!(rows.iter().any(|row| row.contains("matmul 32x64x32")), "{stdout}");

    // No data is read: the bench runs where the data file is missing.
    std::fs::remove_file(dir.join("data/digits.csv.gz")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["bench", "--color", "never", "--seconds", "0.05", "--executor", "interp", "--profile", "model.nn"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("the interp executor does not time the parts of a step"), "{stdout}");
}

#[test]
fn steps_split_over_two_threads_train_as_one_thread_does() {
    let cnn = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_cnn.nn")).unwrap();
    let program = cnn.replace("epochs    = 15", "epochs    = 2");
    assert!(program.contains("epochs    = 2"), "the example's epochs moved");
    let mut metrics = Vec::new();
    for threads in ["1", "2"] {
        let dir = workspace(&format!("threads-{threads}"), &program);
        let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["run", "--color", "never", "--threads", threads, "model.nn"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let csv = std::fs::read_to_string(dir.join("runs/DigitsCnn/metrics.csv")).unwrap();
        // Every column but the last, the seconds an epoch took.
        let numbers: Vec<String> =
            csv.lines().map(|line| line.rsplit_once(',').map_or(line, |(numbers, _)| numbers).to_string()).collect();
        metrics.push(numbers);
    }
    // Parts of a kernel sum in the same order as the whole: the same numbers, every epoch.
    assert_eq!(metrics[0].len(), 3, "{metrics:?}");
    assert_eq!(metrics[0], metrics[1]);
}

#[test]
fn a_number_of_threads_that_cannot_run_is_refused_with_the_reason() {
    let dir = workspace("threads-zero", &digits_mlp());
    for (threads, says) in [("0", "at least one thread"), ("many", "is not a number of threads")] {
        let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["run", "--color", "never", "--threads", threads, "model.nn"])
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
