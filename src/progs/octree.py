"""Integer voxel keys, levels and the strict-octree invariant of ProGS (paper §III-B, §III-C).

The scene is a cube split into a *group* of octrees. Level ``l`` (``1 <= l <= L``) is a regular grid of
``2**(b + l - 1)`` cells per axis (``b`` = base depth, ``L`` = number of levels); level 1 holds the roots
(there are up to ``8**b`` of them), level ``L`` the finest cells. An anchor is a pair
``(key, level)`` where ``key`` is an ``int64`` voxel index ``(x, y, z)`` at that level's resolution.

Conventions (they are part of the bitstream, do not change them):

* **Parent**: ``parent_keys(k) = k >> 1`` (the voxel at level ``l - 1`` containing voxel ``k``).
* **Octant**: ``octant(k) = (x & 1) | (y & 1) << 1 | (z & 1) << 2`` -- bit 0 is x, bit 1 is y, bit 2 is
  z. ``child_keys(p, o) = 2 * p + ((o >> 0) & 1, (o >> 1) & 1, (o >> 2) & 1)``.
* **Morton code**: bit ``i`` of x goes to code bit ``3 i``, of y to ``3 i + 1``, of z to ``3 i + 2``
  (up to 21 bits per axis, so a code fits a non-negative ``int64``). Hence
  ``morton(child) == morton(parent) << 3 | octant(child)``: sorting one level by Morton code groups
  siblings together, parents in Morton order, octants ascending.
* **Canonical anchor order**: by level ascending, then Morton code ascending (``sort_canonical``).
  ``complete_upward`` returns anchors in this order.

Strict invariant (``validate_strict_octree``): every level lies in ``1..L``, every key lies inside
its level's grid, there is at most one anchor per voxel per level, and every anchor of level > 1 has
its parent (``key >> 1`` at level ``l - 1``) in the set. "LoD l" is then the set of anchors of level
``<= l``, itself a strict octree.

Everything here is plain integer tensor maths (no ``torch.nn``), vectorised over anchors; only small
loops over levels remain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from progs.errors import ProgsError

MAX_DEPTH = 21
"""Most bits per axis of a key (``3 * 21 = 63`` bits of Morton code fit a non-negative int64)."""

OCTANT_OFFSETS = torch.tensor([[(o >> 0) & 1, (o >> 1) & 1, (o >> 2) & 1] for o in range(8)], dtype=torch.int64)
"""[8, 3] int64: child offset ``(dx, dy, dz)`` of each octant 0..7 (bit 0 = x, bit 1 = y, bit 2 = z)."""

_NN_MAX_QUERIES = 2048
_NN_BLOCK = 1 << 21  # candidate points per block in the nearest-neighbour search


class OctreeError(ProgsError):
    """A set of anchors breaks the strict-octree invariant, or octree maths got invalid input."""


# --------------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OctreeGrid:
    """The cube the octrees live in and their depths.

    ``origin`` is the minimum corner (x, y, z) and ``size`` the cube's edge length, both in world units
    (float64). Level ``l`` in ``1..num_levels`` has ``resolution(l) = 2**(base_depth + l - 1)`` cells
    per axis of edge ``cell_size(l) = size / resolution(l)``; cell ``k`` spans
    ``[origin + k * cell, origin + (k + 1) * cell)``.
    """

    origin: tuple[float, float, float]
    size: float
    base_depth: int
    num_levels: int

    def __post_init__(self) -> None:
        origin = tuple(float(v) for v in self.origin)
        if len(origin) != 3 or not all(math.isfinite(v) for v in origin):
            raise OctreeError(f"octree origin must be 3 finite numbers, got {self.origin!r}")
        object.__setattr__(self, "origin", origin)
        size = float(self.size)
        if not (math.isfinite(size) and size > 0.0):
            raise OctreeError(f"octree size must be a positive finite number, got {self.size!r}")
        object.__setattr__(self, "size", size)
        if int(self.num_levels) != self.num_levels or self.num_levels < 1:
            raise OctreeError(f"octree needs at least one level, got num_levels={self.num_levels!r}")
        if int(self.base_depth) != self.base_depth or self.base_depth < 0:
            raise OctreeError(f"octree base depth must be >= 0, got {self.base_depth!r}")
        object.__setattr__(self, "num_levels", int(self.num_levels))
        object.__setattr__(self, "base_depth", int(self.base_depth))
        if self.base_depth + self.num_levels - 1 > MAX_DEPTH:
            raise OctreeError(
                f"octree too deep: base depth {self.base_depth} + {self.num_levels} levels gives "
                f"{self.base_depth + self.num_levels - 1} bits per axis, at most {MAX_DEPTH} are supported"
            )

    # -- serialisation (checkpoints, stream header) ---------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``{"origin", "size", "base_depth", "levels"}``: the grid as JSON-ready numbers."""
        return {
            "origin": list(self.origin),
            "size": self.size,
            "base_depth": self.base_depth,
            "levels": self.num_levels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OctreeGrid":
        """Inverse of :meth:`to_dict` (checkpoints before 2026-11-27 named ``levels`` ``num_levels``)."""
        levels = d["levels"] if "levels" in d else d["num_levels"]
        return cls(tuple(float(v) for v in d["origin"]), float(d["size"]), int(d["base_depth"]), int(levels))

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_bounds(
        cls,
        lo: Sequence[float] | torch.Tensor,
        hi: Sequence[float] | torch.Tensor,
        num_levels: int,
        base_depth: int,
        margin: float = 0.0,
    ) -> OctreeGrid:
        """Cube centred on the box ``[lo, hi]`` with edge ``max(hi - lo) * (1 + margin)``.

        For bounds derived from cameras or a known scene box. A degenerate box (zero extent) gets
        edge 1.0.
        """
        lo_t = torch.as_tensor(lo, dtype=torch.float64).reshape(3)
        hi_t = torch.as_tensor(hi, dtype=torch.float64).reshape(3)
        if not (torch.isfinite(lo_t).all() and torch.isfinite(hi_t).all()) or bool((hi_t < lo_t).any()):
            raise OctreeError(f"invalid octree bounds lo={lo_t.tolist()} hi={hi_t.tolist()}")
        if margin < 0:
            raise OctreeError(f"octree margin must be >= 0, got {margin}")
        edge = float((hi_t - lo_t).max()) * (1.0 + margin)
        if not edge > 0.0:
            edge = 1.0
        centre = (lo_t + hi_t) / 2
        origin = centre - edge / 2
        return cls(tuple(origin.tolist()), edge, base_depth, num_levels)  # type: ignore[arg-type]

    @classmethod
    def from_points(
        cls,
        points: torch.Tensor,
        num_levels: int,
        base_depth: int | None = None,
        clip_percent: float = 0.5,
        margin: float = 0.05,
    ) -> OctreeGrid:
        """Grid from an SfM point cloud [N, 3].

        The box is robust: per axis the ``clip_percent`` and ``100 - clip_percent`` percentiles, then
        cubed (edge = largest extent), enlarged by ``margin`` and centred (``from_bounds``). Points
        outside it are clamped onto the border cells by ``voxel_of``. ``base_depth=None`` picks
        ``default_base_depth`` for this box (needs at least two distinct points).
        """
        pts = _as_points(points)
        if pts.shape[0] == 0:
            raise OctreeError("cannot build an octree grid from an empty point cloud")
        lo, hi = robust_bounds(pts, clip_percent)
        grid_box = cls.from_bounds(lo, hi, num_levels, 0, margin)
        if base_depth is None:
            base_depth = default_base_depth(pts, num_levels, size=grid_box.size)
        return cls(grid_box.origin, grid_box.size, base_depth, num_levels)

    # -- geometry -----------------------------------------------------------------------------------

    def _check_level(self, level: int) -> int:
        if int(level) != level or not 1 <= level <= self.num_levels:
            raise OctreeError(f"level {level!r} outside 1..{self.num_levels}")
        return int(level)

    def depth(self, level: int) -> int:
        """Bits per axis of a level-``level`` key: ``base_depth + level - 1``."""
        return self.base_depth + self._check_level(level) - 1

    def resolution(self, level: int) -> int:
        """Cells per axis at ``level``: ``2**(base_depth + level - 1)``."""
        return 1 << self.depth(level)

    def cell_size(self, level: int) -> float:
        """Edge length of a level-``level`` cell (the paper's voxel size ``v_l``)."""
        return self.size / self.resolution(level)

    @property
    def origin_tensor(self) -> torch.Tensor:
        """[3] float64 minimum corner (on the CPU; ``.to`` it where it is used)."""
        return torch.tensor(self.origin, dtype=torch.float64, device="cpu")

    @property
    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lo, hi)``, two [3] float64 corners of the cube."""
        lo = self.origin_tensor
        return lo, lo + self.size

    def voxel_of(self, points: torch.Tensor, level: int) -> torch.Tensor:
        """int64 keys [N, 3] of the level-``level`` cells containing ``points`` [N, 3] (clamped into the grid)."""
        res = self.resolution(level)
        pts = _as_points(points)
        rel = (pts - self.origin_tensor.to(pts.device)) / self.cell_size(level)
        return torch.floor(rel).clamp_(0, res - 1).to(torch.int64)

    def voxel_center(self, keys: torch.Tensor, level: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Centres [N, 3] of level-``level`` cells ``keys`` (computed in float64, returned as ``dtype``)."""
        cell = self.cell_size(level)
        k = _as_keys(keys)
        return (self.origin_tensor.to(k.device) + (k.to(torch.float64) + 0.5) * cell).to(dtype)


def _as_points(points: torch.Tensor) -> torch.Tensor:
    pts = torch.as_tensor(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise OctreeError(f"points must have shape [N, 3], got {tuple(pts.shape)}")
    pts = pts.to(torch.float64)
    if not bool(torch.isfinite(pts).all()):
        raise OctreeError("points contain NaN or infinite coordinates")
    return pts


def _quantile_sorted(sorted_vals: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation quantile along dim 0 of an already sorted [N, C] tensor."""
    n = sorted_vals.shape[0]
    pos = q * (n - 1)
    i0 = int(math.floor(pos))
    i1 = min(i0 + 1, n - 1)
    w = pos - i0
    a, b = sorted_vals[i0], sorted_vals[i1]
    return a + (b - a) * w  # exact where a == b: equal points give lo == hi, never lo > hi by one ulp


def robust_bounds(points: torch.Tensor, clip_percent: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis ``clip_percent`` / ``100 - clip_percent`` percentiles of ``points`` [N, 3] as float64 [3], [3]."""
    if not 0.0 <= clip_percent < 50.0:
        raise OctreeError(f"clip_percent must be in [0, 50), got {clip_percent}")
    pts = _as_points(points)
    if pts.shape[0] == 0:
        raise OctreeError("cannot compute bounds of an empty point cloud")
    s = torch.sort(pts, dim=0).values
    return _quantile_sorted(s, clip_percent / 100.0), _quantile_sorted(s, 1.0 - clip_percent / 100.0)


def nearest_neighbour_distances(points: torch.Tensor, query_index: torch.Tensor | None = None) -> torch.Tensor:
    """Exact distance [Q] from ``points[query_index]`` to the nearest *distinct* point (inf if none).

    Points equal to the query (itself, duplicates) are ignored. Grid search without a tree: points
    are Morton-sorted once on a 2**21 grid over their bounding cube; each query then scans the 27
    cells around it at growing cell sizes ``h`` and stops as soon as the nearest candidate is within
    ``h`` (then it is exact, since every point within ``h`` lies in those cells).
    """
    pts = _as_points(points)
    n = pts.shape[0]
    dev = pts.device
    qidx = (
        torch.arange(n, device=dev)
        if query_index is None
        else torch.as_tensor(query_index).to(device=dev, dtype=torch.int64).reshape(-1)
    )
    best = torch.full((qidx.shape[0],), math.inf, dtype=torch.float64, device=dev)
    if n < 2 or qidx.numel() == 0:
        return best
    lo = pts.min(dim=0).values
    extent = float((pts.max(dim=0).values - lo).max())
    if extent == 0.0:
        return best
    top = 1 << MAX_DEPTH
    hf = extent / top * (1.0 + 1e-9)
    keys = torch.floor((pts - lo) / hf).clamp_(0, top - 1).to(torch.int64)
    codes, order = torch.sort(morton_encode(keys))
    pts_sorted = pts[order]
    qk, qp = keys[qidx], pts[qidx]
    offs = torch.stack(torch.meshgrid(*(torch.arange(-1, 2, device=dev),) * 3, indexing="ij"), dim=-1).reshape(27, 3)
    active = torch.arange(qidx.shape[0], device=dev)
    # Start at cells about half the median gap between Morton neighbours (an upper bound of the typical
    # nearest-neighbour distance); starting coarse stays exact, it only costs more candidates.
    gaps = (pts_sorted[1:] - pts_sorted[:-1]).norm(dim=1)
    gaps = gaps[gaps > 0]
    j0 = 0
    if gaps.numel():
        j0 = min(max(int(math.floor(math.log2(float(gaps.median()) / 2 / hf))), 0), MAX_DEPTH)
    for j in range(j0, MAX_DEPTH + 1):
        if active.numel() == 0:
            break
        res = top >> j
        nb = (qk[active] >> j)[:, None, :] + offs  # [A, 27, 3]
        valid = ((nb >= 0) & (nb < res)).all(dim=-1)
        nbc = morton_encode(nb.clamp(0, res - 1).reshape(-1, 3)).reshape(-1, 27)
        low = torch.searchsorted(codes, nbc << (3 * j))
        high = torch.searchsorted(codes, (nbc << (3 * j)) | ((1 << (3 * j)) - 1), right=True)
        count = torch.where(valid, high - low, torch.zeros_like(low))
        per_query = count.sum(dim=1)
        dmin = torch.full((active.shape[0],), math.inf, dtype=torch.float64, device=dev)
        # process queries in groups of bounded candidate count
        csum = torch.cumsum(per_query, 0)
        group = torch.div(csum - per_query, _NN_BLOCK, rounding_mode="floor")
        for g in torch.unique(group).tolist():
            sel = torch.nonzero(group == g).squeeze(1)
            cnt = count[sel].reshape(-1)
            total = int(cnt.sum())
            if total == 0:
                continue
            st = low[sel].reshape(-1)
            excl = torch.cumsum(cnt, 0) - cnt
            flat = torch.repeat_interleave(st - excl, cnt) + torch.arange(total, device=dev)
            owner = torch.repeat_interleave(torch.arange(sel.shape[0], device=dev).repeat_interleave(27), cnt)
            d2 = ((pts_sorted[flat] - qp[active[sel]][owner]) ** 2).sum(dim=1)
            d2 = torch.where(d2 > 0, d2, torch.full_like(d2, math.inf))
            m = torch.full((sel.shape[0],), math.inf, dtype=torch.float64, device=dev)
            dmin[sel] = m.scatter_reduce(0, owner, d2, reduce="amin")
        dmin = dmin.sqrt()
        done = (dmin <= hf * (1 << j) * (1.0 - 1e-9)) | (j == MAX_DEPTH)
        best[active[done]] = dmin[done]
        active = active[~done]
    return best


def nearest_neighbour_spacing(points: torch.Tensor, max_queries: int = _NN_MAX_QUERIES, seed: int = 0) -> float:
    """Median distance from a point to its nearest *distinct* neighbour.

    Exact nearest neighbours (``nearest_neighbour_distances``) of up to ``max_queries`` points drawn
    with a fixed seed, so the result is deterministic.
    """
    pts = _as_points(points)
    n = pts.shape[0]
    if n < 2:
        raise OctreeError("need at least 2 points to estimate the point spacing")
    if n > max_queries:
        gen = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same queries on every device
        qidx = torch.randperm(n, generator=gen)[:max_queries].to(pts.device)
    else:
        qidx = torch.arange(n, device=pts.device)
    best = nearest_neighbour_distances(pts, qidx)
    best = best[torch.isfinite(best)]
    if best.numel() == 0:
        raise OctreeError("all points coincide; cannot estimate the point spacing")
    return float(best.median())


def default_base_depth(points: torch.Tensor, num_levels: int, size: float | None = None) -> int:
    """Base depth ``b`` whose finest cells match the point spacing.

    Rule: with ``s`` the median nearest-neighbour distance (``nearest_neighbour_spacing``) and ``D``
    the cube edge (``size``; by default the robust cube of ``OctreeGrid.from_points``), the finest
    level gets ``2**round(log2(D / s))`` cells per axis, so its cell edge is within a factor
    ``sqrt(2)`` of ``s``; then ``b = round(log2(D / s)) - (num_levels - 1)``, clamped to
    ``0 .. MAX_DEPTH - (num_levels - 1)`` (a very sparse cloud gets ``b = 0``, one root cell, and finer
    leaves than its spacing). Large scenes land near the paper's ``b = 11, L = 5``.
    """
    if num_levels < 1 or num_levels - 1 > MAX_DEPTH:
        raise OctreeError(f"num_levels must be in 1..{MAX_DEPTH + 1}, got {num_levels}")
    pts = _as_points(points)
    if size is None:
        lo, hi = robust_bounds(pts)
        size = OctreeGrid.from_bounds(lo, hi, num_levels, 0, margin=0.05).size
    spacing = nearest_neighbour_spacing(pts)
    finest = round(math.log2(size / spacing))
    return int(min(max(finest - (num_levels - 1), 0), MAX_DEPTH - (num_levels - 1)))


# --------------------------------------------------------------------------------------------------
# Key maths
# --------------------------------------------------------------------------------------------------


def _as_keys(keys: torch.Tensor) -> torch.Tensor:
    k = torch.as_tensor(keys)
    if k.ndim != 2 or k.shape[1] != 3:
        raise OctreeError(f"keys must have shape [N, 3], got {tuple(k.shape)}")
    if k.dtype.is_floating_point or k.dtype == torch.bool or k.dtype.is_complex:
        raise OctreeError(f"keys must be an integer tensor, got {k.dtype}")
    return k.to(torch.int64)


def _as_levels(levels: torch.Tensor, n: int) -> torch.Tensor:
    lv = torch.as_tensor(levels)
    if lv.ndim != 1 or lv.shape[0] != n:
        raise OctreeError(f"levels must have shape [{n}], got {tuple(lv.shape)}")
    if lv.dtype.is_floating_point or lv.dtype == torch.bool or lv.dtype.is_complex:
        raise OctreeError(f"levels must be an integer tensor, got {lv.dtype}")
    return lv.to(torch.int64)


def _fmt(key: torch.Tensor) -> str:
    return "(" + ", ".join(str(int(v)) for v in key.tolist()) + ")"


def parent_keys(keys: torch.Tensor) -> torch.Tensor:
    """Keys [N, 3] of the parent voxels (one level coarser): ``keys >> 1``."""
    return _as_keys(keys) >> 1


def ancestor_keys(keys: torch.Tensor, levels_up: int) -> torch.Tensor:
    """Keys of the ancestors ``levels_up`` levels coarser: ``keys >> levels_up``."""
    if levels_up < 0:
        raise OctreeError(f"levels_up must be >= 0, got {levels_up}")
    return _as_keys(keys) >> levels_up


def octant(keys: torch.Tensor) -> torch.Tensor:
    """Octant [N] int64 in 0..7 of each voxel inside its parent: ``x&1 | (y&1)<<1 | (z&1)<<2``."""
    k = _as_keys(keys) & 1
    return k[:, 0] | (k[:, 1] << 1) | (k[:, 2] << 2)


def child_keys(parents: torch.Tensor, octants: torch.Tensor) -> torch.Tensor:
    """Keys [N, 3] of child ``octants[i]`` (0..7) of voxel ``parents[i]``; inverse of parent/octant."""
    p = _as_keys(parents)
    o = torch.as_tensor(octants).to(torch.int64).reshape(-1)
    if o.shape[0] != p.shape[0]:
        raise OctreeError(f"{p.shape[0]} parents but {o.shape[0]} octants")
    if o.numel() and (int(o.min()) < 0 or int(o.max()) > 7):
        raise OctreeError("octants must lie in 0..7")
    return (p << 1) + OCTANT_OFFSETS.to(p.device)[o]


def _spread3(v: torch.Tensor) -> torch.Tensor:
    """Spread the low 21 bits of ``v`` so that bit i lands on bit 3 i."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


def _compact3(v: torch.Tensor) -> torch.Tensor:
    """Inverse of ``_spread3``: gather bits 0, 3, 6, ... into the low 21 bits."""
    v = v & 0x1249249249249249
    v = (v | (v >> 2)) & 0x10C30C30C30C30C3
    v = (v | (v >> 4)) & 0x100F00F00F00F00F
    v = (v | (v >> 8)) & 0x1F0000FF0000FF
    v = (v | (v >> 16)) & 0x1F00000000FFFF
    v = (v | (v >> 32)) & 0x1FFFFF
    return v


_SPREAD_LUT = _spread3(torch.arange(1 << 11, dtype=torch.int64))  # bit i of v -> bit 3i, 11-bit chunks


def morton_encode(keys: torch.Tensor, bits: int = MAX_DEPTH) -> torch.Tensor:
    """int64 Morton codes [N] of keys [N, 3] with ``0 <= key < 2**bits`` (``bits <= 21``).

    x bit i -> code bit 3i, y -> 3i+1, z -> 3i+2. The code does not depend on ``bits``; it only bounds
    the keys (checked).
    """
    if not 0 <= bits <= MAX_DEPTH:
        raise OctreeError(f"morton bits must be in 0..{MAX_DEPTH}, got {bits}")
    k = _as_keys(keys)
    if k.numel() and (int(k.min()) < 0 or int(k.max()) >= (1 << bits)):
        raise OctreeError(
            f"keys must lie in [0, 2**{bits}) for Morton coding; got range [{int(k.min())}, {int(k.max())}]"
        )
    lut = _SPREAD_LUT.to(k.device)
    s = lut[k & 0x7FF] | (lut[k >> 11] << 33)  # [N, 3], table lookups are fastest on CPU
    return s[:, 0] | (s[:, 1] << 1) | (s[:, 2] << 2)


def morton_decode(codes: torch.Tensor) -> torch.Tensor:
    """Keys [N, 3] int64 from Morton codes [N] (inverse of ``morton_encode``)."""
    c = torch.as_tensor(codes).to(torch.int64).reshape(-1)
    if c.numel() and int(c.min()) < 0:
        raise OctreeError("Morton codes must be non-negative")
    return torch.stack([_compact3(c), _compact3(c >> 1), _compact3(c >> 2)], dim=1)


def sort_morton(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keys[perm], perm)`` with ``perm`` the stable permutation sorting keys by Morton code."""
    k = _as_keys(keys)
    perm = torch.sort(morton_encode(k), stable=True).indices
    return k[perm], perm


def sort_canonical(keys: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Stable permutation [N] ordering anchors by level ascending, then Morton code ascending."""
    k = _as_keys(keys)
    lv = _as_levels(levels, k.shape[0])
    perm = torch.sort(morton_encode(k), stable=True).indices
    return perm[torch.sort(lv[perm], stable=True).indices]


def lookup_index(query_keys: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Index [Q] into ``keys`` [N, 3] of each query key [Q, 3]; -1 where absent.

    Keys of one level (one resolution). Vectorised: sorted Morton codes + ``searchsorted``. With
    duplicate keys the smallest matching index is returned. Query keys outside ``[0, 2**21)`` are
    simply absent.
    """
    q = _as_keys(query_keys)
    k = _as_keys(keys)
    out = torch.full((q.shape[0],), -1, dtype=torch.int64, device=q.device)
    if q.shape[0] == 0 or k.shape[0] == 0:
        return out
    codes, order = torch.sort(morton_encode(k), stable=True)
    inside = ((q >= 0) & (q < (1 << MAX_DEPTH))).all(dim=1)
    qc = morton_encode(torch.where(inside[:, None], q, torch.zeros_like(q)))
    pos = torch.searchsorted(codes, qc).clamp_(max=codes.shape[0] - 1)
    found = inside & (codes[pos] == qc)
    return torch.where(found, order[pos], out)


def _level_values(levels: torch.Tensor) -> list[int]:
    return [int(v) for v in torch.unique(levels).tolist()]


def parent_index(keys: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Index [N] of each anchor's parent (``key >> 1`` at ``level - 1``) in the same set; -1 if none."""
    k = _as_keys(keys)
    lv = _as_levels(levels, k.shape[0])
    out = torch.full((k.shape[0],), -1, dtype=torch.int64, device=k.device)
    for level in _level_values(lv):
        child_idx = torch.nonzero(lv == level).squeeze(1)
        par_idx = torch.nonzero(lv == level - 1).squeeze(1)
        if par_idx.numel() == 0:
            continue
        hit = lookup_index(k[child_idx] >> 1, k[par_idx])
        out[child_idx] = torch.where(hit >= 0, par_idx[hit.clamp(min=0)], hit)
    return out


# --------------------------------------------------------------------------------------------------
# The strict invariant
# --------------------------------------------------------------------------------------------------


def validate_strict_octree(keys: torch.Tensor, levels: torch.Tensor, grid: OctreeGrid) -> None:
    """Raise ``OctreeError`` unless ``(keys [N, 3], levels [N])`` is a strict octree on ``grid``.

    Checks, in order: levels in ``1..grid.num_levels``; keys in ``[0, grid.resolution(level))``; at
    most one anchor per voxel per level ("duplicate"); every anchor of level > 1 has its parent at
    level - 1 ("no parent"). The message names the first offending voxel and how many there are.
    """
    k = _as_keys(keys)
    lv = _as_levels(levels, k.shape[0])
    if k.shape[0] == 0:
        return
    bad = (lv < 1) | (lv > grid.num_levels)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise OctreeError(
            f"strict octree violated: {int(bad.sum())} anchors have a level outside 1..{grid.num_levels} "
            f"(first: level {int(lv[i])}, voxel {_fmt(k[i])})"
        )
    present = _level_values(lv)
    codes_by_level: dict[int, torch.Tensor] = {}
    for level in present:
        kl = k[lv == level]
        res = grid.resolution(level)
        out = ((kl < 0) | (kl >= res)).any(dim=1)
        if bool(out.any()):
            i = int(torch.nonzero(out)[0])
            raise OctreeError(
                f"strict octree violated: {int(out.sum())} anchors at level {level} lie outside its "
                f"{res}^3 grid (first: voxel {_fmt(kl[i])})"
            )
        codes = morton_encode(kl)
        if not bool((codes[1:] >= codes[:-1]).all()):  # canonical input is already sorted
            codes = torch.sort(codes).values
        dup = codes[1:] == codes[:-1]
        if bool(dup.any()):
            first = codes[1:][dup][0:1]
            raise OctreeError(
                f"strict octree violated: {int(dup.sum())} duplicate anchors at level {level} "
                f"(first: voxel {_fmt(morton_decode(first)[0])} occurs more than once)"
            )
        codes_by_level[level] = codes
    for level in present:
        if level == 1:
            continue
        codes = codes_by_level[level]
        parents = codes >> 3  # Morton code of the parent voxel
        pcodes = codes_by_level.get(level - 1)
        if pcodes is None:
            missing = torch.ones_like(parents, dtype=torch.bool)
        else:
            pos = torch.searchsorted(pcodes, parents).clamp_(max=pcodes.shape[0] - 1)
            missing = pcodes[pos] != parents
        if bool(missing.any()):
            child = morton_decode(codes[missing][0:1])[0]
            raise OctreeError(
                f"strict octree violated: {int(missing.sum())} anchors at level {level} have no parent "
                f"at level {level - 1} (first: voxel {_fmt(child)}, missing parent {_fmt(child >> 1)})"
            )


def is_strict_octree(keys: torch.Tensor, levels: torch.Tensor, grid: OctreeGrid) -> bool:
    """``True`` iff ``validate_strict_octree`` passes."""
    try:
        validate_strict_octree(keys, levels, grid)
    except OctreeError:
        return False
    return True


def complete_upward(keys: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Add every missing ancestor (down to level 1) and drop duplicates.

    Returns ``(keys [M, 3] int64, levels [M] int64)`` in canonical order (level ascending, Morton code
    ascending). Used to initialise anchors: ``grid.voxel_of(points, L)`` at level ``L``, then this.
    Levels must be >= 1; key ranges are not checked here (``validate_strict_octree`` does).
    """
    k = _as_keys(keys)
    lv = _as_levels(levels, k.shape[0])
    if k.shape[0] == 0:
        return k.clone(), lv.clone()
    if int(lv.min()) < 1:
        raise OctreeError(f"anchor levels must be >= 1, found {int(lv.min())}")
    out_keys: list[torch.Tensor] = []
    out_levels: list[torch.Tensor] = []
    carry_keys = torch.empty(0, 3, dtype=torch.int64, device=k.device)  # parents required by level + 1 (sorted, unique)
    carry_codes = torch.empty(0, dtype=torch.int64, device=k.device)
    for level in range(int(lv.max()), 0, -1):
        own = k[lv == level]
        cand_keys = torch.cat([carry_keys, own])
        codes, perm = torch.sort(torch.cat([carry_codes, morton_encode(own)]), stable=True)
        first = torch.ones_like(codes, dtype=torch.bool)
        first[1:] = codes[1:] != codes[:-1]
        keys_l, codes_l = cand_keys[perm[first]], codes[first]
        out_keys.append(keys_l)
        out_levels.append(torch.full((keys_l.shape[0],), level, dtype=torch.int64, device=k.device))
        # parents of a Morton-sorted level are Morton-sorted; keep the first of each run
        pc = codes_l >> 3
        first = torch.ones_like(pc, dtype=torch.bool)
        first[1:] = pc[1:] != pc[:-1]
        carry_keys, carry_codes = keys_l[first] >> 1, pc[first]
    return torch.cat(out_keys[::-1]), torch.cat(out_levels[::-1])


def descendants_mask(keys: torch.Tensor, levels: torch.Tensor, roots: torch.Tensor) -> torch.Tensor:
    """Bool [N]: anchors selected by ``roots`` [N] bool plus all their descendants in the set.

    ``keep = ~descendants_mask(keys, levels, remove)`` prunes ``remove`` while keeping a strict octree
    strict.
    """
    k = _as_keys(keys)
    lv = _as_levels(levels, k.shape[0])
    sel = torch.as_tensor(roots)
    if sel.dtype != torch.bool or sel.shape != (k.shape[0],):
        raise OctreeError(f"roots must be a bool mask of shape [{k.shape[0]}]")
    out = sel.clone()
    pidx = parent_index(k, lv)
    for level in _level_values(lv):
        idx = torch.nonzero((lv == level) & (pidx >= 0)).squeeze(1)
        out[idx] |= out[pidx[idx]]
    return out


def leaf_mask(keys: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Bool [N]: anchors with no child (``2 k + octant`` at ``level + 1``) in the set."""
    k = _as_keys(keys)
    lv = _as_levels(levels, k.shape[0])
    pidx = parent_index(k, lv)
    has_child = torch.zeros(k.shape[0], dtype=torch.bool, device=k.device)
    has_child[pidx[pidx >= 0]] = True
    return ~has_child


# --------------------------------------------------------------------------------------------------
# Structure coding helpers
# --------------------------------------------------------------------------------------------------


def _check_unique(keys: torch.Tensor, what: str) -> torch.Tensor:
    codes = morton_encode(keys)
    s = torch.sort(codes).values
    dup = s[1:] == s[:-1]
    if bool(dup.any()):
        raise OctreeError(f"duplicate {what} voxel {_fmt(morton_decode(s[1:][dup][0:1])[0])}")
    return codes


def _child_slots(parents: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
    """Slot ``parent_index * 8 + octant`` [C] of each child; raises on orphans and duplicates."""
    _check_unique(parents, "parent")
    _check_unique(children, "child")
    pidx = lookup_index(children >> 1, parents)
    if bool((pidx < 0).any()):
        i = int(torch.nonzero(pidx < 0)[0])
        raise OctreeError(f"child voxel {_fmt(children[i])} has no parent {_fmt(children[i] >> 1)} among the parents")
    return pidx * 8 + octant(children)


def children_occupancy(parents: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
    """Occupancy byte [P] uint8 per parent: bit ``o`` set iff child octant ``o`` is in ``children``.

    ``parents`` [P, 3] are unique keys of one level, ``children`` [C, 3] unique keys of the next level,
    each with its parent in ``parents`` (else ``OctreeError``).
    """
    p = _as_keys(parents)
    c = _as_keys(children)
    occ = torch.zeros(p.shape[0] * 8, dtype=torch.bool, device=p.device)
    occ[_child_slots(p, c)] = True
    weights = torch.tensor([1 << o for o in range(8)], dtype=torch.int64, device=p.device)
    return (occ.view(-1, 8).to(torch.int64) * weights).sum(dim=1).to(torch.uint8)


def children_from_occupancy(parents: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    """Child keys [C, 3] from parents [P, 3] and occupancy bytes [P], in canonical order.

    Canonical order: parents in the given order, within a parent octants ascending. Exact inverse of
    ``children_occupancy`` up to that order (see ``canonical_child_order``).
    """
    p = _as_keys(parents)
    occ = torch.as_tensor(occupancy).to(torch.int64).reshape(-1)
    if occ.shape[0] != p.shape[0]:
        raise OctreeError(f"{p.shape[0]} parents but {occ.shape[0]} occupancy bytes")
    if occ.numel() and (int(occ.min()) < 0 or int(occ.max()) > 255):
        raise OctreeError("occupancy bytes must lie in 0..255")
    occ = occ.to(p.device)
    bits = ((occ[:, None] >> torch.arange(8, device=p.device)) & 1).bool()  # [P, 8]
    kids = (p[:, None, :] << 1) + OCTANT_OFFSETS.to(p.device)[None, :, :]  # [P, 8, 3]
    return kids[bits]


def canonical_child_order(parents: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
    """Permutation ``perm`` [C] with ``children[perm] == children_from_occupancy(parents, occupancy)``.

    Lets the codec reorder per-child attributes into the order in which the decoder rebuilds keys.
    """
    p = _as_keys(parents)
    c = _as_keys(children)
    return torch.sort(_child_slots(p, c)).indices
