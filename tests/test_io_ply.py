"""3DGS PLY and point-cloud PLY reading/writing (progs.io.ply)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from progs.errors import InputError
from progs.io.ply import SH_C0, GaussianCloud, read_ply, read_points_ply, write_ply


def random_cloud(n: int, degree: int, seed: int = 0) -> GaussianCloud:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    cloud = GaussianCloud(
        means=torch.randn(n, 3, generator=g) * 3,
        sh_dc=torch.randn(n, 3, generator=g),
        sh_rest=torch.randn(n, k, 3, generator=g) * 0.1,
        opacity_logits=torch.randn(n, generator=g),
        log_scales=torch.randn(n, 3, generator=g) - 4,
        quats=torch.randn(n, 4, generator=g),
    )
    # Awkward bit patterns survive too: negative zero, a subnormal, the largest float32.
    cloud.means[0, 0] = -0.0
    cloud.sh_dc[0, 1] = float(np.float32(1e-45))
    cloud.log_scales[0, 2] = float(np.finfo(np.float32).max)
    return cloud


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def assert_bitwise_equal(a: GaussianCloud, b: GaussianCloud) -> None:
    for name in ("means", "sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == torch.float32, name
        assert x.shape == y.shape, name
        assert torch.equal(bits(x), bits(y)), name


def assert_input_error(path, fn, *args, match: str | None = None) -> str:
    with pytest.raises(InputError) as info:
        fn(path, *args)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg
    if match is not None:
        assert match in msg, msg
    return msg


# -- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact(tmp_path, degree):
    cloud = random_cloud(257, degree, seed=degree)
    p = tmp_path / "c.ply"
    write_ply(p, cloud)
    back = read_ply(p)
    assert len(back) == 257 and back.sh_degree == degree
    assert_bitwise_equal(cloud, back)
    # Writing what we read gives the same bytes.
    p2 = tmp_path / "c2.ply"
    write_ply(p2, back)
    assert p.read_bytes() == p2.read_bytes()


def test_written_file_is_inria_layout(tmp_path):
    cloud = random_cloud(5, 3)
    p = tmp_path / "c.ply"
    write_ply(p, cloud)
    head = p.read_bytes()[:4000].split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in head
    assert "element vertex 5" in head
    names = [line.split()[-1] for line in head.splitlines() if line.startswith("property")]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(f"property float {n}" in head for n in names)
    ply = PlyData.read(str(p))
    v = ply["vertex"]
    # Channel-major: f_rest_{c*15 + k} is coefficient k of channel c.
    for c in range(3):
        for k in (0, 7, 14):
            assert np.float32(v[f"f_rest_{c * 15 + k}"][2]) == cloud.sh_rest[2, k, c].item()
    assert np.all(v["nx"] == 0)


def test_reads_ply_written_directly_by_plyfile(tmp_path):
    """A file not made by our writer: different property order, degree 1, ascii and big-endian."""
    n, k = 6, 3
    rng = np.random.default_rng(1)
    vals = {
        name: rng.standard_normal(n).astype(np.float32)
        for name in [
            "x",
            "y",
            "z",
            "f_dc_0",
            "f_dc_1",
            "f_dc_2",
            "opacity",
            "scale_0",
            "scale_1",
            "scale_2",
            "rot_0",
            "rot_1",
            "rot_2",
            "rot_3",
        ]
        + [f"f_rest_{i}" for i in range(3 * k)]
    }
    order = (
        ["rot_0", "rot_1", "rot_2", "rot_3", "opacity", "x", "y", "z"]
        + [f"f_rest_{i}" for i in range(3 * k)]
        + ["scale_0", "scale_1", "scale_2", "f_dc_0", "f_dc_1", "f_dc_2"]
    )
    arr = np.empty(n, dtype=[(name, "f4") for name in order])
    for name in order:
        arr[name] = vals[name]
    for text, byte_order in ((False, ">"), (True, "=")):
        p = tmp_path / f"ext_{text}.ply"
        PlyData([PlyElement.describe(arr, "vertex")], text=text, byte_order=byte_order).write(str(p))
        cloud = read_ply(p)
        assert cloud.sh_degree == 1 and len(cloud) == n
        assert np.array_equal(cloud.means.numpy(), np.stack([vals["x"], vals["y"], vals["z"]], 1))
        assert np.array_equal(cloud.quats[:, 0].numpy(), vals["rot_0"])
        assert np.array_equal(cloud.opacity_logits.numpy(), vals["opacity"])
        for c in range(3):
            for j in range(k):
                assert np.array_equal(cloud.sh_rest[:, j, c].numpy(), vals[f"f_rest_{c * k + j}"])
        assert torch.allclose(cloud.colors, (0.5 + SH_C0 * cloud.sh_dc).clamp_min(0))
        assert torch.allclose(cloud.opacities, torch.sigmoid(torch.from_numpy(vals["opacity"])))
        assert torch.allclose(cloud.scales[:, 1], torch.exp(torch.from_numpy(vals["scale_1"])))


def test_point_cloud_ply(tmp_path):
    n = 10
    arr = np.empty(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    arr["x"], arr["y"], arr["z"] = np.arange(n), 2 * np.arange(n), -np.arange(n)
    arr["red"], arr["green"], arr["blue"] = 255, 0, np.arange(n) * 20
    p = tmp_path / "points3D.ply"
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(p))
    pts, cols = read_points_ply(p)
    assert pts.shape == (n, 3) and cols.shape == (n, 3)
    assert pts.dtype == cols.dtype == torch.float32
    assert torch.equal(pts[:, 1], 2 * torch.arange(n, dtype=torch.float32))
    assert torch.allclose(cols[:, 0], torch.ones(n)) and torch.allclose(cols[3, 2], torch.tensor(60 / 255))
    # A point cloud is not a 3DGS PLY, and the error says what to use instead.
    msg = assert_input_error(p, read_ply, match="read_points_ply")
    assert "opacity" in msg
    # A 3DGS PLY can be read as points (colours from f_dc).
    g = tmp_path / "g.ply"
    cloud = random_cloud(4, 0)
    write_ply(g, cloud)
    pts, cols = read_points_ply(g)
    assert torch.equal(pts, cloud.means) and torch.allclose(cols, cloud.colors.clamp(0, 1))


def test_write_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "c.ply"
    write_ply(p, random_cloud(3, 0))
    before = p.read_bytes()

    def broken_write(self, stream):
        stream.write(b"ply\nformat binary_little_endian 1.0\n")  # half a file, then a crash
        raise RuntimeError("disk full")

    monkeypatch.setattr(PlyData, "write", broken_write)
    with pytest.raises(RuntimeError):
        write_ply(p, random_cloud(50, 3))
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.ply"]  # no temp file left behind


def test_cloud_shape_checks():
    with pytest.raises(ValueError):
        GaussianCloud(
            torch.zeros(2, 3),
            torch.zeros(2, 3),
            torch.zeros(2, 4, 3),
            torch.zeros(2),
            torch.zeros(2, 3),
            torch.zeros(2, 4),
        )
    with pytest.raises(ValueError):
        GaussianCloud(
            torch.zeros(2, 3),
            torch.zeros(3, 3),
            torch.zeros(2, 0, 3),
            torch.zeros(2),
            torch.zeros(2, 3),
            torch.zeros(2, 4),
        )


# -- malformed input ---------------------------------------------------------------------------------


def _inria_header(n: int, n_rest: int = 0, fmt: str = "binary_little_endian") -> bytes:
    names = (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(n_rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    lines = (
        ["ply", f"format {fmt} 1.0", f"element vertex {n}"] + [f"property float {p}" for p in names] + ["end_header"]
    )
    return ("\n".join(lines) + "\n").encode()


def test_missing_file(tmp_path):
    assert_input_error(tmp_path / "nope.ply", read_ply, match="not found")
    assert_input_error(tmp_path / "nope.ply", read_points_ply)
    assert_input_error(tmp_path, read_ply)  # a folder


def test_not_a_ply(tmp_path):
    p = tmp_path / "junk.ply"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert_input_error(p, read_ply)
    p.write_bytes(b"")
    assert_input_error(p, read_ply)
    p.write_text("ply\nformat ascii 1.0\nelement vertex x\nend_header\n")
    assert_input_error(p, read_ply)


def test_missing_property(tmp_path):
    cloud = random_cloud(4, 0)
    p = tmp_path / "c.ply"
    write_ply(p, cloud)
    v = PlyData.read(str(p))["vertex"].data
    keep = [n for n in v.dtype.names if n != "opacity"]
    arr = np.empty(len(v), dtype=[(n, "f4") for n in keep])
    for n in keep:
        arr[n] = v[n]
    q = tmp_path / "no_opacity.ply"
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(q))
    assert_input_error(q, read_ply, match="opacity")


def test_wrong_number_of_sh_coefficients(tmp_path):
    p = tmp_path / "sh5.ply"
    p.write_bytes(_inria_header(2, n_rest=5) + b"\0" * (2 * 4 * (17 + 5)))
    assert_input_error(p, read_ply, match="f_rest")


def test_zero_vertices(tmp_path):
    p = tmp_path / "empty.ply"
    p.write_bytes(_inria_header(0))
    assert_input_error(p, read_ply, match="zero vertices")
    assert_input_error(p, read_points_ply, match="zero vertices")


def test_no_vertex_element(tmp_path):
    p = tmp_path / "faces.ply"
    p.write_bytes(
        b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n3 0 1 2\n"
    )
    assert_input_error(p, read_ply, match="vertex")


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_absurd_vertex_count(tmp_path, fmt):
    p = tmp_path / f"huge_{fmt}.ply"
    p.write_bytes(_inria_header(10**12, fmt=fmt) + b"\0" * 4 * 17 * 3)
    assert_input_error(p, read_ply, match="1000000000000")


def test_truncated_binary(tmp_path):
    p = tmp_path / "c.ply"
    write_ply(p, random_cloud(100, 3))
    data = p.read_bytes()
    for cut in (len(data) - 1, len(data) - 700, len(data) // 2, 30):
        q = tmp_path / f"cut{cut}.ply"
        q.write_bytes(data[:cut])
        assert_input_error(q, read_ply)


def test_nan_values(tmp_path):
    p = tmp_path / "nan.ply"
    row = [0.0] * 17
    row[1] = float("nan")
    p.write_bytes(_inria_header(2) + struct.pack("<17f", *([1.0] * 17)) + struct.pack("<17f", *row))
    assert_input_error(p, read_ply, match="NaN")


def test_read_points_missing_coordinates(tmp_path):
    arr = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("red", "u1")])
    p = tmp_path / "xy.ply"
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(p))
    assert_input_error(p, read_points_ply, match="z")
