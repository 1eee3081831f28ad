"""Never-drawn neural Gaussians: the stream leaves their offsets out and the decoder sets them to the
prior's mean. That must change no rendered pixel from any camera, make the stream smaller, mark only
Gaussians whose opacity head stays below zero, and give the same verdicts whatever the evaluation
order (encoder and decoder must agree exactly)."""

from __future__ import annotations

import copy

import pytest
import torch

from progs.codec.stream import decode, encode
from progs.io.teacher import orbit_cameras
from progs.model.visibility import HIDDEN_MARGIN, cube_sphere_directions, hidden_gaussians, probe_cameras
from test_codec import _random_model


def _model():
    model, _ = _random_model(n_points=400, seed=11)
    with torch.no_grad():  # an opacity head that draws some Gaussians and hides others
        model.generator.mlp_opacity[2].bias.copy_(torch.linspace(-1.5, 1.5, model.generator.n_offsets))
    return model


def _verdicts(model):
    """(anchors, probe cameras, hidden verdicts) of ``model``."""
    a = model.anchors
    cams = probe_cameras(a.grid, model.view_distance)
    return a, cams, hidden_gaussians(model.generator, a.positions, a.levels, a.feature, cams, model.dist_scale)


def test_hidden_gaussians_are_below_zero_from_every_probe_camera():
    model = _model()
    a, cams, hidden = _verdicts(model)
    assert 0.05 < float(hidden.float().mean()) < 0.95  # the fixture hides some, not all
    with torch.no_grad():
        for c in cams[::7].float():
            opacity, _, _ = model.generator.heads(a.feature, a.levels, a.positions - c, model.dist_scale)
            assert bool((opacity[hidden] < 0).all())


def _float_logits(model, cams):
    """Max over ``cams`` of the opacity logits in plain float64 (the reference the exact rule approximates)."""
    gen = copy.deepcopy(model.generator).double()
    gen.mlp_opacity[3] = torch.nn.Identity()  # the logit, before tanh
    a = model.anchors
    best = torch.full((len(a), gen.n_offsets), -torch.inf, dtype=torch.float64)
    with torch.no_grad():
        for c in cams:
            logit, _, _ = gen.heads(a.feature.double(), a.levels, a.positions.double() - c, model.dist_scale)
            best = torch.maximum(best, logit)
    return best


def test_exact_rule_matches_float_evaluation_away_from_the_margin():
    model = _model()
    _, cams, hidden = _verdicts(model)
    best = _float_logits(model, cams)
    clear = (best + HIDDEN_MARGIN).abs() > 1e-3
    assert int(clear.sum()) > 0.9 * best.numel()
    assert torch.equal(hidden[clear], (best < -HIDDEN_MARGIN)[clear])


def test_exact_rule_does_not_depend_on_order_batching_or_threads():
    model = _model()
    a, cams, ref = _verdicts(model)
    args = (a.positions, a.levels, a.feature)
    perm = torch.randperm(len(a), generator=torch.Generator().manual_seed(3))
    permuted = hidden_gaussians(model.generator, *(x[perm] for x in args), cams, model.dist_scale)
    assert torch.equal(permuted, ref[perm])
    assert torch.equal(hidden_gaussians(model.generator, *args, cams.flip(0), model.dist_scale, batch=1), ref)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(hidden_gaussians(model.generator, *args, cams, model.dist_scale, batch=450), ref)
    finally:
        torch.set_num_threads(threads)


def test_kernel_and_pytorch_paths_give_the_same_verdicts():
    from progs.kernels import kernel_available

    if not kernel_available():
        pytest.skip("the C++ kernels are unavailable here")
    model = _model()
    a = model.anchors
    cams = probe_cameras(a.grid, model.view_distance)
    for scale in (1.0, 3.0):  # larger features: more Gaussians near the margin on either side
        f = a.feature * scale
        fast = hidden_gaussians(model.generator, a.positions, a.levels, f, cams, model.dist_scale)
        slow = hidden_gaussians(model.generator, a.positions, a.levels, f, cams, model.dist_scale, use_kernel=False)
        assert torch.equal(fast, slow)
        assert 0 < int(fast.sum()) < fast.numel()


def test_probe_directions_are_unit_and_spread():
    d = cube_sphere_directions()
    assert d.shape == (150, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(150, dtype=torch.float64))
    cos = d @ d.T - 2 * torch.eye(150, dtype=torch.float64)
    assert float(cos.max()) < 0.99  # no two directions closer than ~8°
    from progs.io.sh import fibonacci_sphere

    assert float((fibonacci_sphere(4000).double() @ d.T).max(1).values.min()) > 0.95  # within 18° of any direction
    assert float(d.mean(0).abs().max()) < 1e-12  # symmetric


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


def test_large_models_code_every_offset(monkeypatch):
    """Above RULE_MAX_ANCHORS the encoder turns the rule off (its decoding cost grows with the anchors);
    the header says so and the decoder codes every offset."""
    import progs.codec.stream as stream

    model = _model()
    small = encode(model)
    monkeypatch.setattr(stream, "RULE_MAX_ANCHORS", len(model.anchors) - 1)
    large = encode(model)
    assert decode(small.data).model is not None
    assert len(large.data) > len(small.data)
    assert torch.equal(decode(large.data).model.anchors.offsets, encode(model, skip_hidden=False).model.anchors.offsets)
