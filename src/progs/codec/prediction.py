"""Parent prediction (format 5): a level's attribute priors refined with its parents' decoded values.

The hash-grid context model sees positions only; on a trained demo model its feature means explain
almost none of a child's feature (residual deviation ≈ the features' own), while the parent anchor's
decoded feature — tied to the child's by the InfoNCE loss — explains half to two thirds of it. So for
each level l ≥ 2 the encoder fits, per channel j, a linear predictor by least squares and sends it in
the level's chunk:

    mean_j  = a_j · parent_j + b_j · context_mean_j + c_j          (attribute units)
    sigma_j = s_j                                                   (one deviation per channel)

The quantization lattice stays the context model's (training's last stage adapted the attributes to
it, so moving it would cost PSNR): a value's residual ``r = round(value / q − m)`` is unchanged and the
stream codes ``r − shift`` with ``shift = round(mean_j / q − m)``, under a zero-mean model of
deviation ``sigma_j / q``. The decoded model is the same with or without the predictor; only the bits
differ.

``parent_j`` is channel j of the parent anchor's decoded attributes (level l − 1), ``context_mean_j``
the context model's mean (its symbol-unit mean times the channel's step). The step ``q`` stays the
context model's. The encoder keeps the predictor only where it codes the level's features and
scalings in fewer bits (table included). Offsets are fitted on the Gaussians the stream carries.

Exactness: a, b, c and s are stored as integers times powers of two, 2^-a_bits for a and b and
2^-c_bits for c and s; the encoder picks the precision per level (``PRECISIONS``, at most ``A_BITS``
and ``C_BITS``) that codes the level's features and scalings in the fewest bits, table included. The
decoder's mean and scale bin come from IEEE-754 elementwise ``+ − × /`` in a fixed order and
the same rounding and bin thresholds as the context model (:mod:`progs.model.context`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from progs.codec.bytes import ByteReader, ByteWriter
from progs.codec.weights import read_weights, write_weights
from progs.model.context import SCALE_THRESHOLDS, ContextModel

A_BITS = 12  # a and b are multiples of 2^-a_bits, a_bits ≤ 12
C_BITS = 14  # c and s are multiples of 2^-c_bits, c_bits ≤ 14
PRECISIONS = ((12, 14), (8, 10), (6, 8), (4, 6))  # the (a_bits, c_bits) the encoder tries
LIMIT_AB = 4.0  # |a|, |b| ≤ 4
LIMIT_C = 1024.0  # |c| ≤ 2^10, s ≤ 2^10
MIN_ANCHORS = 16  # fewer anchors in a level: no predictor (the table would cost more than it saves)
RIDGE = 1e-6  # relative ridge of the least-squares fit (keeps collinear channels finite)


@dataclass
class ParentPredictor:
    """Per channel (all D of a level): ``mean = a · parent + b · context_mean + c``, deviation ``s``;
    float64 tensors [D] holding exact multiples of 2^-a_bits (a, b) and 2^-c_bits (c, s)."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    s: torch.Tensor
    a_bits: int = A_BITS
    c_bits: int = C_BITS

    def means(self, ctx: ContextModel, p, parent_values: torch.Tensor) -> torch.Tensor:
        """Predicted means [N, D] in attribute units (float64, the decoder's exact operation order)."""
        ctx_mean = p.mean * ctx.step_per_channel(p.step)
        return (self.a * parent_values + self.b * ctx_mean) + self.c

    def apply(self, ctx: ContextModel, p, parent_values: torch.Tensor):
        """``p`` (:class:`progs.codec.levels.LevelParams` of the context model) with the predictor's
        deviations (``bins``) and integer ``shift`` = round(predicted mean / q − context mean), the
        coding table's centre relative to the quantization lattice; the lattice itself (the context
        means), the steps and the parent indices are kept, so the decoded values do not change."""
        inv = ctx.step_per_channel(1.0 / p.step)
        shift = torch.round(self.means(ctx, p, parent_values) * inv - p.mean)
        bins = torch.searchsorted(SCALE_THRESHOLDS, self.s * inv, right=True).to(torch.uint8)
        return type(p)(p.mean, bins, p.step, p.parent, shift)

    # ------------------------------------------------------------------------------ encoder side
    @staticmethod
    def fit(
        ctx: ContextModel,
        attrs: torch.Tensor,
        p,
        parent_values: torch.Tensor,
        mask: torch.Tensor | None = None,
        a_bits: int = A_BITS,
        c_bits: int = C_BITS,
    ) -> ParentPredictor:
        """Least-squares predictor of ``attrs`` [N, D] (the model's values) from the parents' decoded
        values and the context means, rounded to ``a_bits`` / ``c_bits``; ``mask`` [N, D] bool selects
        the samples of each channel."""
        return ParentPredictor.fit_each(ctx, attrs, p, parent_values, ((a_bits, c_bits),), mask)[0]

    @staticmethod
    def fit_each(
        ctx: ContextModel,
        attrs: torch.Tensor,
        p,
        parent_values: torch.Tensor,
        precisions: tuple[tuple[int, int], ...],
        mask: torch.Tensor | None = None,
    ) -> list[ParentPredictor]:
        """:meth:`fit` at each (a_bits, c_bits) of ``precisions``, from one least-squares solve."""
        x = attrs.double()
        ctx_mean = p.mean * ctx.step_per_channel(p.step)
        n, d = x.shape
        a, b, c = (
            torch.zeros(d, dtype=torch.float64),
            torch.ones(d, dtype=torch.float64),
            torch.zeros(d, dtype=torch.float64),
        )
        for j in range(d):
            sel = slice(None) if mask is None else mask[:, j]
            xj, pj, mj = x[sel, j], parent_values[sel, j], ctx_mean[sel, j]
            if xj.numel() < MIN_ANCHORS:
                continue
            X = torch.stack([pj, mj, torch.ones_like(pj)], dim=1)
            gram = X.T @ X
            gram = gram + RIDGE * (gram.diagonal().mean() + 1e-12) * torch.eye(3, dtype=torch.float64)
            sol = torch.linalg.solve(gram, X.T @ xj)
            if bool(torch.isfinite(sol).all()):
                a[j], b[j], c[j] = sol
        a, b, c = a.clamp(-LIMIT_AB, LIMIT_AB), b.clamp(-LIMIT_AB, LIMIT_AB), c.clamp(-LIMIT_C, LIMIT_C)
        if mask is not None:
            count = mask.sum(0).clamp_min(1).double()
        else:
            count = torch.full((d,), float(max(n, 1)), dtype=torch.float64)
        out = []
        for a_bits, c_bits in precisions:
            pred = ParentPredictor(
                _grid(a, a_bits),
                _grid(b, a_bits),
                _grid(c, c_bits),
                torch.zeros(d, dtype=torch.float64),
                a_bits,
                c_bits,
            )
            res = x - pred.means(ctx, p, parent_values)
            if mask is not None:
                res = torch.where(mask, res, 0.0)
            s = torch.sqrt((res * res).sum(0) / count)
            least = 2.0**-c_bits
            pred.s = _grid(s.clamp(least, LIMIT_C), c_bits).clamp_min(least)
            out.append(pred)
        return out

    def replace_columns(self, other: ParentPredictor, cols: slice) -> ParentPredictor:
        """This predictor with ``other``'s parameters on the channels ``cols``."""
        if (other.a_bits, other.c_bits) != (self.a_bits, self.c_bits):
            raise ValueError("the predictors' precisions differ")
        out = ParentPredictor(self.a.clone(), self.b.clone(), self.c.clone(), self.s.clone(), self.a_bits, self.c_bits)
        for name in ("a", "b", "c", "s"):
            getattr(out, name)[cols] = getattr(other, name)[cols]
        return out

    # ------------------------------------------------------------------------------ serialisation
    def write(self, w: ByteWriter) -> None:
        for t, bits in ((self.a, self.a_bits), (self.b, self.a_bits), (self.c, self.c_bits), (self.s, self.c_bits)):
            write_weights(w, np.round(t.numpy() * 2.0**bits).astype(np.int64), bits)

    @staticmethod
    def read(r: ByteReader, d: int) -> ParentPredictor:
        parts = []
        for name, bits, limit in (
            ("a", A_BITS, LIMIT_AB),
            ("b", A_BITS, LIMIT_AB),
            ("c", C_BITS, LIMIT_C),
            ("s", C_BITS, LIMIT_C),
        ):
            mant, e = read_weights(r, d, f"parent predictor {name}")
            if e > bits:
                raise r.fail(f"parent predictor {name} has exponent {e} (at most {bits})")
            t = torch.from_numpy(mant.astype(np.float64) * 2.0**-e)
            if bool((t.abs() > limit).any()):
                raise r.fail(f"parent predictor {name} out of range")
            parts.append(t)
        if bool((parts[3] <= 0).any()):
            raise r.fail("parent predictor has a deviation ≤ 0")
        return ParentPredictor(*parts)  # the exponents (a_bits, c_bits) matter only to an encoder


def _grid(t: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.round(t * 2.0**bits) * 2.0**-bits


def write_predictor(w: ByteWriter, predictor: ParentPredictor | None) -> None:
    """``flag:u8`` (0: none, 1: a table follows) then the table."""
    w.u8(0 if predictor is None else 1)
    if predictor is not None:
        predictor.write(w)


def read_predictor(r: ByteReader, level: int, d: int) -> ParentPredictor | None:
    flag = r.u8()
    if flag > 1 or (flag and level == 1):
        raise r.fail(f"invalid parent-predictor flag {flag} at level {level}")
    return ParentPredictor.read(r, d) if flag else None
