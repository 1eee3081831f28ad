"""Training: losses, schedule, the loop on a tiny scene, checkpoint/resume, ablation flags."""

from __future__ import annotations

import math

import pytest
import torch

from _tiny_scene import tiny_scene
from progs import octree
from progs.errors import InputError
from progs.eval.quality import evaluate_lods
from progs.train import Schedule, TrainConfig, Trainer
from progs.train.config import ConfigError
from progs.train.losses import c2f_lod_weights, infonce_loss, photometric_loss, volume_loss
from progs.train.schedule import exp_lr
from progs.train.strategy import GrowthStrategy


@pytest.fixture(scope="module")
def scene():
    return tiny_scene()


def _cfg(**kw) -> TrainConfig:
    base = dict(iterations=50, levels=3, base_depth=1, interval=10, backend="auto", seed=0)
    base.update(kw)
    return TrainConfig().replace(**base)


# ------------------------------------------------------------------------------------------ losses


def test_photometric_loss_zero_for_identical_images():
    img = torch.rand(16, 16, 3)
    assert float(photometric_loss(img, img)) == pytest.approx(0.0, abs=1e-6)
    assert float(photometric_loss(img, 1 - img)) > 0.1


def test_c2f_weights_unbiased():
    gen = torch.Generator().manual_seed(0)
    L, n = 5, 4000
    acc = torch.zeros(L + 1)
    for _ in range(n):
        w = c2f_lod_weights(L, 1, gen)
        assert L in w and len(w) == 2
        for lod, wt in w.items():
            acc[lod] += wt
    assert torch.allclose(acc[1:] / n, torch.full((L,), 1.0 / L), atol=0.02)
    assert c2f_lod_weights(L, None, gen) == {l: 1.0 / L for l in range(1, L + 1)}
    assert c2f_lod_weights(1, 1, gen) == {1: 1.0}


def test_c2f_finest_weight_shifts_the_loss_to_lod_l_unbiased():
    gen = torch.Generator().manual_seed(1)
    L, n, w_L = 4, 4000, 0.55
    assert c2f_lod_weights(L, None, gen, finest_weight=w_L) == pytest.approx({1: 0.15, 2: 0.15, 3: 0.15, 4: 0.55})
    acc = torch.zeros(L + 1)
    for _ in range(n):
        w = c2f_lod_weights(L, 2, gen, finest_weight=w_L)
        assert w[L] == w_L and len(w) == 3
        for lod, wt in w.items():
            acc[lod] += wt
    assert torch.allclose(acc[1:] / n, torch.tensor([0.15, 0.15, 0.15, 0.55]), atol=0.02)
    assert c2f_lod_weights(L, None, gen, finest_weight=1.0) == {1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0}


def test_infonce_prefers_parent_similarity():
    gen = torch.Generator().manual_seed(0)
    n, d = 400, 16
    parent = torch.full((n,), -1, dtype=torch.long)
    parent[100:] = torch.randint(0, 100, (300,), generator=gen)
    rand = torch.randn(n, d, generator=gen)
    aligned = rand.clone()
    aligned[100:] = rand[parent[100:]] + 0.05 * torch.randn(300, d, generator=gen)
    l_rand = infonce_loss(rand, parent, fraction=1.0, gen=torch.Generator().manual_seed(1))
    l_aligned = infonce_loss(aligned, parent, fraction=1.0, gen=torch.Generator().manual_seed(1))
    assert float(l_aligned) < 0.5 * float(l_rand)
    assert math.isfinite(float(l_rand))
    roots_only = infonce_loss(rand, torch.full((n,), -1, dtype=torch.long), gen=gen)
    assert float(roots_only) == 0.0


def test_volume_loss_is_mean_product():
    s = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    assert float(volume_loss(s)) == pytest.approx((6.0 + 0.125) / 2)


def test_schedule_scales_with_iterations():
    st = Schedule().at(40_000)
    assert (st.adjust_start, st.c2f_start, st.noise_start, st.spawn_pause_end, st.entropy_start, st.adjust_end) == (
        1600,
        1600,
        13000,
        14000,
        20000,
        25000,
    )
    st = Schedule().at(1000)
    assert st.adjust_start == 40 and st.adjust_end == 625
    assert st.adjusting(100) and not st.adjusting(10) and not st.adjusting(700)
    assert not st.spawning(330) and st.spawning(360)  # paused in [325, 350)
    assert exp_lr(0, 100, 1e-2, 1e-4) == pytest.approx(1e-2) and exp_lr(100, 100, 1e-2, 1e-4) == pytest.approx(1e-4)


# ------------------------------------------------------------------------------------------ training


def test_loss_decreases_and_octree_stays_strict(scene):
    checks = []

    def cb(tr: Trainer, rec):
        a = tr.model.anchors
        octree.validate_strict_octree(a.keys, a.levels, a.grid)
        checks.append(len(a))

    t = Trainer(scene, _cfg(iterations=60))
    hist = t.train(progress=False, callback=cb)
    assert len(hist) == 60 and len(checks) == 60
    first = sum(h["photo"] for h in hist[:10]) / 10
    last = sum(h["photo"] for h in hist[-10:]) / 10
    assert last < 0.8 * first
    assert t.adjustments, "anchor adjustment should have run"
    assert any(r["grown"] > 0 for r in t.adjustments)
    rows = evaluate_lods(t.model, t.test_views, background=t.background)
    assert [r["lod"] for r in rows] == [1, 2, 3]
    assert rows[0]["anchors"] < rows[1]["anchors"] < rows[2]["anchors"] == len(t.model.anchors)
    assert all(r["psnr"] > 12 for r in rows) and all(0 < r["ssim"] <= 1 for r in rows)
    # evaluate_lods on a Scene works the same
    rows2 = evaluate_lods(t.model, scene, lods=[3])
    assert rows2[0]["psnr"] == pytest.approx(rows[2]["psnr"], abs=1e-4)


def test_warmup_trains_on_smaller_views_then_full_size(scene):
    """warmup_downscale: the same cameras, area-averaged images, until schedule.full_size_start."""
    sched = Schedule(full_size_start=0.5)
    t = Trainer(scene, _cfg(iterations=20, warmup_downscale=2, schedule=sched))
    full = [(v.camera.width, v.camera.height) for v in t.train_views]
    seen = []
    real_next = t._next_view

    def spy():
        v = real_next()
        seen.append((t.iteration, v.camera.width, v.camera.height, tuple(v.image.shape[:2])))
        return v

    t._next_view = spy
    hist = t.train(progress=False)
    assert len(hist) == 20 and all(math.isfinite(h["loss"]) for h in hist)
    w, h = full[0]
    for it, vw, vh, shape in seen:
        expect = (w, h) if it >= 10 else (round(w / 2), round(h / 2))
        assert (vw, vh) == expect and shape == (vh, vw), (it, vw, vh, shape)
    # the default trains at full size throughout, and the warm-up leaves the cameras' poses alone
    assert Trainer(scene, _cfg(iterations=2)).warmup_views is None
    assert all(
        torch.equal(a.camera.world_to_camera, b.camera.world_to_camera) for a, b in zip(t.warmup_views, t.train_views)
    )
    with pytest.raises(ConfigError, match="warmup_downscale"):
        _cfg(warmup_downscale=0)


def test_generator_width_is_its_own_option(scene):
    gen = Trainer(scene, _cfg(iterations=1, feat_dim=8, generator_hidden=24)).model.generator
    assert gen.args()["hidden"] == 24 and gen.feat_dim == 8
    assert Trainer(scene, _cfg(iterations=1, feat_dim=8)).model.generator.args()["hidden"] == 8  # default: feat_dim
    with pytest.raises(ConfigError, match="generator_hidden"):
        _cfg(generator_hidden=0)


def test_random_init_when_no_points():
    s = tiny_scene(with_points=False)
    t = Trainer(s, _cfg(iterations=3, init_random_points=300))
    assert len(t.model.anchors) > 0
    assert t.config.growth.max_anchors == 1_200  # the cap follows the views (tiny: the floor)
    t.train(progress=False)


def test_sizing_rule_follows_the_views():
    from progs.train.sizing import random_init_sizing

    # fox at downscale 8 (135x240): the measured 2,500 points and 6,000 anchors
    assert random_init_sizing(135 * 240) == {"init_random_points": 2_500, "max_anchors": 6_000}
    assert random_init_sizing(540 * 960) == {"init_random_points": 20_000, "max_anchors": 96_000}
    assert random_init_sizing(1080 * 1920) == {"init_random_points": 20_000, "max_anchors": 200_000}
    assert random_init_sizing(32 * 32) == {"init_random_points": 500, "max_anchors": 1_200}
    small = random_init_sizing(100 * 100)
    assert small["max_anchors"] >= small["init_random_points"]


def test_scene_sizing_fills_only_what_is_left_open(scene):
    from progs.train.sizing import pixels_per_view, scene_sizing

    bare = tiny_scene(with_points=False)
    px = pixels_per_view(bare)
    assert px == bare.train_views[0].camera.width * bare.train_views[0].camera.height
    sized = scene_sizing(bare, TrainConfig())
    assert (sized.init_random_points, sized.growth.max_anchors) == (500, 1_200)
    # values given stay; a given point count moves the cap to 2.4x it when that is larger
    given = scene_sizing(bare, TrainConfig().replace(init_random_points=5_000))
    assert (given.init_random_points, given.growth.max_anchors) == (5_000, 12_000)
    both = scene_sizing(bare, TrainConfig().replace(init_random_points=700, max_anchors=900))
    assert (both.init_random_points, both.growth.max_anchors) == (700, 900)
    # a scene with its own points keeps the former defaults (runs written before the rule still match)
    with_points = scene_sizing(scene, TrainConfig())
    assert (with_points.init_random_points, with_points.growth.max_anchors) == (20_000, 200_000)
    with pytest.raises(InputError, match="max_anchors is not sized"):
        GrowthStrategy(TrainConfig().growth, Trainer(scene, _cfg(iterations=1)).model.anchors)


def test_trainer_records_the_sized_config(tmp_path):
    from progs.train.run import read_run_json
    from progs.pipeline import train_run
    from progs.io.dataset import DatasetSpec

    bare = tiny_scene(with_points=False)
    spec = DatasetSpec.create("demo", views=4, size=16)
    out = train_run(
        bare, spec, tmp_path / "run", _cfg(iterations=2), checkpoint_every=0, progress=False, log=lambda m: None
    )
    saved = read_run_json(out.run)["config"]
    assert saved["init_random_points"] == 500 and saved["growth"]["max_anchors"] == 1_200
    resumed = Trainer.from_checkpoint(str(out.run / "checkpoint.pt"), bare)
    assert resumed.config.init_random_points == 500 and resumed.config.growth.max_anchors == 1_200


def _params(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def _opt_state(t: Trainer) -> list[torch.Tensor]:
    out = []
    for g in t.optimizer.param_groups:
        for p in g["params"]:
            st = t.optimizer.state[p]
            out += [st["exp_avg"], st["exp_avg_sq"], torch.as_tensor(st["step"])]
    return out


def test_checkpoint_resume_is_exact(scene, tmp_path):
    cfg = _cfg(iterations=32)
    ref = Trainer(scene, cfg)
    ref.train(progress=False)

    a = Trainer(scene, cfg)
    a.train(iterations=23, progress=False)  # mid adjustment window: statistics must survive
    ck = tmp_path / "ck" / "train.ckpt"
    a.save(str(ck))
    assert ck.exists() and not list(ck.parent.glob("*.tmp"))

    b = Trainer(scene, cfg).resume(str(ck))
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    for x, y in zip(_opt_state(a), _opt_state(b), strict=True):
        assert torch.equal(x, y)
    assert b.iteration == 23

    b.train(progress=False)
    pr, pb = _params(ref), _params(b)
    for k in pr:
        assert torch.equal(pr[k], pb[k]), k
    assert [h["loss"] for h in ref.history] == [h["loss"] for h in b.history]

    c = Trainer.from_checkpoint(str(ck), scene)
    assert c.iteration == 23 and c.config == a.config == cfg.replace(init_random_points=20_000, max_anchors=200_000)


def test_bad_checkpoint_is_input_error(scene, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.ckpt"):
        Trainer(scene, _cfg()).resume(str(bad))
    with pytest.raises(InputError, match="not found"):
        Trainer(scene, _cfg()).resume(str(tmp_path / "missing.ckpt"))


def test_ablation_flags_change_behaviour(scene, monkeypatch):
    from progs.model.model import ProGSModel

    lods_rendered: list[int] = []
    real_render = ProGSModel.render

    def spy(self, camera, lod=None, *a, **k):
        lods_rendered.append(lod)
        return real_render(self, camera, lod, *a, **k)

    monkeypatch.setattr(ProGSModel, "render", spy)

    full = Trainer(scene, _cfg(iterations=30, infonce=True))  # every switch on (InfoNCE is off by default)
    n0 = len(full.model.anchors)
    full.train(progress=False)
    assert len(full.model.anchors) != n0 and full.adjustments
    assert "nce" in full.history[-1]
    assert not TrainConfig().loss.infonce  # the default: InfoNCE costs bytes (README)
    assert any(l < 3 for l in lods_rendered), "c2f renders coarser LoDs"

    lods_rendered.clear()
    off = Trainer(scene, _cfg(iterations=30, infonce=False, c2f=False, **{"growth.enabled": False}))
    n1 = len(off.model.anchors)
    off.train(progress=False)
    assert len(off.model.anchors) == n1 and not off.adjustments  # --no-adjust
    assert "nce" not in off.history[-1]
    assert set(lods_rendered) == {3}  # single-LoD loss only
    assert float(off.strategy.grad_accum.sum()) == 0.0  # no statistics gathered either

    # infonce alone changes the trajectory
    lods_rendered.clear()
    a = Trainer(scene, _cfg(iterations=8, c2f=False, infonce=True, **{"growth.enabled": False}))
    b = Trainer(scene, _cfg(iterations=8, c2f=False, infonce=False, **{"growth.enabled": False}))
    a.train(progress=False)
    b.train(progress=False)
    assert not torch.equal(a.model.anchors.feature, b.model.anchors.feature)


@pytest.mark.parametrize("over", [{"feat_dim": 16}, {"n_offsets": 5}])
def test_other_attribute_sizes_train_and_round_trip(scene, over):
    """feat_dim and n_offsets reach the context model too (it codes what the anchors hold): a model of
    either size trains, encodes and decodes to the same layout."""
    from progs.codec.stream import decode, encode

    t = Trainer(scene, _cfg(iterations=4, **over))
    for _ in range(4):
        t.step()
    dims = t.model.anchors.layout.dims
    assert dims == (over.get("feat_dim", 32), 6, 3 * over.get("n_offsets", 10))
    assert decode(encode(t.model).data).model.anchors.layout.dims == dims


def test_context_hash_levels_option(scene):
    t = Trainer(scene, _cfg(iterations=1, context_hash_levels=(6, 2)))
    cfg = t.model.context.cfg
    assert (cfg.levels_3d, cfg.levels_2d) == (6, 2)
    assert (Trainer(scene, _cfg(iterations=1)).model.context.cfg.levels_3d, cfg.feature_dim) == (12, 4 * (6 + 3 * 2))
    for bad in ((0, 2), (6,), (6, 2, 1), (6, 17)):
        with pytest.raises(InputError, match="context_hash_levels"):
            _cfg(context_hash_levels=bad)
    cfg = _cfg(context_hash_levels=[6, 2])
    assert cfg.context_hash_levels == (6, 2) and TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_context_mlp_option(scene):
    """context_mlp sets the widths of both context MLPs, which the header then carries."""
    from progs.codec.stream import decode, encode

    t = Trainer(scene, _cfg(iterations=1, context_mlp=(8, 4)))
    cfg = t.model.context.cfg
    assert (cfg.hidden, cfg.q_hidden) == (8, 4)
    assert (t.model.context.mlp_d[0].out_features, t.model.context.mlp_q[0].out_features) == (8, 4)
    assert (Trainer(scene, _cfg(iterations=1)).model.context.cfg.hidden) == 16
    header = decode(encode(t.model).data).model.context.cfg
    assert (header.hidden, header.q_hidden) == (8, 4)
    for bad in ((0, 4), (8,), (8, 4, 2), (8, 300)):
        with pytest.raises(InputError, match="context_mlp"):
            _cfg(context_mlp=bad)
    cfg = _cfg(context_mlp=[8, 4])
    assert cfg.context_mlp == (8, 4) and TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_opacity_start_draws_every_neural_gaussian_from_the_first_step(scene):
    from progs.model.visibility import hidden_gaussians, probe_cameras

    t = Trainer(scene, _cfg(iterations=1, opacity_start=0.2))
    m, a = t.model, t.model.anchors
    with torch.no_grad():
        cams = probe_cameras(a.grid, m.view_distance)
        hidden = hidden_gaussians(m.generator, a.positions, a.levels, a.feature, cams, m.dist_scale)
        view = a.positions.double() - cams[0]
        opacity, _, _ = m.generator.heads(a.feature, a.levels, view.float(), m.dist_scale)
    assert not bool(hidden.any())
    assert float(opacity.min()) > 0.1 and float(opacity.max()) < 0.3  # tanh(atanh(0.2) ± a tenth of the weights)
    with pytest.raises(ConfigError, match="opacity_start"):
        _cfg(opacity_start=1.0)


def test_step_ceiling_pulls_the_steps_above_it_down_and_leaves_those_below(scene):
    from progs.model.context import STEP_LOG

    t = Trainer(scene, _cfg(iterations=1, step_ceiling=1.0))
    rate, ctx, anchors = t.rate, t.model.context, t.model.anchors
    ctx.fit_output_bias(anchors.attribute_matrix().detach(), rate.step_scale)
    rate.prior_fitted = True
    gen = torch.Generator().manual_seed(0)
    for start, above in ((4.0, True), (0.5, False)):
        with torch.no_grad():
            ctx.mlp_q[-1].weight.zero_()
            ctx.mlp_q[-1].bias.fill_(math.atanh(math.log(start) / STEP_LOG))  # every step at start · Q0
        ctx.zero_grad()
        rate.invalidate()
        rate.step(anchors, gen, entropy=False)
        if not above:
            assert float(rate.penalty.detach()) == 0.0
            continue
        assert float(rate.penalty.detach()) == pytest.approx(math.log(4.0) ** 2, rel=1e-4)
        rate.penalty.backward()
        assert bool((ctx.mlp_q[-1].bias.grad > 0).all())  # descent lowers every step
    untouched = Trainer(scene, _cfg(iterations=1)).rate
    untouched.step(anchors, gen, entropy=False)
    assert untouched.penalty is None
    with pytest.raises(ConfigError, match="step_ceiling"):
        _cfg(step_ceiling=-1.0)
