"""`progs fit`'s teacher follows the scene and the device, and the fit is scored where users look."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from progs.io.ply import GaussianCloud
from progs.io.teacher import (
    CPU_SIZE,
    MAX_SIZE,
    MAX_VIEWS,
    MIN_SIZE,
    MIN_VIEWS,
    VIEWER_SIZE,
    finest_size,
    teacher_plan,
    viewer_views,
)

DATA = Path(__file__).parent / "data" / "splats"


def _cloud(n: int, sigma: float, seed: int = 0) -> GaussianCloud:
    g = torch.Generator().manual_seed(seed)
    return GaussianCloud(
        torch.rand(n, 3, generator=g) * 2 - 1,
        torch.zeros(n, 3),
        torch.zeros(n, 0, 3),
        torch.full((n,), 3.0),
        torch.full((n, 3), float(torch.tensor(sigma).log())),
        torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
    )


def test_finest_gaussians_span_about_a_pixel():
    coarse, fine = finest_size(_cloud(2000, 0.01)), finest_size(_cloud(2000, 0.0025))
    assert coarse % 32 == 0 and fine % 32 == 0
    assert MIN_SIZE <= coarse < fine <= MAX_SIZE
    assert abs(fine / coarse - 4) < 0.5  # 4x finer Gaussians: 4x the pixels per side
    assert finest_size(_cloud(2000, 1.0)) == MIN_SIZE and finest_size(_cloud(2000, 1e-5)) == MAX_SIZE


def test_plan_follows_the_device_and_the_options():
    cloud = _cloud(40_000, 0.002)
    gpu, cpu = teacher_plan(cloud, on_gpu=True), teacher_plan(cloud, on_gpu=False)
    assert gpu.size == gpu.wanted > CPU_SIZE and gpu.limit is None
    assert cpu.size == CPU_SIZE and cpu.limit == "cpu" and f"scene asks for {gpu.wanted}²" in cpu.describe()
    given = teacher_plan(cloud, on_gpu=False, size=96, views=10)
    assert (given.size, given.views, given.limit) == (96, 10, "--size")
    assert teacher_plan(_cloud(500, 0.02), False).views == MIN_VIEWS
    assert MIN_VIEWS < cpu.views <= MAX_VIEWS  # more Gaussians, more views


def test_teacher_is_at_least_what_a_viewer_shows():
    coarse = _cloud(2000, 0.05)  # its finest Gaussians span a pixel well below a viewer's size
    assert finest_size(coarse) < VIEWER_SIZE
    gpu, cpu = teacher_plan(coarse, on_gpu=True), teacher_plan(coarse, on_gpu=False)
    assert (gpu.size, gpu.wanted, gpu.limit, gpu.finest) == (VIEWER_SIZE, VIEWER_SIZE, None, finest_size(coarse))
    assert f"a viewer's {VIEWER_SIZE} pixels; the finest Gaussians span a pixel at {gpu.finest}²" in gpu.describe()
    assert (cpu.size, cpu.limit) == (min(CPU_SIZE, VIEWER_SIZE), "cpu")
    fine = _cloud(2000, 0.0005)  # finer than a viewer's pixels: the Gaussians set the size
    assert teacher_plan(fine, on_gpu=True).size == finest_size(fine) > VIEWER_SIZE


def test_anchor_budget_follows_the_teacher_pixels():
    from progs.io.teacher import scene_from_cloud
    from progs.presets import FIT_DEFAULTS, FIT_MIN_BASE_DEPTH, SMALL_FIT_ANCHORS, teacher_sizing

    cloud = _cloud(4000, 0.05)
    large_scene = scene_from_cloud(cloud, views=4, size=96)
    small = teacher_sizing(scene_from_cloud(cloud, views=4, size=32), 3, None)
    large = teacher_sizing(large_scene, 3, None)
    assert small["max_anchors"] == int(32 * 32 / 5.4) and large["max_anchors"] == 1000  # a quarter of 4,000
    # both budgets are small fits: 16-d features, 5 offsets per anchor, a 3 + 1 level context grid and
    # narrow context MLPs
    for sized in (small, large):
        model = (sized["feat_dim"], sized["n_offsets"], sized["context_hash_levels"], sized["context_mlp"])
        assert model == (16, 5, (3, 1), (8, 4))
    at_limit = teacher_sizing(large_scene, 3, None, max_anchors=SMALL_FIT_ANCHORS)
    assert at_limit["feat_dim"] == 16
    # a large budget keeps the default widths, with the fits' 6 + 2 level context grid
    huge = teacher_sizing(large_scene, 3, None, max_anchors=SMALL_FIT_ANCHORS + 1)
    assert "feat_dim" not in huge and "n_offsets" not in huge and "context_mlp" not in huge
    assert huge["context_hash_levels"] == (6, 2)
    # levels as given, or as many as the budget fills (at most FIT_DEFAULTS' 4), never finer than the grid
    assert small["levels"] == 3
    chosen = teacher_sizing(large_scene, None, None)
    assert 2 <= chosen["levels"] <= FIT_DEFAULTS["levels"] and 1 <= chosen["init_level"] <= chosen["levels"]
    assert chosen["base_depth"] >= FIT_MIN_BASE_DEPTH


def test_viewer_views_are_held_out_and_full_size():
    cloud = _cloud(300, 0.05)
    views = viewer_views(cloud, size=48, count=4)
    assert len(views) == 4 and all(v.image.shape == (48, 48, 3) for v in views)
    centres = torch.stack([v.camera.center for v in views])
    assert torch.cdist(centres, centres).fill_diagonal_(1).min() > 0.1


def test_fit_prints_its_teacher_and_scores_at_viewer_size(tmp_path, capsys):
    from progs.cli import main

    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                str(DATA / "sog"),
                "--out",
                str(run),
                "--iterations",
                "2",
                "--levels",
                "2",
                "--views",
                "6",
                "--size",
                "24",
                "--eval-size",
                "40",
                "--up",
                "-y",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "512 Gaussians (SH degree 2) -> 6 teacher views at 24² (--size; the scene asks for" in out
    assert "held-out viewer views (40², SH colours)" in out and "ETA" in out
    info = json.loads((run / "run.json").read_text())
    assert len(info["viewer_lods"]) == 2 and all(r["psnr"] > 0 for r in info["viewer_lods"])


def test_fit_refuses_bad_sizes_in_one_line(tmp_path, capsys):
    from progs.cli import main

    assert main(["fit", str(DATA / "sog"), "--out", str(tmp_path / "r"), "--eval-size", "-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--eval-size" in err
    assert not (tmp_path / "r").exists()


def test_viewpoint_without_rendering_is_the_loaded_scenes_first_test_view(tmp_path):
    """`encode --no-eval` starts the player where the scene it trained on starts, without rendering it."""
    from progs.io.dataset import DatasetSpec
    from progs.io.ply import write_ply

    path = tmp_path / "cloud.ply"
    write_ply(path, _cloud(300, 0.02, seed=3))
    spec = DatasetSpec.create("ply", path=str(path), views=10, size=32, up="-y", background=(0.2, 0.3, 0.4))
    background, camera = spec.viewpoint()
    scene = spec.load()
    first = scene.first_camera()
    assert first is not None and camera is not None
    assert scene.test_views[0].camera is first
    assert torch.equal(camera.world_to_camera, first.world_to_camera)
    assert (camera.width, camera.height, camera.fx) == (first.width, first.height, first.fx)
    assert torch.equal(background, scene.background)
