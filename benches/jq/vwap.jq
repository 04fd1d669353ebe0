# jq counterpart of scenarios/vwap.vpl (run with -n): a tumbling window of 100 trades per symbol,
# emitting sum(price * volume) / sum(volume) when the 100th trade of a symbol arrives. See README.md.
#
# The state is one flat object: "k" + symbol -> [count, sum(price*volume), sum(volume)] for every
# symbol with an open window, and "o" -> this event's output or null. jq 1.6 updates an object in
# place only through a one-level setpath/delpaths on a value nothing else holds (`.a[k] = v` copies
# the whole object), so the program keeps the state flat and sticks to those two calls.
def rfc3339:
  (. % 1000) as $ms
  | (. / 1000 | floor | strftime("%Y-%m-%dT%H:%M:%S"))
    + (if $ms == 0 then "" else "." + ("00" + ($ms | tostring))[-3:] end) + "Z";

foreach (inputs | select(.event_type == "Trade")) as $e ({o: null};
  ("k" + $e.symbol) as $k
  | .[$k] as $s
  | if $s == null then
      setpath([$k]; [1, $e.price * $e.volume, $e.volume]) | setpath(["o"]; null)
    elif $s[0] == 99 then
      delpaths([[$k]])
      | setpath(["o"]; {stream: "Vwap", event_type: "Vwap", timestamp: ($e.timestamp | rfc3339),
                        symbol: $e.symbol,
                        vwap: (($s[1] + $e.price * $e.volume) / ($s[2] + $e.volume)), trades: 100})
    else
      setpath([$k]; [$s[0] + 1, $s[1] + $e.price * $e.volume, $s[2] + $e.volume]) | setpath(["o"]; null)
    end;
  .o // empty)
