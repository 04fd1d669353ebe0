// Unit tests for run.ts, against a fake `varpulis` (node running an inline script).

import assert from "node:assert/strict";
import { test } from "node:test";

import { runCli, SpawnError } from "../src/run";

test("stdout, stderr and a non-zero exit code are all collected", async () => {
  const script = "process.stdout.write('[]'); process.stderr.write('warn'); process.exit(1)";
  const result = await runCli(process.execPath, ["-e", script]);
  assert.deepEqual(result, { code: 1, stdout: "[]", stderr: "warn" });
});

test("arguments reach the binary unchanged, spaces included", async () => {
  const script = "process.stdout.write(JSON.stringify(process.argv.slice(1)))";
  const result = await runCli(process.execPath, ["-e", script, "check", "a b.vpl"]);
  assert.deepEqual(JSON.parse(result.stdout), ["check", "a b.vpl"]);
});

test("a missing binary is a SpawnError naming the executable", async () => {
  await assert.rejects(runCli("/nonexistent/varpulis", ["check"]), (error: unknown) => {
    assert.ok(error instanceof SpawnError);
    assert.equal(error.executable, "/nonexistent/varpulis");
    return true;
  });
});
