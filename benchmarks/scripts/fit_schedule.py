"""Longer fits without a longer rate stage, and a low-resolution warm-up: `progs fit` on a splat scene
with a schedule of its own, then the stream encoded and scored as `score_fit.py` scores it.

`progs fit`'s schedule is a set of fractions of the iteration count (`progs.train.schedule.Schedule`):
at 2,000 iterations the quantisation noise starts at 650, the entropy term at 1,000 and the codec's
rounding at 1,800. Here ITERATIONS > 2,000 keeps those stages at their 2,000-iteration lengths and spends
the extra iterations before them (``--rate-as 0`` keeps the fractions instead). ``--warmup-until N
--warmup-downscale D`` trains the first N iterations on the teacher's views D times smaller
(`TrainConfig.warmup_downscale`, `Schedule.full_size_start`).

    python benchmarks/scripts/fit_schedule.py ../shared/data/playbot/lod-meta.json --lod 4 --size 1024 \\
        --iterations 2500 --lambda-e 0.0015 --out /tmp/pbfix2500
    python benchmarks/scripts/fit_schedule.py ../shared/data/playbot/lod-meta.json --lod 4 --size 1024 \\
        --iterations 2500 --lambda-e 0.0015 --warmup-until 1000 --warmup-downscale 2 --out /tmp/pbwarm2500
    python benchmarks/scripts/fit_schedule.py ../shared/data/playbot/lod-meta.json --lod 4 --size 512 \\
        --set feat_dim=8 --out /tmp/pbfeat8

``--set NAME=VALUE`` changes any training setting (`TrainConfig`), over the small-fit model's widths too;
``--stage NAME=FRACTION`` moves one stage boundary (`Schedule`), e.g. ``quantize_start=0.8``.

The run folder gets the stream (`scene.progs`), `run.json` with the decoded model's PSNR per LoD on the
viewer's views (`viewer_lods`), and `score/results.json` (score_fit.py's; ``--no-score`` skips it).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from progs.fitting import fit_splats
from progs.presets import FIT_DEFAULTS, SMALL_FIT_MODEL
from progs.train.config import TrainConfig
from progs.train.schedule import Schedule

SCRIPTS = Path(__file__).resolve().parent


def schedule(iterations: int, rate_as: int, warmup_until: int) -> Schedule:
    """The default schedule with its stages from the quantisation noise on at their lengths in a
    ``rate_as``-iteration run (0: fractions as they are), and full-size views from ``warmup_until``."""
    d = Schedule()
    if rate_as and iterations > rate_as:
        shift = iterations - rate_as

        def late(x: float) -> float:
            return (x * rate_as + shift) / iterations

        d = replace(
            d,
            adjust_end=late(d.adjust_end),
            noise_start=late(d.noise_start),
            spawn_pause_end=late(d.spawn_pause_end),
            entropy_start=late(d.entropy_start),
            quantize_start=late(d.quantize_start),
        )
    return replace(d, full_size_start=warmup_until / iterations)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scene")
    ap.add_argument("--lod", type=int, default=None)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--up", default="-y")
    ap.add_argument("--views", type=int, default=None)
    ap.add_argument("--no-score", action="store_true", help="skip score_fit.py (the fit's own viewer scores stay)")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--max-anchors", type=int, default=None, help="anchor budget (default: progs fit's rule)")
    ap.add_argument("--levels", type=int, default=None, help="octree levels (default: progs fit's rule)")
    ap.add_argument("--lambda-e", type=float, default=0.002)
    ap.add_argument("--rate-as", type=int, default=2000)
    ap.add_argument("--warmup-until", type=int, default=0)
    ap.add_argument("--warmup-downscale", type=int, default=1)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TrainConfig field (Python literal), e.g. n_offsets=5 or feat_dim=8; it wins over the small-fit model",
    )
    ap.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="NAME=FRACTION",
        help="a Schedule boundary as a fraction of the iterations, e.g. quantize_start=0.8",
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = ast.literal_eval(value)
    for name in list(SMALL_FIT_MODEL):
        if name in overrides:
            SMALL_FIT_MODEL[name] = overrides[name]
    sched = schedule(args.iterations, args.rate_as, args.warmup_until)
    for item in args.stage:
        name, _, value = item.partition("=")
        sched = replace(sched, **{name: float(value)})
    print(sched.at(args.iterations), flush=True)
    cfg = TrainConfig().replace(
        **{**FIT_DEFAULTS, **overrides},
        schedule=sched,
        lambda_e=args.lambda_e,
        warmup_downscale=args.warmup_downscale,
    )
    fit_splats(
        args.scene,
        args.out,
        lod=args.lod,
        size=args.size,
        views=args.views,
        up=args.up,
        config=cfg,
        levels=args.levels,
        max_anchors=args.max_anchors,
        iterations=args.iterations,
        log=lambda s: print(s, flush=True),
    )
    stream = args.out / "scene.progs"
    progs = [sys.executable, "-m", "progs"]
    subprocess.run([*progs, "encode", str(args.out), "--out", str(stream), "--no-eval"], check=True)
    if args.no_score:
        return
    score = [sys.executable, str(SCRIPTS / "score_fit.py"), args.scene, str(stream), "--out", str(args.out / "score")]
    score += [f"--up={args.up}"]
    if args.lod is not None:
        score += ["--lod", str(args.lod)]
    subprocess.run(score, check=True)


if __name__ == "__main__":
    main()
