// Runs the `varpulis` binary and collects its output. Uses Node's
// child_process only (no VS Code API), so it is tested against a fake binary.

import { spawn } from "node:child_process";

/** What a finished run of the binary printed and how it exited. */
export interface RunResult {
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Thrown when the executable cannot be started at all (e.g. not installed). */
export class SpawnError extends Error {
  constructor(
    readonly executable: string,
    readonly cause: Error,
  ) {
    super(`cannot run '${executable}': ${cause.message}`);
    this.name = "SpawnError";
  }
}

/**
 * Runs `executable args...` in `cwd` and resolves with its output once it
 * exits. A non-zero exit code is not an error: `varpulis check` exits 1 when
 * the program has errors and still prints them.
 */
export function runCli(executable: string, args: readonly string[], cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(executable, [...args], { cwd, shell: false, windowsHide: true });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (error) => reject(new SpawnError(executable, error)));
    child.on("close", (code) => {
      resolve({
        code,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
  });
}
