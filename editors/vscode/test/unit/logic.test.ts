//! Tests of the extension's pure decisions: finding the server, quoting, settings, names.

import { test } from "node:test";
import * as assert from "node:assert/strict";
import {
  Machine,
  commandLine,
  definitions,
  findServer,
  gradientIrArgs,
  gradientTargets,
  initializationOptions,
  lensArguments,
  outputDocumentPath,
  quoteArgument,
  shellKind,
  statusItem,
  summaryArgs,
} from "../../src/logic";

/** A machine whose executables are the given paths. */
function machine(executables: string[], env: Record<string, string> = {}, platform: NodeJS.Platform = "linux"): Machine {
  return {
    platform,
    env,
    homeDir: "/home/ada",
    isExecutable: (file) => executables.includes(file),
  };
}

test("the setting wins over PATH", () => {
  const found = findServer("/opt/nnc/bin/nnc", undefined, machine(["/opt/nnc/bin/nnc", "/usr/bin/nnc"], { PATH: "/usr/bin" }));
  assert.deepEqual(found, { kind: "found", command: "/opt/nnc/bin/nnc", from: "setting" });
});

test("a relative setting is taken from the workspace folder, and ~ is the home directory", () => {
  const relative = findServer("target/release/nnc", "/work/nnc", machine(["/work/nnc/target/release/nnc"]));
  assert.deepEqual(relative, { kind: "found", command: "/work/nnc/target/release/nnc", from: "setting" });
  const home = findServer("~/bin/nnc", "/work/nnc", machine(["/home/ada/bin/nnc"]));
  assert.deepEqual(home, { kind: "found", command: "/home/ada/bin/nnc", from: "setting" });
  const variable = findServer("${workspaceFolder}/target/debug/nnc", "/w", machine(["/w/target/debug/nnc"]));
  assert.deepEqual(variable, { kind: "found", command: "/w/target/debug/nnc", from: "setting" });
});

test("a setting that names no executable says so and does not fall back to PATH", () => {
  const found = findServer("/nowhere/nnc", undefined, machine(["/usr/bin/nnc"], { PATH: "/usr/bin" }));
  assert.equal(found.kind, "missing");
  assert.match(found.kind === "missing" ? found.message : "", /nnc\.path names \/nowhere\/nnc/);
  assert.match(found.kind === "missing" ? found.message : "", /cargo install --locked --path \./);
});

test("without a setting, the first nnc on PATH is used", () => {
  const found = findServer("  ", undefined, machine(["/b/nnc", "/c/nnc"], { PATH: "/a::/b:/c" }));
  assert.deepEqual(found, { kind: "found", command: "/b/nnc", from: "PATH" });
});

test("cargo's bin directory is tried after PATH, CARGO_HOME first", () => {
  assert.deepEqual(findServer("", undefined, machine(["/home/ada/.cargo/bin/nnc"], { PATH: "/usr/bin" })), {
    kind: "found",
    command: "/home/ada/.cargo/bin/nnc",
    from: "cargo",
  });
  assert.deepEqual(findServer("", undefined, machine(["/opt/cargo/bin/nnc"], { PATH: "", CARGO_HOME: "/opt/cargo" })), {
    kind: "found",
    command: "/opt/cargo/bin/nnc",
    from: "cargo",
  });
});

test("a missing server's message gives the install command and the setting", () => {
  const found = findServer("", undefined, machine([], { PATH: "/usr/bin:/bin" }));
  assert.equal(found.kind, "missing");
  const message = found.kind === "missing" ? found.message : "";
  assert.match(message, /not found on PATH/);
  assert.match(message, /cargo install --locked --path \./);
  assert.match(message, /nnc\.path/);
});

test("the server's initialization options carry the hint switches", () => {
  assert.deepEqual(initializationOptions({ shapes: true, params: false }), {
    nnc: { inlayHints: { shapes: true, params: false } },
  });
});

test("arguments are quoted only when they need it", () => {
  assert.equal(quoteArgument("examples/digits_cnn.nn", "posix"), "examples/digits_cnn.nn");
  assert.equal(quoteArgument("my models/a.nn", "posix"), "'my models/a.nn'");
  assert.equal(quoteArgument("it's.nn", "posix"), `'it'\\''s.nn'`);
  assert.equal(quoteArgument("it's.nn", "powershell"), "'it''s.nn'");
  assert.equal(quoteArgument('a "b".nn', "cmd"), '"a ""b"".nn"');
  assert.equal(quoteArgument("$HOME.nn", "posix"), "'$HOME.nn'");
});

test("PowerShell runs a quoted program with &", () => {
  assert.equal(commandLine(["C:\\Program Files\\nnc.exe", "run", "a.nn"], "powershell"), "& 'C:\\Program Files\\nnc.exe' run a.nn");
  assert.equal(commandLine(["nnc", "run", "a b.nn"], "powershell"), "nnc run 'a b.nn'");
  assert.equal(commandLine(["/usr/bin/nnc", "run", "a.nn"], "posix"), "/usr/bin/nnc run a.nn");
});

test("the shell kind follows the shell's name", () => {
  assert.equal(shellKind("/bin/bash", "linux"), "posix");
  assert.equal(shellKind("/usr/bin/fish", "linux"), "posix");
  assert.equal(shellKind("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "win32"), "powershell");
  assert.equal(shellKind("pwsh", "linux"), "powershell");
  assert.equal(shellKind("C:\\Windows\\System32\\cmd.exe", "win32"), "cmd");
  assert.equal(shellKind(undefined, "win32"), "powershell");
  assert.equal(shellKind("", "darwin"), "posix");
});

test("the status bar says each state of the server", () => {
  assert.equal(statusItem("running", "/usr/bin/nnc").text, "$(check) nnc");
  assert.match(statusItem("running", "/usr/bin/nnc").tooltip, /running: \/usr\/bin\/nnc/);
  assert.equal(statusItem("starting", "x").text, "$(sync~spin) nnc");
  assert.equal(statusItem("missing", "nnc was not found").tooltip, "nnc was not found");
  assert.equal(statusItem("failed", "spawn EACCES").warning, true);
  assert.equal(statusItem("stopped", "").warning, true);
  assert.equal(statusItem("running", "").warning, false);
});

test("definitions are read from the starts of lines", () => {
  const text = [
    "/// A doc comment that mentions model Fake",
    "fn f(x1, x2) = ln(x1) + x1 * x2 - sin(x2)",
    "model DigitsCnn(classes = 10) {",
    "    input [B, 64]",
    "}",
    "layer Logistic(out) {",
    "}",
    "  model Größe {",
    "train DigitsCnn on xor() {",
  ].join("\r\n");
  assert.deepEqual(definitions(text), [
    { kind: "fn", name: "f", line: 1 },
    { kind: "model", name: "DigitsCnn", line: 2 },
    { kind: "layer", name: "Logistic", line: 5 },
    { kind: "model", name: "Größe", line: 7 },
  ]);
  assert.deepEqual(
    gradientTargets(text).map((d) => d.name),
    ["f", "DigitsCnn", "Größe"],
  );
});

test("the CLI arguments of the commands", () => {
  assert.deepEqual(summaryArgs("/w/a.nn", "M"), ["summary", "--color", "never", "/w/a.nn", "M"]);
  assert.deepEqual(summaryArgs("/w/a.nn", undefined), ["summary", "--color", "never", "/w/a.nn"]);
  assert.deepEqual(gradientIrArgs("/w/a.nn", "M"), ["ir", "--grad", "--color", "never", "/w/a.nn", "M"]);
});

test("output documents are named after the file and the model", () => {
  assert.equal(outputDocumentPath("summary", "/w/examples/digits_cnn.nn", "DigitsCnn"), "/digits_cnn.DigitsCnn.summary.txt");
  assert.equal(outputDocumentPath("gradient-ir", "/w/lecture.nn", undefined), "/lecture.grad.nnir");
});

test("code lens arguments are read defensively", () => {
  assert.deepEqual(lensArguments(["file:///w/a.nn", "M"]), { uri: "file:///w/a.nn", name: "M" });
  assert.deepEqual(lensArguments([]), { uri: undefined, name: undefined });
  assert.deepEqual(lensArguments([{ fsPath: "/w" }, 3]), { uri: undefined, name: undefined });
  assert.deepEqual(lensArguments(["file:///w/a.nn", ""]), { uri: "file:///w/a.nn", name: undefined });
  const menuUri = { scheme: "file", path: "/w/a b.nn", toString: () => "file:///w/a%20b.nn" };
  assert.deepEqual(lensArguments([menuUri, { groupId: 1 }]), { uri: "file:///w/a%20b.nn", name: undefined });
});
