// Unit tests for diagnostics.ts: reading `varpulis check --format json`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { formatDiagnostic, parseCheckOutput, summarize, toZeroBasedRange } from "../src/diagnostics";

const SAMPLE = JSON.stringify([
  {
    code: "E0201",
    severity: "error",
    message: "unknown stream `Readngs`",
    file: "pumps.vpl",
    line: 3,
    column: 14,
    end_line: 3,
    end_column: 21,
    help: "did you mean `Readings`?",
    notes: ["streams are declared with `stream`"],
    labels: [
      { message: "unknown stream", primary: true, line: 3, column: 14, end_line: 3, end_column: 21 },
      { message: "`Readings` is declared here", primary: false, line: 1, column: 8, end_line: 1, end_column: 16 },
    ],
  },
  { code: "W0001", severity: "warning", message: "aggregate without window", file: "pumps.vpl", line: 7, column: 5 },
]);

test("a JSON array of diagnostics is read with ranges, help and notes", () => {
  const parsed = parseCheckOutput(SAMPLE);
  assert.ok(parsed.ok);
  assert.equal(parsed.diagnostics.length, 2);
  const [error, warning] = parsed.diagnostics;
  assert.equal(error.code, "E0201");
  assert.equal(error.severity, "error");
  assert.equal(error.endColumn, 21);
  assert.equal(error.help, "did you mean `Readings`?");
  assert.deepEqual(error.notes, ["streams are declared with `stream`"]);
  assert.deepEqual(error.related, [
    { message: "`Readings` is declared here", line: 1, column: 8, endLine: 1, endColumn: 16 },
  ]);
  assert.deepEqual(toZeroBasedRange(error.related[0]), { startLine: 0, startCharacter: 7, endLine: 0, endCharacter: 15 });
  assert.equal(warning.severity, "warning");
  assert.equal(warning.endLine, undefined);
});

test("empty output means no diagnostics", () => {
  assert.deepEqual(parseCheckOutput("  \n"), { ok: true, diagnostics: [] });
  assert.deepEqual(parseCheckOutput("[]"), { ok: true, diagnostics: [] });
});

test("an object with a diagnostics array is accepted", () => {
  const parsed = parseCheckOutput(JSON.stringify({ diagnostics: [{ message: "m", line: 1, column: 1 }] }));
  assert.ok(parsed.ok);
  assert.equal(parsed.diagnostics[0].severity, "error");
});

test("output that is not a diagnostics array is reported, not guessed", () => {
  assert.equal(parseCheckOutput("Syntax OK").ok, false);
  assert.equal(parseCheckOutput('{"x": 1}').ok, false);
  assert.equal(parseCheckOutput('[{"code": "E1"}]').ok, false);
});

test("unknown severities are errors and missing positions are line 1, column 1", () => {
  const parsed = parseCheckOutput('[{"message": "m", "severity": "fatal", "line": 0}]');
  assert.ok(parsed.ok);
  assert.equal(parsed.diagnostics[0].severity, "error");
  assert.equal(parsed.diagnostics[0].line, 1);
  assert.equal(parsed.diagnostics[0].column, 1);
});

test("1-based positions become a 0-based editor range", () => {
  const parsed = parseCheckOutput(SAMPLE);
  assert.ok(parsed.ok);
  assert.deepEqual(toZeroBasedRange(parsed.diagnostics[0]), {
    startLine: 2,
    startCharacter: 13,
    endLine: 2,
    endCharacter: 20,
  });
  // Without an end, one character is underlined.
  assert.deepEqual(toZeroBasedRange(parsed.diagnostics[1]), {
    startLine: 6,
    startCharacter: 4,
    endLine: 6,
    endCharacter: 5,
  });
});

test("diagnostics print as file:line:column: severity[code]: message", () => {
  const parsed = parseCheckOutput(SAMPLE);
  assert.ok(parsed.ok);
  assert.equal(
    formatDiagnostic(parsed.diagnostics[0]),
    "pumps.vpl:3:14: error[E0201]: unknown stream `Readngs`\n" +
      "    pumps.vpl:1:8: `Readings` is declared here\n" +
      "    note: streams are declared with `stream`\n" +
      "    help: did you mean `Readings`?",
  );
  assert.equal(summarize(parsed.diagnostics), "1 error, 1 warning");
  assert.equal(summarize([]), "no problems");
});
