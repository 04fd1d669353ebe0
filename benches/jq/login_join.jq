# jq counterpart of scenarios/login_join.vpl (run with -n): a temporal join of Login and
# Transaction on user with a 5 s horizon, kept when the transaction amount is above 15000.
# See README.md.
#
# Each arriving event first becomes the latest of its type for its user; it then joins when the
# latest event of the other type for that user is at most 5000 ms older (its time in
# [t - 5000, t]). The state is one flat object: "l" + user -> [time, ip] of the latest login,
# "t" + user -> [time, amount] of the latest transaction. jq 1.6 updates an object in place only
# through a one-level setpath on a value nothing else holds (`.a[k] = v` copies the whole object),
# so the program keeps the state flat.
def rfc3339:
  (. % 1000) as $ms
  | (. / 1000 | floor | strftime("%Y-%m-%dT%H:%M:%S"))
    + (if $ms == 0 then "" else "." + ("00" + ($ms | tostring))[-3:] end) + "Z";

def out($t; $user; $ip; $amount):
  {stream: "Suspicious", event_type: "Suspicious", timestamp: ($t | rfc3339),
   user: $user, ip: $ip, amount: $amount};

foreach (inputs | select(.event_type == "Login" or .event_type == "Transaction")) as $e ({};
  if $e.event_type == "Login" then setpath(["l" + $e.user]; [$e.timestamp, $e.ip])
  else setpath(["t" + $e.user]; [$e.timestamp, $e.amount])
  end;
  $e.timestamp as $t
  | if $e.event_type == "Login" then
      .["t" + $e.user] | select(. != null and .[0] >= $t - 5000 and .[1] > 15000.0)
      | out($t; $e.user; $e.ip; .[1])
    else
      select($e.amount > 15000.0)
      | .["l" + $e.user] | select(. != null and .[0] >= $t - 5000)
      | out($t; $e.user; .[1]; $e.amount)
    end)
