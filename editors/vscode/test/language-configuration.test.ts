// Checks the editing rules of language-configuration.json: which lines indent
// or outdent the next one, and which lines dedent themselves (elif/else).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

interface OnEnterRule {
  beforeText: string;
  action: { indent: string };
}

interface LanguageConfiguration {
  comments: { lineComment: string; blockComment: [string, string] };
  indentationRules: { increaseIndentPattern: string; decreaseIndentPattern: string };
  onEnterRules: OnEnterRule[];
}

// Compiled tests run from out/test/, two levels below the extension root.
const file = path.join(__dirname, "..", "..", "language-configuration.json");
// VS Code reads this file as JSONC; its only comments are whole `//` lines.
const config = JSON.parse(readFileSync(file, "utf8").replace(/^\s*\/\/.*$/gm, "")) as LanguageConfiguration;

/** The indent action VS Code takes when Enter is pressed at the end of `line`. */
function onEnter(line: string): string {
  const rule = config.onEnterRules.find((r) => new RegExp(r.beforeText).test(line));
  return rule?.action.indent ?? "none";
}

test("comments are # lines and /* */ blocks", () => {
  assert.equal(config.comments.lineComment, "#");
  assert.deepEqual(config.comments.blockComment, ["/*", "*/"]);
});

test("Enter indents after block openers, even with a trailing comment", () => {
  for (const line of ["fn f(x: int) -> int:", "    if x > 1:  # big", "    elif x:", "    else:", "    for v in xs:", "    while go:", "event A extends B:", "config:"]) {
    assert.equal(onEnter(line), "indent", line);
  }
});

test("Enter indents after a stream or pattern head that its pipeline continues", () => {
  assert.equal(onEnter("stream Hot = Reading"), "indent");
  assert.equal(onEnter("stream Seq = Order as o"), "indent");
  assert.equal(onEnter("pattern P = SEQ(A, B)"), "indent");
});

test("Enter keeps the indentation after complete lines", () => {
  assert.equal(onEnter("stream Hot = Reading.where(x > 1)"), "none");
  assert.equal(onEnter("pattern P = SEQ(A, B) within 5m"), "none");
  assert.equal(onEnter("    let y = 2"), "none");
});

test("Enter outdents after return, break and continue", () => {
  assert.equal(onEnter("        return x"), "outdent");
  assert.equal(onEnter("        break"), "outdent");
  assert.equal(onEnter("        continue  # skip"), "outdent");
});

test("elif and else lines dedent themselves; other lines do not", () => {
  const decrease = new RegExp(config.indentationRules.decreaseIndentPattern);
  assert.ok(decrease.test("    elif x > 1:"));
  assert.ok(decrease.test("    else:"));
  assert.ok(!decrease.test("    elsewhere := 1"));
  assert.ok(new RegExp(config.indentationRules.increaseIndentPattern).test("while x < 3:"));
});
