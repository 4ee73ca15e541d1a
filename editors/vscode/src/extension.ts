//! The VS Code extension for `.nn` files: starts `nnc lsp`, shows its state in the status
//! bar, and runs the CLI for the commands Run file, Show summary and Show gradient IR.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFile } from "node:child_process";
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, State, Trace } from "vscode-languageclient/node";
import {
  INSTALL_COMMAND,
  Machine,
  ServerLocation,
  ServerState,
  commandLine,
  findServer,
  gradientIrArgs,
  gradientTargets,
  initializationOptions,
  lensArguments,
  outputDocumentPath,
  runArgs,
  shellKind,
  statusItem,
  summaryArgs,
} from "./logic";

/** The scheme of the read-only documents that show a command's output. */
const OUTPUT_SCHEME = "nnc-output";

/** How long Show summary and Show gradient IR wait for the CLI. */
const COMMAND_TIMEOUT_MS = 120_000;

const machine: Machine = {
  platform: process.platform,
  env: process.env,
  homeDir: os.homedir(),
  isExecutable(file: string): boolean {
    try {
      if (!fs.statSync(file).isFile()) {
        return false;
      }
      fs.accessSync(file, process.platform === "win32" ? fs.constants.F_OK : fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
};

/** The texts of the output documents, by address; VS Code shows them read-only. */
class OutputDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** The extension's state while it is active. */
class Extension implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private location: ServerLocation | undefined;
  private readonly output = vscode.window.createOutputChannel("nnc");
  private readonly status = vscode.window.createStatusBarItem("nnc.status", vscode.StatusBarAlignment.Left, 0);
  private readonly documents = new OutputDocuments();
  private terminal: vscode.Terminal | undefined;

  constructor(context: vscode.ExtensionContext) {
    this.status.name = "nnc language server";
    this.status.command = "nnc.restartServer";
    const register = (name: string, handler: (...args: unknown[]) => unknown) =>
      context.subscriptions.push(vscode.commands.registerCommand(name, handler));
    register("nnc.runFile", (...args) => this.runFile(lensArguments(args).uri));
    register("nnc.showSummary", (...args) => this.showSummary(lensArguments(args)));
    register("nnc.showGradientIr", (...args) => this.showGradientIr(lensArguments(args)));
    register("nnc.restartServer", () => this.restart());
    // The names the server's code lenses carry.
    register("nnc.run", (...args) => this.runFile(lensArguments(args).uri));
    register("nnc.summary", (...args) => this.showSummary(lensArguments(args)));
    context.subscriptions.push(
      vscode.workspace.registerTextDocumentContentProvider(OUTPUT_SCHEME, this.documents),
      vscode.workspace.onDidChangeConfiguration((change) => {
        if (change.affectsConfiguration("nnc.path")) {
          void this.restart();
        }
      }),
      vscode.window.onDidCloseTerminal((closed) => {
        if (closed === this.terminal) {
          this.terminal = undefined;
        }
      }),
      this,
    );
  }

  private setStatus(state: ServerState, detail: string): void {
    const item = statusItem(state, detail);
    this.status.text = item.text;
    this.status.tooltip = item.tooltip;
    this.status.backgroundColor = item.warning ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
    this.status.show();
  }

  private locate(): ServerLocation {
    const configured = vscode.workspace.getConfiguration("nnc").get<string>("path", "");
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return findServer(configured, folder, machine);
  }

  /** The binary for the CLI commands; says what to do when there is none. */
  private binary(): string | undefined {
    const location = this.locate();
    if (location.kind === "missing") {
      void this.reportMissing(location.message);
      return undefined;
    }
    return location.command;
  }

  private async reportMissing(message: string): Promise<void> {
    this.output.appendLine(message);
    const choice = await vscode.window.showErrorMessage(message, "Copy install command", "Open settings");
    if (choice === "Copy install command") {
      await vscode.env.clipboard.writeText(INSTALL_COMMAND);
    } else if (choice === "Open settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "nnc.path");
    }
  }

  async start(): Promise<void> {
    this.location = this.locate();
    if (this.location.kind === "missing") {
      this.setStatus("missing", this.location.message);
      // Not awaited: activation must not wait for the user to dismiss the message.
      void this.reportMissing(this.location.message);
      return;
    }
    const command = this.location.command;
    this.setStatus("starting", command);
    const serverOptions: ServerOptions = { command, args: ["lsp"], options: { env: { ...process.env, NO_COLOR: "1" } } };
    const settings = vscode.workspace.getConfiguration("nnc");
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "nn" },
        { scheme: "untitled", language: "nn" },
      ],
      initializationOptions: initializationOptions({
        shapes: settings.get<boolean>("inlayHints.shapes", true),
        params: settings.get<boolean>("inlayHints.params", true),
      }),
      synchronize: { configurationSection: "nnc" },
      outputChannel: this.output,
    };
    const client = new LanguageClient("nnc", "nnc language server", serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState((change) => {
      if (this.client !== client) {
        return;
      }
      if (change.newState === State.Running) {
        this.setStatus("running", command);
      } else if (change.newState === State.Starting) {
        this.setStatus("starting", command);
      } else {
        this.setStatus("stopped", command);
      }
    });
    try {
      await client.start();
      const trace = settings.get<string>("trace.server", "off");
      await client.setTrace(Trace.fromString(trace));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.setStatus("failed", message);
      this.output.appendLine(`nnc lsp (${command}) did not start: ${message}`);
      void vscode.window.showErrorMessage(`nnc lsp (${command}) did not start: ${message}`, "Show output").then((choice) => {
        if (choice === "Show output") {
          this.output.show();
        }
      });
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      try {
        await client.stop();
      } catch (error) {
        this.output.appendLine(`nnc lsp did not stop cleanly: ${String(error)}`);
      }
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** The `.nn` document a command is about: the one named, else the active editor's. */
  private async document(uri: string | undefined): Promise<vscode.TextDocument | undefined> {
    if (uri !== undefined) {
      return vscode.workspace.openTextDocument(vscode.Uri.parse(uri));
    }
    const active = vscode.window.activeTextEditor?.document;
    if (active === undefined || active.languageId !== "nn") {
      void vscode.window.showErrorMessage("Open a .nn file first: this command works on the file in the editor.");
      return undefined;
    }
    return active;
  }

  /** The document saved to disk, since the CLI reads files; `undefined` if that failed. */
  private async saved(uri: string | undefined): Promise<string | undefined> {
    const document = await this.document(uri);
    if (document === undefined) {
      return undefined;
    }
    if (document.isUntitled) {
      void vscode.window.showErrorMessage("Save the file first: nnc runs files from disk.");
      return undefined;
    }
    if (document.isDirty && !(await document.save())) {
      void vscode.window.showErrorMessage(`${document.fileName} could not be saved.`);
      return undefined;
    }
    return document.uri.fsPath;
  }

  private workingDirectory(file: string): string {
    const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file));
    return folder?.uri.fsPath ?? path.dirname(file);
  }

  private async runFile(uri: string | undefined): Promise<void> {
    const file = await this.saved(uri);
    const binary = file === undefined ? undefined : this.binary();
    if (file === undefined || binary === undefined) {
      return;
    }
    const cwd = this.workingDirectory(file);
    if (this.terminal === undefined) {
      this.terminal = vscode.window.createTerminal({ name: "nnc", cwd });
    }
    const shell = shellKind(vscode.env.shell, process.platform);
    const relative = path.relative(cwd, file);
    const shown = relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
    this.terminal.show(true);
    this.terminal.sendText(commandLine([binary, ...runArgs(shown)], shell));
  }

  private async showSummary(target: { uri: string | undefined; name: string | undefined }): Promise<void> {
    const file = await this.saved(target.uri);
    if (file !== undefined) {
      await this.showOutput("summary", file, target.name, summaryArgs(file, target.name));
    }
  }

  private async showGradientIr(target: { uri: string | undefined; name: string | undefined }): Promise<void> {
    const file = await this.saved(target.uri);
    if (file === undefined) {
      return;
    }
    let name = target.name;
    if (name === undefined) {
      const choices = gradientTargets(fs.readFileSync(file, "utf8"));
      if (choices.length === 1) {
        name = choices[0].name;
      } else if (choices.length > 1) {
        const picked = await vscode.window.showQuickPick(
          choices.map((choice) => ({ label: choice.name, description: choice.kind, detail: `line ${choice.line + 1}` })),
          { placeHolder: "The model or function whose gradient IR to show" },
        );
        if (picked === undefined) {
          return;
        }
        name = picked.label;
      }
    }
    await this.showOutput("gradient-ir", file, name, gradientIrArgs(file, name));
  }

  /** Runs the CLI and opens what it printed in a read-only editor beside the source. */
  private async showOutput(what: "summary" | "gradient-ir", file: string, name: string | undefined, args: string[]): Promise<void> {
    const binary = this.binary();
    if (binary === undefined) {
      return;
    }
    const result = await new Promise<{ stdout: string; stderr: string; failed: string | undefined }>((resolve) => {
      execFile(
        binary,
        args,
        { cwd: this.workingDirectory(file), timeout: COMMAND_TIMEOUT_MS, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } },
        (error, stdout, stderr) => resolve({ stdout, stderr, failed: error === null ? undefined : error.message }),
      );
    });
    const text = result.failed === undefined ? result.stdout : `${result.stdout}${result.stderr}`;
    if (result.failed !== undefined) {
      this.output.appendLine(`${binary} ${args.join(" ")}: ${result.failed}`);
      void vscode.window.showErrorMessage(`nnc ${args[0]} reported errors in ${path.basename(file)}; they are shown in the editor.`);
    }
    const uri = vscode.Uri.from({ scheme: OUTPUT_SCHEME, path: outputDocumentPath(what, file, name), query: file });
    this.documents.set(uri, text);
    const document = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
  }

  dispose(): void {
    this.status.dispose();
    this.documents.dispose();
    this.output.dispose();
  }
}

let active: Extension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  active = new Extension(context);
  await active.start();
}

export async function deactivate(): Promise<void> {
  await active?.stop();
  active = undefined;
}
