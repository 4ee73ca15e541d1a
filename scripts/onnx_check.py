"""Checks nnc's ONNX export against the reference implementations.

For every model of every example: train it where the example trains it (with the data the
project bundles), export it with `nnc export`, run `onnx.checker.check_model` on the file,
run it in onnxruntime on a batch of inputs, and compare with `nnc predict` on the same batch
and weights. Then the same for its loss and gradients (`nnc export --grad` against
`nnc grad`; the loss of its `train` block, or mse). Run by `scripts/onnx-check`, which
makes the virtual environment.

The models the default folders hold are listed in `EXPECTED`: each must export and agree
twice, its inference graph and its gradient graph, so that a model skipped for any reason
(a file that no longer parses, a failed run, an export that fails) fails the check by
name, as does a model the list does not know.
"""

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

TOLERANCE = 1e-4
BATCH = 5
# The size given to arguments without a default and to input sizes such as `in`.
OPEN_SIZE = 6

# Every model of the default folders, by folder and file. Each has an inference graph and
# a gradient graph, and both must export and agree: 18 and 18, the counts below. A model
# added to these folders is added here (the check fails on a model it does not list).
EXPECTED = {
    "examples": {
        "conv_exercises.nn": ["SevenByThree", "SevenByThreeStride2", "TenFilters", "FiveFilters", "Dense200"],
        "digits_cnn.nn": ["DigitsCnn"],
        "digits_mlp.nn": ["Mlp"],
        "iris.nn": ["Iris"],
        "mnist.nn": ["MnistCnn"],
        "residual.nn": ["Residual", "Logistic", "Deep"],
        "xor.nn": ["NoHidden", "OneHidden", "TwoHidden"],
    },
    "tests/onnx": {
        "every_op.nn": ["Images", "Functions", "Explicit"],
    },
}
INFERENCE_GRAPHS = 18
GRADIENT_GRAPHS = 18
ROOT = Path(__file__).resolve().parent.parent


def run(command, cwd=None, stdout_only=False):
    """Runs a command; returns (exit code, output)."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return done.returncode, done.stdout if stdout_only else done.stdout + done.stderr


def errors_of(output):
    """nnc's output from its first error on, without the warnings before it."""
    lines = output.strip().splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("error")), 0)
    return "\n".join(lines[first:]) or "no output"


def train_blocks(text):
    """The spans of the `train Model ... { ... }` blocks of a file, with the model's name."""
    blocks = []
    for match in re.finditer(r"^train\s+(\w+)[^{]*\{", text, re.M):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks.append((match.group(1), match.start(), i))
    return blocks


def with_saves(text):
    """The file with every `train` block saving its weights to `trained-Model.safetensors`."""
    out, last = [], 0
    for model, start, end in train_blocks(text):
        block = text[start:end]
        block = re.sub(r"^\s*save\s*=.*\n", "", block, flags=re.M)
        closing = block.rstrip().rfind("}")
        block = block[:closing] + f'    save = "trained-{model}.safetensors"\n' + block[closing:]
        out += [text[last:start], block]
        last = end
    out.append(text[last:])
    return "".join(out)


def data_files(text):
    """The data files a file's `train` blocks read, relative to the file."""
    return re.findall(r'(?:csv|idx)\(\s*"([^"]+)"(?:\s*,\s*"([^"]+)")?', text)


def write_safetensors(path, tensors):
    """Writes f32 tensors (name -> array) as a safetensors file."""
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def read_safetensors(path):
    """The tensors (name -> f64 array) of a safetensors file of f32 values."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return tensors


def check_gradients(nnc, source, report, weights, work, x, classes, loss):
    """Exports the loss and its gradients (`nnc export --grad`), runs them in onnxruntime,
    and compares with `nnc grad` on the same batch; returns (ok, text, ONNX operators).
    `loss` is the `--loss` setting for a model without a `train` block."""
    name = report["model"]
    onnx_path = work / f"{source.stem}-{name}.grad.onnx"
    settings = open_sizes(report) + loss
    code, output = run(
        [nnc, "export", str(source), name, "--grad", "--onnx", str(onnx_path), "--weights", str(weights), *settings]
    )
    if code != 0:
        return False, "nnc export --grad failed:\n" + errors_of(output), []
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    targets = model.graph.input[1]
    target_dims = [d.dim_param or d.dim_value for d in targets.type.tensor_type.shape.dim]
    rng = np.random.default_rng(7)
    if len(target_dims) == 1:
        t = rng.integers(0, classes, size=[x.shape[0]]).astype(np.float32)
    else:
        t = rng.uniform(0.05, 0.95, size=[x.shape[0]] + [int(d) for d in target_dims[1:]]).astype(np.float32)
    t_path = work / f"{source.stem}-{name}.labels.npy"
    np.save(t_path, t)
    x_path = work / f"{source.stem}-{name}.input.npy"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = dict(zip(names, session.run(None, {model.graph.input[0].name: x, targets.name: t})))
    grads_path = work / f"{source.stem}-{name}.grads.safetensors"
    code, output = run(
        [nnc, "grad", str(source), name, "--weights", str(weights), "--input", str(x_path), "--labels", str(t_path),
         "--out", str(grads_path), *settings]
    )
    if code != 0:
        return False, "nnc grad failed:\n" + errors_of(output), []
    expected = read_safetensors(grads_path)
    worst = 0.0
    for output_name, value in results.items():
        key = "loss" if output_name == "loss" else output_name.removesuffix("_bar")
        if key not in expected:
            return False, f"`nnc grad` wrote no `{key}`", []
        worst = max(worst, float(np.max(np.abs(np.asarray(value, np.float64) - expected[key].reshape(np.shape(value))))))
    ok = worst < TOLERANCE
    text = (
        f"{'' if ok else 'differs: '}loss and {len(results) - 1} gradients: "
        f"max |nnc grad - onnxruntime| = {worst:.2e}, {len(model.graph.node)} nodes"
    )
    return ok, text, sorted({n.op_type for n in model.graph.node})


def open_sizes(report):
    """`--arg` settings for a model's arguments without a value and its input's open sizes."""
    settings = []
    for arg in report["args"]:
        if arg["value"] == arg["name"]:
            settings += ["--arg", f"{arg['name']}={OPEN_SIZE}"]
    for dim in (report.get("input_shape") or [])[1:]:
        if not dim.isdigit() and re.fullmatch(r"[A-Za-z_]\w*", dim) and dim not in [a["name"] for a in report["args"]]:
            settings += ["--arg", f"{dim}={OPEN_SIZE}"]
    return settings


def check_model(nnc, source, report, weights, work, has_train):
    """Exports one model and compares onnxruntime with `nnc predict`; returns a result row."""
    name = report["model"]
    settings = open_sizes(report)
    onnx_path = work / f"{source.stem}-{name}.onnx"
    command = [nnc, "export", str(source), name, "--onnx", str(onnx_path), *settings]
    if weights:
        command += ["--weights", str(weights)]
    code, output = run(command)
    if code != 0:
        return {"model": name, "ok": False, "why": "nnc export failed:\n" + errors_of(output)}
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    graph_input = model.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    if not isinstance(dims[0], str):
        return {"model": name, "ok": False, "why": f"the batch dimension is not dynamic: {dims}"}
    shape = [BATCH] + [int(d) for d in dims[1:]]
    rng = np.random.default_rng(len(name))
    x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    x_path = work / f"{source.stem}-{name}.input.npy"
    np.save(x_path, x)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {graph_input.name: x})[0]
    if not weights:
        # The export holds the weights a run starts from; `nnc predict` gets the same ones.
        weights = work / f"{source.stem}-{name}.initial.safetensors"
        names = {w.name for w in model.graph.input[1:]} | {
            i.name for i in model.graph.initializer if "/" not in i.name
        }
        write_safetensors(
            weights, {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.name in names}
        )
    predicted_path = work / f"{source.stem}-{name}.nnc.npy"
    code, output = run(
        [nnc, "predict", str(source), name, "--weights", str(weights), "--input", str(x_path),
         "--output", str(predicted_path), *settings]
    )
    if code != 0:
        return {"model": name, "ok": False, "why": "nnc predict failed:\n" + errors_of(output)}
    predicted = np.load(predicted_path)
    if predicted.shape != expected.shape:
        return {"model": name, "ok": False, "why": f"shapes differ: nnc {predicted.shape}, onnxruntime {expected.shape}"}
    difference = float(np.max(np.abs(predicted.astype(np.float64) - expected.astype(np.float64))))
    loss = [] if has_train else ["--loss", "mse"]
    try:
        *gradients, gradient_ops = check_gradients(nnc, source, report, weights, work, x, expected.shape[-1], loss)
    except Exception as error:  # onnx's checker and onnxruntime raise on a malformed graph
        gradients, gradient_ops = [False, f"gradient graph rejected: {type(error).__name__}: {error}"], []
    return {
        "gradients": gradients,
        "model": name,
        "ok": difference < TOLERANCE,
        "difference": difference,
        "nodes": len(model.graph.node),
        "ops": sorted({n.op_type for n in model.graph.node}),
        "gradient_ops": gradient_ops,
        "shape": list(expected.shape),
    }


def listed_folder(folder):
    """The key of `EXPECTED` that names this folder, or None."""
    return next((name for name in EXPECTED if (ROOT / name).resolve() == Path(folder).resolve()), None)


def first_lines(text):
    """A failure's text on one line: its first line, and the first `error` line of nnc's."""
    lines = [line.strip() for line in text.splitlines() if line.strip()] or ["no output"]
    errors = [line for line in lines[1:] if line.startswith("error")]
    return " ".join(lines[:1] + errors[:1])


def compare_with_expected(kind, agreeing, why, expected, found):
    """Prints "N of M <kind> agree", M the expected count, then every expected model whose
    graph did not agree and every model found that `EXPECTED` does not list; returns whether
    all is as expected."""
    print(f"{len(agreeing & expected)} of {len(expected)} {kind} agree")
    for key in sorted(expected - agreeing):
        reason = why.get(key, "not checked: its file gave no such model, or failed before it")
        print(f"  expected, but missing or failing: {key[0]}/{key[1]} {key[2]}: {first_lines(reason)}")
    for key in sorted(found - expected):
        print(f"  not expected: {key[0]}/{key[1]} {key[2]} (list it in EXPECTED in scripts/onnx_check.py)")
    return agreeing >= expected and found <= expected


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nnc", required=True, help="the nnc binary")
    parser.add_argument(
        "folders", nargs="*", default=list(EXPECTED), help="folders of .nn files (default: examples, tests/onnx)"
    )
    parser.add_argument("--keep", help="keep the exported files in this folder")
    options = parser.parse_args()
    listed = sum(len(models) for files in EXPECTED.values() for models in files.values())
    if not listed == INFERENCE_GRAPHS == GRADIENT_GRAPHS:
        print(
            f"EXPECTED lists {listed} models, but {INFERENCE_GRAPHS} inference and {GRADIENT_GRAPHS} gradient "
            "graphs are expected; every listed model has both"
        )
        return 1
    nnc = str(Path(options.nnc).resolve())
    work = Path(options.keep).resolve() if options.keep else Path(tempfile.mkdtemp(prefix="nnc-onnx-"))
    if work.exists() and options.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    # Train in a copy, so that the examples' own folder gets no weights files. A model is
    # named (folder, file, model), the folder as `EXPECTED` names it where it lists it.
    sources, expected = [], set()
    for i, folder in enumerate(options.folders):
        copy = work / f"{i}-{Path(folder).name}"
        shutil.copytree(Path(folder), copy, ignore=shutil.ignore_patterns("*.safetensors*", "runs", "*.onnx"))
        name = listed_folder(folder)
        if name is None:
            print(f"{folder}: no list in EXPECTED; every model found must agree, none is required")
        else:
            expected |= {(name, file, model) for file, models in EXPECTED[name].items() for model in models}
        sources += [(name or folder, source) for source in sorted(copy.glob("*.nn"))]
    failures, rows = 0, []
    # (folder, file, model) -> why its inference or gradient graph did not agree.
    inference_why, gradient_why = {}, {}
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}; batch {BATCH}, tolerance {TOLERANCE}")
    for folder, source in sources:
        copy = source.parent
        text = source.read_text()
        code, output = run([nnc, "summary", str(source), "--format", "json"], stdout_only=True)
        if code != 0:
            print(f"{source.name}: nnc summary failed\n{output}")
            failures += 1
            continue
        reports = json.loads(output) if output.strip() else []
        if not reports:
            print(f"{source.name}: no models")
            continue
        trained = {}
        blocks = train_blocks(text)
        missing = [p for pair in data_files(text) for p in pair if p and not (source.parent / p).exists()]
        if blocks and not missing:
            source.write_text(with_saves(text))
            code, output = run([nnc, "run", str(source), "--out", str(work / "runs" / source.stem)], cwd=copy)
            if code != 0:
                print(f"{source.name}: nnc run failed\n{output}")
                failures += 1
                continue
            trained = {m: copy / f"trained-{m}.safetensors" for m, _, _ in blocks}
        for report in reports:
            weights = trained.get(report["model"])
            has_train = any(m == report["model"] for m, _, _ in blocks)
            try:
                row = check_model(nnc, source, report, weights, work, has_train)
            except Exception as error:  # onnx's checker and onnxruntime raise on a malformed graph
                row = {"model": report["model"], "ok": False, "why": f"rejected: {type(error).__name__}: {error}"}
            row["key"] = (folder, source.name, row["model"])
            row["weights"] = "trained" if weights else ("initial (data not bundled)" if missing else "initial")
            rows.append(row)
            if row["ok"]:
                print(
                    f"ok    {source.name:22} {row['model']:22} {row['weights']:27} output {row['shape']}, "
                    f"{row['nodes']} nodes, max |nnc predict - onnxruntime| = {row['difference']:.2e}"
                )
            else:
                failures += 1
                why = row.get("why") or f"max |nnc predict - onnxruntime| = {row['difference']:.2e}"
                inference_why[row["key"]] = why
                print(f"FAIL  {source.name:22} {row['model']:22} {why}")
            verdict, text = row.get("gradients", [False, "not checked, since the inference graph failed"])
            if not verdict:
                failures += 1
                gradient_why[row["key"]] = text
            print(f"{'ok' if verdict else 'FAIL':5} {'':22} {'':22} {'':27} {text}")
    found = {row["key"] for row in rows if row["key"][0] in EXPECTED}
    inference_ok = {row["key"] for row in rows if row["ok"]}
    gradient_ok = {row["key"] for row in rows if row.get("gradients", [False])[0]}
    ops = sorted({op for row in rows for op in row.get("ops", [])})
    gradient_ops = sorted({op for row in rows for op in row.get("gradient_ops", [])})
    print(f"ONNX operators of the inference graphs: {', '.join(ops)}")
    print(f"ONNX operators of the gradient graphs: {', '.join(gradient_ops)}")
    kinds = [
        ("inference graphs (`nnc export` against `nnc predict`)", inference_ok, inference_why),
        ("gradient graphs (`nnc export --grad` against `nnc grad`)", gradient_ok, gradient_why),
    ]
    for kind, agreeing, why in kinds:
        if not compare_with_expected(kind, agreeing, why, expected, found):
            failures += 1
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
