"""Exported Gaussian files, each read back by the library a viewer would use: plyfile (PLY), gsply
(SPZ), pygltflib (glTF .glb with KHR_gaussian_splatting); the SH maths; any 3DGS PLY in."""

from __future__ import annotations

import json

import subprocess
import sys

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from progs.cli import main
from progs.errors import InputError
from progs.io.gltf import EXTENSION, sh_attribute_names, write_glb
from progs.io.ply import GaussianCloud, read_ply, write_ply
from progs.io.sh import eval_sh, fibonacci_sphere, fit_sh, sh_basis
from progs.io.spz import write_spz
from progs.io.writers import cloud_format


def random_cloud(n: int, degree: int, seed: int = 0) -> GaussianCloud:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return GaussianCloud(
        means=torch.randn(n, 3, generator=g),
        sh_dc=torch.randn(n, 3, generator=g),
        sh_rest=torch.randn(n, k, 3, generator=g) * 0.2,
        opacity_logits=torch.randn(n, generator=g),
        log_scales=torch.randn(n, 3, generator=g) * 0.5 - 4,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
    )


# ------------------------------------------------------------------------------------ SH maths
def test_sh_basis_matches_the_khr_gaussian_splatting_formulas():
    d = torch.nn.functional.normalize(torch.tensor([[0.3, -0.5, 0.8]]), dim=-1)
    x, y, z = d[0].tolist()
    want = [
        0.2820947917738781,
        -0.4886025119029199 * y,
        0.4886025119029199 * z,
        -0.4886025119029199 * x,
        1.092548430592079 * x * y,
        -1.092548430592079 * y * z,
        0.31539156525252 * (2 * z * z - x * x - y * y),
        -1.092548430592079 * x * z,
        0.5462742152960395 * (x * x - y * y),
        -0.5900435899266435 * y * (3 * x * x - y * y),
        2.890611442640554 * x * y * z,
        -0.4570457994644657 * y * (4 * z * z - x * x - y * y),
        0.3731763325901154 * z * (2 * z * z - 3 * x * x - 3 * y * y),
        -0.4570457994644657 * x * (4 * z * z - x * x - y * y),
        1.445305721320277 * z * (x * x - y * y),
        -0.5900435899266435 * x * (x * x - 3 * y * y),
    ]
    np.testing.assert_allclose(sh_basis(d, 3)[0].numpy(), want, rtol=1e-6, atol=1e-7)


def test_sh_basis_is_orthonormal_over_the_sphere():
    dirs = fibonacci_sphere(4000)
    b = sh_basis(dirs, 3).double()
    gram = b.T @ b * (4 * np.pi / dirs.shape[0])
    np.testing.assert_allclose(gram.numpy(), np.eye(16), atol=2e-3)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_least_squares_fit_recovers_sh_coefficients(degree):
    cloud = random_cloud(50, degree)
    dirs = fibonacci_sphere(64)
    colors = torch.stack([eval_sh(cloud.sh_dc, cloud.sh_rest, dirs[j].expand(50, 3)) for j in range(64)], dim=1)
    ok = (colors > 0).all(dim=2)  # the 0-clamp is not an SH: give clamped samples zero weight
    dc, rest = fit_sh(dirs, colors, ok.float(), degree, ridge=0.0)
    good = ok.sum(1) >= 40
    torch.testing.assert_close(dc[good], cloud.sh_dc[good], atol=1e-3, rtol=0)
    torch.testing.assert_close(rest[good], cloud.sh_rest[good], atol=1e-3, rtol=0)


# --------------------------------------------------------------------------------------- formats
def test_ply_round_trip_keeps_sh(tmp_path):
    cloud = random_cloud(200, 3)
    write_ply(tmp_path / "c.ply", cloud)
    v = PlyData.read(str(tmp_path / "c.ply"))["vertex"].data
    assert len(v) == 200
    rest = np.stack([v[f"f_rest_{i}"] for i in range(45)], axis=1).reshape(200, 3, 15).transpose(0, 2, 1)
    np.testing.assert_array_equal(rest, cloud.sh_rest.numpy())
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), cloud.means.numpy())


def test_spz_round_trip_through_gsply_within_its_quantisation(tmp_path):
    import gsply

    from progs.io.spz import flip_rub

    written = random_cloud(500, 3)
    write_spz(tmp_path / "c.spz", written)
    cloud = flip_rub(written)  # what the file holds: SPZ's RUB axes
    d = gsply.read_spz(tmp_path / "c.spz")
    assert len(d.means) == 500 and d.shN.shape == (500, 15, 3)
    np.testing.assert_allclose(d.means, cloud.means.numpy(), atol=2.0**-12)
    np.testing.assert_allclose(d.scales, cloud.log_scales.numpy(), atol=1 / 32 + 1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-d.opacities)), cloud.opacities.numpy(), atol=0.5 / 255 + 1e-3)
    dc_max = 127.5 / (0.15 * 255)  # the 8-bit colour code spans |sh0| <= 3.33 (colours -0.44..1.44)
    np.testing.assert_allclose(d.sh0, cloud.sh_dc.numpy().clip(-dc_max, dc_max), atol=0.5 / (0.15 * 255) + 1e-6)
    np.testing.assert_allclose(d.shN, cloud.sh_rest.numpy().clip(-1, 127 / 128), atol=0.5 / 128 + 1e-6)
    q = cloud.quats.numpy()
    dots = np.abs((d.quats * q).sum(1))  # q and -q are the same rotation
    assert dots.min() > 0.999
    assert (tmp_path / "c.spz").stat().st_size < 0.25 * (500 * 62 * 4)  # vs the float32 PLY payload


def test_glb_holds_the_extension_and_every_attribute(tmp_path):
    import pygltflib

    cloud = random_cloud(300, 2)
    write_glb(tmp_path / "c.glb", cloud)
    g = pygltflib.GLTF2().load(str(tmp_path / "c.glb"))
    assert EXTENSION in g.extensionsUsed
    prim = g.meshes[0].primitives[0]
    assert prim.mode == 0 and prim.extensions[EXTENSION]["kernel"] == "ellipse"
    assert prim.extensions[EXTENSION]["colorSpace"] == "srgb_rec709_display"
    attrs = {k: v for k, v in vars(prim.attributes).items() if v is not None}
    names = ["POSITION", f"{EXTENSION}:ROTATION", f"{EXTENSION}:SCALE", f"{EXTENSION}:OPACITY", *sh_attribute_names(2)]
    assert set(names) <= set(attrs) and len(sh_attribute_names(2)) == 9
    blob = g.binary_blob()

    def read(name: str) -> np.ndarray:
        acc = g.accessors[attrs[name]]
        view = g.bufferViews[acc.bufferView]
        assert acc.componentType == 5126 and acc.count == 300
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
        arr = np.frombuffer(blob, "<f4", count=acc.count * width, offset=view.byteOffset + (acc.byteOffset or 0))
        return arr.reshape(acc.count, width).squeeze(-1) if width == 1 else arr.reshape(acc.count, width)

    np.testing.assert_array_equal(read("POSITION"), cloud.means.numpy())
    np.testing.assert_allclose(g.accessors[attrs["POSITION"]].min, cloud.means.min(0).values.tolist(), rtol=1e-6)
    np.testing.assert_allclose(read(f"{EXTENSION}:ROTATION"), cloud.quats[:, [1, 2, 3, 0]].numpy(), atol=1e-6)
    np.testing.assert_allclose(read(f"{EXTENSION}:SCALE"), cloud.scales.numpy(), rtol=1e-6)
    np.testing.assert_allclose(read(f"{EXTENSION}:OPACITY"), cloud.opacities.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(read(f"{EXTENSION}:SH_DEGREE_0_COEF_0"), cloud.sh_dc.numpy())
    np.testing.assert_array_equal(read(f"{EXTENSION}:SH_DEGREE_1_COEF_0"), cloud.sh_rest[:, 0].numpy())
    np.testing.assert_array_equal(read(f"{EXTENSION}:SH_DEGREE_2_COEF_4"), cloud.sh_rest[:, 7].numpy())


def test_unknown_output_format_is_one_line_exit_2(tmp_path):
    with pytest.raises(InputError, match=r"\.ply, \.splat, \.spz or \.glb"):
        cloud_format(tmp_path / "x.obj")
    out = subprocess.run(
        [sys.executable, "-m", "progs", "decode", "missing.progs", "--out", "x.obj"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "x.obj" in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "x.obj").exists()


# ------------------------------------------------------------------------------- any 3DGS PLY in
def _foreign_ply(path, cloud: GaussianCloud, extra: bool = True) -> None:
    """A degree-3 PLY as other tools write it: no normals, properties shuffled, some float64, extras."""
    n, k = len(cloud), cloud.sh_rest.shape[1]
    cols = {"x": cloud.means[:, 0], "y": cloud.means[:, 1], "z": cloud.means[:, 2], "opacity": cloud.opacity_logits}
    cols.update({f"f_dc_{c}": cloud.sh_dc[:, c] for c in range(3)})
    rest = cloud.sh_rest.transpose(1, 2).reshape(n, 3 * k)
    cols.update({f"f_rest_{i}": rest[:, i] for i in range(3 * k)})
    cols.update({f"scale_{i}": cloud.log_scales[:, i] for i in range(3)})
    cols.update({f"rot_{i}": cloud.quats[:, i] for i in range(4)})
    names = list(cols)
    np.random.default_rng(1).shuffle(names)
    dtype = [(nm, "f8" if nm in ("x", "opacity") else "f4") for nm in names]
    if extra:
        dtype += [("red", "u1"), ("segment_id", "i4")]
    arr = np.zeros(n, dtype=dtype)
    for nm in names:
        arr[nm] = cols[nm].numpy()
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


def test_reads_a_foreign_degree3_ply_without_normals_in_any_order(tmp_path):
    cloud = random_cloud(120, 3)
    _foreign_ply(tmp_path / "f.ply", cloud)
    got = read_ply(tmp_path / "f.ply")
    assert got.sh_degree == 3 and len(got) == 120
    for name in ("means", "sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats"):
        torch.testing.assert_close(getattr(got, name), getattr(cloud, name))


def test_compressed_playcanvas_ply_is_refused_in_one_line(tmp_path):
    chunk = np.zeros(1, dtype=[(p, "f4") for p in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")])
    vert = np.zeros(
        4, dtype=[(p, "u4") for p in ("packed_position", "packed_rotation", "packed_scale", "packed_color")]
    )
    path = tmp_path / "scene.compressed.ply"
    PlyData([PlyElement.describe(chunk, "chunk"), PlyElement.describe(vert, "vertex")]).write(str(path))
    with pytest.raises(InputError, match="compressed PlayCanvas"):
        read_ply(path)
    out = subprocess.run(
        [sys.executable, "-m", "progs", "render", str(path), "--out", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "compressed" in out.stderr


def test_teacher_views_use_the_sh_colours():
    from progs.io.teacher import scene_from_cloud

    cloud = random_cloud(300, 3, seed=2)
    cloud.opacity_logits += 3
    cloud.sh_rest *= 5  # strongly view-dependent
    flat = GaussianCloud(
        cloud.means, cloud.sh_dc, cloud.sh_rest[:, :0], cloud.opacity_logits, cloud.log_scales, cloud.quats
    )
    a = scene_from_cloud(cloud, views=8, size=32)
    b = scene_from_cloud(flat, views=8, size=32)
    diff = max(float((va.image - vb.image).abs().mean()) for va, vb in zip(a.views, b.views))
    assert diff > 0.02


@pytest.mark.slow
def test_fit_runs_on_a_foreign_degree3_ply(tmp_path):
    cloud = random_cloud(300, 3, seed=3)
    cloud.opacity_logits += 2
    cloud.log_scales += 1.5
    _foreign_ply(tmp_path / "foreign.ply", cloud)
    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                str(tmp_path / "foreign.ply"),
                "--out",
                str(run),
                "--views",
                "12",
                "--size",
                "24",
                "--iterations",
                "10",
                "--checkpoint-every",
                "10",
                "--eval-size",
                "32",
            ]
        )
        == 0
    )
    assert (run / "checkpoint.pt").is_file()
    # The anchor set is sized from the teacher: growth capped at half of its 300 Gaussians (they carry
    # SH degree 3: view-dependent colour) but at most one anchor per 5.4 pixels of a 24² teacher view,
    # initial anchors at the finest level that fills at most half of that.
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["growth"]["max_anchors"] == min(150, int(24 * 24 / 5.4)) == 106
    assert 1 <= config["init_level"] < config["levels"]


def test_teacher_sizing_rules():
    from progs.presets import MIN_TEACHER_ANCHORS, teacher_anchor_budget, teacher_init_level, teacher_levels

    assert teacher_anchor_budget(6242) == 1560 and teacher_anchor_budget(100) == MIN_TEACHER_ANCHORS
    assert teacher_anchor_budget(6242, per_gaussian=0.5) == 3121
    # view-dependent colour (SH degree >= 1) doubles the share: playbot LoD 4's 8,406 SH-2 Gaussians
    assert teacher_anchor_budget(8406, sh_degree=2) == 4203 and teacher_anchor_budget(8406, sh_degree=0) == 2102
    assert teacher_init_level([20, 150, 700, 3000, 6000], budget=1560) == 3  # 700 <= 780 < 3000
    assert teacher_init_level([900, 2000], budget=1560) == 1  # even level 1 is over half: start there
    # levels: one past the first whose cells reach the budget (the demo PLY's counts at base depth 4)
    assert teacher_levels([408, 2008, 6591, 12800], budget=1560) == 3
    assert teacher_levels([408, 2008, 6591, 12800], budget=3000) == 4
    assert teacher_levels([408, 2008, 6591, 12800], budget=20000) == 4  # never reached: all of them
    assert teacher_levels([5000, 9000, 12000], budget=1000) == 2  # at least two levels


def test_fit_max_anchors_option(tmp_path, capsys):
    cloud = random_cloud(200, 0, seed=4)
    _foreign_ply(tmp_path / "t.ply", cloud)
    run = tmp_path / "run"
    args = ["fit", str(tmp_path / "t.ply"), "--views", "6", "--size", "16", "--iterations", "2", "--eval-size", "0"]
    assert main([*args, "--out", str(run), "--max-anchors", "500"]) == 0
    assert json.loads((run / "run.json").read_text())["config"]["growth"]["max_anchors"] == 500
    assert "at most 500 anchors (--max-anchors)" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "bad"), "--max-anchors", "0"]) == 2
    assert not (tmp_path / "bad").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-anchors" in err, err


def test_fit_splats_from_python(tmp_path):
    """progs.fit_splats is `progs fit` without the command line: same sizing, same run folder."""
    import progs

    cloud = random_cloud(200, 1, seed=5)
    _foreign_ply(tmp_path / "t.ply", cloud)
    lines: list[str] = []
    out = progs.fit_splats(
        tmp_path / "t.ply", tmp_path / "run", size=16, views=6, iterations=2, eval_size=24, log=lines.append
    )
    assert out.teacher_size == 16 and out.iterations == 2
    assert [row["lod"] for row in out.viewer_lods] == list(range(1, len(out.viewer_lods) + 1))
    assert all(row["psnr"] > 0 for row in out.viewer_lods)
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    from progs.presets import MIN_TEACHER_ANCHORS

    # half of 200 SH-1 Gaussians, at most one per 5.4 pixels of a 16² view, at least the minimum budget
    assert config["growth"]["max_anchors"] == max(MIN_TEACHER_ANCHORS, min(100, int(16 * 16 / 5.4)))
    assert any("anchors" in line and "octree levels" in line for line in lines)
