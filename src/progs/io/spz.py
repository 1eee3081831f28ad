"""Niantic SPZ files (about 10× smaller than a PLY), written and read by ``gsply`` (not our own coder).

SPZ quantises every attribute: positions to 24-bit fixed point (``fractional_bits`` chosen here from
the cloud's extent, at most 12 = 1/4096 unit), opacity and the degree-0 colour to 8 bits, log scales
to steps of 1/16, rotations to the smallest-three 4-byte code and the higher SH coefficients to steps
of 1/128 within [-1, 1). SPZ stores its axes as right-up-back (RUB), the PLY's as right-down-front
(RDF): Niantic's library and ``@playcanvas/splat-transform`` turn one into the other by a half turn about
x, and gsply does not, so the reader and writer here do (positions' and quaternions' y and z change
sign, and each SH coefficient by its basis function's parity, ``RUB_SH_SIGNS``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from progs.atomic import atomic_path
from progs.errors import optional_import
from progs.io.ply import GaussianCloud

MAX_FRACTIONAL_BITS = 12
# The sign each higher SH basis function (3DGS order, degree 1..3) takes under (x, y, z) -> (x, -y, -z).
RUB_SH_SIGNS = (-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1)


def gsply_module():
    """gsply (SPZ and compressed PLY), from the ``export`` extra."""
    return optional_import("gsply", "export", "reading or writing SPZ and compressed PLY")


def flip_rub(cloud: GaussianCloud) -> GaussianCloud:
    """``cloud`` turned half a turn about x: RDF (PLY) <-> RUB (SPZ); its own inverse."""
    axis = torch.tensor([1.0, -1.0, -1.0])
    k = cloud.sh_rest.shape[1]
    signs = torch.tensor(RUB_SH_SIGNS[:k], dtype=torch.float32).reshape(1, k, 1)
    return GaussianCloud(
        means=cloud.means * axis,
        sh_dc=cloud.sh_dc,
        sh_rest=cloud.sh_rest * signs,
        opacity_logits=cloud.opacity_logits,
        log_scales=cloud.log_scales,
        quats=cloud.quats * torch.tensor([1.0, 1.0, -1.0, -1.0]),
    )


def fractional_bits(cloud: GaussianCloud) -> int:
    """The most fractional bits (≤ 12) whose 24-bit fixed point still holds every position."""
    extent = float(cloud.means.abs().max()) if len(cloud) else 0.0
    if extent <= 0:
        return MAX_FRACTIONAL_BITS
    bits = 23 - math.floor(math.log2(extent)) - 1  # |x| * 2^bits < 2^23
    return int(min(MAX_FRACTIONAL_BITS, max(0, bits)))


def write_spz(path: str | os.PathLike, cloud: GaussianCloud) -> None:
    """Write ``cloud`` (PLY axes) as an SPZ file through gsply (atomically, in SPZ's RUB axes)."""
    gsply = gsply_module()

    cloud = flip_rub(cloud)

    def f32(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    quats = torch.nn.functional.normalize(cloud.quats, dim=-1, eps=1e-12)
    data = gsply.GSData(
        means=f32(cloud.means),
        scales=f32(cloud.log_scales),
        quats=f32(quats),
        opacities=f32(cloud.opacity_logits),
        sh0=f32(cloud.sh_dc),
        shN=f32(cloud.sh_rest),
    )
    with atomic_path(path) as tmp:
        gsply.write_spz(tmp, data, fractional_bits=fractional_bits(cloud))


def read_spz(path: str | os.PathLike) -> GaussianCloud:
    """Read an SPZ file through gsply, into the PLY's axes."""
    gsply = gsply_module()

    d = gsply.read_spz(path)
    n = len(d.means)
    sh_rest = np.zeros((n, 0, 3), np.float32) if d.shN is None or np.asarray(d.shN).size == 0 else d.shN
    return flip_rub(
        GaussianCloud(
            torch.from_numpy(np.array(d.means, np.float32)),
            torch.from_numpy(np.array(d.sh0, np.float32)),
            torch.from_numpy(np.array(sh_rest, np.float32)),
            torch.from_numpy(np.array(d.opacities, np.float32)),
            torch.from_numpy(np.array(d.scales, np.float32)),
            torch.from_numpy(np.array(d.quats, np.float32)),
        )
    )
