"""The web player against what users would ship instead, in a real browser over an emulated link.

    python -m progs.bench.web [--demo-run DIR] [--out benchmarks/results/web_player] [--mbits 5,20] [--repeat N]

For the GPU-trained fox stream (benchmarks/results/gpu) and, with ``--demo-run``, the demo's stream:
the same scene as plain Gaussians (progs' own export of the full stream, SH degree 3) coded as SPZ
(gsply) and as streamed SOG (``@playcanvas/splat-transform``, levels keeping 100/50/25/12.5/6.25 %;
each level's folder packed as one stored ``.sog`` zip for Spark). All three are drawn by Spark with the
same camera and settings; ``web/bench/player.mjs`` times them in headless Chromium at each bandwidth
(seconds from navigation start to the first image and to each level on screen). Quality is each
level's PSNR / SSIM on the scene's test views, rendered by progs. ``--repeat N`` loads each page N
times (software WebGL makes one visit's frames vary by up to a second) and adds every visit and the
medians. Writes ``web_player.json`` and ``web_player.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from progs.bench.common import repo_root
from progs.bench.fit import DEMO_SOG_LEVELS, _st, score_cloud, splat_transform, streamed_sog_levels
from progs.errors import ProgsError

LATENCY_MS = 20  # one way, per request: a nearby CDN edge
# splat-transform clusters SH bands with k-means, which on a CPU takes hours for ~100k Gaussians; the
# SOG levels keep the base colour only (SPZ keeps SH degree 3). Raise this where a GPU is available.
SOG_SH_BANDS = 0


def _progs_levels(data: bytes, views, background) -> tuple[list[dict[str, Any]], Any]:
    from progs.codec.stream import decode
    from progs.eval.quality import evaluate_lods

    full = decode(data)
    q = evaluate_lods(full.model, views, background=background)
    rows, cum = [], full.header_bytes
    for s, qq in zip(full.lods, q):
        cum += s.bytes
        rows.append(
            {"lod": s.lod, "anchors": s.anchors, "cumulative_bytes": cum, "psnr": qq["psnr"], "ssim": qq["ssim"]}
        )
    return rows, full


def _pack_sog_levels(index: Path, out: Path, name: str) -> list[dict[str, Any]]:
    """Each level folder of a streamed SOG as one stored zip (what Spark loads), coarse to fine."""
    meta = json.loads(index.read_bytes())
    levels = []
    for level in range(int(meta["lodLevels"]) - 1, -1, -1):
        target = out / f"{name}.sog{level}.sog"
        folders = sorted(index.parent.glob(f"{level}_*"))
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
            for folder in folders:
                for f in sorted(folder.iterdir()):
                    z.write(f, f"{folder.name}/{f.name}" if len(folders) > 1 else f.name)
        levels.append({"level": level, "file": target.name, "bytes": target.stat().st_size})
    return levels


def prepare_scene(name: str, data: bytes, scene, view: dict, site: Path, work: Path) -> dict[str, Any]:
    """Writes the scene's stream, SPZ and streamed SOG into ``site``; returns sizes and quality."""
    from progs.io.splats import read_splats
    from progs.io.writers import write_cloud
    from progs.pipeline import export_cloud
    from progs.stream.manifest import manifest_for_stream, write_manifest

    views = scene.test_views
    bg = torch.as_tensor(scene.background, dtype=torch.float32)
    print(f"[{name}] progs: decoding and scoring each LoD on {len(views)} test views", file=sys.stderr)
    lods, full = _progs_levels(data, views, bg)
    (site / f"{name}.progs").write_bytes(data)
    manifest = manifest_for_stream(data, f"{name}.progs", lods)
    manifest["view"] = view
    write_manifest(site / f"{name}.progs.json", manifest)
    print(f"[{name}] plain Gaussians of the full stream -> SPZ and streamed SOG", file=sys.stderr)
    ply = work / f"{name}.ply"
    if ply.is_file():  # kept from an earlier run (--reuse): distillation is the slow part
        cloud = read_splats(ply)
    else:
        cloud = export_cloud(full.model, sh_degree=3)
        write_cloud(ply, cloud)
    spz = site / f"{name}.spz"
    write_cloud(spz, cloud)
    p, s = score_cloud(read_splats(spz), views, bg)
    res: dict[str, Any] = {
        "progs": {"total_bytes": len(data), "header_bytes": full.header_bytes, "lods": lods},
        "spz": {"gaussians": len(cloud), "bytes": spz.stat().st_size, "psnr": p, "ssim": s},
    }
    tool = splat_transform()
    if tool is None:
        res["streamed_sog"] = {"note": "splat-transform is not installed (npm ci in benchmarks/)"}
        return res
    sog = work / "sog"
    shutil.rmtree(sog, ignore_errors=True)
    args: list[str] = []
    for level, pct in enumerate(DEMO_SOG_LEVELS):
        args += [ply.name, *(["-F", f"{pct:g}%"] if pct < 100 else []), "-H", str(SOG_SH_BANDS), "-l", str(level)]
    _st(tool, *args, "sog/lod-meta.json", cwd=work)
    scored = {r["level"]: r for r in streamed_sog_levels(sog / "lod-meta.json", views, bg)}
    packed = _pack_sog_levels(sog / "lod-meta.json", site, name)
    for p in packed:
        r = scored[p["level"]]
        p.update({"gaussians": r["gaussians"], "folder_bytes": r["bytes"], "psnr": r["psnr"], "ssim": r["ssim"]})
    (site / f"{name}.sog-levels.json").write_text(
        json.dumps([{"level": p["level"], "file": p["file"]} for p in packed])
    )
    res["streamed_sog"] = {
        "made_by": f"splat-transform, levels keeping {list(DEMO_SOG_LEVELS)} %, SH bands kept: {SOG_SH_BANDS}",
        "levels": packed,
    }
    return res


def _fox(args) -> tuple[bytes, Any]:
    from progs.io import load_scene
    from progs.io.dataset import data_root

    data = (repo_root() / "benchmarks" / "results" / "gpu" / "h200_fox_6400.progs").read_bytes()
    fox = data_root() / "fox"
    if not (fox / "transforms.json").is_file():
        raise ProgsError(f"{fox}: the fox capture is needed for its test views (set --data-root or $PROGS_DATA)")
    return data, load_scene(fox, downscale=args.fox_downscale)


def _demo(args) -> tuple[bytes, Any]:
    from progs.io.dataset import DatasetSpec

    run = Path(args.demo_run)
    info = json.loads((run / "run" / "run.json").read_text())
    return (run / "scene.progs").read_bytes(), DatasetSpec.from_json(info["dataset"]).load()


def plot(result: dict, path: Path, mbits: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = list(result["scenes"])
    fig, axes = plt.subplots(1, len(scenes), figsize=(6 * len(scenes), 4.2), squeeze=False)
    for ax, name in zip(axes[0], scenes):
        sc = result["scenes"][name]
        for fmt, style in (("progs", "o-"), ("streamed_sog", "s-"), ("spz", "^-")):
            t = next((r for r in sc["timings"] if r["kind"] == fmt and r["mbits"] == mbits), None)
            if t is None:
                continue
            q = sc["quality"][fmt]
            psnrs = (
                [r["psnr"] for r in q["lods"]]
                if fmt == "progs"
                else ([r["psnr"] for r in q["levels"]] if fmt == "streamed_sog" else [q["psnr"]])
            )
            times = [lv["decoded_s"] for lv in t["cold"]["levels"]]
            ax.step(times, psnrs[: len(times)], style, where="post", label=fmt.replace("_", " "))
        ax.set_title(f"{name}: {mbits:g} Mbit/s, {result['latency_ms']} ms latency, first visit")
        ax.set_xlabel("seconds from page start until decoded (ready to draw)")
        ax.set_ylabel("PSNR on test views (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m progs.bench.web", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(repo_root() / "benchmarks" / "results" / "web_player"))
    ap.add_argument("--demo-run", help="a `progs demo --out DIR` folder: also time its stream")
    ap.add_argument("--mbits", default="5,20", help="link speeds in Mbit/s (default 5,20)")
    ap.add_argument(
        "--reuse", action="store_true", help="reuse the files and quality an earlier run prepared in OUT/work"
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="visits per page and bandwidth, each cold then warm (default 1)"
    )
    ap.add_argument("--fox-downscale", type=float, default=2.0, help="test views of the fox at 1/N size (default 2)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    site = work / "site"
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    site.mkdir(parents=True, exist_ok=True)
    web = repo_root() / "web"
    for f in ("baseline.html", "baseline.js", "baseline.js.br", "baseline.js.gz"):
        src = web / "dist" / "bench" / f
        if not src.is_file():
            raise ProgsError(f"{src}: build the web code first (cd web && npm ci && npm run build)")
        shutil.copy(src, site / f)
    from progs.stream.manifest import suggested_view

    scenes = [("fox", _fox, (360, 640))] + ([("demo", _demo, (384, 384))] if args.demo_run else [])
    import datetime
    import platform

    result: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python -m progs.bench.web " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu_threads": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "gpu": None,
            "browser": "Chromium, headless",
            "webgl_renderer": None,
        },
        "latency_ms": LATENCY_MS,
        "repeat": args.repeat,
        "scenes": {},
    }
    config: dict[str, Any] = {
        "dir": str(site),
        "mbits": [float(m) for m in args.mbits.split(",")],
        "latency_ms": LATENCY_MS,
        "repeat": args.repeat,
    }
    runs_by_scene = {}
    for name, load, (w, h) in scenes:
        data, scene = load(args)
        from progs.codec.stream import decode

        grid = decode(data, max_lod=1).model.grid
        view = suggested_view(scene.test_views[0].camera, [o + grid.size / 2 for o in grid.origin])
        scene_dir = work / name
        cached = scene_dir / "quality.json"
        if args.reuse and cached.is_file():
            quality = json.loads(cached.read_text())
        else:
            scene_dir.mkdir(exist_ok=True)
            quality = prepare_scene(name, data, scene, view, site, scene_dir)
            cached.write_text(json.dumps(quality))
        result["scenes"][name] = {
            "quality": quality,
            "view": view,
            "viewport": [w, h],
            "test_views": len(scene.test_views),
            "test_view_size": list(scene.test_views[0].image.shape[1::-1]),
        }
        runs_by_scene[name] = (
            w,
            h,
            [
                {"name": f"{name} progs", "kind": "progs", "page": "player.html", "src": f"{name}.progs", "view": view},
                {"name": f"{name} spz", "kind": "spz", "page": "baseline.html", "src": f"{name}.spz", "view": view},
                {
                    "name": f"{name} streamed sog",
                    "kind": "sog",
                    "page": "baseline.html",
                    "src": f"{name}.sog-levels.json",
                    "view": view,
                },
            ],
        )
    for name, (w, h, runs) in runs_by_scene.items():
        cfg = dict(config, width=w, height=h, runs=runs)
        cfg_path, timing_path = work / f"{name}.config.json", work / f"{name}.timings.json"
        cfg_path.write_text(json.dumps(cfg))
        subprocess.run(["node", str(web / "bench" / "player.mjs"), str(cfg_path), str(timing_path)], check=True)
        timed = json.loads(timing_path.read_text())
        result["machine"]["webgl_renderer"] = timed.get("webgl_renderer")
        timings = timed["results"]
        for t in timings:
            t["kind"] = {"sog": "streamed_sog"}.get(t["kind"], t["kind"])
        result["scenes"][name]["timings"] = timings
    (out / "web_player.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "web_player.png", config["mbits"][0])
    print(f"wrote {out / 'web_player.json'} and {out / 'web_player.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
