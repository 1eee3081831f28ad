"""Anchor growing and pruning as a strategy object (paper §III-C, Algorithm 1), after gsplat's
``strategy`` package: :class:`GrowthStrategy` owns its configuration (:class:`GrowthConfig`), the
statistics it decides from, and the optimiser surgery that keeps Adam's state in step with the
anchors. The :class:`~progs.model.anchors.AnchorSet` only applies the structural edits.

The trainer drives it:

- after each backward pass in the adjustment window, :meth:`GrowthStrategy.record_gradients` (per
  neural Gaussian: accumulated view-space gradient norm and count) and
  :meth:`GrowthStrategy.record_opacity` (per anchor: accumulated opacity and visibility count);
- every ``config.interval`` steps, :meth:`GrowthStrategy.adjust`: grow anchors where Gaussians have
  large gradients (parents completed, occupied voxels skipped, up to ``config.max_anchors``), prune
  low-opacity leaves, resize the optimiser's state, reset the statistics.

The statistics live on the anchors' device and are checkpointed with the trainer
(:meth:`GrowthStrategy.state_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from progs import octree
from progs.model.anchors import ATTRIBUTE_NAMES, AnchorSet
from progs.train.config import ConfigError, GrowthConfig

__all__ = ["AdjustReport", "GrowthStrategy", "replace_param"]


@dataclass
class AdjustReport:
    """What one adjustment did: anchors grown, pruned, and the count after it."""

    grown: int
    pruned: int
    anchors: int


class GrowthStrategy:
    """Grows and prunes the anchors of a model during training (Algorithm 1).

    Args:
        config: the growth configuration; its ``max_anchors`` must be sized
            (``progs.train.sizing.scene_sizing`` sizes it from the scene).
        anchors: the anchors whose statistics to gather (sizes them and picks their device).
    """

    STATS = ("grad_accum", "grad_count", "opacity_accum", "visible_count")

    def __init__(self, config: GrowthConfig, anchors: AnchorSet):
        if config.max_anchors is None:
            raise ConfigError("max_anchors is not sized yet (progs.train.sizing.scene_sizing sizes it from the scene)")
        self.config = config
        self.reset(anchors)

    # -- statistics ---------------------------------------------------------------------------------

    def reset(self, anchors: AnchorSet) -> None:
        """Zero statistics for ``anchors``: ``grad_accum``, ``grad_count`` [N, K] and
        ``opacity_accum``, ``visible_count`` [N] (float64, on the anchors' device)."""
        n, k, dev = len(anchors), anchors.n_offsets, anchors.device
        self.grad_accum = torch.zeros(n, k, dtype=torch.float64, device=dev)
        self.grad_count = torch.zeros(n, k, dtype=torch.float64, device=dev)
        self.opacity_accum = torch.zeros(n, dtype=torch.float64, device=dev)
        self.visible_count = torch.zeros(n, dtype=torch.float64, device=dev)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The statistics as CPU tensors (a checkpoint keeps them for an exact resume)."""
        return {name: getattr(self, name).detach().cpu().clone() for name in self.STATS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy statistics saved by :meth:`state_dict` (on any device) into this strategy's."""
        for name in self.STATS:
            getattr(self, name).copy_(state[name])

    @torch.no_grad()
    def record_gradients(
        self,
        anchors: AnchorSet,
        anchor_index: torch.Tensor,
        offset_index: torch.Tensor,
        means2d_grad: torch.Tensor | None,
        radii: torch.Tensor,
        width: int,
        height: int,
        scale: float = 1.0,
    ) -> None:
        """Accumulate ‖∇ view-space mean‖ (NDC units, × ``scale``) of the Gaussians drawn (radii > 0).

        Args:
            anchors: the anchors rendered.
            anchor_index, offset_index: [G] int64, the anchor and offset of each rendered Gaussian.
            means2d_grad: [G, 2] gradient of the loss w.r.t. the projected means (pixels).
            radii: [G] screen radii; Gaussians with radius 0 were not drawn.
            width, height: the image size in pixels.
            scale: factor on the norms (the inverse of the render's weight in the loss).
        """
        if means2d_grad is None or anchor_index.numel() == 0:
            return
        dev = anchors.device
        g = means2d_grad.detach().to(dev, torch.float64) * torch.tensor(
            [width / 2.0, height / 2.0], dtype=torch.float64, device=dev
        )
        norm = g.norm(dim=-1) * scale
        drawn = radii.to(dev) > 0
        a, k = anchor_index[drawn], offset_index[drawn]
        flat = a * anchors.n_offsets + k
        self.grad_accum.view(-1).index_add_(0, flat, norm[drawn])
        self.grad_count.view(-1).index_add_(0, flat, torch.ones_like(norm[drawn]))

    @torch.no_grad()
    def record_opacity(self, visible_anchors: torch.Tensor, anchor_opacity: torch.Tensor) -> None:
        """Accumulate per visible anchor the sum of its Gaussians' (non-negative) opacities.

        Args:
            visible_anchors: [V] int64 rows of the anchors rendered.
            anchor_opacity: [V, K] their Gaussians' opacities.
        """
        if visible_anchors.numel() == 0:
            return
        self.opacity_accum.index_add_(0, visible_anchors, anchor_opacity.clamp_min(0).sum(-1).to(torch.float64))
        self.visible_count.index_add_(
            0,
            visible_anchors,
            torch.ones(visible_anchors.shape[0], dtype=torch.float64, device=self.visible_count.device),
        )

    # -- Algorithm 1 --------------------------------------------------------------------------------

    def level_threshold(self, level: torch.Tensor | int) -> torch.Tensor:
        """τ_l = τ_g · 2^(β (l - 1)) of ``level`` (float64)."""
        lv = torch.as_tensor(level, dtype=torch.float64)
        return self.config.grad_threshold * torch.pow(2.0, self.config.beta * (lv - 1))

    @torch.no_grad()
    def grow_candidates(self, anchors: AnchorSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Algorithm 1, step 1: ``(keys [C, 3], levels [C], source_anchor [C], grad [C])`` of candidates.

        A Gaussian of a level-l anchor with mean gradient > τ_l is a candidate at level l at its own
        position; above ``very_factor · τ_{l+1}`` (and l < L) at level l + 1. Candidates outside the
        grid are dropped; duplicates (same voxel and level) keep the largest gradient.
        """
        cfg, L, dev = self.config, anchors.num_levels, anchors.device
        min_count = max(1.0, cfg.min_grad_count_fraction * cfg.interval)
        grad = torch.where(self.grad_count >= min_count, self.grad_accum / self.grad_count.clamp_min(1), 0.0)
        lv = anchors.levels[:, None].expand_as(grad)
        tau = self.level_threshold(lv)
        tau_next = self.level_threshold(lv + 1)
        very = (grad > cfg.very_factor * tau_next) & (lv < L)
        cand = (grad > tau) | very
        pos = anchors.gaussian_positions().to(torch.float64)
        lo, hi = (b.to(dev) for b in anchors.grid.bounds)
        cand &= ((pos >= lo) & (pos < hi)).all(-1)
        idx = torch.nonzero(cand.reshape(-1)).squeeze(-1)
        c_level = torch.where(very, lv + 1, lv).reshape(-1)[idx]
        c_pos = pos.reshape(-1, 3)[idx]
        c_grad = grad.reshape(-1)[idx]
        c_src = idx // anchors.n_offsets
        c_keys = torch.zeros(idx.shape[0], 3, dtype=torch.int64, device=dev)
        for level in torch.unique(c_level).tolist():
            m = c_level == level
            c_keys[m] = anchors.grid.voxel_of(c_pos[m], int(level))
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
    def plan_growth(self, anchors: AnchorSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Algorithm 1 steps 1-3: ``(keys, levels, source_anchor)`` of the anchors to spawn.

        Candidates whose voxel is already occupied are dropped (conflict check); at most
        ``max_anchors - len(anchors)`` of the others, largest gradients first, are kept and their
        missing ancestors queued (parent-child verification, all the way up). ``source_anchor`` is the
        anchor whose Gaussian caused each new anchor (for initialisation).
        """
        c_keys, c_level, c_src, _ = self.grow_candidates(anchors)
        if c_keys.shape[0] == 0:
            return anchors.no_anchors()
        new = ~anchors.occupied(c_keys, c_level)
        c_keys, c_level, c_src = c_keys[new], c_level[new], c_src[new]
        budget = self.config.max_anchors - len(anchors)
        if budget <= 0:
            return anchors.no_anchors()
        c_keys, c_level, c_src = c_keys[:budget], c_level[:budget], c_src[:budget]
        if c_keys.shape[0] == 0:
            return anchors.no_anchors()
        return anchors.with_ancestors(c_keys, c_level, c_src)

    @torch.no_grad()
    def prune_mask(self, anchors: AnchorSet, keys: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Rows of ``anchors`` to prune: leaves of ``(keys, levels)`` (the set after growth, whose first
        ``len(anchors)`` rows are the current anchors) with mean summed opacity < τ_o over at least
        ``min_visible_fraction · T`` visible steps."""
        cfg = self.config
        leaf = octree.leaf_mask(keys, levels)[: len(anchors)]
        seen = self.visible_count >= max(1.0, cfg.min_visible_fraction * cfg.interval)
        weak = self.opacity_accum < cfg.prune_opacity * self.visible_count
        return leaf & seen & weak

    @torch.no_grad()
    def adjust(
        self, anchors: AnchorSet, optimizer: torch.optim.Optimizer | None = None, *, grow: bool = True
    ) -> AdjustReport:
        """Grow, then prune, then validate the strict octree; resets the statistics.

        Args:
            anchors: the anchors to edit (in place: their attributes become new parameters).
            optimizer: if given, its parameters ``feature``, ``scaling``, ``offsets`` are swapped for
                the new ones and their state resized: kept rows keep their Adam moments, new rows
                start from zero.
            grow: False skips growing (pruning only), as once quantisation noise starts.
        """
        cfg, n_old = self.config, len(anchors)
        new_keys, new_levels, src = self.plan_growth(anchors) if grow and cfg.grow else anchors.no_anchors()
        keep = torch.ones(n_old + new_keys.shape[0], dtype=torch.bool, device=anchors.device)
        if cfg.prune:
            pm = self.prune_mask(anchors, torch.cat([anchors.keys, new_keys]), torch.cat([anchors.levels, new_levels]))
            if int(pm.sum()) < n_old:  # never prune everything
                keep[:n_old] = ~pm
        old = {name: getattr(anchors, name) for name in ATTRIBUTE_NAMES}
        anchors.edit(keep, new_keys, new_levels, src)
        if optimizer is not None:
            for name in ATTRIBUTE_NAMES:
                replace_param(optimizer, old[name], getattr(anchors, name), keep, new_keys.shape[0])
        self.reset(anchors)
        return AdjustReport(grown=new_keys.shape[0], pruned=int((~keep).sum()), anchors=len(anchors))


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
            zeros = torch.zeros((n_new, *v.shape[1:]), dtype=v.dtype, device=v.device)
            new_state[k] = torch.cat([v, zeros])[keep].contiguous()
        else:
            new_state[k] = v
    optimizer.state[new] = new_state
