#!/usr/bin/env bash
# One command on a fresh machine: create the venv, install progs with its test extras, run every test
# (slow end-to-end tests included).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The viewer's browser test drives Debian's Chromium; install it when we can (root + apt), else that
# one test skips and says why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
bash "$root/scripts/setup_env.sh" test
cd "$root"
# The package layers of docs/DESIGN.md (import-linter contract in pyproject.toml).
"$root/.venv/bin/lint-imports"
exec "$root/.venv/bin/python" -m pytest -q "$@"
