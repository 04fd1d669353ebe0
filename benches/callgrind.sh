#!/usr/bin/env bash
# Instruction-count regression check of the reference scenarios under callgrind (CI runs it
# from scripts/test after the tests). Builds the release binary with the default features (a
# no-op when scripts/first-command already built it) and runs benches/callgrind.py, which
# compares each scenario's instruction count with benches/callgrind-baseline.json and fails
# above +10%.
#
#   bash benches/callgrind.sh              compare with the baseline
#   bash benches/callgrind.sh --update     rewrite the baseline (after an intended change)
#   bash benches/callgrind.sh --runs 3     measure three times and show the spread
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
command -v valgrind >/dev/null 2>&1 || {
    echo "callgrind: valgrind is missing; \`bash scripts/setup\` installs it" >&2
    exit 2
}
# The baseline is of this build: default features (scripts/image later rebuilds with kafka).
cargo build --release --quiet --bin varpulis
exec python3 benches/callgrind.py --bin "$CARGO_TARGET_DIR/release/varpulis" "$@"
