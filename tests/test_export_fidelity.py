"""Export fidelity: a plain 3DGS render of the exported Gaussians against progs' own render, per LoD,
on a small trained demo model (the figure `progs decode --check` prints), with and without the
distillation (progs.train.distill)."""

from __future__ import annotations

import pytest
import torch

from progs.eval.fidelity import export_fidelity
from progs.io.demo_scene import load_demo_scene
from progs.io.ply import GaussianCloud
from progs.model.cloud import model_to_cloud
from progs.train.distill import DistillConfig, distill_cloud
from progs.train.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.slow

# Floors in dB (export minus progs, PSNR vs ground truth on the test views). Measured 2026-11-27 on this
# setup, the same with 1 and 2 threads: closed form -0.00, -0.01, -0.08, -0.09, -0.10 dB at LoD 1..5;
# distilled (DISTILL) +0.01, -0.05, -0.11 dB at LoD 1, 3, 5, with 0.2, 0.5 and 1.0 dB more PSNR between
# the two renders than the closed form (format-4 training: +0.09, -0.05, -0.11 dB, between -0.6, +1.2,
# +1.3 dB; LoD 1's two renders are both > 40 dB apart from progs' own). This short training is nearly view-independent, so the closed
# form is already close here; on the demo the distillation takes -0.73..-0.33 dB to -0.13..-0.01 dB
# (README, Export fidelity), which needs minutes of training to reproduce.
FLOOR_SH3 = -0.15
FLOOR_DISTILLED = -0.15
MIN_MEAN_GAIN = 0.25
INDISTINGUISHABLE_DB = 40.0
DISTILL = DistillConfig(iterations=100, size=32)
DISTILL_LODS = (1, 3, 5)
REPAIR = DistillConfig(iterations=400, size=32)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    scene = load_demo_scene(views=16, size=32)
    # infonce=True: the model the floors above were measured on (InfoNCE was the default then).
    tr = Trainer(scene, TrainConfig().replace(iterations=60, c2f_coarse_samples=1, interval=20, infonce=True))
    tr.train(progress=False)
    return scene, tr.model


def test_sh3_export_is_faithful_at_every_lod(trained):
    scene, model = trained
    for lod in range(1, model.num_levels + 1):
        f3 = export_fidelity(model, lod, model_to_cloud(model, lod, sh_degree=3), scene.test_views, scene.background)
        f0 = export_fidelity(model, lod, model_to_cloud(model, lod, sh_degree=0), scene.test_views, scene.background)
        print(
            f"LoD {lod}: SH3 {f3.delta:+.2f} dB (between {f3.psnr_between:.2f}), SH0 {f0.delta:+.2f} dB "
            f"(between {f0.psnr_between:.2f})"
        )
        assert f3.delta >= FLOOR_SH3, (lod, f3)
        assert f3.psnr_between >= f0.psnr_between - 0.05, (lod, f3, f0)  # view dependence helps, never hurts


def test_distilled_export_is_faithful_and_closer_to_progs_than_the_closed_form(trained):
    """The distillation (virtual views only: the test views stay held out) brings the plain render
    closer to progs' own than the closed-form fit, and stays within the floor of the ground truth."""
    scene, model = trained
    gains = []
    for lod in DISTILL_LODS:
        closed = model_to_cloud(model, lod)
        fc = export_fidelity(model, lod, closed, scene.test_views, scene.background)
        fd = export_fidelity(model, lod, distill_cloud(model, lod, closed, DISTILL), scene.test_views, scene.background)
        print(
            f"LoD {lod}: distilled {fd.delta:+.2f} dB (between {fd.psnr_between:.2f}), closed form {fc.delta:+.2f} dB "
            f"(between {fc.psnr_between:.2f})"
        )
        assert fd.delta >= FLOOR_DISTILLED, (lod, fd)
        # never further from progs' render than the closed form, unless both are past the point where the
        # two renders are indistinguishable (> 40 dB between them: LoD 1 of this tiny model)
        assert fd.psnr_between >= min(fc.psnr_between - 0.05, INDISTINGUISHABLE_DB), (lod, fd, fc)
        gains.append(fd.psnr_between - fc.psnr_between)
    assert sum(gains) / len(gains) >= MIN_MEAN_GAIN, gains


def test_distillation_repairs_a_degraded_export(trained):
    """From Gaussians made far more transparent and 1.5x as large, distillation climbs back to
    progs' quality: it learns from progs' renders, not from its starting point."""
    scene, model = trained
    lod = 2
    closed = model_to_cloud(model, lod)
    bad = GaussianCloud(
        closed.means, closed.sh_dc, closed.sh_rest, closed.opacity_logits - 2.0, closed.log_scales + 0.4, closed.quats
    )
    fc = export_fidelity(model, lod, closed, scene.test_views, scene.background)
    fb = export_fidelity(model, lod, bad, scene.test_views, scene.background)
    fr = export_fidelity(model, lod, distill_cloud(model, lod, bad, REPAIR), scene.test_views, scene.background)
    print(
        f"between progs and plain: closed form {fc.psnr_between:.2f}, degraded {fb.psnr_between:.2f} ({fb.delta:+.2f} dB), "
        f"repaired {fr.psnr_between:.2f} ({fr.delta:+.2f} dB)"
    )
    assert fb.psnr_between < fc.psnr_between - 20 and fb.delta < -2.0, fb
    assert fr.psnr_between >= fb.psnr_between + 15, (fr, fb)
    assert fr.delta >= FLOOR_DISTILLED, fr


def test_distillation_is_deterministic(trained):
    _, model = trained
    closed = model_to_cloud(model, 2)
    cfg = DistillConfig(iterations=20, size=24, views=8)
    a, b = distill_cloud(model, 2, closed, cfg), distill_cloud(model, 2, closed, cfg)
    for name in ("sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.means, closed.means)  # positions are exact and never moved
    assert not torch.equal(a.opacity_logits, closed.opacity_logits)
    assert distill_cloud(model, 2, closed, DistillConfig(iterations=0)) is closed
