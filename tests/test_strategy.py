"""The growth strategy (Algorithm 1): growing/pruning from its statistics, the strict octree kept,
the optimiser's state resized with the anchors."""

from __future__ import annotations

import pytest
import torch

from progs import octree
from progs.model import AnchorSet
from progs.octree import OctreeGrid
from progs.train.config import ConfigError, GrowthConfig
from progs.train.strategy import GrowthStrategy, replace_param

L = 4


def _config(**kw) -> GrowthConfig:
    return GrowthConfig(**{"max_anchors": 200_000, "interval": 10, **kw})


def _anchors(n_points: int = 200, seed: int = 0, levels: int = L, base_depth: int = 1) -> AnchorSet:
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(n_points, 3, generator=g) * 0.4
    grid = OctreeGrid.from_points(pts, levels, base_depth)
    return AnchorSet.from_points(grid, pts)


def _fake_stats(s: GrowthStrategy, a: AnchorSet, gen: torch.Generator, interval: int, grad_scale: float = 1e-3) -> None:
    """Random accumulated statistics as if ``interval`` steps had been recorded."""
    n, k = len(a), a.n_offsets
    s.grad_count.fill_(interval)
    s.grad_accum.copy_(torch.rand(n, k, generator=gen, dtype=torch.float64) ** 4 * grad_scale * interval)
    s.visible_count.fill_(interval)
    s.opacity_accum.copy_(torch.rand(n, generator=gen, dtype=torch.float64) * 0.02 * interval)


@pytest.mark.parametrize("seed", range(4))
def test_octree_invariant_after_every_adjustment(seed):
    """Fuzz: random gradient/opacity statistics, repeated grow+prune, optimizer attached."""
    gen = torch.Generator().manual_seed(seed)
    a = _anchors(seed=seed)
    opt = torch.optim.Adam([a.feature, a.scaling, a.offsets], lr=1e-3)
    s = GrowthStrategy(_config(grad_threshold=2e-4, beta=1.0, very_factor=2.0, prune_opacity=0.005), a)
    total_grown = total_pruned = 0
    for round_ in range(6):
        # give the offsets some spread so that Gaussians land in other voxels
        with torch.no_grad():
            a.offsets.normal_(0, 1.5, generator=gen)
        # fake a step so Adam has state to resize
        (a.feature.sum() + a.scaling.sum() + a.offsets.sum()).backward()
        opt.step()
        opt.zero_grad()
        _fake_stats(s, a, gen, 10)
        rep = s.adjust(a, opt)
        total_grown += rep.grown
        total_pruned += rep.pruned
        octree.validate_strict_octree(a.keys, a.levels, a.grid)
        assert rep.anchors == len(a) == a.feature.shape[0] == a.offsets.shape[0] == a.scaling.shape[0]
        # optimizer holds exactly the current parameters, with matching state shapes
        params = [p for g in opt.param_groups for p in g["params"]]
        assert params[0] is a.feature and params[1] is a.scaling and params[2] is a.offsets
        for p in params:
            st = opt.state[p]
            assert st["exp_avg"].shape == p.shape and st["exp_avg_sq"].shape == p.shape
        # statistics were reset and resized
        assert s.grad_accum.shape == (len(a), 10) and float(s.grad_accum.abs().sum()) == 0.0
        assert s.visible_count.shape == (len(a),)
    assert total_grown > 0 and total_pruned > 0


def test_growth_levels_conflicts_and_new_state():
    """Significant → same level, very significant → level + 1, parents queued, no duplicates,
    existing Adam moments kept and new rows zero."""
    grid = OctreeGrid.from_bounds([-1, -1, -1], [1, 1, 1], L, 1)
    pts = torch.tensor([[-0.8, -0.8, -0.8], [-0.7, -0.75, -0.9], [-0.9, -0.6, -0.7]])
    a = AnchorSet.from_points(grid, pts)
    opt = torch.optim.Adam([a.feature, a.scaling, a.offsets], lr=1e-3)
    (a.feature.sum() * 2 + a.scaling.sum() + a.offsets.sum()).backward()
    opt.step()
    old_keys, old_levels = a.keys.clone(), a.levels.clone()
    old_moment = opt.state[a.feature]["exp_avg"].clone()
    n_old = len(a)
    # Send one level-2 anchor's Gaussians into empty space and mark them significant.
    i = int(torch.nonzero(a.levels == 2)[0])
    with torch.no_grad():
        a.scaling[i, :3] = 0.0  # offsets in world units
        a.offsets[i] = 0.0
        a.offsets[i, 0] = torch.tensor([0.5, 0.5, 0.5]) - a.positions[i]
        a.offsets[i, 1] = torch.tensor([0.5, -0.5, 0.5]) - a.positions[i]
    s = GrowthStrategy(_config(grad_threshold=1e-3, beta=1.0, very_factor=2.0, prune=False), a)
    tau2, tau3 = 1e-3 * 2, 1e-3 * 4
    s.grad_count.fill_(10)
    s.grad_accum.zero_()
    s.grad_accum[i, 0] = 1.5 * tau2 * 10  # significant (level 2)
    s.grad_accum[i, 1] = 2.5 * tau3 * 10  # very significant (level 3)
    pos = a.gaussian_positions()[i]
    rep = s.adjust(a, opt)
    a.validate()
    assert rep.grown == len(a) - n_old > 0
    assert torch.equal(a.keys[:n_old], old_keys) and torch.equal(a.levels[:n_old], old_levels)
    new_l = a.levels[n_old:]
    k2 = a.grid.voxel_of(pos[0:1], 2)[0]
    k3 = a.grid.voxel_of(pos[1:2], 3)[0]
    has = lambda k, lv: bool((((a.keys == k).all(-1)) & (a.levels == lv)).any())  # noqa: E731
    assert has(k2, 2) and has(k3, 3) and has(k3 >> 1, 2)
    # exactly the two branches: (level-2 voxel, its root) and (level-3 voxel, its level-2 parent, root)
    assert int(new_l.max()) == 3 and len(a) - n_old == 5
    # new anchors copy the source anchor's feature, default scaling, zero offsets
    assert torch.allclose(a.feature[n_old:], a.feature[i].expand(len(a) - n_old, -1))
    assert torch.all(a.offsets[n_old:] == 0)
    assert torch.allclose(
        a.scaling[n_old:].exp()[:, 0], torch.tensor([a.grid.cell_size(int(l)) for l in new_l]), rtol=1e-5
    )
    st = opt.state[a.feature]["exp_avg"]
    assert torch.equal(st[:n_old], old_moment) and torch.all(st[n_old:] == 0)
    # a second adjustment with the same statistics adds nothing (conflict check against existing)
    s.grad_count.fill_(10)
    s.grad_accum[i, 0] = 1.5 * tau2 * 10
    s.grad_accum[i, 1] = 2.5 * tau3 * 10
    assert s.adjust(a, opt).grown == 0


def test_prune_only_weak_leaves():
    a = _anchors(seed=5)
    leaf = octree.leaf_mask(a.keys, a.levels)
    s = GrowthStrategy(_config(grow=False), a)
    s.visible_count.fill_(10)
    s.opacity_accum.fill_(1.0)
    s.opacity_accum[:] = 0.0  # everything weak: only leaves may go
    n_leaf = int(leaf.sum())
    rep = s.adjust(a)
    assert rep.pruned == n_leaf and len(a) == int((~leaf).sum())
    a.validate()
    # anchors not seen often enough are kept
    n = len(a)
    s.visible_count.fill_(1)
    assert s.adjust(a).pruned == 0 and len(a) == n


def test_replace_param_resizes_adam_state():
    p = torch.nn.Parameter(torch.randn(5, 2))
    opt = torch.optim.Adam([p], lr=0.1)
    p.sum().backward()
    opt.step()
    m = opt.state[p]["exp_avg"].clone()
    keep = torch.tensor([True, False, True, True, True, True, False])
    new = torch.nn.Parameter(torch.cat([p.data, torch.ones(2, 2)])[keep])
    replace_param(opt, p, new, keep, 2)
    assert opt.param_groups[0]["params"][0] is new and p not in opt.state
    assert torch.equal(opt.state[new]["exp_avg"], torch.cat([m, torch.zeros(2, 2)])[keep])
    new.sum().backward()
    opt.step()  # still a valid optimizer


def test_the_strategy_needs_a_sized_anchor_cap():
    with pytest.raises(ConfigError, match="max_anchors is not sized"):
        GrowthStrategy(GrowthConfig(), _anchors())


def test_statistics_round_trip_and_the_anchor_set_holds_none():
    a = _anchors(seed=2)
    s = GrowthStrategy(_config(), a)
    _fake_stats(s, a, torch.Generator().manual_seed(3), 10)
    saved = s.state_dict()
    t = GrowthStrategy(_config(), a)
    t.load_state_dict(saved)
    assert all(torch.equal(getattr(t, n), saved[n]) for n in GrowthStrategy.STATS)
    assert not any(n in dict(a.named_buffers()) for n in GrowthStrategy.STATS)  # model/ keeps no statistics


def test_recorded_gradients_and_opacities_accumulate_per_gaussian_and_anchor():
    a = _anchors(seed=4)
    s = GrowthStrategy(_config(), a)
    k = a.n_offsets
    anchor_index = torch.tensor([0, 0, 1, 2])
    offset_index = torch.tensor([1, 1, 0, 3])
    grad = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0], [5.0, 5.0]])
    radii = torch.tensor([2, 1, 3, 0])  # the last one was not drawn
    s.record_gradients(a, anchor_index, offset_index, grad, radii, width=2, height=2, scale=2.0)
    assert float(s.grad_accum[0, 1]) == pytest.approx(2 * (5.0 + 2.0))
    assert float(s.grad_accum[1, 0]) == pytest.approx(2.0) and float(s.grad_accum[2, 3]) == 0.0
    assert float(s.grad_count.sum()) == 3 and float(s.grad_count[0, 1]) == 2
    s.record_opacity(torch.tensor([0, 2]), torch.tensor([[0.5] * k, [-1.0] + [0.25] * (k - 1)]))
    assert float(s.opacity_accum[0]) == pytest.approx(0.5 * k)
    assert float(s.opacity_accum[2]) == pytest.approx(0.25 * (k - 1))
    assert s.visible_count.tolist()[:3] == [1.0, 0.0, 1.0]
