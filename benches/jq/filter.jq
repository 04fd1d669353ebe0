# jq counterpart of scenarios/filter.vpl (run with -n), for the ratio benches/run.sh prints.
inputs | select(.event_type == "Reading" and .value > 90.0)
| {stream: "Hot", event_type: "Hot", timestamp, sensor, value}
