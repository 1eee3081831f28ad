"""Transcendental functions computed from IEEE-754 +, -, ×, / only (float64 tensors).

The coding path of the entropy model must give bit-identical results on every machine; a math
library's ``exp``/``tanh``/``log1p`` may differ by an ulp between platforms (or SIMD widths), which
could move a quantization step or a scale bin. These versions use range reduction, fixed
polynomials evaluated in a fixed order, and exact power-of-two scaling, so their result depends only
on IEEE-754 double arithmetic, which every platform rounds identically. Accuracy: ~1e-7 relative, ample
for an entropy model (the point is reproducibility, and the C++ twin in ``csrc/context_exact.cpp``
repeats these operations in the same order).
"""

from __future__ import annotations

import math

import numpy as np
import torch

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # high part of ln 2 with 32 trailing zero bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
# Taylor series of exp on |r| <= ln2/2 to degree 7 (truncation < 1e-8 relative)
EXP_COEFFS = [1.0 / math.factorial(i) for i in range(8)]
# log1p via 2·atanh(u) = 2·sum u^(2n+1)/(2n+1), u <= 1/3, 6 terms (truncation < 6e-8)
INV_ODD = [1.0 / (2 * n + 1) for n in range(6)]


PRECISION_BITS = 12  # significant bits of a stored MLP tensor, relative to its largest magnitude (the default)
# What the encoder keeps per MLP (a decoder reads any precision; the mantissas and exponent say it all).
# Measured on the demo (2026-11-27, benchmarks/results/header_precision.json): the Gaussian generator at
# 8 bits saves 3.8 kB of a 24-25 kB header for -0.02 dB at λe 2e-3 and -0.07 dB at 5e-4 (the generator
# at 6 bits: -0.1 dB, at 5: -0.9 to -2 dB). The context's MLPs set the quantization lattice the last
# stage of training adapted the attributes to: MLP_q at 8 bits cost another 0.06 dB at λe 5e-4 (for
# 0.8 kB), MLP_d at 10 bits 0.21-0.26 dB at 2e-3, so both keep 12.
GENERATOR_BITS = 8
STEP_MLP_BITS = PRECISION_BITS
PRIOR_MLP_BITS = PRECISION_BITS
MAX_EXPONENT = 24  # finer units buy nothing (and keep the exact sums well inside float64's 53 bits)


def fixed_point(a: np.ndarray, bits: int = PRECISION_BITS) -> tuple[np.ndarray, int]:
    """``(mantissas int64 ndarray, e)`` with ``a ≈ mantissas · 2^-e`` and ``|mantissas| < 2^(bits-1)``:
    the dyadic fixed point in which the header stores MLP weights (since format version 4)."""
    a = np.asarray(a, dtype=np.float64)
    m = float(np.abs(a).max()) if a.size else 0.0
    limit = float(2 ** (bits - 1) - 1)
    e = MAX_EXPONENT if m == 0 else int(min(MAX_EXPONENT, max(0, math.floor(math.log2(limit / m)))))
    return np.clip(np.round(a * 2.0**e), -limit, limit).astype(np.int64), e


def from_fixed_point(mant: np.ndarray, e: int) -> np.ndarray:
    """The values ``mant · 2^-e`` (float64, exact) of :func:`fixed_point`'s output."""
    return np.asarray(mant).astype(np.float64) * 2.0**-e


def _pow2(k: torch.Tensor) -> torch.Tensor:
    """2^k for integer-valued float64 ``k`` in [-1022, 1023], built from its exponent bits."""
    bits = (k.to(torch.int64) + 1023) << 52
    return bits.view(torch.float64)


def exp(x: torch.Tensor) -> torch.Tensor:
    """e^x for float64 ``x`` (clamped to [-700, 700])."""
    x = x.clamp(-700.0, 700.0)
    k = torch.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = torch.full_like(r, EXP_COEFFS[-1])
    for c in reversed(EXP_COEFFS[:-1]):
        p = p * r + c
    return p * _pow2(k)


def log1p(y: torch.Tensor) -> torch.Tensor:
    """log(1 + y) for float64 ``y`` in [0, 1]: 2·atanh(y / (2 + y)) as a series."""
    u = y / (2.0 + y)
    v = u * u
    s = torch.full_like(u, INV_ODD[-1])
    for c in reversed(INV_ODD[:-1]):
        s = s * v + c
    return 2.0 * (u * s)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x), computed stably as max(x, 0) + log1p(e^-|x|)."""
    return torch.clamp_min(x, 0.0) + log1p(exp(-x.abs()))


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) = sign(x) · (1 − 2 / (e^{2|x|} + 1))."""
    a = 1.0 - 2.0 / (exp(2.0 * x.abs()) + 1.0)
    return torch.where(x < 0, -a, a)


_ERFC_COEFFS = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


def upper_tail(z: torch.Tensor) -> torch.Tensor:
    """Q(z) = P(N(0, 1) > z) for z >= 0, through erfc's Chebyshev fit (relative error < 1.2e-7)."""
    x = z * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.5 * x)
    p = torch.full_like(t, _ERFC_COEFFS[-1])
    for c in reversed(_ERFC_COEFFS[:-1]):
        p = p * t + c
    return 0.5 * (t * exp(-x * x + p))
