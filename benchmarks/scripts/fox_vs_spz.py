"""The fox (../shared/data/fox, downscale 8) against SPZ at more than one training budget.

    python benchmarks/scripts/fox_vs_spz.py spz --iterations 3000 --caps 2000,5000,10000
    python benchmarks/scripts/fox_vs_spz.py progs --set iterations=1200 --set init_random_points=2500 ...
    python benchmarks/scripts/fox_vs_spz.py bd

``spz``: plain 3DGS fits (random initial points in the view volume: the capture has no SfM points),
capped at each size, stored as SPZ (gsply) and scored as they read back on the 7 test views.
``progs``: one progs training with the given TrainConfig overrides, encoded, every LoD decoded and
scored. Each writes one section of benchmarks/results/fox_spz.json (named by ``--section`` or from its
settings); ``bd`` adds the BD-rate of every progs section's prefix curve against every SPZ section.
Runs on the CPU, one torch thread for the committed figures (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from progs.io.dataset import data_root

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "fox_spz.json"
FOX = data_root() / "fox"


def load_fox():
    from progs.io.dataset import DatasetSpec

    spec = DatasetSpec.create("folder", path=str(FOX.resolve()), downscale=8.0)
    return spec, spec.load()


def spz_section(iterations: int, caps: list[int], work: Path) -> dict:
    from progs.bench.baseline_3dgs import Fit3DGSConfig, fit_3dgs, spz_quality

    _, scene = load_fox()
    rows = []
    for cap in caps:
        t = time.time()
        fit = fit_3dgs(scene, Fit3DGSConfig(iterations=iterations, seed=0, max_gaussians=cap))
        size, p, s = spz_quality(
            fit.cloud, work / f"fit_{iterations}_{cap}.spz", scene.test_views, scene.background.float()
        )
        rows.append(
            {
                "cap": cap,
                "iterations": iterations,
                "gaussians": len(fit.cloud),
                "bytes": size,
                "psnr": p,
                "ssim": s,
                "psnr_fit": fit.psnr,
                "seconds": round(time.time() - t),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {"kind": "spz", "iterations": iterations, "fits": rows}


def progs_section(overrides: dict, work: Path) -> dict:
    from progs.pipeline import encode_run, evaluate_stream, train_run
    from progs.train.config import TrainConfig

    spec, scene = load_fox()
    torch.manual_seed(0)
    t = time.time()
    trained = train_run(
        scene,
        spec,
        work / "run",
        TrainConfig().replace(**overrides),
        checkpoint_every=10**6,
        progress=False,
        log=lambda m: None,
    )
    seconds = time.time() - t
    enc = encode_run(work / "run", work / "fox.progs", evaluate=False, scene=scene)
    rows = evaluate_stream(enc.result.data, scene, source="fox.progs", prefixes=True)
    return {
        "kind": "progs",
        "overrides": overrides,
        "train_seconds": round(seconds),
        "bytes": len(enc.result.data),
        "header": enc.result.header_bytes,
        "lods": [{"lod": r["lod"], "cumulative_bytes": r["cumulative_bytes"], "psnr": r["psnr"]} for r in rows],
        "psnr_float": [x["psnr_float"] for x in trained.lods],
    }


def bd_sections(results: dict, lod_l: list[str]) -> dict:
    """BD-rate (%) of each progs section's prefix curve, and of the LoD-L points of the ``lod_l``
    sections (a λe sweep: the issue's definition), against each SPZ section."""
    from progs.bench.common import bd_rate

    out = {}
    spz = {n: s for n, s in results.items() if isinstance(s, dict) and s.get("kind") == "spz"}
    if lod_l:
        points = [(results[n]["lods"][-1]["cumulative_bytes"], results[n]["lods"][-1]["psnr"]) for n in lod_l]
        for sname, s in spz.items():
            value = bd_rate([(f["bytes"], f["psnr"]) for f in s["fits"]], points)
            out[f"LoD L of {'+'.join(lod_l)} vs {sname}"] = None if value is None else round(value, 1)
    for pname, p in results.items():
        if not isinstance(p, dict) or p.get("kind") != "progs":
            continue
        curve = [(r["cumulative_bytes"], r["psnr"]) for r in p["lods"]]
        for sname, s in spz.items():
            value = bd_rate([(f["bytes"], f["psnr"]) for f in s["fits"]], curve)
            out[f"{pname} vs {sname}"] = None if value is None else round(value, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["spz", "progs", "bd"])
    ap.add_argument("--iterations", type=int, default=3000, help="spz: iterations of each fit")
    ap.add_argument("--caps", default="2000,5000,10000", help="spz: model sizes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="progs: training override")
    ap.add_argument("--section", help="name of the section (default: from the settings)")
    ap.add_argument("--lod-l", default="", help="bd: comma-separated progs sections whose LoD-L points form one curve")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fox_vs_spz"))
    args = ap.parse_args()

    def current() -> dict:  # read just before writing: several runs may share the file
        return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}

    if args.what == "bd":
        results = current()
        results["bd_rate_percent"] = bd_sections(results, [x for x in args.lod_l.split(",") if x])
        print(json.dumps(results["bd_rate_percent"], indent=1))
    else:
        if args.what == "spz":
            name = args.section or f"spz_{args.iterations}"
            work = args.work / name
            work.mkdir(parents=True, exist_ok=True)
            section = spz_section(args.iterations, [int(c) for c in args.caps.split(",")], work)
        else:
            overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
            name = args.section or "progs_" + "_".join(f"{k}{v}" for k, v in overrides.items())
            work = args.work / name
            work.mkdir(parents=True, exist_ok=True)
            section = progs_section(overrides, work)
        section.update(
            {
                "date": time.strftime("%Y-%m-%d"),
                "threads": torch.get_num_threads(),
                "command": "python benchmarks/scripts/fox_vs_spz.py "
                + " ".join(
                    [args.what]
                    + (
                        [f"--iterations {args.iterations} --caps {args.caps}"]
                        if args.what == "spz"
                        else [f"--set {kv}" for kv in args.set]
                    )
                ),
            }
        )
        results = current()
        results[name] = section
        print(json.dumps({k: v for k, v in section.items() if k != "fits"})[:2000])
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
