#!/usr/bin/env bash
# Checks the editor support: builds, tests and packages the VS Code extension
# (editors/vscode), then runs the tree-sitter grammar tests (grammar/) when the
# tree-sitter CLI is installed. Works from any directory; CI calls it as is.
# The Rust side of the grammar (tests/parse_repository.rs) runs in cargo test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/editors-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n==> %s\n' "$*"; }

# --- VS Code extension -------------------------------------------------------
cd "$ROOT/editors/vscode"

step "editors/vscode: npm ci"
npm ci --no-audit --no-fund

step "editors/vscode: compile (tsc -p .)"
rm -rf out
npx tsc -p .

step "editors/vscode: unit tests (node --test out/test/)"
node --test out/test/

step "editors/vscode: package (vsce package)"
npx vsce package -o "$WORK/varpulis.vsix"
printf 'packaged %s\n' "$WORK/varpulis.vsix"

# --- tree-sitter grammar -----------------------------------------------------
cd "$ROOT/grammar"

if ! command -v tree-sitter >/dev/null 2>&1; then
    step "grammar: tree-sitter CLI not on PATH, skipping 'tree-sitter test'"
    echo "install it with: cargo install tree-sitter-cli --locked"
    echo "(cargo test -p tree-sitter-vpl still parses every .vpl file in the repository)"
    exit 0
fi

step "grammar: tree-sitter generate into a scratch folder (src/ must match grammar.js)"
tree-sitter generate -o "$WORK/generated"
stale=0
for file in parser.c grammar.json node-types.json; do
    if ! cmp -s "$WORK/generated/$file" "src/$file"; then
        echo "error: grammar/src/$file differs from what '$(tree-sitter --version)' generates" >&2
        stale=1
    fi
done
if [ "$stale" = 1 ]; then
    echo "run 'tree-sitter generate' in grammar/ and commit src/" >&2
    exit 1
fi

step "grammar: tree-sitter test"
tree-sitter test

step "grammar: tree-sitter parse test/samples/*.vpl (no ERROR or MISSING nodes)"
tree-sitter parse --quiet --stat -p . test/samples/*.vpl

step "editors check passed"
