// Tokenizes VPL and .evt snippets with the real TextMate engine (vscode-textmate
// and the Oniguruma WASM build VS Code uses) and checks the scopes of key tokens.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { before, test } from "node:test";

import * as oniguruma from "vscode-oniguruma";
import * as textmate from "vscode-textmate";

// Compiled tests run from out/test/, two levels below the extension root.
const ROOT = path.join(__dirname, "..", "..");

const GRAMMARS: Record<string, string> = {
  "source.vpl": "syntaxes/vpl.tmLanguage.json",
  "source.vpl-events": "syntaxes/vpl-events.tmLanguage.json",
};

let registry: textmate.Registry;

before(async () => {
  const wasm = readFileSync(path.join(ROOT, "node_modules", "vscode-oniguruma", "release", "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns: string[]) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text: string) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName: string) => {
      const file = GRAMMARS[scopeName];
      if (file === undefined) {
        return null;
      }
      const text = readFileSync(path.join(ROOT, file), "utf8");
      return textmate.parseRawGrammar(text, file);
    },
  });
});

/** Tokenizes `source` and returns the innermost scope of each token text. */
async function scopes(scopeName: string, source: string): Promise<Array<[string, string]>> {
  const grammar = await registry.loadGrammar(scopeName);
  assert.ok(grammar, `grammar ${scopeName} loads`);
  const result: Array<[string, string]> = [];
  let state = textmate.INITIAL;
  for (const line of source.split("\n")) {
    const tokens = grammar.tokenizeLine(line, state);
    for (const token of tokens.tokens) {
      const text = line.slice(token.startIndex, token.endIndex);
      if (text.trim() !== "") {
        result.push([text.trim(), token.scopes[token.scopes.length - 1]]);
      }
    }
    state = tokens.ruleStack;
  }
  return result;
}

function scopeOf(tokens: Array<[string, string]>, text: string): string | undefined {
  return tokens.find(([t]) => t === text)?.[1];
}

test("declarations name their stream, event, function and connector", async () => {
  const tokens = await scopes(
    "source.vpl",
    [
      "event Reading extends Base:",
      "    pump: str",
      "fn band(v: float) -> str:",
      'connector Out = kafka (topic: "t")',
      "stream Hot = all Reading as r",
    ].join("\n"),
  );
  assert.equal(scopeOf(tokens, "event"), "keyword.declaration.event.vpl");
  assert.equal(scopeOf(tokens, "Reading"), "entity.name.type.event.vpl");
  assert.equal(scopeOf(tokens, "Base"), "entity.other.inherited-class.vpl");
  assert.equal(scopeOf(tokens, "pump"), "variable.other.property.field.vpl");
  assert.equal(scopeOf(tokens, "str"), "support.type.primitive.vpl");
  assert.equal(scopeOf(tokens, "band"), "entity.name.function.vpl");
  assert.equal(scopeOf(tokens, "->"), "keyword.operator.arrow.vpl");
  assert.equal(scopeOf(tokens, "Out"), "entity.name.constant.connector.vpl");
  assert.equal(scopeOf(tokens, "kafka"), "support.type.connector.vpl");
  assert.equal(scopeOf(tokens, "Hot"), "entity.name.type.stream.vpl");
  assert.equal(scopeOf(tokens, "all"), "keyword.other.all.vpl");
  assert.equal(scopeOf(tokens, "r"), "variable.parameter.alias.vpl");
});

test("pipelines: operators after a dot, sequence steps, aliases and literals", async () => {
  const tokens = await scopes(
    "source.vpl",
    [
      "stream S = Order as o",
      "    -> all Packed where order == o.id as k",
      "    .within(5m)",
      "    .not(Cancelled)",
      "    .emit as Alert (at: @2024-01-01T00:00:00Z, n: count(), ok: true)",
      "    .custom_op(1.5) # note",
    ].join("\n"),
  );
  assert.equal(scopeOf(tokens, "->"), "keyword.operator.sequence.vpl");
  assert.equal(scopeOf(tokens, "Packed"), "entity.name.type.event.vpl");
  assert.equal(scopeOf(tokens, "where"), "keyword.other.vpl");
  assert.equal(scopeOf(tokens, "id"), "variable.other.property.vpl");
  assert.equal(scopeOf(tokens, "k"), "variable.parameter.alias.vpl");
  assert.equal(scopeOf(tokens, "within"), "support.function.stream-operator.vpl");
  assert.equal(scopeOf(tokens, "5m"), "constant.numeric.duration.vpl");
  assert.equal(scopeOf(tokens, "not"), "support.function.stream-operator.vpl");
  assert.equal(scopeOf(tokens, "Cancelled"), "entity.name.type.event.vpl");
  assert.equal(scopeOf(tokens, "Alert"), "entity.name.type.event.vpl");
  assert.equal(scopeOf(tokens, "@2024-01-01T00:00:00Z"), "constant.other.timestamp.vpl");
  assert.equal(scopeOf(tokens, "count"), "support.function.builtin.vpl");
  assert.equal(scopeOf(tokens, "true"), "constant.language.boolean.vpl");
  assert.equal(scopeOf(tokens, "custom_op"), "entity.name.function.member.vpl");
  assert.equal(scopeOf(tokens, "1.5"), "constant.numeric.float.vpl");
  assert.equal(scopeOf(tokens, "# note"), "comment.line.number-sign.vpl");
});

test("word boundaries: 5min is not a duration and notes is not the keyword not", async () => {
  const tokens = await scopes("source.vpl", "let x = notes + 5min");
  assert.notEqual(scopeOf(tokens, "not"), "keyword.operator.logical.vpl");
  assert.equal(scopeOf(tokens, "5m"), undefined);
});

test("imports keep their path a string and their alias a name", async () => {
  const tokens = await scopes("source.vpl", 'import "lib/common.vpl" as common');
  assert.equal(scopeOf(tokens, "import"), "keyword.control.import.vpl");
  assert.equal(scopeOf(tokens, "lib/common.vpl"), "string.quoted.double.vpl");
  assert.equal(scopeOf(tokens, "common"), "variable.parameter.alias.vpl");
});

test("comments and strings of every kind", async () => {
  const tokens = await scopes("source.vpl", ['let s = "a # b" + \'c\\\'d\' // end', "/* x", "y */"].join("\n"));
  assert.equal(scopeOf(tokens, "// end"), "comment.line.double-slash.vpl");
  assert.equal(scopeOf(tokens, "a # b"), "string.quoted.double.vpl");
  assert.equal(scopeOf(tokens, "\\'"), "constant.character.escape.vpl");
  assert.equal(scopeOf(tokens, "y"), "comment.block.vpl");
});

test("named patterns and declaration-loop placeholders", async () => {
  const tokens = await scopes(
    "source.vpl",
    [
      "pattern P = SEQ(A as a, B+ where x == a.x, NOT C) within 5m partition by k policy skip_till_next_match",
      "for z in 1..=2:",
      "    let q = {z}",
    ].join(
      "\n",
    ),
  );
  assert.equal(scopeOf(tokens, "P"), "entity.name.type.pattern.vpl");
  assert.equal(scopeOf(tokens, "SEQ"), "keyword.operator.pattern.vpl");
  assert.equal(scopeOf(tokens, "NOT"), "keyword.operator.pattern.vpl");
  assert.equal(scopeOf(tokens, "k"), "variable.other.property.vpl");
  assert.equal(scopeOf(tokens, "policy"), "keyword.other.policy.vpl");
  assert.equal(scopeOf(tokens, "skip_till_next_match"), "variable.other.constant.policy.vpl");
  assert.equal(scopeOf(tokens, "z"), "variable.other.loop.vpl");
  assert.equal(scopeOf(tokens, "..="), "keyword.operator.range.vpl");
  assert.equal(scopeOf(tokens, "{z}"), "variable.other.placeholder.vpl");
});

test("fields on the event line, capitalised names as types, ALL_CAPS as constants", async () => {
  const tokens = await scopes(
    "source.vpl",
    ["event Ping: seq: int note: str?", "pattern P = SEQ(Login as l, Transfer where amount > LIMIT)"].join("\n"),
  );
  assert.equal(scopeOf(tokens, "seq"), "variable.other.property.field.vpl");
  assert.equal(scopeOf(tokens, "note"), "variable.other.property.field.vpl");
  assert.equal(scopeOf(tokens, "Login"), "entity.name.type.vpl");
  assert.equal(scopeOf(tokens, "Transfer"), "entity.name.type.vpl");
  assert.equal(scopeOf(tokens, "LIMIT"), "variable.other.constant.vpl");
});

test(".evt files: directives, offsets, event types, fields and JSON lines", async () => {
  const tokens = await scopes(
    "source.vpl-events",
    [
      "# two pumps",
      '@1500ms Reading { pump: "P2", bar: 9.9, ok: false }',
      "BATCH 4000",
      '{"event_type": "Reading", "data": {"bar": 3.0}}',
    ].join("\n"),
  );
  assert.equal(scopeOf(tokens, "# two pumps"), "comment.line.vpl-events");
  assert.equal(scopeOf(tokens, "@1500ms"), "constant.other.offset.vpl-events");
  assert.equal(scopeOf(tokens, "Reading"), "entity.name.type.event.vpl-events");
  assert.equal(scopeOf(tokens, "pump"), "variable.other.property.vpl-events");
  assert.equal(scopeOf(tokens, "9.9"), "constant.numeric.vpl-events");
  assert.equal(scopeOf(tokens, "false"), "constant.language.vpl-events");
  assert.equal(scopeOf(tokens, "BATCH"), "keyword.control.batch.vpl-events");
  assert.equal(scopeOf(tokens, '"event_type"'), "support.type.property-name.json.vpl-events");
});
