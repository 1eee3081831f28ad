#!/usr/bin/env bash
# One command on a fresh machine: create the venv, install progs, build the web player, run the demo
# on the embedded scene (it ends by printing the `progs view` command that plays its stream).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh" viewer,export,train,bench  # the demo draws its figure; view the result
if command -v npm >/dev/null 2>&1; then
  (cd "$root/web" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null)
else
  echo "note: npm not found; the web player (progs view) needs Node.js 20+ with npm to build" >&2
fi
exec "$root/.venv/bin/progs" demo "$@"
