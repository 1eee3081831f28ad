"""The `progs fit` comparison, the one a user who already has splats makes: store the scene as SPZ, as
SPZ of a decimated copy, as PlayCanvas' streamed SOG, or fit ProGS to it and stream its LoD prefixes.

Each scene (the embedded demo's PLY; ``playbot`` under the data root, a streamed SOG, at a LoD level the
device can fit) is the *teacher*: `progs fit` trains on its orbit renders, sized by
:func:`progs.io.teacher.teacher_plan`. Everything is scored where users look: against the teacher
rendered with its SH colours at a viewer's resolution (1024 pixels) from held-out orbit views
(:func:`progs.io.teacher.viewer_views`). Decimation and SOG come from ``@playcanvas/splat-transform``
(``benchmarks/package.json``; ``npm ci`` there), skipped with a note when it is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from progs.bench.common import REFERENCE_LAMBDA, bd_rate, repo_root, rounded
from progs.bench.workspace import Workspace
from progs.io.dataset import data_root

PLAYBOT = "playbot"
PLAYBOT_LOD = {"cpu": 4, "cuda": 0}  # 8,406 Gaussians on the CPU; all 500,000 on a GPU
DEMO_SOG_LEVELS = (100, 50, 25, 12.5, 6.25)  # the streamed SOG of the demo PLY: percent kept per level


def splat_transform() -> Path | None:
    tool = repo_root() / "benchmarks" / "node_modules" / ".bin" / "splat-transform"
    return tool if tool.is_file() else None


def _st(tool: Path, *args: str, cwd: Path) -> None:
    subprocess.run([str(tool), "-q", "-w", "-g", "cpu", *args], check=True, cwd=cwd, capture_output=True, timeout=3600)


def score_cloud(cloud, views, background) -> tuple[float, float]:
    """Mean PSNR / SSIM of ``cloud`` rendered with its SH colours against ``views``."""
    from progs.io.cloud_render import render_cloud
    from progs.metrics import psnr, ssim

    ps, ss = [], []
    for v in views:
        img, _, _ = render_cloud(cloud, v.camera, background)
        ps.append(psnr(img, v.image))
        ss.append(ssim(img.clamp(0, 1), v.image))
    return sum(ps) / len(ps), sum(ss) / len(ss)


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def streamed_sog_levels(index: Path, views, background, finest: int = 0) -> list[dict[str, Any]]:
    """Per level of the streamed SOG ``index`` (lod-meta.json) from ``finest`` on: its own bytes (the
    files it reads, plus the index) and the bytes of all coarser levels too, with PSNR / SSIM."""
    import json

    from progs.io.splats import read_splats

    meta = json.loads(index.read_bytes())
    rows = []
    for level in range(int(meta["lodLevels"]) - 1, finest - 1, -1):
        folder = index.parent / f"{level}_0"
        own = sum(_folder_bytes(f) for f in sorted(index.parent.glob(f"{level}_*")) if f.is_dir())
        cloud = read_splats(index, lod=level)
        p, s = score_cloud(cloud, views, background)
        rows.append(
            {
                "level": level,
                "gaussians": len(cloud),
                "bytes": own + index.stat().st_size,
                "psnr": p,
                "ssim": s,
                "folder": folder.name,
            }
        )
    cum = 0
    for r in rows:  # coarse to fine: what a client fetching every level in turn has downloaded
        cum += r["bytes"] - index.stat().st_size
        r["cumulative_bytes"] = cum + index.stat().st_size
    return rows


def progs_prefixes(stream: bytes, views, background) -> list[dict[str, Any]]:
    """Bytes and PSNR / SSIM on ``views`` of each prefix (header + LoD 1..k) as a client decodes it."""
    from progs.codec.stream import decode
    from progs.eval.quality import evaluate_lods

    full = decode(stream)
    rows, cum = [], full.header_bytes
    for s in full.lods:
        cum += s.bytes
        part = decode(stream[:cum])
        q = evaluate_lods(part.model, views, lods=[part.lods_decoded], background=background)[0]
        rows.append({"lod": s.lod, "anchors": s.anchors, "bytes": cum, "psnr": q["psnr"], "ssim": q["ssim"]})
    return rows


def fit_scene(
    ws: Workspace, out: Path, name: str, source: Path, lod: int | None, up: str, viewer_size: int
) -> dict[str, Any]:
    from progs.io.dataset import DatasetSpec
    from progs.io.splats import read_splats
    from progs.io.teacher import teacher_plan, viewer_views
    from progs.presets import FIT_DEFAULTS, teacher_sizing

    folder = out / "fit" / name
    folder.mkdir(parents=True, exist_ok=True)
    cloud = read_splats(source, lod=lod)
    on_gpu = ws.cfg.device.type == "cuda"
    plan = teacher_plan(cloud, on_gpu)
    if ws.cfg.tiny:
        plan = teacher_plan(cloud, on_gpu, size=ws.cfg.profile.size, views=ws.cfg.profile.views)
    ws.log(f"  {name}: {len(cloud)} Gaussians, SH degree {cloud.sh_degree}; {plan.describe()}")
    bg = torch.zeros(3)
    views = viewer_views(cloud, up, size=viewer_size)
    spec = DatasetSpec.create("ply", path=str(Path(source).resolve()), views=plan.views, size=plan.size, up=up, lod=lod)
    scene = spec.load()
    cfg = ws.train_config(dict(FIT_DEFAULTS), REFERENCE_LAMBDA)  # what `progs fit` trains, at the bench's length
    sizing = teacher_sizing(scene, None, None, sh_degree=cloud.sh_degree)
    trained, enc, _ = ws.train_and_encode(f"fit_{name}", cfg.replace(**sizing), scene, spec)
    data = enc.result.data
    prefixes = progs_prefixes(data, views, bg)

    res: dict[str, Any] = {
        "teacher": {
            "source": str(source),
            "lod": lod,
            "gaussians": len(cloud),
            "sh_degree": cloud.sh_degree,
            "teacher_views": plan.views,
            "teacher_size": plan.size,
            "size_wanted": plan.wanted,
            "size_limit": plan.limit,
        },
        "viewer": {"views": len(views), "size": viewer_size, "colours": "SH"},
        "progs": {
            "lambda_e": REFERENCE_LAMBDA,
            "iterations": trained.iterations,
            "total_bytes": len(data),
            "train_seconds": round(trained.seconds, 2),
            **sizing,
            "prefixes": prefixes,
            "lod1_share": rounded(prefixes[0]["bytes"] / len(data), 4),
        },
    }
    res.update(compare(folder, cloud, source, lod, views, bg, prefixes))
    return res


def compare(
    folder: Path, cloud, source: Path, lod: int | None, views, bg, prefixes: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a user would store ``cloud`` as instead of progs' ``prefixes`` (rows of bytes and PSNR / SSIM on
    ``views``), scored on the same ``views`` over background ``bg``: (a) SPZ, (b) SPZ of copies decimated to the prefixes' sizes
    (and a step either side), (c) streamed SOG (the scene's own for a streamed SOG source at level ``lod``,
    else made by splat-transform), with the BD-rate of the prefixes against (b) and (c). Files go to
    ``folder``."""
    from progs.io.ply import write_ply
    from progs.io.splats import read_splats
    from progs.io.spz import read_spz, write_spz

    folder.mkdir(parents=True, exist_ok=True)
    ply = folder / "teacher.ply"
    write_ply(ply, cloud)
    spz = folder / "teacher.spz"
    write_spz(spz, cloud)
    spz_p, spz_s = score_cloud(read_spz(spz), views, bg)
    res: dict[str, Any] = {"spz": {"bytes": spz.stat().st_size, "psnr": spz_p, "ssim": spz_s}}
    tool = splat_transform()
    if tool is None:
        res["note"] = "splat-transform is not installed (npm ci in benchmarks/): no decimate+SPZ or SOG curves"
        return res
    # (b) SPZ of the teacher decimated to progs' prefix sizes (and a step either side of them)
    full_bytes = spz.stat().st_size
    pcts = sorted(
        {min(100.0, max(0.5, round(100.0 * r["bytes"] / full_bytes, 1))) for r in prefixes}
        | {
            min(100.0, max(0.5, round(100.0 * prefixes[0]["bytes"] / full_bytes / 2, 1))),
            min(100.0, round(200.0 * prefixes[-1]["bytes"] / full_bytes, 1)),
        }
    )
    dec = []
    for pct in pcts:
        target = folder / f"decimated_{pct:g}.spz"
        _st(tool, ply.name, "-F", f"{pct:g}%", target.name, cwd=folder)
        p, s = score_cloud(read_splats(target), views, bg)
        dec.append(
            {
                "percent": pct,
                "gaussians": len(read_splats(target)),
                "bytes": target.stat().st_size,
                "psnr": p,
                "ssim": s,
            }
        )
    res["decimate_spz"] = dec
    # (c) streamed SOG: playbot's own, or the demo PLY's made by splat-transform
    if lod is not None:
        index = Path(source) / "lod-meta.json" if Path(source).is_dir() else Path(source)
        res["streamed_sog"] = {"made_by": "the scene's own files", "levels": streamed_sog_levels(index, views, bg, lod)}
    else:
        sog = folder / "sog"
        shutil.rmtree(sog, ignore_errors=True)
        args: list[str] = []
        for level, pct in enumerate(DEMO_SOG_LEVELS):
            args += [ply.name, *(["-F", f"{pct:g}%"] if pct < 100 else []), "-l", str(level)]
        _st(tool, *args, "sog/lod-meta.json", cwd=folder)
        res["streamed_sog"] = {
            "made_by": f"splat-transform, levels keeping {list(DEMO_SOG_LEVELS)} %",
            "levels": streamed_sog_levels(sog / "lod-meta.json", views, bg),
        }
    pts = lambda rows: [(r["bytes"], r["psnr"]) for r in rows]  # noqa: E731
    res["bd_rate_vs_decimate_spz"] = rounded(bd_rate(pts(dec), pts(prefixes)), 2)
    res["bd_rate_vs_streamed_sog"] = rounded(bd_rate(pts(res["streamed_sog"]["levels"]), pts(prefixes)), 2)
    return res


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    from progs.io.demo_scene import demo_gaussians
    from progs.io.ply import GaussianCloud, write_ply

    if ws.dataset_name != "demo":
        return {"skipped": "the fit suite fits the embedded demo scene's PLY (and playbot); run it with --dataset demo"}
    viewer_size = 64 if ws.cfg.tiny else 1024
    (out / "fit").mkdir(parents=True, exist_ok=True)
    g = demo_gaussians(ws.cfg.seed)
    ply = out / "fit" / "demo_scene.ply"
    write_ply(ply, GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors))
    scenes = {"demo_ply": fit_scene(ws, out, "demo_ply", ply, None, "z", viewer_size)}
    playbot = data_root() / PLAYBOT
    if (playbot / "lod-meta.json").is_file() and not ws.cfg.tiny:
        level = PLAYBOT_LOD["cuda" if ws.cfg.device.type == "cuda" else "cpu"]
        scenes[f"playbot_lod{level}"] = fit_scene(ws, out, f"playbot_lod{level}", playbot, level, "-y", viewer_size)
    plot(scenes, out / "fit.png")
    return {
        "scenes": scenes,
        "goal": "progs' full stream at <= 1/4 of SPZ's bytes with >= 35 dB; BD-rate <= -50 % vs decimate+SPZ",
        "note": "all scored against the teacher rendered with SH colours at the viewer size, held-out orbit views",
    }


def plot(scenes: dict[str, Any], path: Path) -> None:
    from progs.bench.common import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(scenes), figsize=(6 * len(scenes), 4.5), squeeze=False)
    for ax, (name, res) in zip(axes[0], scenes.items()):
        p = res["progs"]["prefixes"]
        ax.plot([r["bytes"] for r in p], [r["psnr"] for r in p], "o-", label="progs prefixes (LoD 1..L)")
        ax.plot([res["spz"]["bytes"]], [min(res["spz"]["psnr"], 60)], "s", label="SPZ of the teacher")
        if "decimate_spz" in res:
            d = res["decimate_spz"]
            ax.plot([r["bytes"] for r in d], [r["psnr"] for r in d], "^--", label="decimate + SPZ")
            s = res["streamed_sog"]["levels"]
            ax.plot([r["bytes"] for r in s], [r["psnr"] for r in s], "v:", label="streamed SOG (each level)")
        ax.set_xscale("log")
        ax.set_xlabel("bytes")
        ax.set_ylabel(f"PSNR vs teacher at {res['viewer']['size']}² (dB)")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def markdown(res: dict[str, Any]) -> list[str]:
    if "skipped" in res:
        return [res["skipped"]]
    lines = []
    for name, r in res["scenes"].items():
        t = r["teacher"]
        lines += [
            f"**{name}** ({t['gaussians']} Gaussians; teacher {t['teacher_views']} views at {t['teacher_size']}²; "
            f"scored at {r['viewer']['size']}² with SH colours)",
            "",
            "| stored as | bytes | PSNR | SSIM |",
            "|---|---|---|---|",
            f"| SPZ | {r['spz']['bytes']} | {r['spz']['psnr']:.2f} | {r['spz']['ssim']:.4f} |",
        ]
        lines += [
            f"| progs LoD 1..{x['lod']} | {x['bytes']} | {x['psnr']:.2f} | {x['ssim']:.4f} |"
            for x in r["progs"]["prefixes"]
        ]
        lines += [
            f"| decimate {x['percent']:g} % + SPZ | {x['bytes']} | {x['psnr']:.2f} | {x['ssim']:.4f} |"
            for x in r.get("decimate_spz", [])
        ]
        lines += [
            f"| streamed SOG level {x['level']} | {x['bytes']} | {x['psnr']:.2f} | {x['ssim']:.4f} |"
            for x in r.get("streamed_sog", {}).get("levels", [])
        ]
        lines += [
            "",
            f"BD-rate vs decimate+SPZ: {r.get('bd_rate_vs_decimate_spz')} %; vs streamed SOG: "
            f"{r.get('bd_rate_vs_streamed_sog')} %.",
            "",
        ]
    return lines
