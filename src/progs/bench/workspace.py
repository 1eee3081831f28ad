"""The benchmark's scene and its trained ProGS variants, each trained and encoded at most once per run.

A variant is a named :class:`~progs.train.trainer.TrainConfig` change (ablations, single-rate, λ_e).
It is trained into ``OUT/runs/NAME`` with :func:`progs.pipeline.train_run`, encoded with
:func:`progs.pipeline.encode_run` into ``OUT/runs/NAME.progs`` and measured from the decoded stream
with :func:`progs.pipeline.evaluate_stream` on the scene's test views.
"""

from __future__ import annotations

import dataclasses

import json

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from progs.io.dataset import DatasetSpec, find_dataset
from progs.errors import ProgsError
from progs.bench.common import REFERENCE_LAMBDA, BenchConfig
from progs.scene import Scene

# name -> TrainConfig overrides (besides lambda_e)
# "full" is what progs trains by default on the dataset (on the demo: its preset, which leaves InfoNCE out
# and weighs LoD L 0.5 in L_c2f); "paper" and the ablations of paper Table III set the paper's losses
# explicitly, so they mean the same on every dataset.
PAPER = {"infonce": True, "c2f_finest_weight": None}
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "paper": PAPER,
    "single_rate": {"c2f": False, "infonce": False, "c2f_finest_weight": None},  # (the weight is moot without c2f)
    "raw": {"growth.enabled": False, "infonce": False, "c2f": False, "c2f_finest_weight": None},
    "no_mi": {**PAPER, "infonce": False},
    "no_c2f": {**PAPER, "c2f": False},
}


@dataclass
class Trained:
    name: str
    overrides: dict[str, Any]
    lambda_e: float
    run: Path
    stream: Path
    train_seconds: float
    iterations: int
    checkpoint_lods: list[dict[str, Any]]  # unquantized model on the test views
    encode: Any  # progs.codec.stream.EncodeResult
    lods: list[dict[str, Any]]  # decoded stream per LoD: lod, anchors, bytes, cumulative_bytes, psnr, ssim

    @property
    def total_bytes(self) -> int:
        return len(self.encode.data)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "overrides": self.overrides,
            "lambda_e": self.lambda_e,
            "iterations": self.iterations,
            "train_seconds": round(self.train_seconds, 2),
            "total_bytes": self.total_bytes,
            "header_bytes": self.encode.header_bytes,
            "encode_seconds": round(self.encode.seconds, 4),
            "lods": self.lods,
            "checkpoint_lods": self.checkpoint_lods,
        }


def resolve_dataset(name: str, downscale: float, views: int, size: int, seed: int) -> tuple[DatasetSpec, str]:
    """(dataset spec, display name). A bare name (``fox``) is a folder under the data root
    (:func:`progs.io.dataset.data_root`); ``views``, ``size`` and ``seed`` apply to the demo scene only."""
    if name == "demo":
        return DatasetSpec.create("demo", views=views, size=size, seed=seed), "demo"
    path = find_dataset(name).resolve()
    return DatasetSpec.create("folder", path=str(path), downscale=downscale), path.name


class Workspace:
    def __init__(self, cfg: BenchConfig, log: Callable[[str], None]):
        self.cfg = cfg
        self.log = log
        self.spec, self.dataset_name = resolve_dataset(
            cfg.dataset, cfg.downscale, cfg.profile.views, cfg.profile.size, cfg.seed
        )
        t0 = time.perf_counter()
        self.scene: Scene = self.spec.load()
        self.scene_seconds = time.perf_counter() - t0
        self._trained: dict[tuple[str, float], Trained] = {}
        self._configs: dict[tuple[str, float], Any] = {}  # the TrainConfig of each entry of _trained
        self.runs = cfg.out / "runs"
        self.cache: dict[str, Any] = {}  # results shared between suites (e.g. the quick raster rows)

    def describe(self) -> dict[str, Any]:
        v = self.scene.train_views[0].camera
        return {
            "name": self.dataset_name,
            "spec": self.spec.to_json(),
            "train_views": len(self.scene.train_views),
            "test_views": len(self.scene.test_views),
            "width": v.width,
            "height": v.height,
            "points": None if self.scene.points is None else int(self.scene.points.shape[0]),
            "iterations": self.cfg.train_iterations(),
        }

    def train_config(self, overrides: dict[str, Any], lambda_e: float):
        from progs.train.config import TrainConfig

        options: dict[str, Any] = {}
        if self.dataset_name == "demo":  # the embedded scene: the preset `progs demo` trains with
            from progs.presets import demo_overrides

            options.update(demo_overrides())
        options.update(iterations=self.cfg.train_iterations(), seed=self.cfg.seed, lambda_e=lambda_e, **overrides)
        return TrainConfig().replace(**options)

    def trained(self) -> list[Trained]:
        return list(self._trained.values())

    def get(self, name: str, lambda_e: float = REFERENCE_LAMBDA) -> Trained:
        """Train (once), encode and evaluate the variant ``name`` at ``lambda_e``."""
        key = (name, float(lambda_e))
        if key in self._trained:
            return self._trained[key]
        overrides = VARIANTS[name]
        config = self.train_config(overrides, lambda_e)
        # a variant that trains the same model on this dataset (e.g. "paper" where the default is the paper's)
        same = next((self._trained[k] for k, seen in self._configs.items() if seen == config), None)
        if same is not None:
            t = dataclasses.replace(same, name=name, overrides=overrides)
        else:
            tag = name if lambda_e == REFERENCE_LAMBDA else f"{name}_le{lambda_e:g}"
            out, enc, rows = self.train_and_encode(tag, config)
            t = Trained(
                name,
                overrides,
                float(lambda_e),
                out.run,
                enc.stream,
                out.seconds,
                out.iterations,
                out.lods,
                enc.result,
                rows,
            )
        self._trained[key] = t
        self._configs[key] = config
        return t

    def train_and_encode(self, tag: str, config: Any, scene: Scene | None = None, spec: DatasetSpec | None = None):
        """``(TrainOutcome, EncodeOutcome, per-LoD rows of the decoded stream)`` of the run ``runs/<tag>``
        trained with ``config`` on ``scene`` (default: the workspace's), reusing a finished run of the
        same configuration (a bench run again)."""
        from progs.pipeline import encode_run, evaluate_stream, train_run

        scene, spec = (self.scene, self.spec) if scene is None else (scene, spec)
        run = self.runs / tag
        out = _finished_run(run, config, scene)
        if out is not None:
            self.log(f"  reusing {tag} (finished run in {run})")
        else:
            self.log(f"  training {tag} ({config.iterations} iterations)")
            out = train_run(
                scene, spec, run, config, checkpoint_every=0, progress=False, log=lambda m: None, device=self.cfg.device
            )
        enc = encode_run(run, self.runs / f"{tag}.progs", evaluate=False, scene=scene, log=lambda m: None)
        rows = evaluate_stream(enc.result.data, scene, source=str(enc.stream), device=self.cfg.device)
        self.log(
            f"  {tag}: {len(enc.result.data)} bytes, LoD {rows[-1]['lod']} PSNR {rows[-1]['psnr']:.2f} dB "
            f"(trained in {out.seconds:.0f} s)"
        )
        return out, enc, rows


def _same_config(saved: Any, config: Any) -> bool:
    """Whether a run.json's ``config`` is ``config``: read back through TrainConfig, so that options added
    since the run was written (at their defaults, which reproduce the old behaviour) do not count."""
    from progs.train.config import TrainConfig

    as_json = lambda d: json.loads(json.dumps(d, default=float))  # noqa: E731
    try:
        return as_json(TrainConfig.from_dict(saved).to_dict()) == as_json(config.to_dict())
    except (ProgsError, TypeError, ValueError, AttributeError):
        return False


def _finished_run(run: Path, config: Any, scene: Scene | None = None) -> Any:
    """The TrainOutcome of a finished training in ``run`` whose configuration is ``config`` (with the counts
    it leaves to the scene sized for ``scene``, as the trainer sizes them), else None."""
    from progs.pipeline import TrainOutcome
    from progs.train.run import CHECKPOINT, read_run_json
    from progs.train.sizing import scene_sizing

    if scene is not None:
        config = scene_sizing(scene, config)

    try:
        info = read_run_json(run)
    except ProgsError:  # no run, or an unreadable one: train anew
        return None
    same = _same_config(info.get("config"), config)
    if (
        "lods" not in info
        or not (run / CHECKPOINT).is_file()
        or not same
        or int(info.get("iterations", -1)) != config.iterations
    ):
        return None
    return TrainOutcome(run, info["lods"], float(info.get("train_seconds", 0.0)), int(info["iterations"]))
