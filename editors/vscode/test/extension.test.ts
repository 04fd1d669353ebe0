// Tests extension.ts against a stub of the `vscode` module and of the language
// client (VS Code itself cannot run here), with a fake `varpulis` script as the
// binary: activation, the check command and the simulate command end to end.

import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import Module from "node:module";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, beforeEach, test } from "node:test";

/** Everything the stubs record, reset before each test. */
interface Recorded {
  commands: Map<string, (...args: unknown[]) => unknown>;
  channels: Map<string, string[]>;
  diagnostics: Map<string, Diagnostic[]>;
  warnings: string[];
  errors: string[];
  clients: Array<{ command: string; args: string[] }>;
}

const recorded: Recorded = {
  commands: new Map(),
  channels: new Map(),
  diagnostics: new Map(),
  warnings: [],
  errors: [],
  clients: [],
};
const settings: Record<string, unknown> = {};
let clientStartFails = false;
let openDialogResult: unknown[] | undefined;
let activeFile: string | undefined;

const uri = (fsPath: string) => ({ scheme: "file", fsPath, toString: () => `file://${fsPath}` });

class Range {
  constructor(
    readonly startLine: number,
    readonly startCharacter: number,
    readonly endLine: number,
    readonly endCharacter: number,
  ) {}
}

class Location {
  constructor(
    readonly uri: unknown,
    readonly range: Range,
  ) {}
}

class DiagnosticRelatedInformation {
  constructor(
    readonly location: Location,
    readonly message: string,
  ) {}
}

class Diagnostic {
  source?: string;
  code?: string;
  relatedInformation?: DiagnosticRelatedInformation[];
  constructor(
    readonly range: Range,
    readonly message: string,
    readonly severity: number,
  ) {}
}

const vscodeStub = {
  Range,
  Location,
  Diagnostic,
  DiagnosticRelatedInformation,
  DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
  Uri: { file: uri },
  window: {
    createOutputChannel: (name: string) => {
      const lines: string[] = [];
      recorded.channels.set(name, lines);
      const log = (line: string) => lines.push(line);
      return { appendLine: log, error: log, show: () => undefined, dispose: () => undefined };
    },
    showWarningMessage: (message: string) => recorded.warnings.push(message),
    showErrorMessage: (message: string) => recorded.errors.push(message),
    showOpenDialog: async () => openDialogResult,
    setStatusBarMessage: () => ({ dispose: () => undefined }),
    get activeTextEditor() {
      return activeFile === undefined ? undefined : { document: { uri: uri(activeFile) } };
    },
  },
  languages: {
    createDiagnosticCollection: () => ({
      set: (target: { fsPath: string }, list: Diagnostic[]) => recorded.diagnostics.set(target.fsPath, list),
      clear: () => recorded.diagnostics.clear(),
      dispose: () => undefined,
    }),
  },
  commands: {
    registerCommand: (id: string, handler: (...args: unknown[]) => unknown) => {
      recorded.commands.set(id, handler);
      return { dispose: () => undefined };
    },
  },
  workspace: {
    getConfiguration: () => ({ get: (key: string) => settings[key] }),
    onDidChangeConfiguration: () => ({ dispose: () => undefined }),
    textDocuments: [],
  },
};

class LanguageClientStub {
  constructor(_id: string, _name: string, server: { command: string; args: string[] }) {
    recorded.clients.push({ command: server.command, args: server.args });
  }
  start(): Promise<void> {
    return clientStartFails ? Promise.reject(new Error("spawn ENOENT")) : Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

const clientStub = { LanguageClient: LanguageClientStub, TransportKind: { stdio: 0 } };

type Loader = (request: string, parent: unknown, isMain: boolean) => unknown;
const moduleWithLoad = Module as unknown as { _load: Loader };
const originalLoad = moduleWithLoad._load;

let extension: { activate(context: { subscriptions: unknown[] }): Promise<void> };
let work: string;

before(() => {
  moduleWithLoad._load = (request, parent, isMain) => {
    if (request === "vscode") {
      return vscodeStub;
    }
    if (request === "vscode-languageclient/node") {
      return clientStub;
    }
    return originalLoad(request, parent, isMain);
  };
  // Loaded after the hook so that its imports get the stubs.
  extension = require("../src/extension");

  // A fake `varpulis`: answers `check` with JSON diagnostics, `simulate` with JSONL.
  work = mkdtempSync(path.join(tmpdir(), "varpulis-ext-"));
  const fake = path.join(work, "varpulis");
  writeFileSync(
    fake,
    [
      "#!/bin/sh",
      'if [ "$1" = check ]; then',
      `  echo '[{"code":"E0201","severity":"error","message":"unknown stream","file":"prog.vpl","line":2,"column":5},` +
        `{"code":"W0001","severity":"warning","message":"aggregate without window","file":"prog.vpl","line":4,"column":1,` +
        `"labels":[{"message":"window here","primary":false,"line":3,"column":2,"end_line":3,"end_column":4}]}]'`,
      "  exit 1",
      "fi",
      'if [ "$1" = simulate ]; then',
      '  echo "{\\"stream\\": \\"Hot\\", \\"bar\\": 9.9, \\"events\\": \\"$3\\"}"',
      '  echo "{\\"stream\\": \\"Cold\\", \\"bar\\": 1.0}"',
      "  exit 0",
      "fi",
      "exit 2",
    ].join("\n"),
  );
  chmodSync(fake, 0o755);
  writeFileSync(path.join(work, "prog.vpl"), "stream Hot = Reading\n");
});

after(() => {
  moduleWithLoad._load = originalLoad;
  rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  recorded.commands.clear();
  recorded.channels.clear();
  recorded.diagnostics.clear();
  recorded.warnings.length = 0;
  recorded.errors.length = 0;
  recorded.clients.length = 0;
  for (const key of Object.keys(settings)) {
    delete settings[key];
  }
  clientStartFails = false;
  openDialogResult = undefined;
  activeFile = undefined;
});

test("activation registers the commands and starts `varpulis lsp` from varpulis.path", async () => {
  settings["path"] = "/opt/bin/varpulis";
  await extension.activate({ subscriptions: [] });
  assert.deepEqual([...recorded.commands.keys()].sort(), [
    "varpulis.checkFile",
    "varpulis.restartServer",
    "varpulis.simulate",
  ]);
  assert.deepEqual(recorded.clients, [{ command: "/opt/bin/varpulis", args: ["lsp"] }]);
  assert.deepEqual(recorded.warnings, []);
});

test("a language server that cannot start gives one warning, not a failed activation", async () => {
  clientStartFails = true;
  await extension.activate({ subscriptions: [] });
  assert.deepEqual(recorded.clients, [{ command: "varpulis", args: ["lsp"] }]);
  assert.equal(recorded.warnings.length, 1);
  assert.match(recorded.warnings[0], /varpulis\.path/);
});

test("Check file prints the diagnostics and puts them in the Problems view", async () => {
  settings["path"] = path.join(work, "varpulis");
  await extension.activate({ subscriptions: [] });
  const program = path.join(work, "prog.vpl");
  await recorded.commands.get("varpulis.checkFile")?.(uri(program));

  const lines = recorded.channels.get("Varpulis") ?? [];
  assert.ok(lines[0].endsWith(`check --format json ${program}`), lines[0]);
  assert.ok(lines.includes("prog.vpl:2:5: error[E0201]: unknown stream"), lines.join("\n"));
  assert.ok(lines.includes("prog.vpl: 1 error, 1 warning"), lines.join("\n"));

  const problems = recorded.diagnostics.get(program) ?? [];
  assert.deepEqual(
    problems.map((d) => [d.code, d.severity, d.message]),
    [
      ["E0201", 0, "unknown stream"],
      ["W0001", 1, "aggregate without window"],
    ],
  );
  assert.deepEqual(problems[0].range, new Range(1, 4, 1, 5));
  const related = problems[1].relatedInformation ?? [];
  assert.deepEqual(
    related.map((r) => [r.message, r.location.range]),
    [["window here", new Range(2, 1, 2, 3)]],
  );
});

test("Simulate runs the picked events file and groups the output by stream", async () => {
  settings["path"] = path.join(work, "varpulis");
  await extension.activate({ subscriptions: [] });
  const events = path.join(work, "input.evt");
  openDialogResult = [uri(events)];
  activeFile = path.join(work, "prog.vpl");
  await recorded.commands.get("varpulis.simulate")?.();

  const text = (recorded.channels.get("Varpulis") ?? []).join("\n");
  assert.match(text, /simulate .*prog\.vpl .*input\.evt --format jsonl/);
  assert.match(text, /2 output events in 2 streams/);
  assert.match(text, /== Hot \(1\) ==\n {2}\{"bar":9\.9,"events":".*input\.evt"\}/);
  assert.match(text, /== Cold \(1\) ==/);
});

test("a missing binary is reported with a hint about varpulis.path", async () => {
  settings["path"] = path.join(work, "does-not-exist");
  await extension.activate({ subscriptions: [] });
  await recorded.commands.get("varpulis.checkFile")?.(uri(path.join(work, "prog.vpl")));
  assert.equal(recorded.errors.length, 1);
  assert.match(recorded.errors[0], /cannot run .*does-not-exist.*varpulis\.path/);
});

test("commands without a saved .vpl file explain what to do", async () => {
  await extension.activate({ subscriptions: [] });
  await recorded.commands.get("varpulis.checkFile")?.();
  assert.deepEqual(recorded.errors, ["Varpulis: open or select a saved .vpl file first."]);
});
