"""Are a fit's quantization steps balanced across the three attribute types (features, scalings,
offsets)? Three measurements, each printing one JSON line per run:

``trajectory``: a short `progs fit` of a splat scene with the context model's mean step per type (as a
multiple of Q0) recorded every 20 rate iterations; ``--rate-weight 0`` keeps the entropy stage but
takes its term out of the loss (what the steps do under the distortion alone).

    python benchmarks/scripts/fit_step_types.py trajectory /tmp/demo_scene.ply --up z --size 256 \\
        --iterations 800 --lambda-e 0.002 --out /tmp/traj2e3

``sweep``: a finished fit's steps of one type made coarser or finer after training (each type's bias
in the last layer of MLP_q moved by DELTA; the stream format is unchanged, the encoder owns those
weights), encoded, decoded and scored on the viewer's held-out views. No retraining: the attributes
were trained for the steps they have.

    python benchmarks/scripts/fit_step_types.py sweep RUN SCENE --up z --deltas 0.3,0.6,-0.3,-0.6

``tune``: the same shift (F,S,O: one delta per type), then MLP_q frozen and ``--extra`` more
iterations of the codec-rounding stage from the run's checkpoint, so the model adapts to its new
steps; ``--deltas 0,0,0`` is the control (the same extra iterations, steps as learned). Scored at 1024²
on the viewer's views, as `progs fit` scores.

    python benchmarks/scripts/fit_step_types.py tune RUN SCENE --up z --deltas 0,0,-0.5 --out /tmp/ft_o
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from pathlib import Path

import torch

from progs.codec.stream import encode
from progs.eval.quality import evaluate_lods
from progs.fitting import fit_splats
from progs.presets import FIT_DEFAULTS
from progs.train import rate as rate_module
from progs.train.config import TrainConfig
from progs.train.rate import context_inputs
from progs.train.run import load_run_model

TYPES = ("features", "scalings", "offsets")


def mean_steps(ctx, anchors) -> torch.Tensor:
    """Context model ``ctx``'s mean step per attribute type over ``anchors``, in units of its Q0."""
    with torch.no_grad():
        _, _, q = ctx(*context_inputs(anchors))
        return (q / torch.tensor(ctx.cfg.q0, dtype=q.dtype)).mean(0)


def steps_over_q0(model) -> list[float]:
    """:func:`mean_steps` of ``model``'s context model over all its anchors, rounded for a report."""
    return [round(float(x), 4) for x in mean_steps(model.context, model.anchors)]


def trajectory(args: argparse.Namespace) -> None:
    record: list[dict] = []
    original = rate_module.RateTrainer.step
    calls = [0]

    def step(self, anchors, gen, entropy, noise_gen=None):
        noisy, loss, bits = original(self, anchors, gen, entropy, noise_gen)
        calls[0] += 1
        if calls[0] % 20 == 0:
            s = [float(x) for x in mean_steps(self.ctx, anchors)]
            record.append({"rate_iteration": calls[0], "entropy": entropy, "steps_over_q0": s, "bits": bits})
        if loss is not None and args.rate_weight != 1.0:
            loss = loss * args.rate_weight
        return noisy, loss, bits

    rate_module.RateTrainer.step = step
    cfg = TrainConfig().replace(**FIT_DEFAULTS, lambda_e=args.lambda_e)
    out = fit_splats(
        args.scene,
        args.out,
        size=args.size,
        up=args.up,
        config=cfg,
        iterations=args.iterations,
        eval_size=0,
        log=lambda s: print(s, flush=True),
    )
    model, _ = load_run_model(args.out)
    res = encode(model)
    row = {
        "mode": "trajectory",
        "scene": args.scene,
        "lambda_e": args.lambda_e,
        "rate_weight": args.rate_weight,
        "size": args.size,
        "iterations": args.iterations,
        "bytes": len(res.data),
        "final_steps_over_q0": steps_over_q0(res.model),
        "test_psnr": out.lods[-1]["psnr"],
        "trajectory": record,
    }
    (Path(args.out) / "steps.json").write_text(json.dumps(row, indent=1))
    print(json.dumps({k: v for k, v in row.items() if k != "trajectory"}), flush=True)


def shifted(model, deltas: list[float]):
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.context.mlp_q[-1].bias += torch.tensor(deltas, dtype=m.context.mlp_q[-1].bias.dtype)
    return m


def sweep(args: argparse.Namespace) -> None:
    from progs.io.splats import read_splats
    from progs.io.teacher import viewer_views

    model, _ = load_run_model(args.run)
    views = viewer_views(read_splats(args.scene, lod=args.lod), args.up, size=args.size)
    base = steps_over_q0(model)
    tries = [("base", [0.0, 0.0, 0.0])]
    for j, name in enumerate(TYPES):
        for d in (float(x) for x in args.deltas.split(",")):
            tries.append((f"{name} {d:+g}", [d if i == j else 0.0 for i in range(3)]))
    for tag, deltas in tries:
        res = encode(shifted(model, deltas))
        q = evaluate_lods(res.model, views, background=torch.zeros(3))
        s = steps_over_q0(res.model)
        row = {
            "mode": "sweep",
            "run": str(args.run),
            "change": tag,
            "bias_deltas": deltas,
            "bytes": len(res.data),
            "psnr": q[-1]["psnr"],
            "steps_over_q0": s,
            "step_ratio": [round(a / b, 3) for a, b in zip(s, base)],
            "view_size": args.size,
        }
        print(json.dumps(row), flush=True)


def tune(args: argparse.Namespace) -> None:
    deltas = [float(x) for x in args.deltas.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(args.run) / "run.json", out / "run.json")
    ckpt = torch.load(Path(args.run) / "checkpoint.pt", weights_only=False)
    bias = ckpt["context"]["mlp_q.2.bias"]
    ckpt["context"]["mlp_q.2.bias"] = bias + torch.tensor(deltas, dtype=bias.dtype)
    rate = ckpt["config"]["rate"]
    rate["lr_context_step_init"] = rate["lr_context_step_final"] = 0.0
    rate.pop("rounding_rate", None)  # an option of older checkpoints
    ckpt["rate_cache"]["steps"] = ckpt["rate_cache"]["means"] = None
    torch.save(ckpt, out / "checkpoint.pt")
    outcome = fit_splats(
        args.scene,
        out,
        lod=args.lod,
        size=args.size,
        up=args.up,
        resume=True,
        iterations=ckpt["iteration"] + args.extra,
        log=lambda s: print(s, flush=True),
    )
    model, _ = load_run_model(out)
    res = encode(model)
    ends = [offset + size for _, offset, size in res.chunk_offsets[1:]]  # each LoD prefix's bytes
    row = {
        "mode": "tune",
        "run": str(args.run),
        "bias_deltas": deltas,
        "extra_iterations": args.extra,
        "bytes": len(res.data),
        "steps_over_q0": steps_over_q0(res.model),
        "prefixes": [[b, round(v["psnr"], 3)] for b, v in zip(ends, outcome.viewer_lods)],
    }
    (out / "tune.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("trajectory")
    t.add_argument("scene")
    t.add_argument("--up", default="-y")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--iterations", type=int, default=800)
    t.add_argument("--lambda-e", type=float, default=0.002)
    t.add_argument("--rate-weight", type=float, default=1.0)
    t.add_argument("--out", type=Path, required=True)
    for name in ("sweep", "tune"):
        p = sub.add_parser(name)
        p.add_argument("run", type=Path)
        p.add_argument("scene")
        p.add_argument("--lod", type=int, default=None)
        p.add_argument("--up", default="-y")
        p.add_argument("--deltas", required=True)
    s = sub.choices["sweep"]
    s.add_argument("--size", type=int, default=512, help="viewer views' size (default 512)")
    u = sub.choices["tune"]
    u.add_argument("--size", type=int, default=512, help="the teacher's size the run was fitted at")
    u.add_argument("--extra", type=int, default=300)
    u.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    {"trajectory": trajectory, "sweep": sweep, "tune": tune}[args.mode](args)


if __name__ == "__main__":
    main()
