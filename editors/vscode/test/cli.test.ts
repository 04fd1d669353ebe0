// Unit tests for cli.ts: command lines for the varpulis binary.

import assert from "node:assert/strict";
import { test } from "node:test";

import { checkArgs, displayCommand, lspArgs, resolveExecutable, simulateArgs } from "../src/cli";

test("an empty or missing varpulis.path falls back to varpulis on PATH", () => {
  assert.equal(resolveExecutable(undefined), "varpulis");
  assert.equal(resolveExecutable(""), "varpulis");
  assert.equal(resolveExecutable("   "), "varpulis");
  assert.equal(resolveExecutable(42), "varpulis");
  assert.equal(resolveExecutable(" /opt/varpulis/bin/varpulis "), "/opt/varpulis/bin/varpulis");
});

test("the language server runs as varpulis lsp", () => {
  assert.deepEqual(lspArgs(), ["lsp"]);
});

test("check asks for JSON diagnostics on one file", () => {
  assert.deepEqual(checkArgs("/work/a b.vpl"), ["check", "--format", "json", "/work/a b.vpl"]);
});

test("simulate passes the program, then the events file, and asks for JSONL", () => {
  assert.deepEqual(simulateArgs("p.vpl", "e.evt"), ["simulate", "p.vpl", "e.evt", "--format", "jsonl"]);
});

test("displayed command lines quote words with spaces or quotes", () => {
  assert.equal(displayCommand("varpulis", ["check", "/tmp/a b.vpl"]), "varpulis check '/tmp/a b.vpl'");
  assert.equal(displayCommand("varpulis", ["it's"]), "varpulis 'it'\\''s'");
});
