"""Does a larger teacher, or a larger anchor budget, help where users look? `progs bench fit`'s demo-PLY
comparison with the teacher rendered at SIZE² instead of the size the rule picks (`rule`: 128² for the
demo, where its finest Gaussians span a pixel), and the growth cap (`max_anchors`, from
`progs.presets.teacher_sizing`) multiplied by ANCHOR_SCALE (default 1); everything else as the bench
(600 iterations, λe 2e-3, scored at 1024² with SH colours).

    python benchmarks/scripts/fit_teacher_size.py 256 benchmarks/results/fit_viewer_teacher256
    python benchmarks/scripts/fit_teacher_size.py rule benchmarks/results/fit_viewer_budget4x 4
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import progs.io.teacher as teacher
import progs.presets as presets
from progs.bench import fit
from progs.bench.common import PROFILES, BenchConfig, machine_info, write_json
from progs.bench.workspace import Workspace
from progs.io.demo_scene import demo_gaussians
from progs.io.ply import GaussianCloud, write_ply


def main(size: int | None, out: Path, anchor_scale: float = 1.0) -> None:
    if size is not None:
        plan = teacher.teacher_plan
        teacher.teacher_plan = lambda cloud, on_gpu, size_=None, views=None: plan(cloud, on_gpu, size=size, views=views)
    if anchor_scale != 1.0:
        sizing = presets.teacher_sizing

        def scaled(scene, levels, base_depth, max_anchors=None):
            rule = sizing(scene, levels, base_depth, max_anchors)["max_anchors"]
            return sizing(scene, levels, base_depth, int(round(rule * anchor_scale)))

        presets.teacher_sizing = scaled
    out.mkdir(parents=True, exist_ok=True)
    args = f"{size or 'rule'} {out}" + (f" {anchor_scale:g}" if anchor_scale != 1.0 else "")
    cfg = BenchConfig(
        out=out,
        profile=PROFILES["full"],
        iterations=600,
        command=f"python benchmarks/scripts/fit_teacher_size.py {args}",
    )
    ws = Workspace(cfg, print)
    g = demo_gaussians(0)
    ply = out / "demo_scene.ply"
    write_ply(ply, GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors))
    t0 = time.perf_counter()
    name = (
        "demo_ply" + (f"_teacher{size}" if size else "") + (f"_budget{anchor_scale:g}x" if anchor_scale != 1.0 else "")
    )
    res = fit.fit_scene(ws, out, name, ply, None, "z", 1024)
    record = {"command": cfg.command, "machine": machine_info(), "seconds": round(time.perf_counter() - t0)}
    if anchor_scale != 1.0:
        record["anchor_budget_scale"] = anchor_scale
    write_json(out / "results.json", {**record, "demo_ply": res})


if __name__ == "__main__":
    main(
        None if sys.argv[1] == "rule" else int(sys.argv[1]),
        Path(sys.argv[2]),
        float(sys.argv[3]) if len(sys.argv) > 3 else 1.0,
    )
