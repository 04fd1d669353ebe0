// Entry point of the Varpulis VS Code extension: starts `varpulis lsp` for
// .vpl files and registers the "Check file" and "Simulate" commands. The logic
// that does not need the VS Code API lives in cli.ts, run.ts, diagnostics.ts
// and simulate.ts.

import * as path from "node:path";
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from "vscode-languageclient/node";

import { checkArgs, displayCommand, lspArgs, resolveExecutable, simulateArgs } from "./cli";
import { CheckDiagnostic, formatDiagnostic, parseCheckOutput, summarize, toZeroBasedRange } from "./diagnostics";
import { RunResult, runCli, SpawnError } from "./run";
import { formatGroups, parseJsonl } from "./simulate";

const LANGUAGE_ID = "vpl";

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  // Command output goes to "Varpulis"; the language client logs to its own channel.
  const output = vscode.window.createOutputChannel("Varpulis");
  const serverLog = vscode.window.createOutputChannel("Varpulis Language Server", { log: true });
  const checkResults = vscode.languages.createDiagnosticCollection("varpulis-check");
  context.subscriptions.push(output, serverLog, checkResults);

  context.subscriptions.push(
    vscode.commands.registerCommand("varpulis.checkFile", (uri?: vscode.Uri) =>
      checkFile(uri, output, checkResults),
    ),
    vscode.commands.registerCommand("varpulis.simulate", (uri?: vscode.Uri) => simulate(uri, output)),
    vscode.commands.registerCommand("varpulis.restartServer", () => restartClient(serverLog)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("varpulis.path")) {
        void restartClient(serverLog);
      }
    }),
  );

  await startClient(serverLog);
}

export async function deactivate(): Promise<void> {
  await stopClient();
}

function executable(): string {
  return resolveExecutable(vscode.workspace.getConfiguration("varpulis").get("path"));
}

async function startClient(log: vscode.LogOutputChannel): Promise<void> {
  const command = executable();
  const serverOptions: ServerOptions = { command, args: lspArgs(), transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: LANGUAGE_ID },
      { scheme: "untitled", language: LANGUAGE_ID },
    ],
    outputChannel: log,
  };
  const next = new LanguageClient("varpulis", "Varpulis language server", serverOptions, clientOptions);
  try {
    await next.start();
    client = next;
  } catch (error) {
    log.error(`could not start '${displayCommand(command, lspArgs())}': ${String(error)}`);
    void vscode.window.showWarningMessage(
      `Varpulis: could not start the language server ('${command} lsp'). Set "varpulis.path" to the varpulis binary.`,
    );
  }
}

async function stopClient(): Promise<void> {
  const current = client;
  client = undefined;
  if (current !== undefined) {
    await current.stop();
  }
}

async function restartClient(log: vscode.LogOutputChannel): Promise<void> {
  await stopClient();
  await startClient(log);
}

/** The .vpl file a command acts on: the clicked file, else the active editor's. */
async function targetProgram(uri: vscode.Uri | undefined): Promise<vscode.Uri | undefined> {
  const target = uri ?? vscode.window.activeTextEditor?.document.uri;
  if (target === undefined || target.scheme !== "file") {
    void vscode.window.showErrorMessage("Varpulis: open or select a saved .vpl file first.");
    return undefined;
  }
  const open = vscode.workspace.textDocuments.find((doc) => doc.uri.toString() === target.toString());
  if (open?.isDirty) {
    await open.save();
  }
  return target;
}

/** Runs the binary, echoing the command line; undefined when it could not start. */
async function run(output: vscode.OutputChannel, args: string[], cwd: string): Promise<RunResult | undefined> {
  const command = executable();
  output.appendLine(`$ ${displayCommand(command, args)}`);
  try {
    return await runCli(command, args, cwd);
  } catch (error) {
    const message = error instanceof SpawnError ? error.message : String(error);
    output.appendLine(message);
    void vscode.window.showErrorMessage(`Varpulis: ${message}. Set "varpulis.path" to the varpulis binary.`);
    return undefined;
  }
}

async function checkFile(
  uri: vscode.Uri | undefined,
  output: vscode.OutputChannel,
  checkResults: vscode.DiagnosticCollection,
): Promise<void> {
  const program = await targetProgram(uri);
  if (program === undefined) {
    return;
  }
  output.show(true);
  const result = await run(output, checkArgs(program.fsPath), path.dirname(program.fsPath));
  if (result === undefined) {
    return;
  }
  const parsed = parseCheckOutput(result.stdout);
  if (!parsed.ok) {
    output.appendLine(`Could not read the check output (${parsed.reason}):`);
    output.appendLine(result.stdout + result.stderr);
    return;
  }
  checkResults.clear();
  const byFile = new Map<string, vscode.Diagnostic[]>();
  for (const diagnostic of parsed.diagnostics) {
    output.appendLine(formatDiagnostic(diagnostic));
    const file = diagnostic.file === "" ? program.fsPath : path.resolve(path.dirname(program.fsPath), diagnostic.file);
    const list = byFile.get(file) ?? [];
    list.push(toVscodeDiagnostic(diagnostic, vscode.Uri.file(file)));
    byFile.set(file, list);
  }
  for (const [file, diagnostics] of byFile) {
    checkResults.set(vscode.Uri.file(file), diagnostics);
  }
  if (result.stderr.trim() !== "") {
    output.appendLine(result.stderr.trimEnd());
  }
  const summary = summarize(parsed.diagnostics);
  output.appendLine(`${path.basename(program.fsPath)}: ${summary}`);
  void vscode.window.setStatusBarMessage(`Varpulis check: ${summary}`, 5000);
}

function toRange(position: Parameters<typeof toZeroBasedRange>[0]): vscode.Range {
  const r = toZeroBasedRange(position);
  return new vscode.Range(r.startLine, r.startCharacter, r.endLine, r.endCharacter);
}

function toVscodeDiagnostic(diagnostic: CheckDiagnostic, file: vscode.Uri): vscode.Diagnostic {
  const range = toRange(diagnostic);
  const severities: Record<CheckDiagnostic["severity"], vscode.DiagnosticSeverity> = {
    error: vscode.DiagnosticSeverity.Error,
    warning: vscode.DiagnosticSeverity.Warning,
    info: vscode.DiagnosticSeverity.Information,
    hint: vscode.DiagnosticSeverity.Hint,
  };
  const result = new vscode.Diagnostic(range, diagnostic.message, severities[diagnostic.severity]);
  result.source = "varpulis check";
  if (diagnostic.code !== "") {
    result.code = diagnostic.code;
  }
  if (diagnostic.related.length > 0) {
    result.relatedInformation = diagnostic.related.map(
      (label) => new vscode.DiagnosticRelatedInformation(new vscode.Location(file, toRange(label)), label.message),
    );
  }
  return result;
}

async function simulate(uri: vscode.Uri | undefined, output: vscode.OutputChannel): Promise<void> {
  const program = await targetProgram(uri);
  if (program === undefined) {
    return;
  }
  const picked = await vscode.window.showOpenDialog({
    title: "Events file to replay through the program",
    canSelectMany: false,
    defaultUri: vscode.Uri.file(path.dirname(program.fsPath)),
    filters: { "Varpulis events": ["evt", "jsonl"], "All files": ["*"] },
  });
  const events = picked?.[0];
  if (events === undefined) {
    return;
  }
  output.show(true);
  const result = await run(output, simulateArgs(program.fsPath, events.fsPath), path.dirname(program.fsPath));
  if (result === undefined) {
    return;
  }
  output.appendLine(formatGroups(parseJsonl(result.stdout)));
  if (result.stderr.trim() !== "") {
    output.appendLine(result.stderr.trimEnd());
  }
  if (result.code !== 0) {
    output.appendLine(`varpulis simulate exited with code ${String(result.code)}`);
  }
}
