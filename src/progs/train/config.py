"""The training configuration: one :class:`TrainConfig` made of small, validated sections.

    TrainConfig            iterations, levels, base depth, seed, sizes, initialisation, rendering
      .loss   LossConfig     photometric, volume, InfoNCE and coarse-to-fine terms
      .growth GrowthConfig   anchor growing/pruning (paper §III-C, Algorithm 1)
      .lr     LearningRates  Scaffold-GS learning rates (start → end, exponential decay)
      .rate   RateConfig     quantization noise and the entropy loss (paper §III-E)
      .schedule Schedule     when each stage starts (fractions of the iterations)

Change a configuration with :meth:`TrainConfig.replace`, by section (``loss=LossConfig(...)``),
by dotted name (``"rate.lambda_e"``) or by a field's own name when it is unique (``lambda_e``);
unknown names and out-of-range values are refused with a one-line :class:`ConfigError`. Only
:meth:`TrainConfig.from_dict` (run folders, checkpoints) reads the names of older runs, with a warning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from progs.errors import InputError
from progs.train.schedule import Schedule


class ConfigError(InputError):
    """An unknown option or a value out of range."""


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _positive(name: str, v: float, zero: bool = False) -> None:
    _check(
        isinstance(v, (int, float)) and math.isfinite(v) and (v >= 0 if zero else v > 0),
        f"{name} must be a {'non-negative' if zero else 'positive'} number, got {v!r}",
    )


@dataclass(frozen=True)
class LossConfig:
    lambda_ssim: float = 0.2
    lambda_vol: float = 0.01
    lambda_nce: float = 0.005
    nce_tau: float = 0.03
    nce_negatives: int = 100
    nce_fraction: float = 0.05
    # The paper's parent-child InfoNCE loss, off by default (--infonce): its features cost more bytes than
    # they buy quality (docs/RESULTS.md, "InfoNCE").
    infonce: bool = False
    c2f: bool = True  # False = --no-c2f: the single-LoD loss of LoD L throughout
    # Coarser LoDs rendered per step besides LoD L: None = all (exact Eq. 12); k = k random ones with
    # unbiased weights (cheaper; on the demo scene all LoDs gave LoD 1 +1.5 dB for ~1.3x the time).
    c2f_coarse_samples: int | None = None
    # Weight of LoD L in L_c2f: None = the paper's 1/L (every LoD alike); w gives LoD L the weight w and
    # shares 1 - w among the coarser LoDs.
    c2f_finest_weight: float | None = None

    def __post_init__(self) -> None:
        _check(0.0 <= self.lambda_ssim <= 1.0, f"lambda_ssim must lie in [0, 1], got {self.lambda_ssim}")
        for name in ("lambda_vol", "lambda_nce"):
            _positive(name, getattr(self, name), zero=True)
        _positive("nce_tau", self.nce_tau)
        _check(0.0 < self.nce_fraction <= 1.0, f"nce_fraction must lie in (0, 1], got {self.nce_fraction}")
        _check(self.nce_negatives >= 1, f"nce_negatives must be >= 1, got {self.nce_negatives}")
        _check(
            self.c2f_coarse_samples is None or self.c2f_coarse_samples >= 1,
            f"c2f_coarse_samples must be >= 1 (or unset: all coarser LoDs), got {self.c2f_coarse_samples}",
        )
        _check(
            self.c2f_finest_weight is None or 0.0 < self.c2f_finest_weight <= 1.0,
            f"c2f_finest_weight must be None or in (0, 1], got {self.c2f_finest_weight}",
        )


@dataclass(frozen=True)
class GrowthConfig:
    """Anchor growing and pruning (paper §III-C, Algorithm 1; defaults after Scaffold-GS): the rules
    and when they run. ``progs.train.strategy.GrowthStrategy`` applies them.

    Gradient norms are of the view-space mean in NDC units (pixel gradient × (W/2, H/2)), as in
    3DGS / Scaffold-GS, so the thresholds do not depend on the image size.
    """

    grad_threshold: float = 2e-4  # τ_g
    beta: float = 1.0  # τ_l = τ_g · 2^(β (l - 1))  (level 1 gets τ_g)
    very_factor: float = 2.0  # "very significant": grad > very_factor · τ_{l+1} → spawn at level l + 1
    min_grad_count_fraction: float = 0.25  # Gaussians seen in fewer than this · T renders are ignored
    prune_opacity: float = 0.005  # τ_o: prune leaves whose mean (over visible steps) summed opacity < τ_o
    min_visible_fraction: float = 0.25  # ... and that were visible in at least this · T steps
    # Growth stops at about this many anchors. None = sized from the scene when training starts
    # (progs.train.sizing.scene_sizing): 200,000 with SfM points, from the views' pixel count without.
    max_anchors: int | None = None
    grow: bool = True
    prune: bool = True
    enabled: bool = True  # False = --no-adjust: no growing/pruning
    interval: int = 100  # T

    def __post_init__(self) -> None:
        _check(self.interval >= 1, f"growth interval must be >= 1, got {self.interval}")
        for name in ("grad_threshold", "very_factor", "prune_opacity"):
            _positive(name, getattr(self, name), zero=True)
        _check(self.max_anchors is None or self.max_anchors >= 1, f"max_anchors must be >= 1, got {self.max_anchors}")


@dataclass(frozen=True)
class LearningRates:
    """Scaffold-GS learning rates; ``*_init`` → ``*_final`` decay exponentially over the run (offsets
    scaled by the camera extent)."""

    feature: float = 0.0075
    scaling: float = 0.007
    offsets_init: float = 0.01
    offsets_final: float = 0.0001
    mlp_opacity_init: float = 0.002
    mlp_opacity_final: float = 0.00002
    mlp_cov_init: float = 0.004
    mlp_cov_final: float = 0.004
    mlp_color_init: float = 0.008
    mlp_color_final: float = 0.00005

    def __post_init__(self) -> None:
        for f in fields(self):
            _positive(f"lr.{f.name}", getattr(self, f.name), zero=True)


REFERENCE_LAMBDA_E = 0.002  # λ_e whose initial steps are the base steps Q0
STEP_EXPONENT = 0.75  # steps ∝ λ_e^0.75


@dataclass(frozen=True)
class RateConfig:
    enabled: bool = True  # False = --no-rate: no quantization noise, no entropy loss
    lambda_e: float = 0.002  # paper sweep: 5e-4 ... 4e-3
    entropy_fraction: float = 0.05
    lr_context_grid_init: float = 0.005
    lr_context_grid_final: float = 0.00005
    lr_context_mlp_init: float = 0.005
    lr_context_mlp_final: float = 0.00001
    # MLP_q (the steps) learns on its own, slower schedule. At the MLP's rate the steps random-walked:
    # Adam moves the step logit by ~lr per iteration whatever the gradient's size, and the rate and the
    # noise-driven distortion gradients nearly cancel, so the same λ_e ended at 1.2 Q0 in one run and
    # 7 Q0 in another (1 vs 2 threads; stream sizes 1.8x apart). The steps start at step_scale · Q0.
    lr_context_step_init: float = 0.001
    lr_context_step_final: float = 0.00001
    # Training only (the stream codes whatever steps MLP_q gives): a penalty, log(q / cap)² above
    # cap = step_ceiling · step_scale · Q0, keeps every step at most there, so that the random walk above
    # cannot carry a fit's steps to several times where λ_e put them (0 = no ceiling; docs/RESULTS.md,
    # "A ceiling on the steps").
    step_ceiling: float = 0.0

    @property
    def step_scale(self) -> float:
        """Initial steps relative to Q0: (λ_e / 2e-3)^STEP_EXPONENT."""
        return (self.lambda_e / REFERENCE_LAMBDA_E) ** STEP_EXPONENT if self.lambda_e > 0 else 1.0

    def __post_init__(self) -> None:
        _positive("lambda_e", self.lambda_e, zero=True)
        _check(0.0 < self.entropy_fraction <= 1.0, f"entropy_fraction must lie in (0, 1], got {self.entropy_fraction}")
        for name in (
            "lr_context_grid_init",
            "lr_context_grid_final",
            "lr_context_mlp_init",
            "lr_context_mlp_final",
            "lr_context_step_init",
            "lr_context_step_final",
        ):
            _positive(name, getattr(self, name), zero=True)
        _positive("step_ceiling", self.step_ceiling, zero=True)


SECTIONS: dict[str, type] = {"loss": LossConfig, "growth": GrowthConfig, "lr": LearningRates, "rate": RateConfig}

# What older run folders and checkpoints hold: the flat names of the configuration before 2026-11-27,
# and options since removed (experiments that lost: docs/RESULTS.md). Only TrainConfig.from_dict reads
# them, with a warning.
_RENAMED = {
    "adjust": "growth.enabled",
    "adjust_interval": "growth.interval",
    "grad_threshold": "growth.grad_threshold",
    "grad_beta": "growth.beta",
    "very_factor": "growth.very_factor",
    "prune_opacity": "growth.prune_opacity",
    "max_anchors": "growth.max_anchors",
    "rate": "rate.enabled",
    **{f"lr_{f.name}": f"lr.{f.name}" for f in fields(LearningRates)},
}
_REMOVED = {"downscale", "refine_fraction", "growth.level_budget"}  # downscale: now the dataset's (DatasetSpec)


def _upgrade(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` (dotted names) with the names of older runs translated and removed options dropped."""
    old = sorted(n for n in changes if n in _RENAMED or n in _REMOVED)
    if old:
        warnings.warn(
            f"a run of an older progs: read {', '.join(old)} as today's configuration "
            "(renamed options translated, removed ones ignored)",
            stacklevel=3,
        )
    return {_RENAMED.get(n, n): v for n, v in changes.items() if n not in _REMOVED}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults: the demo scene on 2 CPU cores in minutes."""

    iterations: int = 2000
    levels: int = 5  # L
    base_depth: int | None = None  # b; None = from the SfM point spacing (octree.default_base_depth)
    seed: int = 0
    feat_dim: int = 32
    n_offsets: int = 10
    # Hidden width of the generator's three MLPs (opacity, colour, covariance); None = feat_dim. The
    # header carries it (docs/FORMAT.md, `generator`): a wider MLP costs header bytes, not anchor bytes.
    generator_hidden: int | None = None
    # The opacity every neural Gaussian starts at (the opacity head's output bias; its output weights
    # shrunk to a tenth), so that none starts hidden; 0 = PyTorch's default initialisation, under which
    # the sign of a random bias hides a seed-dependent share of the offsets from the first step.
    opacity_start: float = 0.0
    # Random initial anchors when the scene has no SfM points. None = from the training views' pixel count
    # when training starts (progs.train.sizing.scene_sizing).
    init_random_points: int | None = None
    # (3D, 2D) levels of the context model's hash grid; None = ContextConfig's (12, 4). Both MLPs read
    # dim x (3D + 3 x 2D) features at the anchor and at its parent, so the levels set most of the header.
    context_hash_levels: tuple[int, int] | None = None
    # Hidden widths of the context model's two MLPs (MLP_d for the priors, MLP_q for the steps); None =
    # ContextConfig's (16, 8). Their weights are a third of a small scene's header.
    context_mlp: tuple[int, int] | None = None
    init_level: int | None = None  # level of the initial anchors (None = L, the paper); finer ones grow
    cull_margin: float = 0.1
    backend: str = "auto"
    deterministic: bool = True  # torch deterministic algorithms during each step (needed with >1 thread)
    # Views this many times smaller until schedule.full_size_start (1: always full size).
    warmup_downscale: int = 1
    loss: LossConfig = field(default_factory=LossConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    lr: LearningRates = field(default_factory=LearningRates)
    rate: RateConfig = field(default_factory=RateConfig)
    schedule: Schedule = field(default_factory=Schedule)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.iterations, int) and self.iterations >= 1,
            f"iterations must be >= 1, got {self.iterations!r}",
        )
        _check(1 <= self.levels <= 16, f"levels must lie in 1..16, got {self.levels}")
        _check(
            self.base_depth is None or 0 <= self.base_depth <= 20,
            f"base_depth must lie in 0..20, got {self.base_depth}",
        )
        _check(
            self.init_level is None or 1 <= self.init_level <= self.levels,
            f"init_level must lie in 1..levels ({self.levels}), got {self.init_level}",
        )
        _check(self.feat_dim >= 1 and self.n_offsets >= 1, "feat_dim and n_offsets must be >= 1")
        _check(
            self.generator_hidden is None or 1 <= self.generator_hidden <= 4096,
            f"generator_hidden must lie in 1..4096, got {self.generator_hidden}",
        )
        _check(0.0 <= self.opacity_start < 1.0, f"opacity_start must lie in [0, 1), got {self.opacity_start}")
        _check(
            isinstance(self.warmup_downscale, int) and self.warmup_downscale >= 1,
            f"warmup_downscale must be an integer >= 1, got {self.warmup_downscale!r}",
        )
        self._int_pair("context_hash_levels", 16, "levels in 1..16 (3D, 2D)")
        self._int_pair("context_mlp", 256, "hidden widths in 1..256 (MLP_d, MLP_q)")
        _check(
            self.init_random_points is None or self.init_random_points >= 1,
            f"init_random_points must be >= 1, got {self.init_random_points}",
        )
        _check(self.backend in ("auto", "cpu", "cuda", "reference"), f"unknown backend {self.backend!r}")

    def _int_pair(self, name: str, most: int, what: str) -> None:
        """Field ``name``: None or two integers in 1..``most`` (a list, as read back from a run's JSON,
        becomes a tuple)."""
        value = getattr(self, name)
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, name, value)
        _check(
            value is None or (len(value) == 2 and all(isinstance(x, int) and 1 <= x <= most for x in value)),
            f"{name} must be two {what}, got {value!r}",
        )

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes``: top-level fields, sections, ``section.field`` or a unique field name."""
        top: dict[str, Any] = {}
        per_section: dict[str, dict[str, Any]] = {}
        top_names = {f.name for f in fields(self)}
        for name, value in changes.items():
            target = _resolve(name, top_names)
            if "." in target:
                section, leaf = target.split(".", 1)
                per_section.setdefault(section, {})[leaf] = value
            else:
                top[target] = value
        for section, values in per_section.items():
            base = top.get(section, getattr(self, section))
            try:
                top[section] = replace(base, **values)
            except TypeError as exc:
                raise ConfigError(f"{section}: {exc}") from None
        if isinstance(top.get("schedule"), dict):
            top["schedule"] = Schedule(**top["schedule"])
        return replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schedule"] = self.schedule.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; also reads the configurations of older runs (with a warning)."""
        changes: dict[str, Any] = {}
        for name, value in d.items():
            if name in SECTIONS and isinstance(value, dict):
                changes.update({f"{name}.{k}": v for k, v in value.items()})
            else:
                changes[name] = value
        return cls().replace(**_upgrade(changes))


def _resolve(name: str, top_names: set[str]) -> str:
    """The dotted path of option ``name``; ConfigError if unknown."""
    if name in top_names:
        return name
    if "." in name:
        section, leaf = name.split(".", 1)
        if section in SECTIONS and leaf in {f.name for f in fields(SECTIONS[section])}:
            return name
    owners = [s for s, t in SECTIONS.items() if name in {f.name for f in fields(t)}]
    if len(owners) == 1:
        return f"{owners[0]}.{name}"
    hint = f" (ambiguous: say {' or '.join(o + '.' + name for o in owners)})" if owners else ""
    raise ConfigError(f"unknown training option {name!r}{hint}")
