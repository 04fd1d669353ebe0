// Parses the JSON printed by `varpulis check --format json` and formats it.
// No VS Code API here; extension.ts turns the result into vscode.Diagnostic.

/** The severities `varpulis check` reports. */
export type Severity = "error" | "warning" | "info" | "hint";

/** A secondary label: the other side of a conflict, with its own message. */
export interface RelatedLabel {
  message: string;
  line: number;
  column: number;
  endLine?: number;
  endColumn?: number;
}

/** One diagnostic as printed by `varpulis check --format json`. */
export interface CheckDiagnostic {
  code: string;
  severity: Severity;
  message: string;
  file: string;
  /** 1-based line of the primary label. */
  line: number;
  /** 1-based column of the primary label. */
  column: number;
  /** 1-based end line, when the checker reports a range. */
  endLine?: number;
  /** 1-based end column (exclusive), when the checker reports a range. */
  endColumn?: number;
  /** Help text, if any. */
  help?: string;
  /** Notes, if any. */
  notes: string[];
  /** Secondary labels (`labels` entries that are not `primary`). */
  related: RelatedLabel[];
}

/** A zero-based range, as editors count lines and characters. */
export interface ZeroBasedRange {
  startLine: number;
  startCharacter: number;
  endLine: number;
  endCharacter: number;
}

/** The result of reading `check` output: diagnostics, or why it could not be read. */
export type CheckOutput =
  | { ok: true; diagnostics: CheckDiagnostic[] }
  | { ok: false; reason: string };

/**
 * Reads the stdout of `varpulis check --format json`: a JSON array of
 * diagnostics (an object with a `diagnostics` array is accepted too). Empty
 * output means no diagnostics.
 */
export function parseCheckOutput(stdout: string): CheckOutput {
  const text = stdout.trim();
  if (text === "") {
    return { ok: true, diagnostics: [] };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `output is not JSON: ${(error as Error).message}` };
  }
  const items = Array.isArray(value) ? value : isRecord(value) ? value["diagnostics"] : undefined;
  if (!Array.isArray(items)) {
    return { ok: false, reason: "expected a JSON array of diagnostics" };
  }
  const diagnostics: CheckDiagnostic[] = [];
  for (const [index, item] of items.entries()) {
    const diagnostic = toDiagnostic(item);
    if (typeof diagnostic === "string") {
      return { ok: false, reason: `diagnostic ${index}: ${diagnostic}` };
    }
    diagnostics.push(diagnostic);
  }
  return { ok: true, diagnostics };
}

function toDiagnostic(item: unknown): CheckDiagnostic | string {
  if (!isRecord(item)) {
    return "not an object";
  }
  const message = item["message"];
  if (typeof message !== "string") {
    return "missing 'message'";
  }
  return {
    code: typeof item["code"] === "string" ? item["code"] : "",
    severity: toSeverity(item["severity"]),
    message,
    file: typeof item["file"] === "string" ? item["file"] : "",
    line: positiveInteger(item["line"]) ?? 1,
    column: positiveInteger(item["column"]) ?? 1,
    endLine: positiveInteger(item["end_line"] ?? item["endLine"]),
    endColumn: positiveInteger(item["end_column"] ?? item["endColumn"]),
    help: typeof item["help"] === "string" ? item["help"] : undefined,
    notes: Array.isArray(item["notes"])
      ? item["notes"].filter((note): note is string => typeof note === "string")
      : [],
    related: Array.isArray(item["labels"]) ? item["labels"].flatMap(toRelatedLabel) : [],
  };
}

function toRelatedLabel(label: unknown): RelatedLabel[] {
  if (!isRecord(label) || label["primary"] === true) {
    return [];
  }
  return [
    {
      message: typeof label["message"] === "string" ? label["message"] : "",
      line: positiveInteger(label["line"]) ?? 1,
      column: positiveInteger(label["column"]) ?? 1,
      endLine: positiveInteger(label["end_line"] ?? label["endLine"]),
      endColumn: positiveInteger(label["end_column"] ?? label["endColumn"]),
    },
  ];
}

function toSeverity(value: unknown): Severity {
  const text = typeof value === "string" ? value.toLowerCase() : "";
  if (text === "warning" || text === "warn") {
    return "warning";
  }
  if (text === "info" || text === "information" || text === "note") {
    return "info";
  }
  if (text === "hint" || text === "help") {
    return "hint";
  }
  return "error";
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The editor range of a diagnostic or label (1-based, end exclusive). Without
 * an end, or with an empty span, the range covers one character so that the
 * squiggle is visible.
 */
export function toZeroBasedRange(position: {
  line: number;
  column: number;
  endLine?: number;
  endColumn?: number;
}): ZeroBasedRange {
  const startLine = position.line - 1;
  const startCharacter = position.column - 1;
  if (position.endLine === undefined || position.endColumn === undefined) {
    return { startLine, startCharacter, endLine: startLine, endCharacter: startCharacter + 1 };
  }
  const endLine = position.endLine - 1;
  const endCharacter = position.endColumn - 1;
  const endsBeforeStart = endLine < startLine || (endLine === startLine && endCharacter <= startCharacter);
  return endsBeforeStart
    ? { startLine, startCharacter, endLine: startLine, endCharacter: startCharacter + 1 }
    : { startLine, startCharacter, endLine, endCharacter };
}

/** One diagnostic as `file:line:column: severity[code]: message`, plus help and notes. */
export function formatDiagnostic(diagnostic: CheckDiagnostic): string {
  const code = diagnostic.code === "" ? "" : `[${diagnostic.code}]`;
  const lines = [
    `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.severity}${code}: ${diagnostic.message}`,
  ];
  for (const label of diagnostic.related) {
    lines.push(`    ${diagnostic.file}:${label.line}:${label.column}: ${label.message}`);
  }
  for (const note of diagnostic.notes) {
    lines.push(`    note: ${note}`);
  }
  if (diagnostic.help !== undefined) {
    lines.push(`    help: ${diagnostic.help}`);
  }
  return lines.join("\n");
}

/** A one-line summary such as `2 errors, 1 warning`. */
export function summarize(diagnostics: readonly CheckDiagnostic[]): string {
  const count = (severity: Severity) => diagnostics.filter((d) => d.severity === severity).length;
  const parts: string[] = [];
  const errors = count("error");
  const warnings = count("warning");
  if (errors > 0) {
    parts.push(`${errors} error${errors === 1 ? "" : "s"}`);
  }
  if (warnings > 0) {
    parts.push(`${warnings} warning${warnings === 1 ? "" : "s"}`);
  }
  const others = diagnostics.length - errors - warnings;
  if (others > 0) {
    parts.push(`${others} note${others === 1 ? "" : "s"}`);
  }
  return parts.length === 0 ? "no problems" : parts.join(", ");
}
