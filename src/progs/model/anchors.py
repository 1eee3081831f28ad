"""Octree anchors (paper §III-B) and the structural edits of their adjustment (§III-C, Algorithm 1).

An :class:`AnchorSet` holds, per anchor ``i``: an integer voxel ``keys[i]`` at ``levels[i]`` (1..L) of
an :class:`~progs.octree.OctreeGrid`, and three plain attribute tensors (``nn.Parameter``):

- ``feature`` [N, 32]  the anchor feature f
- ``scaling`` [N, 6]   log scales s (s[:3] scales the offsets, s[3:] the Gaussians)
- ``offsets`` [N, K, 3] offsets o of its K = 10 neural Gaussians (in units of exp(s[:3]))

The anchor *position* is the centre of its voxel (``grid.voxel_center``), not a free parameter, so
the structure is exactly what the bitstream stores. The set is always a strict octree
(``progs.octree.validate_strict_octree``): one anchor per voxel per level, every non-root has its
parent. Rows are not kept in any particular order (new anchors are appended); use
``progs.octree.sort_canonical`` for the canonical order.

The set knows its structure and attributes only. Growing and pruning (which anchors to add or drop,
from statistics gathered during training) are decided by ``progs.train.strategy.GrowthStrategy``,
which also keeps the optimiser in step; the set applies them: :meth:`AnchorSet.occupied` (conflict
check), :meth:`AnchorSet.with_ancestors` (parent-child verification) and :meth:`AnchorSet.edit`
(append, drop, validate the invariant).
"""

from __future__ import annotations

import torch
from torch import nn

from progs import octree
from progs.model.layout import AttributeLayout
from progs.octree import OctreeGrid

ATTRIBUTE_NAMES = ("feature", "scaling", "offsets")


def _zeros_like_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros((n, *t.shape[1:]), dtype=t.dtype, device=t.device)


class AnchorSet(nn.Module):
    """The anchors of one scene: structure (keys, levels) + attributes (feature, scaling, offsets)."""

    def __init__(
        self,
        grid: OctreeGrid,
        keys: torch.Tensor,
        levels: torch.Tensor,
        feature: torch.Tensor | None = None,
        scaling: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
        *,
        feat_dim: int = 32,
        n_offsets: int = 10,
        validate: bool = True,
    ):
        super().__init__()
        self.grid = grid
        keys = torch.as_tensor(keys).to(torch.int64).reshape(-1, 3)
        levels = torch.as_tensor(levels).to(torch.int64).reshape(-1)
        if validate:
            octree.validate_strict_octree(keys, levels, grid)
        n, device = keys.shape[0], keys.device
        self.register_buffer("keys", keys.clone())
        self.register_buffer("levels", levels.to(device).clone())
        if feature is None:
            feature = torch.zeros(n, feat_dim, device=device)
        if scaling is None:
            scaling = self.default_scaling(self.levels)
        if offsets is None:
            offsets = torch.zeros(n, n_offsets, 3, device=device)
        self.feature = nn.Parameter(torch.as_tensor(feature, dtype=torch.float32, device=device).clone())
        self.scaling = nn.Parameter(torch.as_tensor(scaling, dtype=torch.float32, device=device).clone())
        self.offsets = nn.Parameter(torch.as_tensor(offsets, dtype=torch.float32, device=device).clone())
        self._check_shapes()
        self._positions: torch.Tensor | None = None
        self._parent: torch.Tensor | None = None

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_points(
        cls,
        grid: OctreeGrid,
        points: torch.Tensor,
        *,
        feat_dim: int = 32,
        n_offsets: int = 10,
        level: int | None = None,
    ) -> "AnchorSet":
        """Anchors at level ``level`` (default L, as the paper) in the voxels of ``points`` plus all
        their ancestors (paper §III-B). A coarser ``level`` leaves the finer levels to growth."""
        pts = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 3)
        lo, hi = grid.bounds
        inside = ((pts >= lo) & (pts < hi)).all(dim=1)
        if bool(inside.any()):
            pts = pts[inside]
        L = grid.num_levels if level is None else int(level)
        keys = grid.voxel_of(pts, L)
        keys, levels = octree.complete_upward(
            keys, torch.full((keys.shape[0],), L, dtype=torch.int64, device=keys.device)
        )
        return cls(grid, keys, levels, feat_dim=feat_dim, n_offsets=n_offsets)

    @classmethod
    def random(
        cls,
        grid: OctreeGrid,
        count: int,
        gen: torch.Generator,
        *,
        feat_dim: int = 32,
        n_offsets: int = 10,
        lo: torch.Tensor | None = None,
        hi: torch.Tensor | None = None,
        level: int | None = None,
    ) -> "AnchorSet":
        """Anchors from ``count`` uniform random points in the box ``[lo, hi]`` (default: the grid)."""
        glo, ghi = grid.bounds
        dev = gen.device  # the points are drawn where the generator lives; the anchors stay there
        lo = (glo if lo is None else torch.as_tensor(lo, dtype=torch.float64)).to(dev)
        hi = (ghi if hi is None else torch.as_tensor(hi, dtype=torch.float64)).to(dev)
        pts = lo + torch.rand(count, 3, generator=gen, dtype=torch.float64, device=dev) * (hi - lo)
        return cls.from_points(grid, pts, feat_dim=feat_dim, n_offsets=n_offsets, level=level)

    def default_scaling(self, levels: torch.Tensor) -> torch.Tensor:
        """Initial log scales: log(cell size of the anchor's level) for all six entries (on ``levels``' device)."""
        cell = torch.tensor(
            [self.grid.cell_size(int(l)) for l in range(1, self.grid.num_levels + 1)], device=levels.device
        )
        return torch.log(cell[levels - 1]).to(torch.float32)[:, None].repeat(1, 6)

    def _check_shapes(self) -> None:
        n = self.keys.shape[0]
        for name in ATTRIBUTE_NAMES:
            t = getattr(self, name)
            if t.shape[0] != n:
                raise ValueError(f"anchor attribute {name} has {t.shape[0]} rows for {n} anchors")
        if self.scaling.shape[1] != 6 or self.offsets.ndim != 3 or self.offsets.shape[2] != 3:
            raise ValueError("scaling must be [N, 6] and offsets [N, K, 3]")

    # -- properties ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the anchors' tensors live (keys, attributes and statistics are always together)."""
        return self.keys.device

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        """``.to(device)`` and friends: the cached positions and parents are rebuilt where the keys go."""
        self._positions = None
        self._parent = None
        return super()._apply(fn, recurse)

    @property
    def num_levels(self) -> int:
        return self.grid.num_levels

    @property
    def feat_dim(self) -> int:
        return int(self.feature.shape[1])

    @property
    def n_offsets(self) -> int:
        return int(self.offsets.shape[1])

    @property
    def positions(self) -> torch.Tensor:
        """Anchor positions [N, 3] float32: the centres of their voxels (cached)."""
        if self._positions is None or self._positions.shape[0] != len(self):
            pos = torch.zeros(len(self), 3, dtype=torch.float32, device=self.device)
            for level in torch.unique(self.levels).tolist():
                m = self.levels == level
                pos[m] = self.grid.voxel_center(self.keys[m], int(level))
            self._positions = pos
        return self._positions

    @property
    def parent(self) -> torch.Tensor:
        """Row [N] of each anchor's parent, -1 for roots (cached)."""
        if self._parent is None or self._parent.shape[0] != len(self):
            self._parent = octree.parent_index(self.keys, self.levels)
        return self._parent

    def lod_mask(self, lod: int) -> torch.Tensor:
        """Anchors of LoD ``lod``: level ≤ lod."""
        return self.levels <= lod

    def count_per_lod(self) -> list[int]:
        return [int((self.levels <= l).sum()) for l in range(1, self.num_levels + 1)]

    def count_per_level(self) -> list[int]:
        return [int((self.levels == l).sum()) for l in range(1, self.num_levels + 1)]

    def validate(self) -> None:
        octree.validate_strict_octree(self.keys, self.levels, self.grid)

    def gaussian_positions(self) -> torch.Tensor:
        """Means [N, K, 3] of every anchor's K Gaussians (x + o · exp(s[:3])), detached."""
        with torch.no_grad():
            return self.positions[:, None, :] + self.offsets * torch.exp(self.scaling[:, None, :3])

    # -- structural edits (growing/pruning: progs.train.strategy decides, the set applies) -----------

    @torch.no_grad()
    def occupied(self, keys: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """[C] bool: whether the voxel ``keys[c]`` (int64 [C, 3]) at ``levels[c]`` holds an anchor."""
        hit = torch.zeros(keys.shape[0], dtype=torch.bool, device=self.device)
        for level in torch.unique(levels).tolist():
            m = torch.nonzero(levels == level).squeeze(-1)
            hit[m] = octree.lookup_index(keys[m], self.keys[self.levels == level]) >= 0
        return hit

    @torch.no_grad()
    def with_ancestors(
        self, keys: torch.Tensor, levels: torch.Tensor, source: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Algorithm 1's parent-child verification: ``(keys, levels, source)`` of the anchors to add so
        that the set holds the new voxels ``keys`` [C, 3] at ``levels`` [C] (none of them occupied, no
        duplicates, in priority order): those voxels and their missing ancestors, all the way up.
        Together with the current set they form a strict octree. ``source`` [C] is the row of the
        anchor each new voxel comes from; an added ancestor takes that of the first voxel below it."""
        all_keys, all_levels = octree.complete_upward(torch.cat([self.keys, keys]), torch.cat([self.levels, levels]))
        is_new = torch.ones(all_keys.shape[0], dtype=torch.bool, device=self.device)
        src = torch.full((all_keys.shape[0],), -1, dtype=torch.int64, device=self.device)
        for level in torch.unique(all_levels).tolist():
            rows = torch.nonzero(all_levels == level).squeeze(-1)
            is_new[rows] = octree.lookup_index(all_keys[rows], self.keys[self.levels == level]) < 0
            deeper = levels >= level
            if not bool(deeper.any()):
                continue
            anc = keys[deeper] >> (levels[deeper] - level)[:, None]
            hit = octree.lookup_index(all_keys[rows], anc)
            src[rows] = torch.where(hit >= 0, source[deeper][hit.clamp_min(0)], src[rows])
        sel = torch.nonzero(is_new).squeeze(-1)
        return all_keys[sel], all_levels[sel], src[sel]

    def no_anchors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(keys [0, 3], levels [0], source [0])``: nothing to add (on the anchors' device)."""
        dev = self.device
        return (
            torch.zeros(0, 3, dtype=torch.int64, device=dev),
            torch.zeros(0, dtype=torch.int64, device=dev),
            torch.zeros(0, dtype=torch.int64, device=dev),
        )

    @torch.no_grad()
    def edit(self, keep: torch.Tensor, keys: torch.Tensor, levels: torch.Tensor, source: torch.Tensor) -> None:
        """Append the anchors ``(keys [M, 3], levels [M])``, then keep the rows ``keep`` [N + M] of the
        result, and validate the strict octree. New anchors copy the feature of their ``source`` row
        (zero where it is -1), start at :meth:`default_scaling` and zero offsets. Every attribute
        becomes a new ``nn.Parameter`` (an optimiser holding the old ones must be told: the caller's
        part, see ``progs.train.strategy``)."""
        m = keys.shape[0]
        new_rows = {
            "feature": torch.where((source >= 0)[:, None], self.feature.data[source.clamp_min(0)], 0.0)
            if m
            else _zeros_like_rows(self.feature, 0),
            "scaling": self.default_scaling(levels),
            "offsets": _zeros_like_rows(self.offsets, m),
        }
        for name in ATTRIBUTE_NAMES:
            old: nn.Parameter = getattr(self, name)
            data = torch.cat([old.data, new_rows[name].to(old.dtype)])[keep].contiguous()
            setattr(self, name, nn.Parameter(data))
        self.keys = torch.cat([self.keys, keys])[keep].contiguous()
        self.levels = torch.cat([self.levels, levels])[keep].contiguous()
        self._positions = None
        self._parent = None
        self.validate()

    @property
    def layout(self) -> AttributeLayout:
        return AttributeLayout(self.feat_dim, self.n_offsets)

    def attribute_matrix(self) -> torch.Tensor:
        """[N, D] = feature | scaling | offsets (:class:`AttributeLayout`), differentiable."""
        return self.layout.join(self.feature, self.scaling, self.offsets)

    def attributes(self) -> dict[str, torch.Tensor]:
        """The attribute tensors by name (``feature``, ``scaling``, ``offsets``), detached views."""
        return {name: getattr(self, name).detach() for name in ATTRIBUTE_NAMES}

    @torch.no_grad()
    def set_attributes(self, **values: torch.Tensor) -> None:
        """Overwrite attribute values in place (same shapes; optimizer bindings are kept), e.g. with
        quantized/decoded values: ``anchors.set_attributes(feature=f_hat)``."""
        for name, value in values.items():
            if name not in ATTRIBUTE_NAMES:
                raise KeyError(f"unknown anchor attribute {name!r} (expected one of {ATTRIBUTE_NAMES})")
            getattr(self, name).copy_(torch.as_tensor(value).to(self.device, torch.float32))

    def subset(self, mask: torch.Tensor) -> "AnchorSet":
        """A detached copy holding the rows of ``mask`` (must itself be a strict octree, e.g. a LoD)."""
        return AnchorSet(
            self.grid,
            self.keys[mask],
            self.levels[mask],
            self.feature.detach()[mask],
            self.scaling.detach()[mask],
            self.offsets.detach()[mask],
        )
