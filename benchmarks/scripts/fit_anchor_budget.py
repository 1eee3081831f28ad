"""Is the anchor budget what stops a fit's LoDs from progressing? `progs bench fit`'s demo-PLY comparison
with the growth cap (`max_anchors`, from `progs.presets.teacher_sizing`) multiplied by SCALE,
everything else as the bench (the rule's teacher, 600 iterations, λe 2e-3, scored at 1024² with SH
colours).

    python benchmarks/scripts/fit_anchor_budget.py 4 benchmarks/results/fit_viewer_budget4x
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import progs.presets as presets
from progs.bench import fit
from progs.bench.common import PROFILES, BenchConfig, machine_info, write_json
from progs.bench.workspace import Workspace
from progs.io.demo_scene import demo_gaussians
from progs.io.ply import GaussianCloud, write_ply


def main(scale: float, out: Path) -> None:
    sizing = presets.teacher_sizing

    def scaled(scene, levels, base_depth, max_anchors=None):
        rule = sizing(scene, levels, base_depth, max_anchors)["max_anchors"]
        return sizing(scene, levels, base_depth, int(round(rule * scale)))

    presets.teacher_sizing = scaled
    out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(
        out=out,
        profile=PROFILES["full"],
        iterations=600,
        command=f"python benchmarks/scripts/fit_anchor_budget.py {scale:g} {out}",
    )
    ws = Workspace(cfg, print)
    g = demo_gaussians(0)
    ply = out / "demo_scene.ply"
    write_ply(ply, GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors))
    t0 = time.perf_counter()
    res = fit.fit_scene(ws, out, f"demo_ply_budget{scale:g}x", ply, None, "z", 1024)
    write_json(
        out / "results.json",
        {
            "command": cfg.command,
            "machine": machine_info(),
            "seconds": round(time.perf_counter() - t0),
            "anchor_budget_scale": scale,
            "demo_ply": res,
        },
    )


if __name__ == "__main__":
    main(float(sys.argv[1]), Path(sys.argv[2]))
