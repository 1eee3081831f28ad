#!/usr/bin/env bash
# One command on a fresh machine: create the venv, install progs with its test extras, run every test
# (slow end-to-end tests included).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The player's browser tests drive Debian's Chromium; install it when we can (root + apt), else those
# tests skip and say why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
bash "$root/scripts/setup_env.sh" test
cd "$root"
# The package layers of docs/DESIGN.md (import-linter contract in pyproject.toml).
"$root/.venv/bin/lint-imports"
# The JavaScript decoder (web/): build it (type-checked), then its conformance suite in Node's test
# runner against streams the Python encoder writes now, with what the Python decoder makes of them.
(cd "$root/web" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
fixtures="$(mktemp -d)"
trap 'rm -rf "$fixtures"' EXIT
"$root/.venv/bin/python" "$root/tests/conformance_fixtures.py" "$fixtures"
# The web player in headless Chromium against `progs serve`, compared with progs' own renders.
"$root/.venv/bin/python" "$root/tests/player_fixtures.py" "$fixtures/player"
# The neural Gaussians progs generates from one camera (web/test/gaussians.test.mjs), next to them.
"$root/.venv/bin/python" "$root/tests/gaussians_fixtures.py" "$fixtures/player"
(cd "$root/web" && PROGS_CONFORMANCE_DIR="$fixtures" PROGS_PLAYER_DIR="$fixtures/player" \
  PROGS_CLI="$root/.venv/bin/progs" node --test test/)
"$root/.venv/bin/python" -m pytest -q "$@"
