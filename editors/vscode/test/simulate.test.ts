// Unit tests for simulate.ts: grouping `varpulis simulate --format jsonl` output by stream.

import assert from "node:assert/strict";
import { test } from "node:test";

import { formatGroups, groupByStream, parseJsonl, streamOf, UNNAMED_STREAM } from "../src/simulate";

const OUTPUT = [
  '{"stream": "Spikes", "event_type": "Spikes", "timestamp": "1970-01-01T00:00:01Z", "pump": "P1", "after": 9.9}',
  "",
  '{"stream": "Busy", "avg_bar": 7.5, "n": 10}',
  '{"stream": "Spikes", "pump": "P2", "after": 12.0}',
  "simulation finished",
  '{"event_type": "Legacy", "x": 1}',
  "[1, 2]",
].join("\n");

test("JSONL lines become events; other lines are kept with their line numbers", () => {
  const parsed = parseJsonl(OUTPUT);
  assert.equal(parsed.events.length, 4);
  assert.deepEqual(parsed.unparsed, [
    { line: 5, text: "simulation finished" },
    { line: 7, text: "[1, 2]" },
  ]);
});

test("events are grouped by their stream field, in order of first appearance", () => {
  const groups = groupByStream(parseJsonl(OUTPUT).events);
  assert.deepEqual([...groups.keys()], ["Spikes", "Busy", "Legacy"]);
  assert.equal(groups.get("Spikes")?.length, 2);
});

test("an event without stream or event_type goes to an unnamed group", () => {
  assert.equal(streamOf({ x: 1 }), UNNAMED_STREAM);
  assert.equal(streamOf({ stream: "", event_type: "T" }), "T");
});

test("the report shows one section per stream without repeating the stream key", () => {
  const text = formatGroups(parseJsonl(OUTPUT));
  assert.equal(
    text,
    [
      "4 output events in 3 streams",
      "",
      "== Spikes (2) ==",
      '  {"timestamp":"1970-01-01T00:00:01Z","pump":"P1","after":9.9}',
      '  {"pump":"P2","after":12}',
      "",
      "== Busy (1) ==",
      '  {"avg_bar":7.5,"n":10}',
      "",
      "== Legacy (1) ==",
      '  {"x":1}',
      "",
      "== lines that are not JSON objects (2) ==",
      "  5: simulation finished",
      "  7: [1, 2]",
    ].join("\n"),
  );
});

test("no output gives an empty report", () => {
  assert.equal(formatGroups(parseJsonl("")), "0 output events in 0 streams");
});
