#!/usr/bin/env bash
# One command on a fresh machine: create the venv, install progs with its test extras, run every test
# (slow end-to-end tests included).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh" test
cd "$root"
exec "$root/.venv/bin/python" -m pytest -q "$@"
