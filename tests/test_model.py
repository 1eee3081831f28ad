"""Anchors (strict octree, growing/pruning, optimizer state) and the neural-Gaussian generator (LoDs)."""

from __future__ import annotations


import pytest
import torch

from progs import octree
from progs.model import AdjustConfig, AnchorSet, GaussianGenerator, ProGSModel
from progs.model.anchors import replace_param
from progs.octree import OctreeGrid
from progs.scene import Camera

L = 4


def _anchors(n_points: int = 200, seed: int = 0, levels: int = L, base_depth: int = 1) -> AnchorSet:
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(n_points, 3, generator=g) * 0.4
    grid = OctreeGrid.from_points(pts, levels, base_depth)
    return AnchorSet.from_points(grid, pts)


def _camera(size: int = 32) -> Camera:
    return Camera.look_at([2.5, 0.3, 0.8], [0, 0, 0], width=size, height=size, fov_x_deg=60)


def _fake_stats(a: AnchorSet, gen: torch.Generator, interval: int, grad_scale: float = 1e-3) -> None:
    """Random accumulated statistics as if ``interval`` steps had been recorded."""
    n, k = len(a), a.n_offsets
    a.grad_count.fill_(interval)
    a.grad_accum.copy_(torch.rand(n, k, generator=gen, dtype=torch.float64) ** 4 * grad_scale * interval)
    a.visible_count.fill_(interval)
    a.opacity_accum.copy_(torch.rand(n, generator=gen, dtype=torch.float64) * 0.02 * interval)


def test_init_from_points_is_complete_strict_octree():
    a = _anchors()
    octree.validate_strict_octree(a.keys, a.levels, a.grid)
    assert a.count_per_level()[0] >= 1 and a.count_per_level()[-1] > a.count_per_level()[0]
    # Positions are voxel centres, not free parameters.
    for lv in range(1, L + 1):
        m = a.levels == lv
        assert torch.allclose(a.positions[m], a.grid.voxel_center(a.keys[m], lv))
    assert not a.positions.requires_grad
    assert a.feature.shape == (len(a), 32) and a.scaling.shape == (len(a), 6) and a.offsets.shape == (len(a), 10, 3)
    # Initial scales are the voxel size of the anchor's level.
    assert torch.allclose(a.scaling[a.levels == 2].exp(), torch.tensor(a.grid.cell_size(2)), rtol=1e-5)
    # Parents resolve to level - 1 and the voxel key >> 1.
    child = torch.nonzero(a.parent >= 0).squeeze(-1)
    assert torch.equal(a.levels[a.parent[child]], a.levels[child] - 1)
    assert torch.equal(a.keys[a.parent[child]], a.keys[child] >> 1)
    assert torch.all(a.parent[a.levels == 1] == -1)


def test_random_init_without_points():
    grid = OctreeGrid.from_bounds([-1, -1, -1], [1, 1, 1], 3, 1)
    a = AnchorSet.random(grid, 500, torch.Generator().manual_seed(1))
    a.validate()
    assert len(a) > 0 and int(a.levels.max()) == 3


@pytest.mark.parametrize("seed", range(4))
def test_octree_invariant_after_every_adjustment(seed):
    """Fuzz: random gradient/opacity statistics, repeated grow+prune, optimizer attached."""
    gen = torch.Generator().manual_seed(seed)
    a = _anchors(seed=seed)
    opt = torch.optim.Adam([a.feature, a.scaling, a.offsets], lr=1e-3)
    cfg = AdjustConfig(grad_threshold=2e-4, beta=1.0, very_factor=2.0, prune_opacity=0.005)
    total_grown = total_pruned = 0
    for round_ in range(6):
        # give the offsets some spread so that Gaussians land in other voxels
        with torch.no_grad():
            a.offsets.normal_(0, 1.5, generator=gen)
        # fake a step so Adam has state to resize
        (a.feature.sum() + a.scaling.sum() + a.offsets.sum()).backward()
        opt.step()
        opt.zero_grad()
        _fake_stats(a, gen, 10)
        rep = a.adjust(cfg, 10, opt)
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
        assert a.grad_accum.shape == (len(a), 10) and float(a.grad_accum.abs().sum()) == 0.0
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
    cfg = AdjustConfig(grad_threshold=1e-3, beta=1.0, very_factor=2.0, prune=False)
    tau2, tau3 = 1e-3 * 2, 1e-3 * 4
    a.grad_count.fill_(10)
    a.grad_accum.zero_()
    a.grad_accum[i, 0] = 1.5 * tau2 * 10  # significant (level 2)
    a.grad_accum[i, 1] = 2.5 * tau3 * 10  # very significant (level 3)
    pos = a.gaussian_positions()[i]
    rep = a.adjust(cfg, 10, opt)
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
    a.grad_count.fill_(10)
    a.grad_accum[i, 0] = 1.5 * tau2 * 10
    a.grad_accum[i, 1] = 2.5 * tau3 * 10
    assert a.adjust(cfg, 10, opt).grown == 0


def test_prune_only_weak_leaves():
    a = _anchors(seed=5)
    leaf = octree.leaf_mask(a.keys, a.levels)
    a.visible_count.fill_(10)
    a.opacity_accum.fill_(1.0)
    a.opacity_accum[:] = 0.0  # everything weak: only leaves may go
    n_leaf = int(leaf.sum())
    rep = a.adjust(AdjustConfig(grow=False), 10)
    assert rep.pruned == n_leaf and len(a) == int((~leaf).sum())
    a.validate()
    # anchors not seen often enough are kept
    n = len(a)
    a.visible_count.fill_(1)
    assert a.adjust(AdjustConfig(grow=False), 10).pruned == 0 and len(a) == n


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


def test_lod_renders_only_anchors_of_level_at_most_l():
    torch.manual_seed(0)
    a = _anchors(seed=1)
    with torch.no_grad():
        a.feature.normal_(0, 1)
        a.offsets.normal_(0, 0.5)
    model = ProGSModel(a)
    cam = _camera()
    images = {}
    for lod in range(1, L + 1):
        g = model.generate(cam, lod)
        assert len(g) > 0
        assert int(a.levels[g.anchor_index].max()) <= lod
        assert int(a.levels[g.visible_anchors].max()) <= lod
        if lod == L:
            assert int(a.levels[g.anchor_index].max()) == L
        out = model.render(cam, lod, backend="reference")
        images[lod] = out.image.detach()
        # rendering LoD l never reads finer anchors: no gradient reaches them
        out.image.sum().backward()
        finer = a.levels > lod
        if bool(finer.any()):
            assert float(a.feature.grad[finer].abs().sum()) == 0.0
            assert float(a.offsets.grad[finer].abs().sum()) == 0.0
        assert float(a.feature.grad[~finer].abs().sum()) > 0.0
        a.feature.grad = a.offsets.grad = a.scaling.grad = None
    # changing finer anchors leaves LoD l bit-identical
    with torch.no_grad():
        a.feature[a.levels > 2] += 5.0
        a.offsets[a.levels > 2] *= -1.0
    again = model.render(cam, 2, backend="reference").image.detach()
    assert torch.equal(again, images[2])
    assert not torch.equal(model.render(cam, L, backend="reference").image.detach(), images[L])


def test_generator_outputs_and_culling():
    torch.manual_seed(0)
    a = _anchors(seed=2)
    with torch.no_grad():
        a.feature.normal_(0, 1)
    gen = GaussianGenerator(32, 10, L)
    cam = _camera()
    g = gen(a.positions, a.levels, a.feature, a.scaling, a.offsets, cam, cull=False)
    n = len(a)
    assert g.anchor_opacity.shape == (n, 10)
    assert len(g) == int((g.anchor_opacity > 0).sum())  # opacity <= 0 dropped
    assert torch.all(g.opacities > 0) and torch.all(g.opacities <= 1)
    assert torch.all((g.colors > 0) & (g.colors < 1))
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(len(g)), atol=1e-5)
    # mean = x + o_k * exp(s[:3]); scale <= exp(s[3:])
    ai, ki = g.anchor_index, g.offset_index
    exp_mean = a.positions[ai] + a.offsets[ai, ki] * torch.exp(a.scaling[ai, :3])
    assert torch.allclose(g.means, exp_mean)
    assert torch.all(g.scales <= torch.exp(a.scaling[ai, 3:]) + 1e-6)
    # culling: a camera looking away from everything sees nothing; anchors behind the camera are culled
    away = Camera.look_at([5.0, 0, 0], [10.0, 0, 0], width=32, height=32)
    assert len(gen(a.positions, a.levels, a.feature, a.scaling, a.offsets, away).visible_anchors) == 0
    g_cull = gen(a.positions, a.levels, a.feature, a.scaling, a.offsets, cam)
    assert 0 < len(g_cull.visible_anchors) <= n


def test_attributes_read_and_replace():
    a = _anchors(seed=4)
    attrs = a.attributes()
    assert set(attrs) == {"feature", "scaling", "offsets"}
    feat = a.feature
    a.set_attributes(feature=torch.ones_like(attrs["feature"]))
    assert a.feature is feat and torch.all(a.feature == 1)
    with pytest.raises(KeyError):
        a.set_attributes(colour=torch.zeros(1))
    sub = a.subset(a.lod_mask(2))
    sub.validate()
    assert len(sub) == a.count_per_lod()[1]


def test_init_at_coarser_level_leaves_finer_levels_to_growth():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(200, 3, generator=g) * 0.4
    grid = OctreeGrid.from_points(pts, L, 1)
    a = AnchorSet.from_points(grid, pts, level=L - 1)
    a.validate()
    assert int(a.levels.max()) == L - 1
