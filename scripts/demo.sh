#!/usr/bin/env bash
# One command on a fresh machine: create the venv, install progs, run the demo on the embedded scene.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh" viewer,export,train,bench  # the demo draws its figure; view the result
exec "$root/.venv/bin/progs" demo "$@"
