"""The `progs fit` comparison: a user who already has a 3DGS PLY can store it as SPZ in one line, or
fit ProGS to it. Both are scored against the PLY's own renders (the teacher views `progs fit` trains
on; every 8th orbit view held out). Runs on the embedded demo scene's PLY (``progs demo`` writes the
same file as ``demo_scene.ply``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progs.bench.common import REFERENCE_LAMBDA, rounded
from progs.bench.workspace import Workspace


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    from progs.bench.baseline_3dgs import evaluate_cloud
    from progs.io.dataset import DatasetSpec
    from progs.io.demo_scene import demo_gaussians
    from progs.io.ply import GaussianCloud, write_ply
    from progs.io.spz import read_spz, write_spz
    from progs.presets import teacher_sizing

    cfg = ws.cfg
    if ws.dataset_name != "demo":
        return {"skipped": "the fit suite fits the embedded demo scene's PLY; run it with --dataset demo"}
    folder = out / "fit"
    folder.mkdir(parents=True, exist_ok=True)
    g = demo_gaussians(cfg.seed)
    cloud = GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors)
    ply = folder / "demo_scene.ply"
    write_ply(ply, cloud)
    spec = DatasetSpec.create("ply", path=str(ply.resolve()), views=cfg.profile.views, size=cfg.profile.size, up="z",
                              background=(0.0, 0.0, 0.0))
    scene = spec.load()
    views = scene.test_views or scene.train_views
    spz = folder / "demo_scene.spz"
    write_spz(spz, cloud)
    spz_psnr, spz_ssim = evaluate_cloud(read_spz(spz), views, scene.background.float())

    ws.log(f"  {ply.name} ({len(cloud)} Gaussians) as SPZ: {spz.stat().st_size} bytes at {spz_psnr:.2f} dB "
           "against the PLY's renders; fitting ProGS to it (fit_demo_ply)")
    cfg_fit = ws.train_config({}, REFERENCE_LAMBDA)
    sizing = teacher_sizing(scene, cfg_fit.levels, cfg_fit.base_depth)  # as `progs fit` sizes it
    trained, enc, rows = ws.train_and_encode("fit_demo_ply", cfg_fit.replace(**sizing), scene, spec)
    last = rows[-1]
    return {
        "teacher": {"file": ply.name, "gaussians": len(cloud), "ply_bytes": ply.stat().st_size,
                    "views": len(scene.train_views) + len(scene.test_views), "size": cfg.profile.size},
        "spz": {"bytes": spz.stat().st_size, "psnr": spz_psnr, "ssim": spz_ssim},
        "progs": {"lambda_e": REFERENCE_LAMBDA, "iterations": trained.iterations, "total_bytes": len(enc.result.data),
                  "train_seconds": round(trained.seconds, 2), "anchors": last["anchors"], **sizing,
                  "lods": rows},
        "size_ratio_vs_spz": rounded(len(enc.result.data) / spz.stat().st_size, 4),
        "psnr_gap_db": rounded(last["psnr"] - spz_psnr, 3),
        "note": "both scored against renders of the PLY itself (held-out orbit views), not against the demo's photos",
    }


def markdown(res: dict[str, Any]) -> list[str]:
    if "skipped" in res:
        return [res["skipped"]]
    t, s, p = res["teacher"], res["spz"], res["progs"]
    last = p["lods"][-1]
    return [f"Teacher: {t['file']} ({t['gaussians']} Gaussians, {t['ply_bytes']} bytes as PLY).", "",
            "| stored as | bytes | PSNR vs the PLY's renders | SSIM |", "|---|---|---|---|",
            f"| SPZ | {s['bytes']} | {s['psnr']:.2f} | {s['ssim']:.4f} |",
            f"| progs fit (LoD {last['lod']}, λe {p['lambda_e']:g}) | {p['total_bytes']} | {last['psnr']:.2f} | "
            f"{last['ssim']:.4f} |", "",
            f"progs / SPZ size: {res['size_ratio_vs_spz']}, PSNR gap {res['psnr_gap_db']} dB."]
