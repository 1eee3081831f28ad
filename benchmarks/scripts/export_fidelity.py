"""Export fidelity of a demo stream per LoD: the closed-form export (`--distill 0`), the default
(distilled from virtual views) and `--cameras-from demo` (distilled from the training cameras), each
rendered by the plain 3DGS renderer on the demo's test views against progs' own render. Writes JSON
to the path given last (the README's Export fidelity table).

    python benchmarks/scripts/export_fidelity.py progs-demo/scene.progs OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from progs.bench.common import machine_info
from progs.codec.stream import decode
from progs.eval.fidelity import export_fidelity
from progs.io.demo_scene import load_demo_scene
from progs.pipeline import export_cloud
from progs.train.distill import DistillConfig


def main(argv: list[str]) -> None:
    stream, out = Path(argv[0]), Path(argv[1])
    scene = load_demo_scene()
    train_cameras = [v.camera for v in scene.train_views]
    variants = {
        "closed_form": {"distill": DistillConfig(iterations=0)},
        "default": {"distill": DistillConfig()},
        "cameras_from_demo": {"distill": DistillConfig(), "cameras": train_cameras},
    }
    rows = []
    for lod in range(1, decode(stream.read_bytes()).lods_decoded + 1):
        res = decode(stream.read_bytes(), max_lod=lod)
        bg = res.background if res.background is not None else scene.background
        row: dict = {"lod": lod}
        for name, kwargs in variants.items():
            t0 = time.perf_counter()
            cloud = export_cloud(res.model, lod, progress=False, **kwargs)
            seconds = time.perf_counter() - t0
            f = export_fidelity(res.model, lod, cloud, scene.test_views, bg)
            row["psnr_progs"] = round(f.psnr_progs, 3)
            row[name] = {
                "gaussians": f.gaussians,
                "psnr_export": round(f.psnr_export, 3),
                "delta_db": round(f.delta, 3),
                "psnr_between": round(f.psnr_between, 3),
                "seconds": round(seconds, 1),
            }
            print(f"LoD {lod} {name}: {f.delta:+.2f} dB (between {f.psnr_between:.2f} dB), {seconds:.1f} s", flush=True)
        rows.append(row)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "stream": str(stream),
        "stream_bytes": stream.stat().st_size,
        "test_views": len(scene.test_views),
        "threads": torch.get_num_threads(),
        "machine": machine_info(),
        "lods": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
