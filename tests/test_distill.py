"""The export's distillation: its virtual cameras, its choice of views, its settings (fast tests; the
fidelity it reaches on a trained model is in test_export_fidelity.py)."""

from __future__ import annotations

import pytest
import torch

from progs import octree
from progs.model.anchors import AnchorSet
from progs.model.cloud import model_to_cloud
from progs.model.context import ContextConfig, ContextModel
from progs.train.distill import DistillConfig, _best_views, _render, virtual_cameras
from progs.model.model import ProGSModel


def _model(view_distance: float | None = 3.0) -> ProGSModel:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    grid = octree.OctreeGrid((-1.0, -1.0, -0.5), 2.0, 2, 3)
    a = AnchorSet.random(grid, 200, g)
    with torch.no_grad():
        a.feature.copy_(torch.randn(a.feature.shape, generator=g))
    return ProGSModel(
        a, context=ContextModel(ContextConfig.for_anchor_count(len(a)), seed=0), view_distance=view_distance
    )


@pytest.mark.parametrize("view_distance", [3.0, None])
def test_virtual_cameras_look_at_the_cube_from_the_viewing_distance(view_distance):
    model = _model(view_distance)
    centre = torch.tensor([0.0, 0.0, 0.5])
    cams = virtual_cameras(model, 16, 40)
    d = view_distance if view_distance is not None else 1.5 * 2.0  # 1.5 x the cube size when unknown
    dirs = []
    for c in cams:
        assert (c.width, c.height) == (40, 40)
        assert abs(float((c.center - centre).norm()) - d) < 1e-4
        uv, z = c.project(centre[None])
        assert torch.allclose(uv[0], torch.tensor([20.0, 20.0]), atol=1e-3) and float(z[0]) > 0
        # the cube's half width beside the centre is in the picture, and not much more than the picture
        right = c.world_to_camera[0, :3]
        uv_edge, _ = c.project((centre + 1.0 * right)[None])
        assert 20.0 + 20.0 / 1.3 < float(uv_edge[0, 0]) <= 40.0
        dirs.append((c.center - centre) / d)
    dirs = torch.stack(dirs)
    assert float(dirs[:, 2].max()) > 0.8 and float(dirs[:, 2].min()) < -0.8  # the whole sphere: no up is assumed


def test_ranking_keeps_the_views_the_cloud_reproduces():
    model = _model()
    cloud = model_to_cloud(model, 2, directions=16)
    p = {n: getattr(cloud, n) for n in ("sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats")}
    cams = virtual_cameras(model, 8, 24)
    g = torch.Generator().manual_seed(1)
    targets = []
    for i, c in enumerate(cams):
        image, alpha = _render(p, cloud.means, c, torch.zeros(3))
        if i in (1, 4, 6):  # views no plain cloud explains
            image, alpha = torch.rand(image.shape, generator=g), torch.rand(alpha.shape, generator=g)
        targets.append((image, alpha))
    assert _best_views(p, cloud.means, cams, targets, 5) == [0, 2, 3, 5, 7]


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"iterations": -1}, "iterations"),
        ({"views": 0}, "view"),
        ({"size": 4}, "size"),
        ({"keep": 0.0}, "keep"),
        ({"keep": 1.5}, "keep"),
        ({"lr_end": 0.0}, "lr_end"),
        ({"reselect_every": 0}, "reselect_every"),
    ],
)
def test_bad_settings_are_refused_in_one_line(kwargs, word):
    with pytest.raises(ValueError, match=word) as ei:
        DistillConfig(**kwargs)
    assert "\n" not in str(ei.value)
