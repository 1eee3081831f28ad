"""The staged training schedule of ProGS (paper Fig. 5) as fractions of the iteration count, and the
learning-rate schedules (Scaffold-GS style exponential decay).

Paper (40k iterations): anchor adjustment and L_c2f from 1.6k; uniform quantisation noise from 13k with
anchor spawning paused until 14k; the entropy term L_e from 20k; anchor adjustment ends at 25k.
L_vol and L_NCE are applied from the start.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PAPER_ITERATIONS = 40_000


@dataclass(frozen=True)
class Schedule:
    """Stage boundaries as fractions of the total iteration count (paper values by default)."""

    adjust_start: float = 1_600 / PAPER_ITERATIONS  # anchor growing/pruning begins
    c2f_start: float = 1_600 / PAPER_ITERATIONS  # single-LoD loss replaced by L_c2f
    adjust_end: float = 25_000 / PAPER_ITERATIONS  # anchor growing/pruning ends
    noise_start: float = 13_000 / PAPER_ITERATIONS  # quantisation-aware training (uniform noise)
    spawn_pause_end: float = 14_000 / PAPER_ITERATIONS  # spawning paused in [noise_start, this)
    entropy_start: float = 20_000 / PAPER_ITERATIONS  # L_e added
    regularizers_start: float = 0.0  # L_vol and L_NCE
    # Beyond the paper: the last 10 % render the attributes rounded exactly as the codec rounds them
    # (straight-through), so the MLPs adapt to what the decoder will reconstruct (see train/rate.py).
    quantize_start: float = 0.9
    # Beyond the paper: before this point the views are TrainConfig.warmup_downscale times smaller
    # (area-averaged), so the early iterations, which learn the coarse scene, cost a fraction of a full one.
    full_size_start: float = 0.0

    def at(self, iterations: int) -> "Stages":
        """Absolute iteration numbers of each stage boundary for a run of ``iterations``."""
        return Stages(**{k: int(round(v * iterations)) for k, v in asdict(self).items()})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Stages:
    """The boundaries of :class:`Schedule` in iterations (each stage is active for ``it >= start``)."""

    adjust_start: int
    c2f_start: int
    adjust_end: int
    noise_start: int
    spawn_pause_end: int
    entropy_start: int
    regularizers_start: int
    quantize_start: int
    full_size_start: int

    def adjusting(self, it: int) -> bool:
        return self.adjust_start <= it < self.adjust_end

    def spawning(self, it: int) -> bool:
        """Growing allowed (adjusting, and not in the paper's pause after quantisation noise starts)."""
        return self.adjusting(it) and not (self.noise_start <= it < self.spawn_pause_end)

    def c2f(self, it: int) -> bool:
        return it >= self.c2f_start

    def noise(self, it: int) -> bool:
        return it >= self.noise_start

    def entropy(self, it: int) -> bool:
        return it >= self.entropy_start

    def regularizers(self, it: int) -> bool:
        return it >= self.regularizers_start

    def quantize(self, it: int) -> bool:
        return it >= self.quantize_start

    def full_size(self, it: int) -> bool:
        return it >= self.full_size_start


def exp_lr(
    it: int, total: int, lr_init: float, lr_final: float, delay_steps: int = 0, delay_mult: float = 1.0
) -> float:
    """3DGS/Scaffold-GS ``get_expon_lr_func``: log-linear from lr_init to lr_final over ``total`` steps."""
    if lr_init == lr_final or total <= 0:
        return lr_init
    if lr_init <= 0 or lr_final <= 0:
        return 0.0
    if delay_steps > 0:
        delay = delay_mult + (1 - delay_mult) * math.sin(0.5 * math.pi * min(max(it / delay_steps, 0.0), 1.0))
    else:
        delay = 1.0
    t = min(max(it / total, 0.0), 1.0)
    return delay * math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)
