"""Never-drawn neural Gaussians: the encoder codes their offsets as the prior's mean. That must change
no rendered pixel from any camera, make the stream smaller, and mark only Gaussians whose opacity head
stays below zero."""

from __future__ import annotations

import torch

from progs.codec.stream import decode, encode
from progs.io.teacher import orbit_cameras
from progs.model.visibility import hidden_gaussians, probe_cameras
from test_codec import _random_model


def _model():
    model, _ = _random_model(n_points=400, seed=11)
    with torch.no_grad():  # an opacity head that draws some Gaussians and hides others
        model.generator.mlp_opacity[2].bias.copy_(torch.linspace(-1.5, 1.5, model.generator.n_offsets))
    return model


def test_hidden_gaussians_are_below_zero_from_every_probe_camera():
    model = _model()
    a = model.anchors
    cams = probe_cameras(a.grid, model.view_distance)
    hidden = hidden_gaussians(model.generator, a.positions, a.levels, a.feature, cams, model.dist_scale)
    assert 0.05 < float(hidden.float().mean()) < 0.95  # the fixture hides some, not all
    with torch.no_grad():
        for c in cams[::7].float():
            opacity, _, _ = model.generator.heads(a.feature, a.levels, a.positions - c, model.dist_scale)
            assert bool((opacity[hidden] < 0).all())


def test_skipping_hidden_offsets_changes_no_pixel_and_saves_bytes():
    model = _model()
    full = encode(model, skip_hidden=False)
    skipped = encode(model)
    assert len(skipped.data) < len(full.data)
    a_full, a_skip = decode(full.data).model, decode(skipped.data).model
    assert torch.equal(a_full.anchors.feature, a_skip.anchors.feature)
    assert not torch.equal(a_full.anchors.offsets, a_skip.anchors.offsets)
    grid = model.grid
    centre = grid.origin_tensor + grid.size / 2
    cams = orbit_cameras(centre, grid.size / 2, 6, 48, 48)  # cameras the probe set does not contain
    with torch.no_grad():
        for cam in cams:
            img_full = a_full.render(cam, None, torch.zeros(3)).image
            img_skip = a_skip.render(cam, None, torch.zeros(3)).image
            assert torch.equal(img_full, img_skip)
