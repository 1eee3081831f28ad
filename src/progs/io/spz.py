"""Niantic SPZ files (about 10× smaller than a PLY), written and read by ``gsply`` (not our own coder).

SPZ quantises every attribute: positions to 24-bit fixed point (``fractional_bits`` chosen here from
the cloud's extent, at most 12 = 1/4096 unit), opacity and the degree-0 colour to 8 bits, log scales
to steps of 1/16, rotations to the smallest-three 4-byte code and the higher SH coefficients to steps
of 1/128 within [-1, 1). Axes are stored as they are (gsply applies no RUB conversion), so the file
has the same frame as the PLY export.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from progs.atomic import atomic_path
from progs.io.ply import GaussianCloud

MAX_FRACTIONAL_BITS = 12


def fractional_bits(cloud: GaussianCloud) -> int:
    """The most fractional bits (≤ 12) whose 24-bit fixed point still holds every position."""
    extent = float(cloud.means.abs().max()) if len(cloud) else 0.0
    if extent <= 0:
        return MAX_FRACTIONAL_BITS
    bits = 23 - math.floor(math.log2(extent)) - 1  # |x| * 2^bits < 2^23
    return int(min(MAX_FRACTIONAL_BITS, max(0, bits)))


def write_spz(path: str | os.PathLike, cloud: GaussianCloud) -> None:
    """Write ``cloud`` as an SPZ file through gsply (atomically)."""
    import gsply

    def f32(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    quats = torch.nn.functional.normalize(cloud.quats, dim=-1, eps=1e-12)
    data = gsply.GSData(
        means=f32(cloud.means), scales=f32(cloud.log_scales), quats=f32(quats),
        opacities=f32(cloud.opacity_logits), sh0=f32(cloud.sh_dc), shN=f32(cloud.sh_rest),
    )
    with atomic_path(path) as tmp:
        gsply.write_spz(tmp, data, fractional_bits=fractional_bits(cloud))


def read_spz(path: str | os.PathLike) -> GaussianCloud:
    """Read an SPZ file through gsply."""
    import gsply

    d = gsply.read_spz(path)
    n = len(d.means)
    sh_rest = np.zeros((n, 0, 3), np.float32) if d.shN is None or np.asarray(d.shN).size == 0 else d.shN
    return GaussianCloud(
        torch.from_numpy(np.array(d.means, np.float32)), torch.from_numpy(np.array(d.sh0, np.float32)),
        torch.from_numpy(np.array(sh_rest, np.float32)), torch.from_numpy(np.array(d.opacities, np.float32)),
        torch.from_numpy(np.array(d.scales, np.float32)), torch.from_numpy(np.array(d.quats, np.float32)),
    )
