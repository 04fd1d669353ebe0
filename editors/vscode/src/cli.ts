// Command lines for the `varpulis` binary. No VS Code API here, so that the
// argument building is unit-tested with `node --test`.

/** The executable used when the `varpulis.path` setting is empty. */
export const DEFAULT_EXECUTABLE = "varpulis";

/** The executable to run for a `varpulis.path` setting value. */
export function resolveExecutable(setting: unknown): string {
  if (typeof setting !== "string") {
    return DEFAULT_EXECUTABLE;
  }
  const trimmed = setting.trim();
  return trimmed === "" ? DEFAULT_EXECUTABLE : trimmed;
}

/** Arguments that start the language server over stdio. */
export function lspArgs(): string[] {
  return ["lsp"];
}

/** Arguments for `varpulis check --format json FILE`. */
export function checkArgs(file: string): string[] {
  return ["check", "--format", "json", file];
}

/** Arguments for `varpulis simulate PROGRAM EVENTS --format jsonl`. */
export function simulateArgs(program: string, events: string): string[] {
  return ["simulate", program, events, "--format", "jsonl"];
}

/** A command line as a user would type it, for the output channel. */
export function displayCommand(executable: string, args: readonly string[]): string {
  return [executable, ...args].map(quoteForDisplay).join(" ");
}

function quoteForDisplay(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}
