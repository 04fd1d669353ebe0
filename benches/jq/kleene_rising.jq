# jq counterpart of scenarios/kleene_rising.vpl (run with -n):
#   SEQ(StockTick as first, StockTick+ where price > first.price as rises,
#       StockTick where price > first.price as last) within 60s partition by symbol
# with the engine's default selection (docs/PATTERNS.md). See README.md.
#
# Per symbol, the open runs are kept oldest first as [first time, first price, rises]. For each
# tick: runs whose first tick is 60000 ms or more older end; every remaining run whose first price
# is below the tick's price takes it, as its first rise if it has none, else as `last`, which
# completes it (the step after a Kleene step wins over repeating it), emitting one match per run
# in run order; then the tick opens a new run. The state is one flat object: "k" + symbol -> runs,
# "o" -> this tick's matches. jq 1.6 updates an object in place only through a one-level setpath
# on a value nothing else holds (`.a[k] = v` copies the whole object), so the state stays flat.
def rfc3339:
  (. % 1000) as $ms
  | (. / 1000 | floor | strftime("%Y-%m-%dT%H:%M:%S"))
    + (if $ms == 0 then "" else "." + ("00" + ($ms | tostring))[-3:] end) + "Z";

foreach (inputs | select(.event_type == "StockTick")) as $e ({o: []};
  $e.price as $p
  | $e.timestamp as $t
  | ("k" + $e.symbol) as $k
  | [.[$k][]? | select(.[0] + 60000 > $t)] as $runs
  | setpath(["o"];
      [$runs[] | select(.[1] < $p and .[2] > 0)
       | {stream: "RisingRuns", event_type: "RisingRuns", timestamp: ($t | rfc3339),
          symbol: $e.symbol, start: .[1], end: $p, steps: .[2]}])
  | setpath([$k];
      [($runs[] | if .[1] < $p then (if .[2] > 0 then empty else [.[0], .[1], 1] end) else . end),
       [$t, $p, 0]]);
  .o[])
