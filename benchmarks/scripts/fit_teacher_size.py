"""Does a larger teacher help where users look? `progs bench fit`'s demo-PLY comparison with the teacher
rendered at SIZE² instead of the size the rule picks (128² for the demo: its finest Gaussians span a
pixel there), everything else as the bench (600 iterations, λe 2e-3, scored at 1024² with SH colours).

    python benchmarks/scripts/fit_teacher_size.py 256 benchmarks/results/fit_viewer_teacher256
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import progs.io.teacher as teacher
from progs.bench import fit
from progs.bench.common import PROFILES, BenchConfig, machine_info, write_json
from progs.bench.workspace import Workspace
from progs.io.demo_scene import demo_gaussians
from progs.io.ply import GaussianCloud, write_ply


def main(size: int, out: Path) -> None:
    plan = teacher.teacher_plan
    teacher.teacher_plan = lambda cloud, on_gpu, size_=None, views=None: plan(cloud, on_gpu, size=size, views=views)
    out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(
        out=out,
        profile=PROFILES["full"],
        iterations=600,
        command=f"python benchmarks/scripts/fit_teacher_size.py {size} {out}",
    )
    ws = Workspace(cfg, print)
    g = demo_gaussians(0)
    ply = out / "demo_scene.ply"
    write_ply(ply, GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors))
    t0 = time.perf_counter()
    res = fit.fit_scene(ws, out, f"demo_ply_teacher{size}", ply, None, "z", 1024)
    write_json(
        out / "results.json",
        {
            "command": cfg.command,
            "machine": machine_info(),
            "seconds": round(time.perf_counter() - t0),
            "demo_ply": res,
        },
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
