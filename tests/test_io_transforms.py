"""transforms*.json datasets (NeRF-synthetic, instant-ngp), image loading and the real fox capture."""

from __future__ import annotations

import json
import math
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from progs.errors import InputError
from progs.io import detect_format, load_image, load_scene
from progs.io.dataset import data_root
from progs.io.images import cache_dir_for
from progs.io.transforms import load_transforms_scene, opengl_c2w_to_opencv_w2c

FOX = data_root() / "fox"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROGS_CACHE_DIR", str(tmp_path / "user_cache"))


def gl_c2w(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> list[list[float]]:
    """An OpenGL camera-to-world matrix (x right, y up, z back) looking from eye at target."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, cam_up, back, eye
    return m.tolist()


def ring(n: int, radius: float = 4.0) -> list[tuple[float, float, float]]:
    return [(radius * math.cos(2 * math.pi * i / n), radius * math.sin(2 * math.pi * i / n), 1.0) for i in range(n)]


def make_synthetic(root: Path, n_train: int = 4, n_test: int = 2, size: int = 16) -> None:
    """A NeRF-synthetic-style dataset: RGBA PNGs, extension-less file paths, camera_angle_x."""
    for split, n in (("train", n_train), ("test", n_test), ("val", 1)):
        (root / split).mkdir(parents=True)
        frames = []
        for i, eye in enumerate(ring(n)):
            rgba = np.zeros((size, size, 4), np.uint8)
            rgba[..., 0] = 200
            rgba[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4, 3] = 255  # opaque red square
            Image.fromarray(rgba, "RGBA").save(root / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.0, "transform_matrix": gl_c2w(eye)})
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": 0.6911112070083618, "frames": frames})
        )


def make_ngp(root: Path, n: int = 12, w: int = 24, h: int = 32, missing: set[int] = frozenset(), **extra) -> dict:
    """An instant-ngp-style dataset: one transforms.json with fl_x, fl_y, cx, cy, w, h."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = []
    for i, eye in enumerate(ring(n, 5.0)):
        name = f"images/{i:04d}.jpg"
        if i not in missing:
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name, quality=95)
        frames.append({"file_path": name, "sharpness": 30.0, "transform_matrix": gl_c2w(eye)})
    meta = {
        "fl_x": 30.0,
        "fl_y": 31.0,
        "cx": w / 2 - 0.5,
        "cy": h / 2 + 0.25,
        "w": float(w),
        "h": float(h),
        "aabb_scale": 4,
        "frames": frames,
        **extra,
    }
    (root / "transforms.json").write_text(json.dumps(meta))
    return meta


def assert_input_error(fn, *args, names, match: str | None = None, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert str(names) in msg, msg
    assert "\n" not in msg, msg
    if match is not None:
        assert match in msg, msg
    return msg


# -- conventions --------------------------------------------------------------------------------------


def test_opengl_to_opencv():
    c2w = np.array(gl_c2w((0.0, -5.0, 0.0)))  # on the -y axis looking at the origin, z up
    w2c = opengl_c2w_to_opencv_w2c(c2w)
    p = w2c @ np.array([0.0, 0.0, 0.0, 1.0])
    assert np.allclose(p[:3], [0, 0, 5])  # origin straight ahead, 5 units deep
    up = w2c @ np.array([0.0, 0.0, 1.0, 1.0])
    assert up[1] < 0  # world up is image up (OpenCV y points down)
    right = w2c @ np.array([1.0, 0.0, 0.0, 1.0])
    assert right[0] > 0


# -- NeRF-synthetic -----------------------------------------------------------------------------------


def test_nerf_synthetic(tmp_path):
    make_synthetic(tmp_path)
    assert detect_format(tmp_path) == "transforms"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = load_scene(tmp_path)
    assert [v.name for v in scene.train_views] == [f"train/r_{i}.png" for i in range(4)]
    assert [v.name for v in scene.test_views] == ["test/r_0.png", "test/r_1.png"]
    assert scene.points is None
    assert torch.equal(scene.background, torch.ones(3))
    v = scene.train_views[0]
    assert v.image.shape == (16, 16, 3)
    assert math.isclose(v.camera.fx, 0.5 * 16 / math.tan(0.5 * 0.6911112070083618), rel_tol=1e-6)
    assert v.camera.fx == v.camera.fy and v.camera.cx == 8.0 == v.camera.cy
    # Transparent pixels are white, opaque ones keep their colour.
    assert torch.allclose(v.image[0, 0], torch.ones(3))
    assert torch.allclose(v.image[8, 8], torch.tensor([200 / 255, 0.0, 0.0]))
    for view in scene.views:
        uv, z = view.camera.project(torch.zeros(1, 3))
        assert math.isclose(z.item(), math.sqrt(17), rel_tol=1e-5)
        assert torch.allclose(uv[0], torch.tensor([8.0, 8.0]), atol=1e-3)
    lo, hi = scene.bounds
    assert (lo < 0).all() and (hi > 0).all()
    # A black background can be asked for; the json file itself is accepted as the path.
    black = load_transforms_scene(tmp_path / "transforms_train.json", background=(0, 0, 0))
    assert torch.allclose(black.train_views[0].image[0, 0], torch.zeros(3))
    half = load_transforms_scene(tmp_path, downscale=2)
    assert half.train_views[0].image.shape == (8, 8, 3) and half.train_views[0].camera.cx == 4.0


def test_nerf_synthetic_needs_test_file(tmp_path):
    make_synthetic(tmp_path)
    (tmp_path / "transforms_test.json").unlink()
    assert_input_error(load_transforms_scene, tmp_path, names=tmp_path / "transforms_test.json")


# -- instant-ngp --------------------------------------------------------------------------------------


def test_instant_ngp(tmp_path):
    make_ngp(tmp_path, n=12)
    scene = load_scene(tmp_path)
    assert len(scene.views) == 12
    assert [v.name for v in scene.test_views] == ["images/0000.jpg", "images/0008.jpg"]
    assert len(scene.train_views) == 10
    cam = scene.train_views[0].camera
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (24, 32, 30.0, 31.0, 11.5, 16.25)
    assert torch.equal(scene.background, torch.zeros(3))
    for v in scene.views:
        uv, z = v.camera.project(torch.zeros(1, 3))
        assert z.item() > 0 and torch.allclose(uv[0], torch.tensor([v.camera.cx, v.camera.cy]), atol=1e-3)
    small = load_scene(tmp_path, downscale=3)  # 8 x 10.67 -> 8 x 11: the camera follows the rounding
    c = small.train_views[0].camera
    assert small.train_views[0].image.shape == (11, 8, 3) and (c.width, c.height) == (8, 11)
    assert math.isclose(c.fy, 31.0 * 11 / 32, rel_tol=1e-6) and math.isclose(c.fx, 10.0, rel_tol=1e-6)
    assert load_transforms_scene(tmp_path, test_every=0).test_views == []


def test_per_frame_intrinsics_and_distortion(tmp_path):
    meta = make_ngp(tmp_path, n=3, k1=0.05, p1=0.001)
    meta["frames"][1].update({"fl_x": 40.0, "fl_y": 41.0, "cx": 12.0, "cy": 15.0})
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # distortion is removed, not warned about
        scene = load_transforms_scene(tmp_path, test_every=100, undistort=False)
    cams = {v.name: v.camera for v in scene.views}
    assert (cams["images/0001.jpg"].fx, cams["images/0001.jpg"].cy) == (40.0, 15.0)
    assert cams["images/0002.jpg"].fx == 30.0
    # Undistorted (the default): each frame gets its own pinhole camera, near its distorted one.
    cams = {v.name: v.camera for v in load_transforms_scene(tmp_path, test_every=100).views}
    assert cams["images/0001.jpg"].fx != 40.0 and math.isclose(cams["images/0001.jpg"].fx, 40.0, rel_tol=0.05)
    assert cams["images/0002.jpg"].fx != 30.0 and math.isclose(cams["images/0002.jpg"].fx, 30.0, rel_tol=0.05)


def test_camera_angle_only_and_size_from_image(tmp_path):
    meta = make_ngp(tmp_path, n=2)
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        meta.pop(k)
    meta["camera_angle_x"] = 1.0
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cam = load_transforms_scene(tmp_path).views[0].camera
    assert (cam.width, cam.height, cam.cx, cam.cy) == (24, 32, 12.0, 16.0)
    assert math.isclose(cam.fx, 12 / math.tan(0.5), rel_tol=1e-6) and cam.fy == cam.fx


def test_missing_frames_are_skipped(tmp_path):
    make_ngp(tmp_path, n=10, missing={2, 5, 7})
    with pytest.warns(UserWarning, match="3 of 10 frames"):
        scene = load_scene(tmp_path)
    assert len(scene.views) == 7
    assert "images/0002.jpg" not in {v.name for v in scene.views}


def test_all_frames_missing(tmp_path):
    make_ngp(tmp_path, n=3, missing={0, 1, 2})
    assert_input_error(load_transforms_scene, tmp_path, names=tmp_path / "transforms.json", match="none of the 3")


# -- malformed ----------------------------------------------------------------------------------------


def _rewrite(root: Path, edit) -> Path:
    p = root / "transforms.json"
    meta = json.loads(p.read_text())
    edit(meta)
    p.write_text(json.dumps(meta))
    return p


def test_malformed_transforms(tmp_path):
    make_ngp(tmp_path, n=3)
    good = (tmp_path / "transforms.json").read_text()
    p = tmp_path / "transforms.json"

    def check(edit, match):
        p.write_text(good)
        _rewrite(tmp_path, edit)
        assert_input_error(load_transforms_scene, tmp_path, names=p, match=match)

    check(lambda m: m.pop("frames"), "frames")
    check(lambda m: m.update(frames=[]), "empty")
    check(lambda m: m["frames"][1].pop("transform_matrix"), "transform_matrix")
    check(lambda m: m["frames"][1].pop("file_path"), "file_path")
    check(lambda m: m["frames"][1]["transform_matrix"][0].__setitem__(3, float("nan")), "NaN")
    check(lambda m: m["frames"][1].__setitem__("transform_matrix", [[0.0] * 4] * 3 + [[0, 0, 0, 1]]), "invertible")
    check(lambda m: m["frames"][1].__setitem__("transform_matrix", [[1, 2], [3, 4]]), "4x4")
    check(lambda m: m["frames"][2].__setitem__("transform_matrix", "eye"), "transform_matrix")
    check(lambda m: [m.pop(k) for k in ("fl_x", "fl_y")], "camera_angle_x")
    check(lambda m: m.update(fl_x="big"), "fl_x")
    check(lambda m: m.update(fl_x=-3.0), "fl_x")
    check(lambda m: m.update(camera_model="OPENCV_FISHEYE"), "fisheye")
    p.write_text('{"frames": [')
    assert_input_error(load_transforms_scene, tmp_path, names=p, match="invalid JSON")
    p.write_text("[1, 2]")
    assert_input_error(load_transforms_scene, tmp_path, names=p, match="JSON object")


def test_nan_pose_in_frame_with_missing_image(tmp_path):
    make_ngp(tmp_path, n=3, missing={1})
    p = _rewrite(tmp_path, lambda m: m["frames"][1].__setitem__("transform_matrix", [[float("inf")] * 4] * 4))
    assert_input_error(load_transforms_scene, tmp_path, names=p, match="NaN")


def test_broken_image(tmp_path):
    make_ngp(tmp_path, n=2)
    bad = tmp_path / "images" / "0001.jpg"
    bad.write_bytes(b"not a jpeg at all")
    assert_input_error(load_transforms_scene, tmp_path, names=bad, match="cannot read image")


def test_missing_dataset(tmp_path):
    assert_input_error(load_transforms_scene, tmp_path / "none", names=tmp_path / "none")
    assert_input_error(load_transforms_scene, tmp_path, names=tmp_path, match="transforms.json")
    assert_input_error(load_scene, tmp_path / "x.ply", names=tmp_path / "x.ply")


# -- image loading and its cache ----------------------------------------------------------------------


def test_image_cache_falls_back_when_dataset_is_read_only(tmp_path):
    data = tmp_path / "ro"
    data.mkdir()
    Image.fromarray(np.full((20, 30, 3), 77, np.uint8)).save(data / "a.png")
    data.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        d = cache_dir_for(data)
        assert d is not None and (tmp_path / "user_cache") in d.parents
        img = load_image(data / "a.png", 4, cache_root=data)
        assert img.shape == (5, 8, 3) and torch.allclose(img, torch.full((5, 8, 3), 77 / 255))
        assert not (data / ".progs_cache").exists()
        assert len(list(d.glob("a-8x5-*.png"))) == 1
        # The cached copy is used (same result), and a changed source invalidates it.
        assert torch.equal(load_image(data / "a.png", 4, cache_root=data), img)
    finally:
        data.chmod(stat.S_IRWXU)
    Image.fromarray(np.full((20, 30, 3), 10, np.uint8)).save(data / "a.png")
    data.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert torch.allclose(load_image(data / "a.png", 4, cache_root=data), torch.full((5, 8, 3), 10 / 255))
    finally:
        data.chmod(stat.S_IRWXU)


def test_load_image_modes(tmp_path):
    Image.fromarray(np.full((4, 6), 128, np.uint8), "L").save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").shape == (4, 6, 3)
    la = np.zeros((4, 6, 2), np.uint8)
    la[..., 0] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert torch.allclose(
        load_image(tmp_path / "la.png", background=(0.0, 0.5, 1.0))[0, 0], torch.tensor([0.0, 0.5, 1.0])
    )
    assert torch.allclose(load_image(tmp_path / "la.png")[0, 0], torch.ones(3))  # alpha dropped


# -- the real fox capture -----------------------------------------------------------------------------


def test_fox_capture():
    if not (FOX / "transforms.json").is_file():
        pytest.skip(f"fox data absent at {FOX.resolve()} (the data root is $PROGS_DATA, else ../shared/data)")
    with pytest.warns(UserWarning) as record:
        scene = load_scene(FOX, downscale=8)
    messages = [str(w.message) for w in record]
    assert any("17 of 67 frames" in m for m in messages), messages
    assert not any("distortion" in m for m in messages), messages  # k1 k2 p1 p2 are removed on load
    assert len(scene.views) == 50
    assert len(scene.test_views) == 7 and len(scene.train_views) == 43
    assert scene.test_views[0].name == "images/0001.jpg"
    assert scene.points is None and scene.bounds.shape == (2, 3)
    for v in scene.views:
        # 1080 x 1920 portrait JPEGs → 135 x 240.
        assert v.image.shape == (240, 135, 3) and (v.camera.width, v.camera.height) == (135, 240)
        # The undistorted pinhole camera: slightly zoomed in (only valid pixels), principal point kept.
        assert 1.0 < v.camera.fx / (1375.52 / 8) < 1.03
        assert math.isclose(v.camera.cy, 965.268 / 8, abs_tol=1.0)
    look_at = scene.bounds.mean(dim=0)
    assert float(look_at.norm()) < 1.0  # "a common look-at point near the origin"
    for target in (look_at, torch.zeros(3)):
        for v in scene.views:
            uv, z = v.camera.project(target[None])
            assert z.item() > 0, v.name
            assert 0 <= uv[0, 0] < v.camera.width and 0 <= uv[0, 1] < v.camera.height, (v.name, uv)
            assert 3.0 < z.item() < 8.0  # cameras ~5 units away


def test_train_sizes_random_init_from_the_views(tmp_path, capsys):
    """`progs train` on a capture without SfM points says how it sized the anchor set, and the run
    records it; the options override it."""
    from progs.cli import main

    make_ngp(tmp_path / "data", n=6, w=24, h=32)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "data"), "--out", str(run), "--iterations", "1", "--levels", "2"]) == 0
    out = capsys.readouterr().out
    assert "no SfM points, 768 pixels per view -> 500 random initial points, growth up to 1200 anchors" in out
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["init_random_points"] == 500 and config["growth"]["max_anchors"] == 1200
    run2 = tmp_path / "run2"
    assert (
        main(
            [
                "train",
                str(tmp_path / "data"),
                "--out",
                str(run2),
                "--iterations",
                "1",
                "--levels",
                "2",
                "--init-points",
                "800",
                "--max-anchors",
                "1000",
            ]
        )
        == 0
    )
    assert (
        "800 random initial points (--init-points), growth up to 1000 anchors (--max-anchors)"
        in capsys.readouterr().out
    )
