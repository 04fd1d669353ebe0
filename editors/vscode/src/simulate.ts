// Parses the JSONL printed by `varpulis simulate --format jsonl` and groups
// the output events by stream. No VS Code API here.

/** One JSON object printed by `simulate`, i.e. one output event. */
export type OutputEvent = Record<string, unknown>;

/** A line that is not a JSON object, kept so that nothing is silently lost. */
export interface UnparsedLine {
  /** 1-based line number in the output. */
  line: number;
  text: string;
}

/** The events of `simulate` output, plus the lines that were not JSON objects. */
export interface SimulateOutput {
  events: OutputEvent[];
  unparsed: UnparsedLine[];
}

/** The group name for events that carry no stream name. */
export const UNNAMED_STREAM = "(no stream)";

/** Splits JSONL output into event objects; blank lines are skipped. */
export function parseJsonl(stdout: string): SimulateOutput {
  const events: OutputEvent[] = [];
  const unparsed: UnparsedLine[] = [];
  stdout.split(/\r?\n/).forEach((raw, index) => {
    const text = raw.trim();
    if (text === "") {
      return;
    }
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value === "object" && value !== null && !Array.isArray(value)) {
        events.push(value as OutputEvent);
        return;
      }
    } catch {
      // Not JSON: reported below with the other unparsed lines.
    }
    unparsed.push({ line: index + 1, text });
  });
  return { events, unparsed };
}

/** The stream an event came from: its `stream` field, else its `event_type`. */
export function streamOf(event: OutputEvent): string {
  for (const key of ["stream", "event_type"]) {
    const value = event[key];
    if (typeof value === "string" && value !== "") {
      return value;
    }
  }
  return UNNAMED_STREAM;
}

/** Events grouped by stream, streams in order of first appearance. */
export function groupByStream(events: readonly OutputEvent[]): Map<string, OutputEvent[]> {
  const groups = new Map<string, OutputEvent[]>();
  for (const event of events) {
    const stream = streamOf(event);
    const group = groups.get(stream);
    if (group === undefined) {
      groups.set(stream, [event]);
    } else {
      group.push(event);
    }
  }
  return groups;
}

/**
 * An event as compact JSON without what the group header already shows: the
 * `stream` key, and `event_type` when it is the stream name.
 */
export function formatEvent(event: OutputEvent): string {
  const stream = streamOf(event);
  const rest = Object.fromEntries(
    Object.entries(event).filter(([key, value]) => key !== "stream" && !(key === "event_type" && value === stream)),
  );
  return JSON.stringify(rest);
}

/** The text shown in the output channel: one section per stream. */
export function formatGroups(output: SimulateOutput): string {
  const lines: string[] = [];
  const groups = groupByStream(output.events);
  const total = output.events.length;
  lines.push(`${total} output event${total === 1 ? "" : "s"} in ${groups.size} stream${groups.size === 1 ? "" : "s"}`);
  for (const [stream, events] of groups) {
    lines.push("");
    lines.push(`== ${stream} (${events.length}) ==`);
    for (const event of events) {
      lines.push(`  ${formatEvent(event)}`);
    }
  }
  if (output.unparsed.length > 0) {
    lines.push("");
    lines.push(`== lines that are not JSON objects (${output.unparsed.length}) ==`);
    for (const { line, text } of output.unparsed) {
      lines.push(`  ${line}: ${text}`);
    }
  }
  return lines.join("\n");
}
