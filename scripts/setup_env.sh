#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install progs into it.
# Usage: bash scripts/setup_env.sh [extras]   e.g. test, or viewer,export
# Exact versions come from constraints.txt (pyproject.toml has lower bounds only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extra="${1:-}"
if [ ! -x "$root/.venv/bin/python" ]; then
  python3.11 -m venv "$root/.venv" 2>/dev/null || python3 -m venv "$root/.venv"
fi
# torch is pinned to 2.13.0 (CPU build on local disk); installing it first keeps pip from pulling another.
# setuptools and ninja build the C++ kernels (setup.py) against that torch.
"$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -c "$root/constraints.txt" \
  torch==2.13.0 setuptools ninja
spec="$root"
[ -n "$extra" ] && spec="$root[$extra]"
# --no-build-isolation: the build sees the torch above (isolation would install a second torch to build
# against). The kernels are compiled here, once, into the package (progs._kernels), not on first use.
"$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -c "$root/constraints.txt" \
  --no-build-isolation -e "$spec"
