"""Does a larger teacher, or a larger anchor budget, help where users look? `progs bench fit`'s demo-PLY
comparison with the teacher rendered at SIZE² instead of the size the rule picks (`rule`: 512² for the
demo on a CPU since 2026-12-06 12:00, 128² before, when the rule only asked its finest Gaussians to span
a pixel; the `rule` runs committed before then used 128²), and the growth cap (`max_anchors`, from
`progs.presets.teacher_sizing`) multiplied by ANCHOR_SCALE (default 1); everything else as the bench
(ITERATIONS, default 600, at λe 2e-3, scored at 1024² with SH colours).

With CROP, each training step sees at most CROP x CROP pixels of its view: a zoom f drawn uniformly
from 1, 2, 4, ... up to the one that shows the whole view, then a random window of CROP * f pixels a
side averaged over f x f blocks (and the camera that renders exactly those pixels). That asks whether
a CPU can learn a teacher rendered at a viewer's resolution for the cost of CROP² pixels a step.

    python benchmarks/scripts/fit_teacher_size.py 256 benchmarks/results/fit_viewer_teacher256
    python benchmarks/scripts/fit_teacher_size.py rule benchmarks/results/fit_viewer_budget4x 4
    python benchmarks/scripts/fit_teacher_size.py 1024 benchmarks/results/fit_viewer_crop 1 256

``--context-levels 3D,2D`` sets the context model's hash-grid levels (`context_hash_levels`; the fit's
default, `progs.presets.TEACHER_CONTEXT_LEVELS`, is 6,2 since 2026-12-06 13:00, 12,4 before; a small fit's,
`progs.presets.SMALL_FIT_MODEL`, is 3,1 since 2026-12-06 15:00), which set most of the header's size (runs since 16:50 are named `_context_hash_levels3x1`, not `_context3x1`);
``--context-mlp D,Q`` the context MLPs' widths (`context_mlp`; 16,8, a small fit's 8,4 since 15:00) and
``--set NAME=INT`` any other integer of the training configuration (`feat_dim`, `n_offsets`, `levels`,
`base_depth`, `init_level`; a small fit's `feat_dim` is 16 since 15:00, 32 before). The screening runs
of 2026-12-06 14:10-14:45 used 256² teachers:

    python benchmarks/scripts/fit_teacher_size.py 256 OUT --set feat_dim=16 --context-mlp 8,4 --context-levels 3,1
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

import progs.io.teacher as teacher
import progs.presets as presets
from progs.bench import fit
from progs.bench.common import PROFILES, BenchConfig, machine_info, write_json
from progs.bench.workspace import Workspace
from progs.io.demo_scene import demo_gaussians
from progs.io.ply import GaussianCloud, write_ply
from progs.scene import View


def window(view: View, x0: int, y0: int, width: int, height: int, factor: int) -> View:
    """``width`` x ``height`` pixels of ``view`` at (x0, y0) averaged over ``factor``² blocks, with their camera."""
    cam = view.camera
    image = view.image[y0 : y0 + height, x0 : x0 + width]
    cam = replace(cam, width=width, height=height, cx=cam.cx - x0, cy=cam.cy - y0)
    if factor > 1:
        image = F.avg_pool2d(image.permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0)
        cam = cam.scaled(factor)
    return View(view.name, cam, image.contiguous())


def random_zoom(view: View, pixels: int, gen: torch.Generator) -> View:
    """At most ``pixels``² of ``view``, as the module's docstring says."""
    w, h = view.camera.width, view.camera.height
    if max(w, h) <= pixels:
        return view
    f = 2 ** int(torch.randint(math.ceil(math.log2(max(w, h) / pixels)) + 1, (1,), generator=gen))
    ww, hh = min(w, pixels * f) // f * f, min(h, pixels * f) // f * f
    x0 = int(torch.randint(w - ww + 1, (1,), generator=gen))
    y0 = int(torch.randint(h - hh + 1, (1,), generator=gen))
    return window(view, x0, y0, ww, hh, f)


def main(
    size: int | None,
    out: Path,
    anchor_scale: float = 1.0,
    crop: int | None = None,
    iterations: int = 600,
    command: str = "",
    settings: dict | None = None,
) -> None:
    settings = settings or {}
    if size is not None:
        plan = teacher.teacher_plan
        teacher.teacher_plan = lambda cloud, on_gpu, size_=None, views=None: plan(cloud, on_gpu, size=size, views=views)
    if anchor_scale != 1.0 or settings:
        sizing = presets.teacher_sizing

        def scaled(scene, levels, base_depth, max_anchors=None, sh_degree=0):
            sized = sizing(scene, levels, base_depth, max_anchors, sh_degree=sh_degree)
            if anchor_scale != 1.0:
                scaled_cap = int(round(sized["max_anchors"] * anchor_scale))
                sized = sizing(scene, levels, base_depth, scaled_cap, sh_degree=sh_degree)
            return {**sized, **settings}

        presets.teacher_sizing = scaled
    if crop is not None:
        from progs.train.trainer import Trainer

        next_view = Trainer._next_view
        Trainer._next_view = lambda self: random_zoom(next_view(self), crop, self.gen)
    out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(
        out=out,
        profile=PROFILES["full"],
        iterations=iterations,
        command=f"python benchmarks/scripts/fit_teacher_size.py {command}",
    )
    ws = Workspace(cfg, print)
    g = demo_gaussians(0)
    ply = out / "demo_scene.ply"
    write_ply(ply, GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors))
    t0 = time.perf_counter()
    name = (
        "demo_ply"
        + (f"_teacher{size}" if size else "")
        + (f"_budget{anchor_scale:g}x" if anchor_scale != 1.0 else "")
        + (f"_crop{crop}" if crop else "")
        + "".join(
            f"_{k.split('.')[-1]}{'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in settings.items()
        )
    )
    res = fit.fit_scene(ws, out, name, ply, None, "z", 1024)
    record = {"command": cfg.command, "machine": machine_info(), "seconds": round(time.perf_counter() - t0)}
    if anchor_scale != 1.0:
        record["anchor_budget_scale"] = anchor_scale
    if crop:
        record["crop"] = {"pixels": crop, "zoom": "f uniform over 1, 2, 4, ... up to the whole view"}
    write_json(out / "results.json", {**record, "demo_ply": res})


if __name__ == "__main__":
    argv = sys.argv[1:]
    command = " ".join(argv)
    settings = {}
    for flag, key in (("--context-levels", "context_hash_levels"), ("--context-mlp", "context_mlp")):
        if flag in argv:
            i = argv.index(flag)
            settings[key] = tuple(int(x) for x in argv[i + 1].split(","))
            del argv[i : i + 2]
    while "--set" in argv:
        i = argv.index("--set")
        key, value = argv[i + 1].split("=")
        settings[key] = float(value) if "." in value or "e" in value else int(value)
        del argv[i : i + 2]
    main(
        None if argv[0] == "rule" else int(argv[0]),
        Path(argv[1]),
        float(argv[2]) if len(argv) > 2 else 1.0,
        int(argv[3]) or None if len(argv) > 3 else None,
        int(argv[4]) if len(argv) > 4 else 600,
        command,
        settings,
    )
