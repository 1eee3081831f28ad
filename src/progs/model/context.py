"""The context model: a binarized 3D+2D hash grid and the MLPs that predict each attribute's
Gaussian prior and quantization step (paper §III-E, after HAC).

For anchor i with normalised position x_i in [0, 1]^3 and its parent's x_p (roots: zero context):

    h_i = H(x_i), h_p = H(x_p)                      (binarized hash-grid features, STE in training)
    mu_i, sigma_i = MLP_d(h_i, h_p)                 (per attribute channel: 32 f + 6 s + 30 o)
    q_i = Q0 * 2^(3 tanh(MLP_q(h_i, h_p)))          (one step per attribute type and anchor, Q0/8 .. 8 Q0)

Two evaluation paths share the parameters:

- ``forward`` (float32, autograd) for training: rate estimates and quantization noise;
- ``exact_features`` + ``coding_params`` (float64, no autograd) for coding. They are bit-identical
  on every CPU and thread count: interpolation uses only elementwise + and * in a fixed order;
  interpolated features and hidden activations are snapped to a dyadic grid (multiples of 2^-12)
  and the weights are stored as dyadic fixed-point numbers (8- or 12-bit mantissas times 2^-e), so every
  product and every partial sum of the matrix products is exact in float64 and summation order
  cannot matter; the final tanh/softplus come from :mod:`progs.model.exact_math` (IEEE + - * /
  only). A C++ kernel (``csrc/context_exact.cpp``) computes both steps fast; the PyTorch twins
  here give the same bits when it is unavailable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from progs.kernels import load_kernel
from progs.model import exact_math
from progs.model.layout import AttributeLayout

PRIMES = (1, 2654435761, 805459861)
ACT_GRID = 2.0**-12  # dyadic grid of context features and hidden activations in the exact path
ACT_CLAMP = 2.0**10
LEAKY = 1.0 / 64.0  # leaky-ReLU slope, a power of two so that it is exact
MEAN_GRID = 2.0**-10  # grid of predicted means (in symbol units: attribute units / step)
STEP_LEVELS = 4096  # q = Q0 * k / STEP_BASE with k in 1..STEP_LEVELS
STEP_BASE = 512.0  # k of q = Q0 (tanh = 0)
STEP_LOG = 2.0794415416798357  # 3 ln 2: q = Q0 * 2^(3 tanh t) spans Q0 / 8 .. 8 Q0 (the rate knob's range)
SCALE_FLOOR = 1e-4  # added to softplus for the predicted deviation (attribute units)


# 2^(k/8) and 2^((k + 0.5)/8), k = 0..7, as double literals (the format fixes these values)
OCTAVE_STEPS = (
    1.0,
    1.0905077326652577,
    1.189207115002721,
    1.2968395546510096,
    1.4142135623730951,
    1.5422108254079407,
    1.681792830507429,
    1.8340080864093424,
)
OCTAVE_THRESHOLDS = (
    1.0442737824274138,
    1.1387886347566916,
    1.241857812073484,
    1.3542555469368927,
    1.4768261459394993,
    1.6104903319492543,
    1.7562521603732995,
    1.9152065613971474,
)
NUM_SCALE_BINS = 128
SCALE_MIN_EXPONENT = -4


def _scale_bins() -> tuple[torch.Tensor, torch.Tensor]:
    """The coder's deviations in symbol units: 128 bins, 8 per octave from 2^-4 (~3700 at the top).

    ``bin[b] = 2^(b // 8 - 4) · OCTAVE_STEPS[b % 8]``; a deviation s falls into bin b when
    ``threshold[b-1] <= s < threshold[b]`` with ``threshold[b] = 2^(b // 8 - 4) ·
    OCTAVE_THRESHOLDS[b % 8]`` (the geometric midpoint). Scaling by powers of two is exact, so the
    values are the same on every machine, and the bin of s can be read from its binary exponent
    and a comparison of its mantissa with the eight octave thresholds."""
    values = [math.ldexp(OCTAVE_STEPS[b % 8], b // 8 + SCALE_MIN_EXPONENT) for b in range(NUM_SCALE_BINS)]
    thresholds = [math.ldexp(OCTAVE_THRESHOLDS[b % 8], b // 8 + SCALE_MIN_EXPONENT) for b in range(NUM_SCALE_BINS - 1)]
    return torch.tensor(values, dtype=torch.float64), torch.tensor(thresholds, dtype=torch.float64)


SCALE_BINS, SCALE_THRESHOLDS = _scale_bins()
_KERNEL_CONSTANTS: dict[tuple, object] = {}  # (q0, attr_dims) -> the C++ CodingConstants


@dataclass
class ContextConfig:
    levels_3d: int = 12
    res_3d: tuple[int, int] = (16, 512)
    levels_2d: int = 4
    res_2d: tuple[int, int] = (128, 1024)
    dim: int = 4
    log2_table_3d: int = 12
    log2_table_2d: int = 12
    hidden: int = 16  # MLP_d hidden width
    q_hidden: int = 8  # MLP_q hidden width
    attr_dims: tuple[int, int, int] = (32, 6, 30)  # feature, scaling, offsets (10 x 3)
    # Octree levels fed to both MLPs as a one-hot (0 = none, streams of format version 2): the statistics
    # differ per level (scaling mean -1.8 at level 1 to -2.9 at level 4, feature std 0.30 to 0.96 on
    # the demo), and so does the best step. In the exact path a level's one-hot is a per-level bias.
    num_levels: int = 0
    # Base steps Q0 for f, s, o. The paper uses Q0_f = 1; our features start at zero and stay small
    # (std ~0.3) in CPU-length trainings, where a step of 1 would round most of them to 0. Scaling is
    # coded in the log domain, where a step of 0.01 is a 1 % size change (HAC's 0.001 is a step of
    # its linear-domain scales; in the log domain it cost 12.6 bits per scaling symbol on the demo).
    q0: tuple[float, float, float] = (0.15, 0.04, 0.2)

    @property
    def attr_total(self) -> int:
        return sum(self.attr_dims)

    @property
    def layout(self) -> AttributeLayout:
        return AttributeLayout.from_dims(self.attr_dims)

    @property
    def feature_dim(self) -> int:
        return self.dim * (self.levels_3d + 3 * self.levels_2d)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ContextConfig":
        d = dict(d)
        for k in ("res_3d", "res_2d", "attr_dims", "q0"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def for_anchor_count(cls, n: int, **overrides) -> "ContextConfig":
        """Table sizes that keep the hash grid's header cost proportionate to the scene."""
        log2 = int(min(15, max(8, math.ceil(math.log2(max(n, 1))) - 5)))
        cfg = cls(log2_table_3d=log2, log2_table_2d=log2)
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg


def _resolutions(n: int, lo_hi: tuple[int, int]) -> list[int]:
    lo, hi = lo_hi
    if n == 1:
        return [lo]
    g = (hi / lo) ** (1.0 / (n - 1))
    return [int(math.floor(lo * g**i + 1e-9)) for i in range(n)]


class BinarizeSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g)


def _grid_interpolate(tables: torch.Tensor, pos: torch.Tensor, res: torch.Tensor, snap: bool) -> torch.Tensor:
    """Multilinear interpolation of G tables at once.

    ``tables`` [G, T, dim], ``pos`` [G, N, d] in [0, 1], ``res`` [G] int64 → [G, N, dim]. A corner
    indexes its table densely when ``(res + 1)^d <= T``, else by the spatial hash. Corners are added
    in a fixed order with elementwise operations only, so the float64 result is the same everywhere.
    """
    G, T, dim = tables.shape
    d = pos.shape[2]
    resf = res.to(pos.dtype).reshape(G, 1, 1)
    x = pos * resf
    base = torch.minimum(torch.floor(x).clamp_min(0), resf - 1)
    frac = x - base
    basei = base.to(torch.int64)
    side = (res + 1).reshape(G, 1)
    dense = (side**d <= T).reshape(G, 1)
    flat = tables.reshape(G * T, dim)
    level_offset = (torch.arange(G, dtype=torch.int64, device=tables.device) * T).reshape(G, 1)
    # Per axis and corner bit (0: base, 1: base + 1) the dense-index term, the hash term and the
    # weight, computed once and combined per corner below. Corner coordinates are >= 0, so the hash
    # is >= 0 and ``& (T - 1)`` equals ``% T`` for a power-of-two T (integer work only: exact).
    weights, dense_terms, hash_terms = [], [], []
    stride = torch.ones_like(side)
    for k in range(d):
        c0 = basei[..., k]
        c1 = c0 + 1
        weights.append((1 - frac[..., k], frac[..., k]))
        dense_terms.append((c0 * stride, c1 * stride))
        hash_terms.append((c0 * PRIMES[k], c1 * PRIMES[k]))
        stride = stride * side
    any_dense, all_dense = bool(dense.any()), bool(dense.all())
    out = torch.zeros(G, pos.shape[1], dim, dtype=tables.dtype, device=tables.device)
    for c in range(1 << d):
        bits = [(c >> k) & 1 for k in range(d)]
        w = weights[0][bits[0]]
        for k in range(1, d):
            w = w * weights[k][bits[k]]
        idx = None
        if any_dense:
            idx = dense_terms[0][bits[0]]
            for k in range(1, d):
                idx = idx + dense_terms[k][bits[k]]
        if not all_dense:
            hashed = hash_terms[0][bits[0]]
            for k in range(1, d):
                hashed = hashed ^ hash_terms[k][bits[k]]
            hashed = hashed & (T - 1) if T & (T - 1) == 0 else hashed % T
            idx = hashed if idx is None else torch.where(dense, idx, hashed)
        out = out + w[..., None] * flat[idx + level_offset]
    if snap:
        out = torch.round(out / ACT_GRID) * ACT_GRID
    return out


_PLANES = ((0, 1), (0, 2), (1, 2))


class ContextModel(nn.Module):
    def __init__(self, cfg: ContextConfig | None = None, seed: int = 0):
        super().__init__()
        self.cfg = cfg or ContextConfig()
        c = self.cfg
        g = torch.Generator().manual_seed(seed)  # built on the CPU (the same values everywhere), moved with .to
        self.res3 = _resolutions(c.levels_3d, c.res_3d)
        self.res2 = _resolutions(c.levels_2d, c.res_2d)
        self.grid3 = nn.Parameter(torch.rand(c.levels_3d, 1 << c.log2_table_3d, c.dim, generator=g) * 2e-2 - 1e-2)
        self.grid2 = nn.Parameter(torch.rand(c.levels_2d * 3, 1 << c.log2_table_2d, c.dim, generator=g) * 2e-2 - 1e-2)
        f_in = 2 * c.feature_dim + c.num_levels
        self.mlp_d = nn.Sequential(
            nn.Linear(f_in, c.hidden), nn.LeakyReLU(LEAKY), nn.Linear(c.hidden, 2 * c.attr_total)
        )
        self.mlp_q = nn.Sequential(nn.Linear(f_in, c.q_hidden), nn.LeakyReLU(LEAKY), nn.Linear(c.q_hidden, 3))
        with torch.no_grad():
            self.mlp_q[-1].weight.mul_(0.01)
            self.mlp_q[-1].bias.zero_()

    # ---------------------------------------------------------------------------- hash grid
    def binary_grids(self) -> tuple[torch.Tensor, torch.Tensor]:
        return BinarizeSTE.apply(self.grid3), BinarizeSTE.apply(self.grid2)

    def _features(self, pos: torch.Tensor, g3: torch.Tensor, g2: torch.Tensor, snap: bool) -> torch.Tensor:
        """Hash-grid features [N, F]: the 3D levels, then per 2D level the xy, xz, yz planes."""
        n = pos.shape[0]
        r3 = torch.tensor(self.res3, dtype=torch.int64, device=pos.device)
        f3 = _grid_interpolate(g3, pos[None].expand(len(self.res3), n, 3), r3, snap)
        r2 = torch.tensor([r for r in self.res2 for _ in _PLANES], dtype=torch.int64, device=pos.device)
        p2 = torch.stack([pos[:, list(axes)] for _ in self.res2 for axes in _PLANES])
        f2 = _grid_interpolate(g2, p2, r2, snap)
        # explicit widths (not -1): a level may hold no anchors (n = 0)
        return torch.cat(
            [
                f3.permute(1, 0, 2).reshape(n, f3.shape[0] * f3.shape[2]),
                f2.permute(1, 0, 2).reshape(n, f2.shape[0] * f2.shape[2]),
            ],
            dim=1,
        )

    def context(
        self, pos: torch.Tensor, parent_pos: torch.Tensor, has_parent: torch.Tensor, levels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Concatenated (h_i, h_p, one-hot level) [N, 2F + num_levels] (training path)."""
        g3, g2 = self.binary_grids()
        hi = self._features(pos, g3, g2, snap=False)
        hp = self._features(parent_pos, g3, g2, snap=False) * has_parent[:, None].to(pos)
        parts = [hi, hp]
        if self.cfg.num_levels:
            if levels is None:
                raise ValueError("this context model takes the anchors' levels")
            parts.append(torch.nn.functional.one_hot(levels - 1, self.cfg.num_levels).to(pos))
        return torch.cat(parts, dim=1)

    # ------------------------------------------------------------------------ training path
    def forward(
        self, pos: torch.Tensor, parent_pos: torch.Tensor, has_parent: torch.Tensor, levels: torch.Tensor | None = None
    ):
        """(mean [N, D], scale [N, D], step [N, 3]) for anchors at normalised positions."""
        ctx = self.context(pos, parent_pos, has_parent, levels)
        d = self.mlp_d(ctx)
        D = self.cfg.attr_total
        mean = d[:, :D]
        scale = torch.nn.functional.softplus(d[:, D:]) + 1e-4
        q = torch.tensor(self.cfg.q0, dtype=pos.dtype, device=pos.device) * torch.exp(
            torch.tanh(self.mlp_q(ctx)) * STEP_LOG
        )
        return mean, scale, q

    @property
    def layout(self) -> AttributeLayout:
        return self.cfg.layout

    @torch.no_grad()
    def fit_output_bias(self, attrs: torch.Tensor, step_scale: float = 1.0) -> None:
        """Start the prior at one fitted Gaussian per channel: MLP_d's output biases become the channels'
        means and (through the inverse softplus) deviations of ``attrs`` [N, D], and its output weights
        shrink, so the context model begins as the constant prior and can only learn to beat it.
        (Left at zero mean and softplus(0) deviation, the log-scales around -2.5 cost 12.6 bits per
        symbol, more than a constant prior's 10.8, on the demo.)

        ``step_scale`` starts every step at ``step_scale · Q0`` (within Q0/8 .. 8 Q0): the rate knob. At high
        rate a uniform quantizer's distortion is q²/12 and its rate falls by one bit per halving of
        1/q, so the step that balances them under ``loss = D + λ R`` grows as √λ; the trainer passes
        ``RateConfig.step_scale`` = (λ_e / 2e-3)^``STEP_EXPONENT`` (progs.train.config), and the training
        refines each step from there (in `progs fit` the training, more than λ_e, sets where they end:
        1.3-6 Q0, docs/RESULTS.md, "Fitting a splat file")."""
        D = self.cfg.attr_total
        last = self.mlp_d[-1]
        mean = attrs.mean(0)
        std = attrs.std(0).clamp_min(1e-3) if attrs.shape[0] > 1 else torch.ones_like(mean)
        last.weight.mul_(0.1)
        last.bias[:D] = mean
        last.bias[D:] = std + torch.log(-torch.expm1(-std))  # softplus^-1
        s = min(max(float(step_scale), 1.0 / 8.0 + 1e-6), 8.0 - 1e-6)
        self.mlp_q[-1].bias.fill_(math.atanh(math.log(s) / STEP_LOG))

    def step_per_channel(self, q: torch.Tensor) -> torch.Tensor:
        """Expand per-type steps [N, 3] to per-channel steps [N, D]."""
        return self.layout.per_channel(q)

    def hash_bits(self) -> torch.Tensor:
        """L_hash: Bernoulli cross-entropy (bits) of the binarized grids at their empirical frequency."""
        g3, g2 = self.binary_grids()
        allb = torch.cat([g3.reshape(-1), g2.reshape(-1)])
        p = ((allb + 1) / 2).mean().clamp(1e-6, 1 - 1e-6)
        m = allb.numel()
        return m * (-(p * torch.log2(p) + (1 - p) * torch.log2(1 - p)))

    # --------------------------------------------------------------------------- exact path
    def fixed_point_weights(self) -> dict[str, tuple[np.ndarray, int]]:
        """Each MLP tensor as (int64 mantissas, exponent e): value = mantissa * 2^-e
        (:func:`progs.model.exact_math.fixed_point`), MLP_d with ``PRIOR_MLP_BITS`` significant bits and
        MLP_q with ``STEP_MLP_BITS``."""
        out = {
            name: exact_math.fixed_point(t.detach().double().numpy(), exact_math.PRIOR_MLP_BITS)
            for name, t in self.mlp_d.named_parameters(prefix="mlp_d")
        }
        out.update(
            {
                name: exact_math.fixed_point(t.detach().double().numpy(), exact_math.STEP_MLP_BITS)
                for name, t in self.mlp_q.named_parameters(prefix="mlp_q")
            }
        )
        return out

    def load_fixed_point_weights(self, weights: dict[str, tuple[np.ndarray, int]]) -> None:
        params = dict(self.mlp_d.named_parameters(prefix="mlp_d")) | dict(self.mlp_q.named_parameters(prefix="mlp_q"))
        with torch.no_grad():
            for name, (mant, e) in weights.items():
                params[name].copy_(torch.from_numpy(exact_math.from_fixed_point(mant, e)).reshape(params[name].shape))

    def round_weights_to_fixed_point(self) -> None:
        """Make the float weights equal their stored fixed-point values (done before encoding)."""
        self.load_fixed_point_weights(self.fixed_point_weights())

    def _first_layer_weights(self, part: slice) -> torch.Tensor:
        """MLP_d's and MLP_q's first-layer weights for a part of the context, stacked [Hd + Hq, F]."""
        return torch.cat([self.mlp_d[0].weight.detach()[:, part], self.mlp_q[0].weight.detach()[:, part]]).double().T

    def _first_layer_bias(self, level: int | None = None) -> torch.Tensor:
        """MLP_d's and MLP_q's first-layer biases, stacked [Hd + Hq] (float64), plus the weights of the
        one-hot input of ``level`` (exact: a sum of two dyadic fixed-point numbers)."""
        bias = torch.cat([self.mlp_d[0].bias.detach(), self.mlp_q[0].bias.detach()]).double()
        if self.cfg.num_levels:
            if level is None or not 1 <= level <= self.cfg.num_levels:
                raise ValueError(f"level {level} is outside the context model's 1..{self.cfg.num_levels}")
            col = 2 * self.cfg.feature_dim + level - 1
            bias = bias + self._first_layer_weights(slice(col, col + 1))[0]
        return bias

    @torch.no_grad()
    def parent_terms(self, h: torch.Tensor) -> torch.Tensor:
        """First-layer pre-activations [N, Hd + Hq] contributed by features ``h`` in the *parent*
        half of the context. Siblings share them: the codec computes them once per parent."""
        F = self.cfg.feature_dim
        return h.double() @ self._first_layer_weights(slice(F, 2 * F))

    def _exact_mlps(
        self, h_own: torch.Tensor, parent_terms: torch.Tensor | None, level: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MLP_d and MLP_q outputs in float64. Every product and partial sum is a dyadic number well
        inside float64's 53 bits, so splitting the first layer's sum (own + parent) is exact."""
        F = self.cfg.feature_dim
        pre = h_own.double() @ self._first_layer_weights(slice(0, F))
        if parent_terms is not None:
            pre = pre + parent_terms
        h = pre + self._first_layer_bias(level)
        h = torch.where(h >= 0, h, h * LEAKY)
        h = torch.round(h.clamp(-ACT_CLAMP, ACT_CLAMP) / ACT_GRID) * ACT_GRID
        Hd = self.cfg.hidden
        l2d, l2q = self.mlp_d[2], self.mlp_q[2]
        d = h[:, :Hd] @ l2d.weight.detach().double().T + l2d.bias.detach().double()
        t = h[:, Hd:] @ l2q.weight.detach().double().T + l2q.bias.detach().double()
        return d, t

    def _binary_grids_f64(self) -> tuple[torch.Tensor, torch.Tensor]:
        g3 = torch.where(self.grid3.detach() >= 0, 1.0, -1.0).double().contiguous()
        g2 = torch.where(self.grid2.detach() >= 0, 1.0, -1.0).double().contiguous()
        return g3, g2

    @torch.no_grad()
    def exact_features(self, pos: torch.Tensor, use_kernel: bool = True) -> torch.Tensor:
        """Snapped float64 hash-grid features [N, F] at normalised positions (the coding path).

        Uses the C++ kernel when it is available (``use_kernel``), else the PyTorch path; both give
        the same bits."""
        g3, g2 = self._binary_grids_f64()
        pos = pos.double().contiguous()
        ext = load_kernel() if use_kernel else None
        if ext is not None:
            return ext.hashgrid_features(g3, g2, pos, list(self.res3), list(self.res2))
        return self._features(pos, g3, g2, snap=True)

    @torch.no_grad()
    def coding_params(
        self,
        h_own: torch.Tensor,
        parent_terms: torch.Tensor | None,
        use_kernel: bool = True,
        level: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Deterministic coding parameters from an anchor's exact features and its parent's
        :meth:`parent_terms` (None for roots, whose parent context is zero), for anchors of ``level``
        (needed when the model takes the level as an input).

        Returns ``(mean [N, D], bin [N, D] uint8, step [N, 3])``: the predicted mean in symbol units
        (units of the channel's step, snapped to 2^-10), the index into :data:`SCALE_BINS` of the
        predicted deviation in symbol units, and the step per attribute type. Call
        ``round_weights_to_fixed_point`` first (the decoder's weights are the fixed-point ones)."""
        ext = load_kernel() if use_kernel else None
        if ext is not None:
            F = self.cfg.feature_dim
            l2d, l2q = self.mlp_d[2], self.mlp_q[2]
            bias = self._first_layer_bias(level)
            terms = (
                parent_terms
                if parent_terms is not None
                else torch.zeros(0, bias.numel(), dtype=torch.float64, device="cpu")
            )  # the exact path is CPU-only
            return tuple(
                ext.coding_params(
                    h_own.double(),
                    terms.double(),
                    self._first_layer_weights(slice(0, F)),
                    bias,
                    l2d.weight.detach().double().T,
                    l2d.bias.detach().double(),
                    l2q.weight.detach().double().T,
                    l2q.bias.detach().double(),
                    self._kernel_constants(ext),
                )
            )
        d, t = self._exact_mlps(h_own, parent_terms, level)
        return self._coding_params_reference(d, t)

    def _kernel_constants(self, ext):
        """The C++ ``CodingConstants`` of this configuration (built once per configuration)."""
        key = (tuple(float(v) for v in self.cfg.q0), tuple(int(v) for v in self.cfg.attr_dims))
        if key not in _KERNEL_CONSTANTS:
            c = ext.CodingConstants()
            c.leaky, c.act_clamp, c.act_grid = LEAKY, ACT_CLAMP, ACT_GRID
            c.q0, c.attr_dims = list(key[0]), list(key[1])
            c.octave_thresholds, c.min_exponent, c.num_bins = (
                list(OCTAVE_THRESHOLDS),
                SCALE_MIN_EXPONENT,
                NUM_SCALE_BINS,
            )
            c.exp_coeffs, c.inv_odd = list(exact_math.EXP_COEFFS), list(exact_math.INV_ODD)
            c.step_levels, c.step_base, c.step_log = STEP_LEVELS, STEP_BASE, STEP_LOG
            c.mean_grid, c.scale_floor = MEAN_GRID, SCALE_FLOOR
            _KERNEL_CONSTANTS[key] = c
        return _KERNEL_CONSTANTS[key]

    def _coding_params_reference(self, d: torch.Tensor, t: torch.Tensor):
        """PyTorch twin of the C++ ``coding_params`` (same operations, same order, same bits)."""
        D = self.cfg.attr_total
        q0 = torch.tensor(self.cfg.q0, dtype=torch.float64, device="cpu")  # the exact path is CPU-only
        k = torch.clamp(torch.round(exact_math.exp(exact_math.tanh(t) * STEP_LOG) * STEP_BASE), 1, STEP_LEVELS)
        q = q0 * k / STEP_BASE
        inv = self.step_per_channel(1.0 / q)
        mean = torch.round(d[:, :D] * inv * (1.0 / MEAN_GRID)) * MEAN_GRID
        scale = (exact_math.softplus(d[:, D:]) + SCALE_FLOOR) * inv
        bins = torch.searchsorted(SCALE_THRESHOLDS, scale, right=True).to(torch.uint8)
        return mean, bins, q

    # -------------------------------------------------------------------------- grid export
    def grid_bits(self) -> np.ndarray:
        """The binarized grids as a flat uint8 array of 0/1 (1 = +1)."""
        return np.concatenate(
            [(self.grid3.detach() >= 0).reshape(-1).numpy(), (self.grid2.detach() >= 0).reshape(-1).numpy()]
        ).astype(np.uint8)

    def load_grid_bits(self, bits: np.ndarray) -> None:
        n3 = self.grid3.numel()
        b = torch.from_numpy(bits.astype(np.float32) * 2 - 1)
        with torch.no_grad():
            self.grid3.copy_(b[:n3].reshape(self.grid3.shape))
            self.grid2.copy_(b[n3:].reshape(self.grid2.shape))


def gaussian_rate_bits(
    values: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, step: torch.Tensor
) -> torch.Tensor:
    """Bits per element (paper Eq. 15-16) of quantized ``values`` under N(mean, scale) over the bin."""
    upper = torch.special.ndtr((values + step / 2 - mean) / scale)
    lower = torch.special.ndtr((values - step / 2 - mean) / scale)
    return -torch.log2((upper - lower).clamp_min(1e-9))
