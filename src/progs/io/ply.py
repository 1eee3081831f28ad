"""3D Gaussian Splatting PLY files (the INRIA layout) and plain point-cloud PLYs, via plyfile.

INRIA layout: one ``vertex`` element with float32 properties ``x y z``, ``nx ny nz`` (zeros),
``f_dc_0..2`` (degree-0 SH coefficient per colour channel), ``f_rest_0..f_rest_{3K-1}`` (the higher
SH coefficients, K = 0, 3, 8 or 15 for degrees 0-3, stored channel-major: ``f_rest_{c*K + k}`` is
coefficient k of channel c), ``opacity`` (a logit), ``scale_0..2`` (log scales) and ``rot_0..3``
(a quaternion w, x, y, z; not necessarily normalised).

Reading and writing float32 data round-trips bit-exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from progs.atomic import atomic_path

from progs.errors import InputError

__all__ = ["GaussianCloud", "read_ply", "write_ply", "read_points_ply", "check_finite", "SH_C0"]

# sigmoid(±20) rounds to exactly 1 / 2e-9 in float32: the logit an opacity of ±inf is read as.
OPACITY_LOGIT_LIMIT = 20.0
SH_C0 = 0.28209479177387814  # the degree-0 real spherical harmonic, 1 / (2 sqrt(pi))

_REST_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3}
_BASE_PROPS = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
_TAIL_PROPS = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *_TAIL_PROPS]


@dataclass
class GaussianCloud:
    """A set of N 3D Gaussians in the INRIA parameterisation (float32 tensors)."""

    means: torch.Tensor  # [N, 3]
    sh_dc: torch.Tensor  # [N, 3]
    sh_rest: torch.Tensor  # [N, K, 3], K = (degree + 1)^2 - 1
    opacity_logits: torch.Tensor  # [N]
    log_scales: torch.Tensor  # [N, 3]
    quats: torch.Tensor  # [N, 4], w x y z

    def __post_init__(self) -> None:
        for name in ("means", "sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats"):
            setattr(self, name, torch.as_tensor(getattr(self, name), dtype=torch.float32))
        n = self.means.shape[0]
        if self.sh_rest.ndim == 2 and self.sh_rest.shape[1] == 0:
            self.sh_rest = self.sh_rest.reshape(n, 0, 3)
        expected = {"means": (n, 3), "sh_dc": (n, 3), "opacity_logits": (n,), "log_scales": (n, 3), "quats": (n, 4)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"GaussianCloud.{name} has shape {got}, expected {shape}")
        if self.sh_rest.ndim != 3 or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3:
            raise ValueError(f"GaussianCloud.sh_rest has shape {tuple(self.sh_rest.shape)}, expected [{n}, K, 3]")
        if self.sh_rest.shape[1] * 3 not in _REST_TO_DEGREE:
            raise ValueError(f"GaussianCloud.sh_rest has K={self.sh_rest.shape[1]}; K must be 0, 3, 8 or 15")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @classmethod
    def from_activated(
        cls,
        means: torch.Tensor,
        quats: torch.Tensor,
        scales: torch.Tensor,
        opacities: torch.Tensor,
        colors: torch.Tensor,
    ) -> "GaussianCloud":
        """Degree-0 cloud from rasterizer-ready values (linear scales, opacities and colours in [0, 1])."""
        eps = 1e-6
        op = opacities.detach().float().clamp(eps, 1 - eps)
        return cls(
            means=means.detach().float(),
            sh_dc=(colors.detach().float() - 0.5) / SH_C0,
            sh_rest=torch.zeros(means.shape[0], 0, 3),
            opacity_logits=torch.log(op / (1 - op)),
            log_scales=torch.log(scales.detach().float().clamp_min(1e-12)),
            quats=quats.detach().float(),
        )

    @property
    def sh_degree(self) -> int:
        return _REST_TO_DEGREE[self.sh_rest.shape[1] * 3]

    @property
    def colors(self) -> torch.Tensor:
        """The view-independent (degree-0) colour, 0.5 + C0 * dc, clamped at 0; [N, 3]."""
        return (0.5 + SH_C0 * self.sh_dc).clamp_min(0.0)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)


def _check_header(path: Path, f) -> tuple[object, int]:
    """Parse the header with plyfile and check the counts against the file size before reading data."""
    from plyfile import PlyData, PlyListProperty, PlyParseError

    try:
        header = PlyData._parse_header(f)
    except PlyParseError as e:
        raise InputError(f"{path}: not a valid PLY header ({_one_line(e)})") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not a valid PLY header ({_one_line(e)})") from None
    data_start = f.tell()
    f.seek(0, os.SEEK_END)
    available = f.tell() - data_start
    f.seek(data_start)
    needed = 0
    for elt in header.elements:
        if elt.count < 0:
            raise InputError(f"{path}: element '{elt.name}' has a negative count {elt.count}")

        if header.text:
            min_row = max(1, 2 * len(elt.properties))  # "0 0 ... 0\n"
        else:
            min_row = 0
            for p in elt.properties:
                if isinstance(p, PlyListProperty):
                    min_row += np.dtype(p.len_dtype).itemsize
                else:
                    min_row += np.dtype(p.val_dtype).itemsize
        needed += elt.count * min_row
    if needed > available:
        raise InputError(
            f"{path}: header declares {', '.join(f'{e.count} {e.name}' for e in header.elements)}"
            f" needing at least {needed} bytes of data, but the file has only {available}"
            " (truncated file or corrupt header)"
        )
    return header, data_start


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _read_vertex(path: str | os.PathLike):
    """(structured numpy array of the vertex element, property names)."""
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            _check_header(path, f)
            f.seek(0)
            ply = PlyData.read(f)  # memory-mapped (copy-on-write); columns are copied out below
    except InputError:
        raise
    except PlyParseError as e:
        raise InputError(f"{path}: malformed PLY ({_one_line(e)})") from None
    except (ValueError, TypeError, OSError, MemoryError, StopIteration, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read PLY ({type(e).__name__}: {_one_line(e)})") from None
    if "vertex" not in ply:
        names = [e.name for e in ply.elements]
        raise InputError(f"{path}: PLY has no 'vertex' element (elements: {names or 'none'})")
    vertex = ply["vertex"]
    if vertex.count == 0:
        raise InputError(f"{path}: PLY has zero vertices")
    data = vertex.data
    return data, [p.name for p in vertex.properties]


def _column(path: Path, data, name: str) -> np.ndarray:
    col = np.asarray(data[name])
    if col.dtype.kind not in "fiu":
        raise InputError(f"{path}: property '{name}' is not a number (type {col.dtype})")
    return col


def _stack(path: Path, data, names: list[str]) -> torch.Tensor:
    if not names:
        return torch.zeros(len(data), 0)
    arr = np.stack([_column(path, data, n).astype(np.float32, copy=False) for n in names], axis=1)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def read_ply(path: str | os.PathLike) -> GaussianCloud:
    """Read an INRIA-layout 3DGS PLY (SH degree 0-3) as any 3DGS tool writes it: properties are found by
    name, in any order and of any numeric type; normals and extra properties are ignored. A compressed
    PlayCanvas PLY is refused (:func:`progs.io.splats.read_splats` reads it); an opacity logit of ±inf
    is read as ±``OPACITY_LOGIT_LIMIT`` (opacity 1 / 0). Raises InputError on malformed input."""
    path = Path(path)
    data, props = _read_vertex(path)
    present = set(props)
    if "packed_position" in present:
        raise InputError(
            f"{path}: a compressed PlayCanvas/SuperSplat PLY (packed_* properties), which read_ply does not read; "
            "read it with progs.io.splats.read_splats (as `progs fit` and `progs render` do)"
        )
    missing = [p for p in _REQUIRED if p not in present]
    if missing:
        hint = ""
        if {"x", "y", "z"} <= present and ({"red", "green", "blue"} & present):
            hint = " (a point cloud of positions and colours, not Gaussians; progs.io.ply.read_points_ply reads it)"
        raise InputError(f"{path}: not a 3DGS PLY: missing properties {', '.join(missing)}{hint}")
    rest_names = [p for p in props if p.startswith("f_rest_")]
    try:
        rest_idx = sorted(int(p[len("f_rest_") :]) for p in rest_names)
    except ValueError:
        raise InputError(f"{path}: malformed SH property name among {rest_names[:4]}") from None
    n_rest = len(rest_idx)
    if n_rest not in _REST_TO_DEGREE or rest_idx != list(range(n_rest)):
        raise InputError(f"{path}: {n_rest} f_rest_* properties; a degree 0-3 PLY has 0, 9, 24 or 45 named f_rest_0..")
    k = n_rest // 3
    n = len(data)
    means = _stack(path, data, ["x", "y", "z"])
    sh_dc = _stack(path, data, ["f_dc_0", "f_dc_1", "f_dc_2"])
    rest = _stack(path, data, [f"f_rest_{i}" for i in range(n_rest)])  # [N, 3K] channel-major
    sh_rest = rest.reshape(n, 3, k).transpose(1, 2).contiguous()
    opacity = _stack(path, data, ["opacity"])[:, 0].contiguous()
    log_scales = _stack(path, data, ["scale_0", "scale_1", "scale_2"])
    quats = _stack(path, data, ["rot_0", "rot_1", "rot_2", "rot_3"])
    # An opacity logit of ±inf is opacity 1 / 0 (SuperSplat writes them; every renderer accepts them).
    inf = torch.isinf(opacity)
    if bool(inf.any()):
        opacity = torch.where(inf, opacity.sign() * OPACITY_LOGIT_LIMIT, opacity)
    cloud = GaussianCloud(means, sh_dc, sh_rest, opacity, log_scales, quats)
    check_finite(path, cloud)
    return cloud


def check_finite(path: str | os.PathLike, cloud: GaussianCloud) -> None:
    """One-line ``InputError`` naming ``path`` when a value of ``cloud`` is NaN or infinite."""
    n = len(cloud)
    for name, t in (
        ("position", cloud.means),
        ("f_dc", cloud.sh_dc),
        ("f_rest", cloud.sh_rest),
        ("opacity", cloud.opacity_logits),
        ("scale", cloud.log_scales),
        ("rot", cloud.quats),
    ):
        bad = ~torch.isfinite(t)
        if bad.any():
            rows = bad.reshape(n, -1).any(dim=1).nonzero()[:, 0]
            raise InputError(
                f"{path}: {rows.numel()} of {n} vertices have a NaN or infinite {name} (first: row {int(rows[0])})"
            )


def _atomic_write(path: Path, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_ply(path: str | os.PathLike, cloud: GaussianCloud) -> None:
    """Write ``cloud`` as a binary little-endian INRIA-layout PLY (atomically: temp file + rename)."""
    from plyfile import PlyData, PlyElement

    path = Path(path)
    n = len(cloud)
    k = cloud.sh_rest.shape[1]
    names = _BASE_PROPS + [f"f_rest_{i}" for i in range(3 * k)] + _TAIL_PROPS

    def f32(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    cols = np.concatenate(
        [
            f32(cloud.means),
            np.zeros((n, 3), np.float32),
            f32(cloud.sh_dc),
            f32(cloud.sh_rest).transpose(0, 2, 1).reshape(n, 3 * k),
            f32(cloud.opacity_logits).reshape(n, 1),
            f32(cloud.log_scales),
            f32(cloud.quats),
        ],
        axis=1,
    )
    rows = np.empty(n, dtype=[(name, "<f4") for name in names])
    rows_view = rows.view("<f4").reshape(n, len(names))
    rows_view[:] = cols
    ply = PlyData([PlyElement.describe(rows, "vertex")], text=False, byte_order="<")
    _atomic_write(path, ply.write)


def read_points_ply(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a point-cloud PLY: (points [N, 3], colours [N, 3] in [0, 1]), both float32.

    Colours come from ``red green blue`` (uchar scaled by 1/255, 16-bit by 1/65535, floats as they
    are), else from a 3DGS PLY's ``f_dc_*``, else they are mid-grey.
    """
    path = Path(path)
    data, props = _read_vertex(path)
    present = set(props)
    missing = [p for p in ("x", "y", "z") if p not in present]
    if missing:
        raise InputError(f"{path}: point cloud PLY lacks properties {', '.join(missing)}")
    points = _stack(path, data, ["x", "y", "z"])
    n = points.shape[0]
    if {"red", "green", "blue"} <= present:
        cols = [_column(path, data, c) for c in ("red", "green", "blue")]
        kind = cols[0].dtype
        arr = np.stack([c.astype(np.float64) for c in cols], axis=1)
        if kind.kind == "f":
            scale = 1.0
        elif kind.itemsize == 1:
            scale = 255.0
        elif kind.itemsize == 2:
            scale = 65535.0
        else:
            scale = 255.0 if arr.max(initial=0) <= 255 else float(arr.max())
        colors = torch.from_numpy((arr / scale).astype(np.float32)).clamp(0.0, 1.0)
    elif {"f_dc_0", "f_dc_1", "f_dc_2"} <= present:
        colors = (0.5 + SH_C0 * _stack(path, data, ["f_dc_0", "f_dc_1", "f_dc_2"])).clamp(0.0, 1.0)
    else:
        colors = torch.full((n, 3), 0.5)
    finite = torch.isfinite(points).all(dim=1)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(f"{path}: {bad} of {n} points have NaN or infinite coordinates")
    if not math.isfinite(float(colors.sum())):
        raise InputError(f"{path}: colours contain NaN or infinite values")
    return points, colors
