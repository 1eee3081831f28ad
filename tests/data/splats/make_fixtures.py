"""Regenerate the splat-format fixtures of tests/test_io_splats.py (run from the repository root):

    (cd benchmarks && npm ci)            # @playcanvas/splat-transform 2.7.1, pinned in benchmarks/package.json
    .venv/bin/python tests/data/splats/make_fixtures.py

``source.ply`` is a small random SH-degree-2 cloud (seeded). splat-transform writes it as SOG
(``sog/meta.json`` + WebP), compressed PLY, SPZ and streamed SOG (``lod/lod-meta.json``: LoD 0 = the cloud,
LoD 1 = it decimated to 25 %), and converts each (and progs' own ``.splat``) back to an INRIA PLY
(``*.ref.ply``): the reference our readers are compared with.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from progs.io.ply import GaussianCloud, write_ply
from progs.io.writers import write_splat

HERE = Path(__file__).resolve().parent
TOOL = HERE.parents[2] / "benchmarks" / "node_modules" / ".bin" / "splat-transform"
N = 512


def st(*args: str) -> None:
    subprocess.run([str(TOOL), "-q", "-w", "-g", "cpu", *args], check=True, cwd=HERE)


def source_cloud() -> GaussianCloud:
    g = np.random.default_rng(27)
    means = g.normal(0, 1.0, (N, 3)) * [1.0, 0.6, 0.8]
    quats = g.normal(0, 1, (N, 4))
    return GaussianCloud(
        means=torch.tensor(means),
        sh_dc=torch.tensor(g.normal(0, 0.8, (N, 3))),
        sh_rest=torch.tensor(g.normal(0, 0.15, (N, 8, 3))),
        opacity_logits=torch.tensor(g.normal(0.5, 2.0, N)),
        log_scales=torch.tensor(g.uniform(-4.5, -2.0, (N, 3))),
        quats=torch.tensor(quats),
    )


def main() -> None:
    write_ply(HERE / "source.ply", source_cloud())
    for d in ("sog", "lod"):
        shutil.rmtree(HERE / d, ignore_errors=True)
    st("source.ply", "sog/meta.json")
    st("sog/meta.json", "sog.ref.ply")
    st("source.ply", "source.compressed.ply")
    st("source.compressed.ply", "compressed.ref.ply")
    st("source.ply", "source.spz")
    st("source.spz", "spz.ref.ply")
    write_splat(HERE / "source.splat", GaussianCloud(*[t for t in _fields(source_cloud())]))
    st("source.splat", "splat.ref.ply")
    st("source.ply", "-l", "0", "source.ply", "-F", "25%", "-l", "1", "lod/lod-meta.json")
    st("lod/0_0/meta.json", "lod0.ref.ply")
    st("lod/1_0/meta.json", "lod1.ref.ply")


def _fields(c: GaussianCloud):
    return c.means, c.sh_dc, c.sh_rest, c.opacity_logits, c.log_scales, c.quats


if __name__ == "__main__":
    main()
