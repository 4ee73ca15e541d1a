// The packaging smoke test: the .vsix holds what the extension needs and nothing of its
// sources, its manifest points at files it holds, and the bundle it holds activates against
// a stand-in `vscode` module, registers every contributed command and reports a missing
// server with the install command.
import { strict as assert } from "node:assert";
import { readFileSync, mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire, Module } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import yauzl from "yauzl";

const manifest = JSON.parse(readFileSync("package.json", "utf8"));
const vsix = `${manifest.name}-${manifest.version}.vsix`;

/** The entries of the zip at `file`, name to contents. */
function unzip(file) {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (error, zip) => {
      if (error) return reject(error);
      const entries = new Map();
      zip.on("entry", (entry) => {
        zip.openReadStream(entry, (streamError, stream) => {
          if (streamError) return reject(streamError);
          const chunks = [];
          stream.on("data", (chunk) => chunks.push(chunk));
          stream.on("end", () => {
            entries.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on("end", () => resolve(entries));
      zip.on("error", reject);
      zip.readEntry();
    });
  });
}

const entries = await unzip(vsix);
const names = [...entries.keys()].sort();
for (const wanted of [
  "extension.vsixmanifest",
  "extension/package.json",
  "extension/dist/extension.js",
  "extension/syntaxes/nn.tmLanguage.json",
  "extension/snippets/nn.json",
  "extension/language-configuration.json",
  "extension/readme.md",
]) {
  assert.ok(names.includes(wanted), `${vsix} lacks ${wanted}; it holds ${names.join(", ")}`);
}
for (const name of names) {
  assert.ok(!/node_modules|\/src\/|\/test\/|\.map$|\.ts$/.test(name), `${vsix} should not hold ${name}`);
}

// The packaged manifest names files the package holds.
const packaged = JSON.parse(entries.get("extension/package.json").toString("utf8"));
const inPackage = (relative) => entries.has(`extension/${path.posix.normalize(relative)}`);
assert.ok(inPackage(packaged.main), `main ${packaged.main} is not in the package`);
for (const grammar of packaged.contributes.grammars) assert.ok(inPackage(grammar.path), grammar.path);
for (const snippets of packaged.contributes.snippets) assert.ok(inPackage(snippets.path), snippets.path);
for (const language of packaged.contributes.languages) assert.ok(inPackage(language.configuration), language.configuration);
for (const file of ["syntaxes/nn.tmLanguage.json", "snippets/nn.json", "language-configuration.json"]) {
  JSON.parse(entries.get(`extension/${file}`).toString("utf8"));
}

// Load the packaged bundle with a stand-in for the editor's API.
const registered = new Set();
const errors = [];
const statusTexts = [];
// The bundle reads the module through esbuild's interop, which copies its own properties,
// so what the extension's own code uses is listed by name; the rest is a stand-in.
/** Any property is a callable stand-in, so the bundle's incidental calls succeed. */
function standIn(name) {
  const target = function () {};
  return new Proxy(target, {
    get(_target, property) {
      if (property === "then") return undefined;
      if (property === Symbol.toPrimitive) return () => name;
      if (property === "dispose") return () => {};
      return standIn(`${name}.${String(property)}`);
    },
    apply() {
      return standIn(`${name}()`);
    },
    construct() {
      return standIn(`new ${name}`);
    },
  });
}
const statusItem = {
  set text(value) {
    statusTexts.push(value);
  },
  show() {},
  dispose() {},
};
const vscode = new Proxy(
  {
    commands: {
      registerCommand(name) {
        registered.add(name);
        return { dispose() {} };
      },
      executeCommand: async () => undefined,
    },
    window: {
      createOutputChannel: () => ({ appendLine() {}, show() {}, dispose() {} }),
      createStatusBarItem: () => statusItem,
      showErrorMessage: async (message) => {
        errors.push(message);
        return undefined;
      },
      onDidCloseTerminal: () => ({ dispose() {} }),
    },
    workspace: {
      getConfiguration: () => ({ get: (key, fallback) => (key === "path" ? "/nonexistent/nnc" : fallback) }),
      workspaceFolders: undefined,
      registerTextDocumentContentProvider: () => ({ dispose() {} }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    EventEmitter: class {
      event = () => ({ dispose() {} });
      fire() {}
      dispose() {}
    },
    StatusBarAlignment: { Left: 1, Right: 2 },
    ThemeColor: class {
      constructor(id) {
        this.id = id;
      }
    },
  },
  {
    get(target, property) {
      return property in target ? target[property] : standIn(`vscode.${String(property)}`);
    },
  },
);

const scratch = mkdtempSync(path.join(os.tmpdir(), "nnc-vsix-"));
try {
  mkdirSync(path.join(scratch, "dist"));
  const bundle = path.join(scratch, "dist", "extension.js");
  writeFileSync(bundle, entries.get("extension/dist/extension.js"));
  const load = Module._load;
  Module._load = function (request, ...rest) {
    return request === "vscode" ? vscode : load.call(this, request, ...rest);
  };
  let extension;
  try {
    extension = createRequire(import.meta.url)(bundle);
  } finally {
    Module._load = load;
  }
  assert.equal(typeof extension.activate, "function");
  assert.equal(typeof extension.deactivate, "function");
  const context = { subscriptions: [], extensionPath: scratch };
  await extension.activate(context);

  const contributed = packaged.contributes.commands.map((command) => command.command);
  for (const command of contributed) {
    assert.ok(registered.has(command), `the contributed command ${command} is not registered`);
  }
  // The commands the server's code lenses carry (lsp/src/symbols.rs).
  for (const command of ["nnc.run", "nnc.summary", "nnc.showGradientIr"]) {
    assert.ok(registered.has(command), `the code lens command ${command} is not registered`);
  }
  assert.equal(errors.length, 1, `one error message for the missing server, got ${JSON.stringify(errors)}`);
  assert.match(errors[0], /nnc\.path names \/nonexistent\/nnc/);
  assert.match(errors[0], /cargo install --locked --path \./);
  assert.deepEqual(statusTexts, ["$(warning) nnc"]);
  await extension.deactivate();
  console.log(`${vsix}: ${names.length} files, ${(readFileSync(vsix).length / 1024).toFixed(1)} KiB; activates with ${registered.size} commands`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
