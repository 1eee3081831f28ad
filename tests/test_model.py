"""Anchors (strict octree) and the neural-Gaussian generator (LoDs)."""

from __future__ import annotations


import pytest
import torch

from progs import octree
from progs.model import AnchorSet, GaussianGenerator, ProGSModel
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
