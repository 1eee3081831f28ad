"""Octree anchors and their adaptive adjustment (paper §III-B, §III-C, Algorithm 1).

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

Growing/pruning statistics live here too (per neural Gaussian: accumulated view-space gradient norm
and count; per anchor: accumulated opacity and visibility count). :meth:`AnchorSet.adjust` grows
anchors where Gaussians have large gradients, completes missing parents, dedupes against existing
voxels, prunes low-opacity leaves, resizes the optimizer state and validates the invariant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from progs import octree
from progs.model.layout import AttributeLayout
from progs.octree import OctreeGrid

ATTRIBUTE_NAMES = ("feature", "scaling", "offsets")


@dataclass(frozen=True)
class AdjustConfig:
    """Hyper-parameters of the adaptive anchor adjustment (paper §III-C; defaults after Scaffold-GS).

    Gradient norms are of the view-space mean in NDC units (pixel gradient × (W/2, H/2)), as in
    3DGS / Scaffold-GS, so the thresholds do not depend on the image size.
    """

    grad_threshold: float = 2e-4  # τ_g
    beta: float = 1.0  # τ_l = τ_g · 2^(β (l - 1))  (level 1 gets τ_g)
    very_factor: float = 2.0  # "very significant": grad > very_factor · τ_{l+1} → spawn at level l + 1
    min_grad_count_fraction: float = 0.25  # Gaussians seen in fewer than this · T renders are ignored
    prune_opacity: float = 0.005  # τ_o: prune leaves whose mean (over visible steps) summed opacity < τ_o
    min_visible_fraction: float = 0.25  # ... and that were visible in at least this · T steps
    max_anchors: int = 200_000  # growth stops at about this many anchors (CPU budget)
    grow: bool = True
    prune: bool = True


@dataclass
class AdjustReport:
    grown: int
    pruned: int
    anchors: int


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
        self.reset_stats()
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

    # -- statistics ---------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        n, k, dev = self.keys.shape[0], self.offsets.shape[1], self.device
        self.register_buffer("grad_accum", torch.zeros(n, k, dtype=torch.float64, device=dev))
        self.register_buffer("grad_count", torch.zeros(n, k, dtype=torch.float64, device=dev))
        self.register_buffer("opacity_accum", torch.zeros(n, dtype=torch.float64, device=dev))
        self.register_buffer("visible_count", torch.zeros(n, dtype=torch.float64, device=dev))

    @torch.no_grad()
    def record_gradients(
        self,
        anchor_index: torch.Tensor,
        offset_index: torch.Tensor,
        means2d_grad: torch.Tensor,
        radii: torch.Tensor,
        width: int,
        height: int,
        scale: float = 1.0,
    ) -> None:
        """Accumulate ‖∇ view-space mean‖ (NDC units, × ``scale``) of the Gaussians drawn (radii > 0)."""
        if means2d_grad is None or anchor_index.numel() == 0:
            return
        dev = self.device
        g = means2d_grad.detach().to(dev, torch.float64) * torch.tensor(
            [width / 2.0, height / 2.0], dtype=torch.float64, device=dev
        )
        norm = g.norm(dim=-1) * scale
        drawn = radii.to(dev) > 0
        a, k = anchor_index[drawn], offset_index[drawn]
        flat = a * self.n_offsets + k
        self.grad_accum.view(-1).index_add_(0, flat, norm[drawn])
        self.grad_count.view(-1).index_add_(0, flat, torch.ones_like(norm[drawn]))

    @torch.no_grad()
    def record_opacity(self, visible_anchors: torch.Tensor, anchor_opacity: torch.Tensor) -> None:
        """Accumulate per visible anchor the sum of its Gaussians' (non-negative) opacities."""
        if visible_anchors.numel() == 0:
            return
        self.opacity_accum.index_add_(0, visible_anchors, anchor_opacity.clamp_min(0).sum(-1).to(torch.float64))
        self.visible_count.index_add_(
            0, visible_anchors, torch.ones(visible_anchors.shape[0], dtype=torch.float64, device=self.device)
        )

    # -- adjustment ---------------------------------------------------------------------------------

    def level_threshold(self, level: torch.Tensor | int, cfg: AdjustConfig) -> torch.Tensor:
        lv = torch.as_tensor(level, dtype=torch.float64)
        return cfg.grad_threshold * torch.pow(2.0, cfg.beta * (lv - 1))

    @torch.no_grad()
    def grow_candidates(
        self, cfg: AdjustConfig, interval: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Algorithm 1, step 1: ``(keys [C, 3], levels [C], source_anchor [C], grad [C])`` of candidates.

        A Gaussian of a level-l anchor with mean gradient > τ_l is a candidate at level l at its own
        position; above ``very_factor · τ_{l+1}`` (and l < L) at level l + 1. Candidates outside the
        grid are dropped; duplicates (same voxel and level) keep the largest gradient.
        """
        L = self.num_levels
        min_count = max(1.0, cfg.min_grad_count_fraction * interval)
        grad = torch.where(self.grad_count >= min_count, self.grad_accum / self.grad_count.clamp_min(1), 0.0)
        lv = self.levels[:, None].expand_as(grad)
        tau = self.level_threshold(lv, cfg)
        tau_next = self.level_threshold(lv + 1, cfg)
        very = (grad > cfg.very_factor * tau_next) & (lv < L)
        sig = grad > tau
        cand = sig | very
        dev = self.device
        pos = self.gaussian_positions().to(torch.float64)
        lo, hi = (b.to(dev) for b in self.grid.bounds)
        inside = ((pos >= lo) & (pos < hi)).all(-1)
        cand &= inside
        idx = torch.nonzero(cand.reshape(-1)).squeeze(-1)
        c_level = torch.where(very, lv + 1, lv).reshape(-1)[idx]
        c_pos = pos.reshape(-1, 3)[idx]
        c_grad = grad.reshape(-1)[idx]
        c_src = idx // self.n_offsets
        c_keys = torch.zeros(idx.shape[0], 3, dtype=torch.int64, device=dev)
        for level in torch.unique(c_level).tolist():
            m = c_level == level
            c_keys[m] = self.grid.voxel_of(c_pos[m], int(level))
        # dedupe among candidates: keep the largest gradient per (level, voxel)
        order = torch.argsort(c_grad, descending=True, stable=True)
        c_keys, c_level, c_src, c_grad = c_keys[order], c_level[order], c_src[order], c_grad[order]
        keep = torch.zeros(c_keys.shape[0], dtype=torch.bool, device=dev)
        for level in torch.unique(c_level).tolist():
            rows = torch.nonzero(c_level == level).squeeze(-1)
            codes = octree.morton_encode(c_keys[rows])
            uniq, inv = torch.unique(codes, return_inverse=True)
            first = torch.full((uniq.shape[0],), rows.shape[0], dtype=torch.int64, device=dev)
            first.scatter_reduce_(0, inv, torch.arange(rows.shape[0], device=dev), reduce="amin")
            keep[rows[first]] = True
        keep_idx = torch.nonzero(keep).squeeze(-1)  # still in descending-gradient order
        return c_keys[keep_idx], c_level[keep_idx], c_src[keep_idx], c_grad[keep_idx]

    @torch.no_grad()
    def plan_growth(self, cfg: AdjustConfig, interval: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Algorithm 1 steps 1-3: ``(keys, levels, source_anchor)`` of the anchors to spawn.

        Candidates whose voxel is already occupied are dropped (conflict check); missing ancestors of
        the others are queued (parent-child verification, all the way up); the result contains no
        existing voxel and no duplicate, and together with the current set is a strict octree.
        ``source_anchor`` is the anchor whose Gaussian caused each new anchor (for initialisation).
        """
        c_keys, c_level, c_src, _ = self.grow_candidates(cfg, interval)
        empty = self._no_growth()
        if c_keys.shape[0] == 0:
            return empty
        # conflict check against existing anchors
        new = torch.ones(c_keys.shape[0], dtype=torch.bool, device=self.device)
        for level in torch.unique(c_level).tolist():
            m = torch.nonzero(c_level == level).squeeze(-1)
            existing = self.keys[self.levels == level]
            new[m] = octree.lookup_index(c_keys[m], existing) < 0
        c_keys, c_level, c_src = c_keys[new], c_level[new], c_src[new]
        budget = cfg.max_anchors - len(self)
        if budget <= 0:
            return empty
        c_keys, c_level, c_src = c_keys[:budget], c_level[:budget], c_src[:budget]
        if c_keys.shape[0] == 0:
            return empty
        # parent-child verification: complete upward, then keep what is not there yet
        all_keys, all_levels = octree.complete_upward(torch.cat([self.keys, c_keys]), torch.cat([self.levels, c_level]))
        is_new = torch.ones(all_keys.shape[0], dtype=torch.bool, device=self.device)
        src = torch.full((all_keys.shape[0],), -1, dtype=torch.int64, device=self.device)
        for level in torch.unique(all_levels).tolist():
            rows = torch.nonzero(all_levels == level).squeeze(-1)
            is_new[rows] = octree.lookup_index(all_keys[rows], self.keys[self.levels == level]) < 0
            # source: the first (largest-gradient) candidate at or below this voxel
            deeper = c_level >= level
            if not bool(deeper.any()):
                continue
            anc = c_keys[deeper] >> (c_level[deeper] - level)[:, None]
            hit = octree.lookup_index(all_keys[rows], anc)
            src[rows] = torch.where(hit >= 0, c_src[deeper][hit.clamp_min(0)], src[rows])
        sel = torch.nonzero(is_new).squeeze(-1)
        return all_keys[sel], all_levels[sel], src[sel]

    @torch.no_grad()
    def prune_mask(self, cfg: AdjustConfig, interval: int, keys: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Rows (of the current set) to prune: leaves of ``(keys, levels)`` (the set after growth, whose
        first ``len(self)`` rows are the current anchors) with mean summed opacity < τ_o over at least
        ``min_visible_fraction · T`` visible steps."""
        n = len(self)
        leaf = octree.leaf_mask(keys, levels)[:n]
        min_vis = max(1.0, cfg.min_visible_fraction * interval)
        seen = self.visible_count >= min_vis
        weak = self.opacity_accum < cfg.prune_opacity * self.visible_count
        return leaf & seen & weak

    @torch.no_grad()
    def adjust(
        self, cfg: AdjustConfig, interval: int, optimizer: torch.optim.Optimizer | None = None, *, grow: bool = True
    ) -> AdjustReport:
        """Grow, then prune, then validate the strict octree; resets the statistics.

        ``optimizer`` (if given) has its state for ``feature``, ``scaling``, ``offsets`` resized: kept
        rows keep their Adam moments, new rows start from zero.
        """
        n_old = len(self)
        if grow and cfg.grow:
            new_keys, new_levels, src = self.plan_growth(cfg, interval)
        else:
            new_keys, new_levels, src = self._no_growth()
        all_keys = torch.cat([self.keys, new_keys])
        all_levels = torch.cat([self.levels, new_levels])
        keep = torch.ones(all_keys.shape[0], dtype=torch.bool, device=self.device)
        if cfg.prune:
            pm = self.prune_mask(cfg, interval, all_keys, all_levels)
            if int(pm.sum()) < n_old:  # never prune everything
                keep[:n_old] = ~pm
        pruned = int((~keep).sum())
        m = new_keys.shape[0]
        new_attrs = {
            "feature": torch.where((src >= 0)[:, None], self.feature.data[src.clamp_min(0)], 0.0)
            if m
            else _zeros_like_rows(self.feature, 0),
            "scaling": self.default_scaling(new_levels),
            "offsets": _zeros_like_rows(self.offsets, m),
        }
        self._apply_edit(keep, all_keys, all_levels, new_attrs, optimizer)
        self.validate()
        return AdjustReport(grown=m, pruned=pruned, anchors=len(self))

    def _no_growth(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(keys [0, 3], levels [0], source [0])``: no anchor to spawn (on the anchors' device)."""
        dev = self.device
        return (
            torch.zeros(0, 3, dtype=torch.int64, device=dev),
            torch.zeros(0, dtype=torch.int64, device=dev),
            torch.zeros(0, dtype=torch.int64, device=dev),
        )

    def _apply_edit(
        self,
        keep: torch.Tensor,
        all_keys: torch.Tensor,
        all_levels: torch.Tensor,
        new_attrs: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer | None,
    ) -> None:
        for name in ATTRIBUTE_NAMES:
            old: nn.Parameter = getattr(self, name)
            new_rows = new_attrs[name].to(old.dtype)
            data = torch.cat([old.data, new_rows])[keep].contiguous()
            param = nn.Parameter(data)
            if optimizer is not None:
                replace_param(optimizer, old, param, keep, new_rows.shape[0])
            setattr(self, name, param)
        self.keys = all_keys[keep].contiguous()
        self.levels = all_levels[keep].contiguous()
        self._positions = None
        self._parent = None
        self.reset_stats()

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


def replace_param(
    optimizer: torch.optim.Optimizer, old: nn.Parameter, new: nn.Parameter, keep: torch.Tensor, n_new: int
) -> None:
    """Swap ``old`` for ``new`` in ``optimizer``: per-row state tensors (Adam's moments) become
    ``cat(state, zeros(n_new))[keep]``; scalar state (``step``) is kept."""
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
    state = optimizer.state.pop(old, None)
    if state is None:
        return
    new_state = {}
    for k, v in state.items():
        if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == old.shape[0] and v.shape[1:] == old.shape[1:]:
            new_state[k] = torch.cat([v, _zeros_like_rows(v, n_new)])[keep].contiguous()
        else:
            new_state[k] = v
    optimizer.state[new] = new_state
