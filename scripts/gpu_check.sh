#!/usr/bin/env bash
# The GPU check, from a bare CUDA machine (PyTorch with CUDA preinstalled, no network):
#
#   bash scripts/gpu_check.sh [FOX_DIR]        FOX_DIR defaults to gpu_data/fox (carry a copy of the capture)
#
# 1. installs the carried wheels in gpu_wheels/ (scripts/gpu_wheels.sh makes them: constriction, plyfile,
#    gsplat 1.5.3) and progs itself into $PROGS_GPU_SITE (pip --no-deps --target, no index);
# 2. builds gsplat's CUDA extension (JIT, TORCH_CUDA_ARCH_LIST, default 9.0 for H100/H200) and progs' C++ kernel;
# 3. runs the CUDA tests (gsplat image and gradient parity, CUDA training encodes like its CPU copy);
# 4. runs scripts/gpu_check.py: trains FOX_DIR at downscale 2 for 7,000 iterations with L = 5 on CUDA,
#    encodes, decodes every prefix, then the 500k-anchor / 1 MP memory test.
# The printout goes to gpu_check.log and the figures to gpu_check.json, in $OUT when it is set (else in
# gpu_check_out/). Extra arguments after FOX_DIR go to gpu_check.py (e.g. --iterations 2000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
data="${1:-gpu_data/fox}"
shift || true
out="${OUT:-$root/gpu_check_out}"
site="${PROGS_GPU_SITE:-/tmp/progs-gpu-site}"
wheels="${PROGS_GPU_WHEELS:-$root/gpu_wheels}"
py="${PYTHON:-python3}"
mkdir -p "$out" "$site"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-/tmp/progs-gpu-extensions}"
export PYTHONUNBUFFERED=1
log="$out/gpu_check.log"
: >"$log"
say() { echo "$@" | tee -a "$log"; }
phase() { say "== $(date +%T) $*"; }
t_start=$(date +%s)

phase "install (wheels from $wheels, into $site)"
if compgen -G "$wheels/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
else
  say "no wheels in $wheels (scripts/gpu_wheels.sh makes them); using what is installed"
fi
# progs itself: requires-python and the torch pin describe the CPU machines; here the image's torch is used.
if ! "$py" -m pip install -q --no-index --no-deps --no-build-isolation --ignore-requires-python --no-compile \
    --upgrade --target "$site" "$root" 2>>"$log"; then
  say "pip could not install progs (see above); importing it from $root/src"
  export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
"$py" - <<'PY' 2>&1 | tee -a "$log"
import torch, progs, constriction, plyfile
assert torch.cuda.is_available(), "CUDA is not available to PyTorch here"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name()}; progs from {progs.__file__}")
PY

phase "build gsplat's CUDA extension (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, MAX_JOBS=$MAX_JOBS) and progs' C++ kernel"
"$py" - <<'PY' 2>&1 | tee -a "$log"
import time
t = time.perf_counter()
import gsplat
from gsplat.cuda._backend import _C
assert _C is not None, "gsplat's CUDA extension did not build (is nvcc there?)"
print(f"gsplat {gsplat.__version__}: CUDA extension ready in {time.perf_counter() - t:.0f} s")
t = time.perf_counter()
from progs.kernels import kernel_available, kernel_error
print(f"progs C++ kernel: {'ready' if kernel_available() else 'UNAVAILABLE: ' + str(kernel_error())} "
      f"in {time.perf_counter() - t:.0f} s")
PY

phase "CUDA tests"
tests_rc=0
"$py" -m pytest -q -p no:cacheprovider tests/test_render.py tests/test_device.py -k "gsplat or cuda" 2>&1 \
  | tee -a "$log" || tests_rc=$?  # a failing test is reported; the measurements below still run

phase "train, encode, decode every prefix; memory scale test"
"$py" scripts/gpu_check.py "$data" --device cuda --json "$out/gpu_check.json" "$@" 2>&1 | tee -a "$log"
phase "done in $(( $(date +%s) - t_start )) s; $out/gpu_check.json, $log"
if [ "$tests_rc" != 0 ]; then
  say "the CUDA tests FAILED (pytest exit $tests_rc; see above)"
  exit "$tests_rc"
fi
