"""Fixtures for web/test/gaussians.test.mjs: the neural Gaussians progs generates from one camera, which
the JavaScript NeuralGaussians (web/src/gaussians.ts) must reproduce.

    python tests/gaussians_fixtures.py OUT_DIR

Decodes the GPU-trained fox stream (benchmarks/results/gpu/h200_fox_6400.progs), runs
``model.generate(camera, lod=2, cull=False)`` for a fixed camera outside the scene's cube and writes
``gaussians.json`` (the stream, the camera centre, the LoD, the count and one float32 little-endian
file per array: ``gaussians.means.f32`` [count, 3], ``.scales`` [count, 3], ``.quats`` [count, 4] as
w, x, y, z, ``.opacities`` [count], ``.colors`` [count, 3]). Next to the player fixtures (same OUT_DIR
as tests/player_fixtures.py in scripts/test.sh); it needs nothing else there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

STREAM = REPO / "benchmarks" / "results" / "gpu" / "h200_fox_6400.progs"
LOD = 2


def main(argv: list[str]) -> int:
    from progs.codec import decode
    from progs.scene import Camera

    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    res = decode(STREAM.read_bytes(), source=STREAM.name)
    grid = res.model.grid
    centre = [o + grid.size / 2 for o in grid.origin]
    eye = [centre[0] + 0.3 * grid.size, centre[1] + 0.2 * grid.size, centre[2] + 1.5 * grid.size]
    camera = Camera.look_at(eye, centre, [0, 1, 0], width=64, height=64, fov_x_deg=50)
    with torch.no_grad():
        g = res.model.generate(camera, lod=LOD, cull=False)
    arrays = {
        "means": g.means,
        "scales": g.scales,
        "quats": g.quats,
        "opacities": g.opacities,
        "colors": g.colors,
    }
    files = {}
    for name, t in arrays.items():
        files[name] = f"gaussians.{name}.f32"
        (out / files[name]).write_bytes(t.detach().cpu().numpy().astype("<f4").tobytes())
    info = {
        "stream": str(STREAM.relative_to(REPO)),
        "camera": [float(v) for v in camera.center.tolist()],
        "lod": LOD,
        "count": len(g),
        "anchors": int(np.count_nonzero(res.model.anchors.levels.cpu().numpy() <= LOD)),
        "files": files,
    }
    (out / "gaussians.json").write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
