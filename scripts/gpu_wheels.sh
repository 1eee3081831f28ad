#!/usr/bin/env bash
# Download what scripts/gpu_check.sh installs on a GPU machine that reaches no package index: wheels for
# CPython 3.12 on x86-64 Linux of the packages its CUDA image lacks (constriction, plyfile; gsply, isal
# and zstandard for the SPZ baseline; Pillow for the WebP textures of streamed SOG) and of gsplat 1.5.3 (pure
# Python; its CUDA code is compiled on first use). Their own needs (numpy, numba, llvmlite, ninja, jaxtyping,
# rich) are in that image. Also copies the fox capture (scripts/gpu_check.sh) and playbot (scripts/gpu_fit.sh).
#
#   bash scripts/gpu_wheels.sh [WHEEL_DIR]     default gpu_wheels/ (ignored by git, like gpu_data/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/gpu_wheels}"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
mkdir -p "$dest"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" constriction==0.5.0 plyfile==1.1.5 gsplat==1.5.3 \
  gsply==0.4.6 isal==1.9.1 zstandard==0.25.0 pillow==13.0.0
ls -l "$dest"
data="${PROGS_DATA:-$root/../shared/data}"
for scene in fox:transforms.json playbot:lod-meta.json; do
  name="${scene%%:*}" marker="${scene#*:}"
  if [ -f "$data/$name/$marker" ] && [ ! -e "$root/gpu_data/$name" ]; then
    mkdir -p "$root/gpu_data" && cp -r "$data/$name" "$root/gpu_data/$name" && echo "copied $data/$name to gpu_data/$name"
  fi
done
echo "carry gpu_wheels and gpu_data to the GPU machine, then run: bash scripts/gpu_check.sh gpu_data/fox"
echo "and, on the same machine, bash scripts/gpu_fit.sh gpu_data/playbot/lod-meta.json"
