"""End to end on a small demo scene: train → encode → decode, and the codec's promises about it."""

from __future__ import annotations

import pytest
import torch

from progs.codec.stream import decode, encode
from progs.io.demo_scene import load_demo_scene
from progs.model.context import gaussian_rate_bits
from progs.train.rate import context_inputs
from progs.eval.quality import evaluate_lods
from progs.train.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    scene = load_demo_scene(views=24, size=40)
    # short schedule that still reaches the noise and entropy stages
    cfg = TrainConfig().replace(iterations=160, c2f_coarse_samples=1, interval=40)
    tr = Trainer(scene, cfg)
    tr.train(progress=False)
    res = encode(tr.model, background=scene.background)
    return scene, tr, res


def test_decoded_quality_equals_the_quantized_checkpoint(trained):
    scene, tr, res = trained
    dec = decode(res.data)
    for lod in range(1, tr.model.num_levels + 1):
        q = evaluate_lods(res.model, tr.test_views, lods=[lod], background=scene.background)[0]["psnr"]
        d = evaluate_lods(dec.model, tr.test_views, lods=[lod], background=scene.background)[0]["psnr"]
        assert abs(q - d) <= 0.01, (lod, q, d)


def test_estimated_bits_track_the_coded_size(trained):
    """The training's rate proxy tracks what the context model alone codes (every offset, no parent
    predictor); the default stream codes less and decodes to the same features and scalings."""
    _, tr, res = trained
    model, ctx = tr.model, tr.model.context
    with torch.no_grad():
        mean, scale, q = ctx(*context_inputs(model.anchors))
        qc = ctx.step_per_channel(q)
        attrs = model.anchors.attribute_matrix()
        quantized = torch.round(attrs / qc) * qc
        estimate = float(gaussian_rate_bits(quantized, mean, scale, qc).sum())
    plain = encode(model, skip_hidden=False, parent_prediction=False)
    coded = sum((s.components["f"] + s.components["s"] + s.components["o"]) * 8 for s in plain.lods)
    assert abs(coded - estimate) / coded < 0.05, (coded, estimate)
    assert len(res.data) < len(plain.data)
    assert torch.equal(res.model.anchors.feature, plain.model.anchors.feature)
    assert torch.equal(res.model.anchors.scaling, plain.model.anchors.scaling)


def test_parent_prediction_saves_bytes_and_changes_no_value(trained):
    _, tr, res = trained
    without = encode(tr.model, parent_prediction=False)
    assert len(res.data) < len(without.data)
    assert sum(s.components["prediction"] for s in res.lods) > len(res.lods)  # some level carries a table
    for name in ("feature", "scaling", "offsets"):
        assert torch.equal(getattr(res.model.anchors, name), getattr(without.model.anchors, name)), name
    dec = decode(res.data).model
    assert torch.equal(dec.anchors.offsets, res.model.anchors.offsets)


def test_occupancy_structure_costs_at_most_6_bits_per_non_root_anchor(trained):
    _, _, res = trained
    non_root = [s for s in res.lods if s.lod > 1]
    bits = sum((s.components["structure"] - 6) * 8 for s in non_root)  # level, method, count bytes excluded
    anchors = sum(s.anchors for s in non_root)
    assert {s.structure_method for s in non_root} <= {"occupancy", "parent-index"}
    assert bits / anchors <= 6.0, bits / anchors


def test_training_loss_and_rate_stages_ran(trained):
    _, tr, _ = trained
    assert any("rate" in h for h in tr.history), "the entropy stage never ran"
    assert tr.history[-1]["psnr"] > tr.history[0]["psnr"] + 3
