# jq counterpart of scenarios/filter.vpl (run with -n), for the ratio benches/run.sh prints:
# the readings above 90.0, written as the engine writes them (timestamp as RFC 3339 text).
def rfc3339:
  (. % 1000) as $ms
  | (. / 1000 | floor | strftime("%Y-%m-%dT%H:%M:%S"))
    + (if $ms == 0 then "" else "." + ("00" + ($ms | tostring))[-3:] end) + "Z";

inputs | select(.event_type == "Reading" and .value > 90.0)
| {stream: "Hot", event_type: "Hot", timestamp: (.timestamp | rfc3339), sensor, value}
