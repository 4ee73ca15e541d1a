// Snapshot tests of the grammar over the project's examples: each example is copied into
// test/snap/ and tokenised, and its scopes are compared with the committed `.snap` file.
// The examples are valid code, so no scope of theirs may be `invalid`. `--update` writes
// the snapshots anew; read every change before committing it.
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import * as path from "node:path";

const update = process.argv.includes("--update");
const examples = path.resolve("../../examples");
const snapshots = path.resolve("test/snap");
const names = readdirSync(examples).filter((name) => name.endsWith(".nn")).sort();

const problems = [];
for (const name of names) {
  copyFileSync(path.join(examples, name), path.join(snapshots, name));
  if (!update && !existsSync(path.join(snapshots, `${name}.snap`))) {
    problems.push(`examples/${name} has no snapshot: run \`npm run test:grammar -- --update\` and read test/snap/${name}.snap`);
  }
}
for (const name of readdirSync(snapshots).filter((name) => name.endsWith(".nn.snap"))) {
  if (!names.includes(name.slice(0, -".snap".length))) {
    problems.push(`test/snap/${name} belongs to no example: delete it`);
  }
}
if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}

const args = ["-g", "syntaxes/nn.tmLanguage.json", "-s", "source.nn", ...(update ? ["--updateSnapshot"] : []), ...names.map((n) => `test/snap/${n}`)];
const run = spawnSync(path.resolve("node_modules/.bin/vscode-tmgrammar-snap"), args, { stdio: "inherit" });
for (const name of names) {
  rmSync(path.join(snapshots, name));
}
if (run.status !== 0) {
  process.exit(run.status ?? 1);
}

for (const name of names) {
  const lines = readFileSync(path.join(snapshots, `${name}.snap`), "utf8").split("\n");
  lines.forEach((line, index) => {
    if (/\binvalid\./.test(line)) {
      problems.push(`test/snap/${name}.snap:${index + 1}: an example is marked invalid: ${line.trim()}`);
    }
  });
}
if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(`grammar snapshots: ${names.length} examples match`);
