"""The demo's rate sweep: `progs demo`'s training preset at several λe, each encoded and every prefix
decoded and scored; writes one named section of benchmarks/results/demo_rate_sweep.json and the RD plot.

    python benchmarks/scripts/rate_sweep.py --work /tmp/sweep --section sweep_final [--set key=value ...]

A run folder under ``--work`` that holds a finished training is re-encoded, not retrained (the codec can
change without retraining). Trainings run one after another on the torch threads given (set
OMP_NUM_THREADS=1 for the committed figures: the thread count changes float sums and so the runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from progs.bench.common import bd_rate
from progs.bench.workspace import _finished_run
from progs.codec.levels import prior_comparison
from progs.codec.stream import FORMAT_VERSION, decode
from progs.io.dataset import DatasetSpec
from progs.io.demo_scene import load_demo_scene
from progs.pipeline import encode_run, evaluate_stream, train_run
from progs.presets import demo_overrides
from progs.train.config import TrainConfig
from progs.train.rate import context_inputs

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "demo_rate_sweep.json"
SPZ = ROOT / "benchmarks" / "results" / "demo_spz.json"


def one_run(out: Path, lambda_e: float, overrides: dict, scene, spec) -> dict:
    """Train (or reuse) one λe, encode, decode every prefix; the figures of one sweep row."""
    over = dict(demo_overrides())
    over.update(overrides)
    over["lambda_e"] = lambda_e
    torch.manual_seed(int(over.get("seed", 0)))
    run = out / "run"
    t0 = time.time()
    config = TrainConfig().replace(**over)
    finished = _finished_run(run, config, scene)  # a finished training of the same configuration is reused
    lods = (
        finished or train_run(scene, spec, run, config, checkpoint_every=10**6, progress=False, log=lambda m: None)
    ).lods
    enc = encode_run(run, out / "scene.progs", evaluate=False, scene=scene)
    data = enc.stream.read_bytes()
    rows = evaluate_stream(data, scene, source=str(enc.stream), prefixes=True)
    res = decode(data, components=True)
    coded = {k: sum(s.components[k] for s in res.lods) for k in ("f", "s", "o")}
    priors = prior_comparison(res.model, coded, bool(res.config.get("skip_hidden")))
    m = res.model
    with torch.no_grad():
        _, _, q = m.context(*context_inputs(m.anchors))
    steps = (q / torch.tensor(m.context.cfg.q0)).mean(0).tolist()
    n = len(m.anchors)
    return {
        "lambda_e": lambda_e,
        "bytes": len(data),
        "header": enc.result.header_bytes,
        "anchors": n,
        "bits_per_anchor": round(len(data) * 8 / n, 1),
        "steps_over_q0": [round(x, 2) for x in steps],
        "psnr": [round(x["psnr"], 2) for x in rows],
        "psnr_float": [round(x["psnr_float"], 2) for x in lods],
        "cum_bytes": [x["cumulative_bytes"] for x in rows],
        "components": {k: sum(s.components[k] for s in res.lods) for k in ("structure", "f", "s", "o")},
        "priors": {
            k: {
                "coded": round(v["coded_bits_per_symbol"], 3),
                "constant": round(v["constant_prior_bits_per_symbol"], 3),
            }
            for k, v in priors.items()
        },
        "seconds": round(time.time() - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the runs (one subfolder per λe)")
    ap.add_argument("--section", default="sweep_final", help="name of the section written into the JSON")
    ap.add_argument("--lambdas", default="5e-4,2e-3,8e-3")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="training override")
    ap.add_argument("--note", default="")
    ap.add_argument("--plot", type=Path, default=None, help="write the RD plot of this section here")
    args = ap.parse_args()
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v)
    scene = load_demo_scene(views=60, size=128, seed=0)
    spec = DatasetSpec.create("demo", views=60, size=128, seed=0)
    runs = []
    for lam in (float(x) for x in args.lambdas.split(",")):
        row = one_run(args.work / f"le{lam:g}", lam, overrides, scene, spec)
        print(json.dumps({k: v for k, v in row.items() if k != "priors"}), flush=True)
        runs.append(row)
    spz = json.loads(SPZ.read_text())["spz"]
    pts = [(r["bytes"], r["psnr"][-1]) for r in runs]
    section = {
        "format_version": FORMAT_VERSION,
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
        "command": f"python benchmarks/scripts/rate_sweep.py --section {args.section} --lambdas {args.lambdas}"
        + "".join(f" --set {kv}" for kv in args.set),
        "note": args.note,
        "runs": runs,
        "span": round(max(p[0] for p in pts) / min(p[0] for p in pts), 3),
        "bd_rate_vs_spz_percent": bd_rate([(s["bytes"], s["psnr"]) for s in spz], pts) if len(pts) > 1 else None,
    }
    out = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    out[args.section] = section
    out["spz_baseline"] = spz
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    if args.plot:
        from progs.bench.rd import plot_rd

        curves = [
            {
                "lambda_e": r["lambda_e"],
                "lods": [
                    {"lod": i + 1, "cumulative_bytes": cb, "psnr": p}
                    for i, (cb, p) in enumerate(zip(r["cum_bytes"], r["psnr"]))
                ],
            }
            for r in runs
        ]
        plot_rd(
            curves,
            args.plot,
            f"demo scene, format {FORMAT_VERSION}: progs per LoD over λe vs SPZ of plain 3DGS fits",
            spz,
        )
    print(f"{args.section}: span {section['span']}, BD-rate vs SPZ {section['bd_rate_vs_spz_percent']}")


if __name__ == "__main__":
    main()
