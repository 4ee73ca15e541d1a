//! The extension's decisions that need no editor: where the server is, what it is told,
//! how a command line is quoted, what the status bar says. Kept apart so tests run in Node.

import * as path from "node:path";

/** The command that installs `nnc` from a clone of its repository. */
export const INSTALL_COMMAND = "cargo install --locked --path .";

/** Where the server binary was found, or why it was not. */
export type ServerLocation =
  | { kind: "found"; command: string; from: "setting" | "PATH" | "cargo" }
  | { kind: "missing"; message: string };

/** What `findServer` needs to know of the machine, so tests can stand in for it. */
export interface Machine {
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  homeDir: string;
  /** Whether `file` exists and may be executed. */
  isExecutable(file: string): boolean;
}

/**
 * Finds `nnc`: the `nnc.path` setting when it is set (`~` is the home directory, a relative
 * path is taken from `workspaceFolder`), else `nnc` on `PATH`, else `~/.cargo/bin/nnc`, where
 * `cargo install` puts it and where an editor started from a desktop often does not look.
 */
export function findServer(configured: string, workspaceFolder: string | undefined, machine: Machine): ServerLocation {
  const executable = machine.platform === "win32" ? "nnc.exe" : "nnc";
  const setting = configured.trim();
  if (setting !== "") {
    const resolved = resolveSetting(setting, workspaceFolder, machine);
    if (machine.isExecutable(resolved)) {
      return { kind: "found", command: resolved, from: "setting" };
    }
    return {
      kind: "missing",
      message:
        `The setting nnc.path names ${resolved}, which is not an executable file. ` +
        `Point it at the nnc binary, or clear it to use nnc from PATH. ` +
        `To install nnc, run \`${INSTALL_COMMAND}\` in a clone of nnc.`,
    };
  }
  const separator = machine.platform === "win32" ? ";" : ":";
  const pathVariable = machine.env.PATH ?? machine.env.Path ?? "";
  for (const directory of pathVariable.split(separator)) {
    if (directory === "") {
      continue;
    }
    const candidate = path.join(directory, executable);
    if (machine.isExecutable(candidate)) {
      return { kind: "found", command: candidate, from: "PATH" };
    }
  }
  const cargoHome = machine.env.CARGO_HOME ?? path.join(machine.homeDir, ".cargo");
  const cargoBinary = path.join(cargoHome, "bin", executable);
  if (machine.isExecutable(cargoBinary)) {
    return { kind: "found", command: cargoBinary, from: "cargo" };
  }
  return {
    kind: "missing",
    message:
      `nnc was not found on PATH or in ${path.join(cargoHome, "bin")}. ` +
      `Install it by running \`${INSTALL_COMMAND}\` in a clone of nnc, ` +
      `or set nnc.path to the binary.`,
  };
}

function resolveSetting(setting: string, workspaceFolder: string | undefined, machine: Machine): string {
  let expanded = setting;
  if (expanded === "~" || expanded.startsWith("~/")) {
    expanded = path.join(machine.homeDir, expanded.slice(1));
  }
  if (workspaceFolder !== undefined) {
    expanded = expanded.replace("${workspaceFolder}", workspaceFolder);
    if (!path.isAbsolute(expanded)) {
      expanded = path.join(workspaceFolder, expanded);
    }
  }
  return expanded;
}

/** The inlay hint switches as the server reads them (`nnc.inlayHints`). */
export interface HintSettings {
  shapes: boolean;
  params: boolean;
}

/** The `initializationOptions` sent to `nnc lsp`. */
export function initializationOptions(hints: HintSettings): { nnc: { inlayHints: HintSettings } } {
  return { nnc: { inlayHints: { shapes: hints.shapes, params: hints.params } } };
}

/** The shells a terminal may run, as far as quoting goes. */
export type ShellKind = "posix" | "powershell" | "cmd";

/** Which quoting the shell at `shellPath` wants; POSIX unless it is PowerShell or cmd. */
export function shellKind(shellPath: string | undefined, platform: NodeJS.Platform): ShellKind {
  const name = path.basename((shellPath ?? "").replace(/\\/g, "/")).toLowerCase();
  if (name.startsWith("pwsh") || name.startsWith("powershell")) {
    return "powershell";
  }
  if (name === "cmd.exe" || name === "cmd") {
    return "cmd";
  }
  if (name === "" && platform === "win32") {
    return "powershell";
  }
  return "posix";
}

/** One argument quoted for `shell`, left as it is when nothing in it needs quoting. */
export function quoteArgument(argument: string, shell: ShellKind): string {
  if (/^[A-Za-z0-9_\-./:=@%+,]+$/.test(argument)) {
    return argument;
  }
  switch (shell) {
    case "posix":
      return `'${argument.replace(/'/g, `'\\''`)}'`;
    case "powershell":
      return `'${argument.replace(/'/g, "''")}'`;
    case "cmd":
      return `"${argument.replace(/"/g, '""')}"`;
  }
}

/** A whole command line for `shell`. PowerShell needs `&` to run a quoted program. */
export function commandLine(args: readonly string[], shell: ShellKind): string {
  const quoted = args.map((argument) => quoteArgument(argument, shell));
  if (shell === "powershell" && quoted.length > 0 && quoted[0] !== args[0]) {
    return `& ${quoted.join(" ")}`;
  }
  return quoted.join(" ");
}

/** The states of the language server the status bar shows. */
export type ServerState = "starting" | "running" | "stopped" | "missing" | "failed";

/** The status bar item's text, tooltip and whether it shows a warning. */
export function statusItem(state: ServerState, detail: string): { text: string; tooltip: string; warning: boolean } {
  switch (state) {
    case "starting":
      return { text: "$(sync~spin) nnc", tooltip: `nnc lsp is starting: ${detail}`, warning: false };
    case "running":
      return { text: "$(check) nnc", tooltip: `nnc lsp is running: ${detail}. Click to restart it.`, warning: false };
    case "stopped":
      return { text: "$(circle-slash) nnc", tooltip: `nnc lsp stopped. Click to start it again.`, warning: true };
    case "missing":
      return { text: "$(warning) nnc", tooltip: detail, warning: true };
    case "failed":
      return { text: "$(error) nnc", tooltip: `nnc lsp failed: ${detail}. Click to restart it.`, warning: true };
  }
}

/** A `model`, `layer` or `fn` a file defines: the names `nnc summary` and `nnc ir` take. */
export interface Definition {
  kind: "model" | "layer" | "fn";
  name: string;
  line: number;
}

/**
 * The definitions of a file, read from the starts of its lines. This is for choosing one in
 * a list when a command is run from the palette; the server's code lenses give the name
 * directly.
 */
export function definitions(text: string): Definition[] {
  const found: Definition[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    const match = /^\s*(model|layer|fn)\s+([\p{L}_][\p{L}\p{N}_]*)/u.exec(line);
    if (match) {
      found.push({ kind: match[1] as Definition["kind"], name: match[2], line: index });
    }
  });
  return found;
}

/** The names whose gradient IR `nnc ir --grad` shows: models (with their loss) and functions. */
export function gradientTargets(text: string): Definition[] {
  return definitions(text).filter((definition) => definition.kind !== "layer");
}

/** The arguments of `nnc summary` for `file`, for one model or for all. */
export function summaryArgs(file: string, model: string | undefined): string[] {
  const args = ["summary", "--color", "never", file];
  return model === undefined ? args : [...args, model];
}

/** The arguments of `nnc ir --grad` for `file`, for one model or function or for all. */
export function gradientIrArgs(file: string, name: string | undefined): string[] {
  const args = ["ir", "--grad", "--color", "never", file];
  return name === undefined ? args : [...args, name];
}

/** The arguments of `nnc run` for `file`. */
export function runArgs(file: string): string[] {
  return ["run", file];
}

/**
 * The address of the read-only document that shows a command's output: the scheme, a path
 * that names what it shows (the tab's title), and the file and name in the query.
 */
export function outputDocumentPath(what: "summary" | "gradient-ir", file: string, name: string | undefined): string {
  const base = path.basename(file, ".nn");
  const shown = name === undefined ? base : `${base}.${name}`;
  return what === "summary" ? `/${shown}.summary.txt` : `/${shown}.grad.nnir`;
}

/**
 * The arguments a command was given: the server's code lenses pass the document's address
 * and a model name as strings; an editor menu passes the file's `Uri` object.
 */
export function lensArguments(args: readonly unknown[]): { uri: string | undefined; name: string | undefined } {
  const [uri, name] = args;
  return {
    uri: typeof uri === "string" ? uri : isUri(uri) ? uri.toString() : undefined,
    name: typeof name === "string" && name !== "" ? name : undefined,
  };
}

function isUri(value: unknown): value is { scheme: string; path: string; toString(): string } {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { scheme?: unknown }).scheme === "string" &&
    typeof (value as { path?: unknown }).path === "string"
  );
}
