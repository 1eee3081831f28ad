"""Rate-aware training (paper §III-E/F): quantization noise on anchor attributes and the entropy
loss L_e = (L_entropy + L_hash) / (N · (D_f + D_s + D_o)).

The context model predicts, per anchor, a step q per attribute type and a Gaussian prior per
channel. From the noise stage on, attributes are rendered as ``a + U(-q/2, q/2)`` (the straight
quantizer's training proxy, as in HAC). To keep a CPU step cheap, the steps of all anchors are
refreshed (without gradient) every ``refresh`` iterations, while a random ``fraction`` of anchors —
the paper's 5 % sample — gets fresh, differentiable steps and priors each iteration: they carry the
gradient of both the distortion and the rate into the context model.
"""

from __future__ import annotations

import torch

from progs.device import module_device, randperm, uniform
from progs.model.anchors import AnchorSet
from progs.model.context import ContextModel, gaussian_rate_bits
from progs.model.model import ProGSModel
from progs.model.visibility import hidden_gaussians, probe_cameras


def context_inputs(anchors: AnchorSet, idx: torch.Tensor | None = None):
    """The context model's inputs for anchors ``idx``: normalised positions, their parents' positions,
    which have a parent, and the levels."""
    grid = anchors.grid
    keys = anchors.keys if idx is None else anchors.keys[idx]
    levels = anchors.levels if idx is None else anchors.levels[idx]
    res = torch.tensor(
        [grid.resolution(level) for level in range(1, grid.num_levels + 1)], dtype=torch.float64, device=keys.device
    )
    r = res[levels - 1][:, None]
    pos = (keys.double() + 0.5) / r
    has_parent = levels > 1
    rp = torch.where(has_parent, res[(levels - 2).clamp_min(0)], res[0])[:, None]
    ppos = torch.where(has_parent[:, None], ((keys >> 1).double() + 0.5) / rp, torch.zeros_like(pos))
    return pos.float(), ppos.float(), has_parent, levels


class RateTrainer:
    """Holds the cached steps and produces noisy attributes and the entropy loss for one iteration.

    With a ``ceiling`` > 0, :meth:`step` also leaves in ``penalty`` the mean of ``relu(log(q / cap))²`` over
    the sampled anchors' steps, ``cap = ceiling · step_scale · Q0``, for the trainer to add to its loss."""

    def __init__(
        self,
        ctx: ContextModel,
        fraction: float = 0.05,
        refresh: int = 10,
        step_scale: float = 1.0,
        ceiling: float = 0.0,
    ):
        self.ctx = ctx
        self.ceiling = ceiling
        self.penalty: torch.Tensor | None = None
        self.step_scale = step_scale  # initial steps = step_scale · Q0 (see ContextModel.fit_output_bias)
        self.fraction = fraction
        self.refresh = refresh
        self._steps: torch.Tensor | None = None
        self._means: torch.Tensor | None = None
        self._age = 0
        self.prior_fitted = False  # whether the context prior has been started at the attributes' statistics

    def invalidate(self) -> None:
        self._steps = self._means = None

    def state(self) -> dict:
        """The cache for a checkpoint (CPU tensors, whatever the training device)."""
        return {
            "steps": None if self._steps is None else self._steps.detach().cpu().clone(),
            "means": None if self._means is None else self._means.detach().cpu().clone(),
            "age": self._age,
            "prior_fitted": self.prior_fitted,
        }

    def load_state(self, state: dict | None) -> None:
        """Restore :meth:`state` onto the context model's device."""
        if state:
            dev = module_device(self.ctx)
            steps, means = state["steps"], state.get("means")
            self._steps = None if steps is None else steps.to(dev)
            self._means = None if means is None else means.to(dev)
            self._age = int(state["age"])
            self.prior_fitted = bool(state.get("prior_fitted", True))

    def _all_steps(self, anchors: AnchorSet) -> torch.Tensor:
        n = len(anchors)
        if self._steps is None or self._means is None or self._steps.shape[0] != n or self._age >= self.refresh:
            with torch.no_grad():
                mean, _, q = self.ctx(*context_inputs(anchors))
                self._steps, self._means = self.ctx.step_per_channel(q), mean
            self._age = 0
        self._age += 1
        return self._steps

    def quantized(self, anchors: AnchorSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The attributes rounded as the codec rounds them, ``(round(a/q − μ/q) + μ/q) · q`` with the
        context model's step q and mean μ, passed straight through to the gradient (the decoder's
        snapped means and fixed-point weights differ from these by far less than a step)."""
        steps = self._all_steps(anchors)
        attrs = anchors.attribute_matrix()
        with torch.no_grad():
            centre = self._means / steps
            rounded = (torch.round(attrs / steps - centre) + centre) * steps
        return anchors.layout.split(attrs + (rounded - attrs).detach())

    def step(self, anchors: AnchorSet, gen: torch.Generator, entropy: bool, noise_gen: torch.Generator | None = None):
        """(noisy attributes for rendering, L_e or None, estimated bits per attribute or None).

        ``gen`` draws the anchors that get fresh steps, ``noise_gen`` (default ``gen``) the noise."""
        n = len(anchors)
        if not self.prior_fitted:
            self.ctx.fit_output_bias(anchors.attribute_matrix().detach(), self.step_scale)
            self.prior_fitted = True
            self.invalidate()
        steps = self._all_steps(anchors).clone()
        k = max(1, int(round(self.fraction * n)))
        sample = randperm(n, gen, anchors.device)[:k]
        mean, scale, q = self.ctx(*context_inputs(anchors, sample))
        qc = self.ctx.step_per_channel(q)
        if self.ceiling > 0:
            cap = torch.tensor(self.ctx.cfg.q0, dtype=q.dtype, device=q.device) * (self.step_scale * self.ceiling)
            self.penalty = torch.relu(torch.log(q / cap)).pow(2).mean()
        steps = steps.index_put((sample,), qc)
        attrs = anchors.attribute_matrix()
        noise = (uniform(attrs.shape, noise_gen or gen, attrs.device) - 0.5) * steps
        noisy = attrs + noise
        if not entropy:
            return anchors.layout.split(noisy), None, None
        D = attrs.shape[1]
        bits = gaussian_rate_bits(noisy[sample], mean, scale, qc).sum()
        hash_bits = self.ctx.hash_bits()
        loss = bits / (k * D) + hash_bits / (n * D)
        return anchors.layout.split(noisy), loss, float(bits.detach()) / (k * D)


@torch.no_grad()
def park_hidden_offsets(model: ProGSModel) -> int:
    """Set the offsets of every neural Gaussian that no probe camera would draw to the context model's
    predicted mean, where the decoder sets them (the stream leaves them out, :mod:`progs.model.visibility`).
    They change no image. Done when the entropy term starts and again when quantization starts.
    (Leaving them out of the rate term instead gave no smaller streams: docs/RESULTS.md, "Parking".)
    Returns how many Gaussians were parked."""
    a = model.anchors
    if len(a) == 0:
        return 0
    cams = probe_cameras(a.grid, model.view_distance, device=a.positions.device)
    hidden = hidden_gaussians(model.generator, a.positions, a.levels, a.feature, cams, model.dist_scale)
    mean, _, _ = model.context(*context_inputs(a))
    predicted = a.layout.split(mean.to(a.offsets.dtype))[2]
    a.offsets.copy_(torch.where(hidden[..., None], predicted, a.offsets))
    return int(hidden.sum())
