"""COLMAP sparse models, text and binary, and scenes made from them (progs.io.colmap)."""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from progs.errors import InputError
from progs.io import detect_format, load_scene
from progs.io.colmap import (
    CAMERA_MODELS,
    load_colmap_scene,
    qvec_to_rotmat,
    read_cameras,
    read_images,
    read_model,
    read_points3D,
)

MODEL_IDS = {name: mid for mid, (name, _) in CAMERA_MODELS.items()}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROGS_CACHE_DIR", str(tmp_path / "user_cache"))


# -- a tiny synthetic capture and a writer that follows COLMAP's layouts ----------------------------


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method, w >= 0)."""
    m = R
    tr = np.trace(m)
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q if q[0] >= 0 else -q


def look_at_w2c(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    f = target - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    R = np.stack([r, d, f])
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    return w2c


def make_model(n_images: int = 10, width: int = 40, height: int = 30, seed: int = 0) -> dict:
    """Cameras, images (looking at the origin from a ring) and points, as plain Python data."""
    rng = np.random.default_rng(seed)
    cameras = {
        1: ("PINHOLE", width, height, [36.0, 37.0, width / 2 + 0.3, height / 2 - 0.2]),
        2: ("SIMPLE_RADIAL", width, height, [35.0, width / 2, height / 2, 0.0]),
    }
    images = {}
    for i in range(n_images):
        a = 2 * math.pi * i / n_images
        eye = (4 * math.cos(a), 4 * math.sin(a), 1.0 + 0.1 * i)
        w2c = look_at_w2c(eye)
        q = rotmat_to_qvec(w2c[:3, :3])
        xys = rng.uniform(0, width, size=(3, 2))
        ids = np.array([i, -1, 2 * i], dtype=np.int64)
        # ids are not in name order, so sorting by name is tested
        images[100 - i] = (q, w2c[:3, 3].copy(), 1 + i % 2, f"img_{i:03d}.png", xys, ids)
    pts = rng.uniform(-0.5, 0.5, size=(25, 3))
    points = {
        int(j * 7 + 1): (
            pts[j],
            rng.integers(0, 256, 3).astype(np.uint8),
            float(rng.uniform(0, 2)),
            [(100 - (j % n_images), j % 3)] * (1 + j % 4),
        )
        for j in range(len(pts))
    }
    return {"cameras": cameras, "images": images, "points": points}


def write_model_bin(d: Path, m: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(m["cameras"])))
        for cid, (model, w, h, params) in m["cameras"].items():
            f.write(struct.pack("<iiQQ", cid, MODEL_IDS[model], w, h))
            f.write(struct.pack(f"<{len(params)}d", *params))
    with open(d / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(m["images"])))
        for iid, (q, t, cid, name, xys, ids) in m["images"].items():
            f.write(struct.pack("<idddddddi", iid, *q, *t, cid))
            f.write(name.encode() + b"\0")
            f.write(struct.pack("<Q", len(ids)))
            for (x, y), pid in zip(xys, ids):
                f.write(struct.pack("<ddq", x, y, pid))
    with open(d / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(m["points"])))
        for pid, (xyz, rgb, err, track) in m["points"].items():
            f.write(struct.pack("<QdddBBBd", pid, *xyz, *rgb, err))
            f.write(struct.pack("<Q", len(track)))
            for image_id, p2d in track:
                f.write(struct.pack("<ii", image_id, p2d))


def write_model_txt(d: Path, m: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(m['cameras'])}",
    ]
    for cid, (model, w, h, params) in m["cameras"].items():
        lines.append(" ".join([str(cid), model, str(w), str(h)] + [repr(float(p)) for p in params]))
    (d / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
    ]
    for k, (iid, (q, t, cid, name, xys, ids)) in enumerate(m["images"].items()):
        lines.append(" ".join([str(iid)] + [repr(float(v)) for v in (*q, *t)] + [str(cid), name]))
        # COLMAP writes an empty line for images without 2D points: exercise that too.
        lines.append("" if k == 1 else " ".join(f"{x!r} {y!r} {p}" for (x, y), p in zip(xys.tolist(), ids.tolist())))
    (d / "images.txt").write_text("\n".join(lines) + "\n")
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
    ]
    for pid, (xyz, rgb, err, track) in m["points"].items():
        lines.append(
            " ".join(
                [str(pid)]
                + [repr(float(v)) for v in xyz]
                + [str(int(c)) for c in rgb]
                + [repr(err)]
                + [f"{a} {b}" for a, b in track]
            )
        )
    (d / "points3D.txt").write_text("\n".join(lines) + "\n")


def write_images(d: Path, m: dict, size: tuple[int, int] | None = None, skip: set[str] = frozenset()) -> None:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for iid, (_, _, cid, name, _, _) in m["images"].items():
        if name in skip:
            continue
        _, w, h, _ = m["cameras"][cid]
        if size is not None:
            w, h = size
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / name)


def make_dataset(root: Path, fmt: str = "bin", sparse: str = "sparse/0", **kw) -> dict:
    m = make_model(**kw)
    (write_model_bin if fmt == "bin" else write_model_txt)(root / sparse, m)
    write_images(root / "images", m)
    return m


def assert_input_error(fn, *args, names, match: str | None = None, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert str(names) in msg, msg
    assert "\n" not in msg, msg
    if match is not None:
        assert match in msg, msg
    return msg


# -- readers ------------------------------------------------------------------------------------------


def test_binary_and_text_read_the_same(tmp_path):
    m = make_model()
    write_model_bin(tmp_path / "b", m)
    write_model_txt(tmp_path / "t", m)
    b, t = read_model(tmp_path / "b"), read_model(tmp_path / "t")
    assert b.cameras.keys() == t.cameras.keys() == {1, 2}
    for cid in b.cameras:
        cb, ct = b.cameras[cid], t.cameras[cid]
        assert (cb.model, cb.width, cb.height) == (ct.model, ct.width, ct.height) == m["cameras"][cid][:3]
        assert np.array_equal(cb.params, ct.params)
    assert b.cameras[1].intrinsics == (36.0, 37.0, 20.3, 14.8)
    assert b.cameras[2].intrinsics == (35.0, 35.0, 20.0, 15.0)
    assert b.cameras[2].distortion.tolist() == [0.0]
    assert b.images.keys() == t.images.keys()
    for iid, (q, tv, cid, name, xys, ids) in m["images"].items():
        ib, it = b.images[iid], t.images[iid]
        assert ib.name == it.name == name and ib.camera_id == it.camera_id == cid
        assert np.allclose(ib.qvec, q / np.linalg.norm(q)) and np.array_equal(ib.qvec, it.qvec)
        assert np.array_equal(ib.tvec, tv) and np.array_equal(it.tvec, tv)
        assert np.array_equal(ib.xys, xys) and np.array_equal(ib.point3D_ids, ids)
    assert b.images[99].xys.shape == (3, 2) and t.images[99].xys.shape == (0, 2)  # the empty 2D line
    pb, pt = b.points, t.points
    assert len(pb) == len(pt) == 25
    assert np.array_equal(pb.ids, pt.ids) and np.array_equal(pb.xyz, pt.xyz)
    assert np.array_equal(pb.rgb, pt.rgb) and np.array_equal(pb.errors, pt.errors)
    assert np.array_equal(pb.track_lengths, pt.track_lengths) and pb.track_lengths.tolist()[:4] == [1, 2, 3, 4]
    for iid, (q, tv, *_rest) in m["images"].items():
        assert np.allclose(b.images[iid].world_to_camera[:3, :3], qvec_to_rotmat(q))


def test_all_supported_camera_models(tmp_path):
    m = make_model(n_images=2)
    m["cameras"] = {
        1: ("SIMPLE_PINHOLE", 40, 30, [30.0, 20.0, 15.0]),
        2: ("OPENCV", 40, 30, [31.0, 32.0, 19.0, 14.0, 0.01, -0.02, 0.001, 0.0]),
    }
    for writer, sub in ((write_model_bin, "b"), (write_model_txt, "t")):
        writer(tmp_path / sub, m)
        cams = read_model(tmp_path / sub).cameras
        assert cams[1].intrinsics == (30.0, 30.0, 20.0, 15.0)
        assert cams[2].intrinsics == (31.0, 32.0, 19.0, 14.0)
        assert cams[2].distortion.tolist() == [0.01, -0.02, 0.001, 0.0]


# -- scenes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,sparse", [("bin", "sparse/0"), ("txt", "sparse")])
def test_load_scene(tmp_path, fmt, sparse):
    m = make_dataset(tmp_path, fmt, sparse, n_images=10)
    assert detect_format(tmp_path) == "colmap"
    scene = load_scene(tmp_path)
    names = [f"img_{i:03d}.png" for i in range(10)]
    assert [v.name for v in scene.test_views] == [names[0], names[8]]
    assert [v.name for v in scene.train_views] == [n for i, n in enumerate(names) if i % 8]
    assert scene.points.shape == (25, 3) and scene.point_colors.shape == (25, 3)
    assert scene.points.dtype == torch.float32 and float(scene.point_colors.max()) <= 1.0
    assert scene.bounds.shape == (2, 3)
    by_name = {v[3]: v for v in m["images"].values()}
    for v in scene.views:
        q, t, cid, *_ = by_name[v.name]
        assert v.image.shape == (30, 40, 3) and v.image.dtype == torch.float32
        assert 0.0 <= float(v.image.min()) and float(v.image.max()) <= 1.0
        ref = np.eye(4)
        ref[:3, :3], ref[:3, 3] = qvec_to_rotmat(q), t
        assert torch.allclose(v.camera.world_to_camera, torch.from_numpy(ref).float(), atol=1e-6)
        # The origin is in front of every camera and projects near the principal point.
        uv, z = v.camera.project(torch.zeros(1, 3))
        assert z.item() > 0
        assert torch.allclose(uv[0], torch.tensor([v.camera.cx, v.camera.cy]), atol=1e-3)
        # SfM points project inside the image.
        uv, z = v.camera.project(scene.points)
        assert (z > 0).all() and (uv[:, 0] > 0).all() and (uv[:, 0] < 40).all()
    first = next(v for v in scene.views if v.name == names[0])
    img = np.asarray(Image.open(tmp_path / "images" / names[0]), dtype=np.float32) / 255
    assert np.allclose(first.image.numpy(), img)


def test_downscale(tmp_path):
    make_dataset(tmp_path, n_images=3, width=41, height=31)
    full = load_colmap_scene(tmp_path)
    half = load_colmap_scene(tmp_path, downscale=2)
    for a, b in zip(full.views, half.views):
        w, h = round(41 / 2), round(31 / 2)
        assert b.image.shape == (h, w, 3) and (b.camera.width, b.camera.height) == (w, h)
        assert math.isclose(b.camera.fx, a.camera.fx * w / 41, rel_tol=1e-6)
        assert math.isclose(b.camera.cy, a.camera.cy * h / 31, rel_tol=1e-6)
        # Area filter: the downscaled image keeps the mean colour.
        assert abs(float(a.image.mean()) - float(b.image.mean())) < 0.02
    # The cache is written inside the (writable) dataset and reused.
    cached = list((tmp_path / ".progs_cache" / "images").glob("*.png"))
    assert len(cached) == 3
    again = load_colmap_scene(tmp_path, downscale=2)
    assert all(torch.equal(a.image, b.image) for a, b in zip(half.views, again.views))
    with pytest.raises(InputError):
        load_colmap_scene(tmp_path, downscale=0.5)


def test_prescaled_images_folder(tmp_path):
    m = make_dataset(tmp_path, n_images=3)
    write_images(tmp_path / "images_2", m, size=(20, 15))
    scene = load_colmap_scene(tmp_path, downscale=2)
    assert all(v.image.shape == (15, 20, 3) for v in scene.views)
    fx = {v.name: v.camera.fx for v in scene.views}
    assert math.isclose(fx["img_000.png"], 18.0) and math.isclose(fx["img_001.png"], 17.5)


def test_missing_images_are_skipped(tmp_path):
    m = make_model(n_images=6)
    write_model_bin(tmp_path / "sparse" / "0", m)
    write_images(tmp_path / "images", m, skip={"img_001.png", "img_004.png"})
    with pytest.warns(UserWarning, match="2 of 6 images are missing"):
        scene = load_colmap_scene(tmp_path)
    assert sorted(v.name for v in scene.views) == ["img_000.png", "img_002.png", "img_003.png", "img_005.png"]


def test_all_images_missing(tmp_path):
    m = make_model(n_images=3)
    write_model_bin(tmp_path / "sparse" / "0", m)
    (tmp_path / "images").mkdir()
    assert_input_error(load_colmap_scene, tmp_path, names=tmp_path / "images", match="img_000.png")
    (tmp_path / "images").rmdir()
    assert_input_error(load_colmap_scene, tmp_path, names=tmp_path, match="images")


def test_no_model(tmp_path):
    (tmp_path / "sparse").mkdir()
    assert_input_error(load_colmap_scene, tmp_path, names=tmp_path, match="no COLMAP model")
    assert_input_error(load_scene, tmp_path / "absent", names=tmp_path / "absent")
    (tmp_path / "other").mkdir()
    assert_input_error(load_scene, tmp_path / "other", names=tmp_path / "other", match="cannot tell")


def test_image_size_mismatch(tmp_path):
    m = make_model(n_images=2)
    write_model_bin(tmp_path / "sparse" / "0", m)
    write_images(tmp_path / "images", m, size=(30, 40))  # rotated
    assert_input_error(load_colmap_scene, tmp_path, names=tmp_path / "images", match="30x40")


def test_fisheye_refused_and_distortion_removed(tmp_path):
    m = make_model(n_images=2)
    m["cameras"][2] = ("OPENCV_FISHEYE", 40, 30, [30.0, 30.0, 20.0, 15.0, 0.1, 0.0, 0.0, 0.0])
    write_model_bin(tmp_path / "sparse" / "0", m)
    write_images(tmp_path / "images", m)
    assert_input_error(load_colmap_scene, tmp_path, names=tmp_path, match="OPENCV_FISHEYE")
    m["cameras"][2] = ("OPENCV", 40, 30, [30.0, 30.0, 20.0, 15.0, 0.1, 0.0, 0.0, 0.0])
    write_model_bin(tmp_path / "sparse" / "0", m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undistorted on load, no warning
        scene = load_colmap_scene(tmp_path)
    assert len(scene.views) == 2
    cam = next(v.camera for v in scene.views if v.name == "img_001.png")  # the OPENCV camera
    assert cam.fx != 30.0 and math.isclose(cam.fx, 30.0, rel_tol=0.1)
    raw = next(v.camera for v in load_colmap_scene(tmp_path, undistort=False).views if v.name == "img_001.png")
    assert (raw.fx, raw.fy, raw.cx, raw.cy) == (30.0, 30.0, 20.0, 15.0)


def test_points_optional(tmp_path):
    make_dataset(tmp_path, n_images=4)
    (tmp_path / "sparse" / "0" / "points3D.bin").unlink()
    with pytest.warns(UserWarning, match="no 3D points"):
        scene = load_colmap_scene(tmp_path)
    assert scene.points is None and scene.bounds.shape == (2, 3)


# -- malformed models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
def test_truncated_binary(tmp_path, name):
    m = make_model(n_images=4)
    write_model_bin(tmp_path, m)
    data = (tmp_path / name).read_bytes()
    reader = {"cameras.bin": read_cameras, "images.bin": read_images, "points3D.bin": read_points3D}[name]
    for cut in sorted({0, 4, 8, 9, 20, len(data) // 2, len(data) - 1}):
        p = tmp_path / f"cut_{cut}_{name}"
        p.write_bytes(data[:cut])
        assert_input_error(reader, p, names=p)
    p = tmp_path / f"extra_{name}"
    p.write_bytes(data + b"\0\0\0")
    assert_input_error(reader, p, names=p, match="unexpected bytes")


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
def test_absurd_counts(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(struct.pack("<Q", 10**12) + b"\0" * 64)
    reader = {"cameras.bin": read_cameras, "images.bin": read_images, "points3D.bin": read_points3D}[name]
    assert_input_error(reader, p, names=p, match="1000000000000")


def test_absurd_2d_point_count(tmp_path):
    p = tmp_path / "images.bin"
    p.write_bytes(
        struct.pack("<Q", 1)
        + struct.pack("<idddddddi", 1, 1, 0, 0, 0, 0, 0, 0, 1)
        + b"a.png\0"
        + struct.pack("<Q", 2**62)
    )
    assert_input_error(read_images, p, names=p)


def test_nan_pose(tmp_path):
    m = make_model(n_images=3)
    iid = next(iter(m["images"]))
    q, t, *rest = m["images"][iid]
    m["images"][iid] = (q, np.array([0.0, float("nan"), 1.0]), *rest)
    write_model_bin(tmp_path / "b", m)
    write_model_txt(tmp_path / "t", m)
    assert_input_error(read_images, tmp_path / "b" / "images.bin", names=tmp_path / "b" / "images.bin", match="NaN")
    assert_input_error(read_images, tmp_path / "t" / "images.txt", names=tmp_path / "t" / "images.txt", match="NaN")
    m["images"][iid] = (np.zeros(4), t, *rest)
    write_model_bin(tmp_path / "b", m)
    assert_input_error(
        read_images, tmp_path / "b" / "images.bin", names=tmp_path / "b" / "images.bin", match="quaternion"
    )


def test_malformed_text(tmp_path):
    m = make_model(n_images=2)
    write_model_txt(tmp_path, m)
    cams = tmp_path / "cameras.txt"
    cams.write_text("1 PINHOLE 40 30 36 37 20\n")
    assert_input_error(read_cameras, cams, names=cams, match="4 parameters")
    cams.write_text("1 FANCY 40 30 36 37 20 15\n")
    assert_input_error(read_cameras, cams, names=cams, match="FANCY")
    cams.write_text("1 PINHOLE forty 30 36 37 20 15\n")
    assert_input_error(read_cameras, cams, names=cams, match="WIDTH")
    cams.write_text("1 PINHOLE 40 30 -36 37 20 15\n")
    assert_input_error(read_cameras, cams, names=cams, match="focal")
    imgs = tmp_path / "images.txt"
    imgs.write_text("1 1 0 0 0 0 0 0\n\n")
    assert_input_error(read_images, imgs, names=imgs, match="NAME")
    imgs.write_text("1 1 0 0 0 0 0 0 1 a.png\n1 2\n")
    assert_input_error(read_images, imgs, names=imgs, match="triples")
    pts = tmp_path / "points3D.txt"
    pts.write_text("1 0 0 0 255 0 300 0.5\n")
    assert_input_error(read_points3D, pts, names=pts, match="0..255")
    pts.write_text("1 0 0 inf 255 0 0 0.5\n")
    assert_input_error(read_points3D, pts, names=pts, match="infinite")


def test_unknown_model_id_and_missing_camera(tmp_path):
    p = tmp_path / "cameras.bin"
    p.write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 99, 40, 30) + b"\0" * 64)
    assert_input_error(read_cameras, p, names=p, match="99")
    m = make_model(n_images=2)
    m["cameras"].pop(2)
    write_model_txt(tmp_path / "t", m)
    assert_input_error(read_model, tmp_path / "t", names=tmp_path / "t" / "images.txt", match="camera 2")


def test_missing_files(tmp_path):
    for fn, name in ((read_cameras, "cameras.bin"), (read_images, "images.txt"), (read_points3D, "points3D.bin")):
        assert_input_error(fn, tmp_path / name, names=tmp_path / name, match="not found")
    write_model_txt(tmp_path, make_model(n_images=1))
    (tmp_path / "images.txt").unlink()
    assert_input_error(read_model, tmp_path, names=tmp_path)


def test_warnings_do_not_fire_for_clean_data(tmp_path):
    make_dataset(tmp_path, n_images=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_colmap_scene(tmp_path)
