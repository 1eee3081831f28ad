"""The command line as a user meets it: help, render, demo, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData, PlyElement

from progs.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "progs", *args], capture_output=True, text=True, timeout=600)


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("demo", "render", "info"):
        assert cmd in out.stdout


def _write_plyfile_scene(path: Path, n: int = 400) -> None:
    """A 3DGS PLY written with plyfile directly (not by progs): a coloured blob of Gaussians."""
    rng = np.random.default_rng(0)
    props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    arr = np.zeros(n, dtype=[(p, "f4") for p in props])
    xyz = rng.normal(0, 0.5, (n, 3))
    arr["x"], arr["y"], arr["z"] = xyz.T
    arr["f_dc_0"] = 1.5  # reddish
    arr["f_dc_1"] = -1.0
    arr["f_dc_2"] = -1.0
    arr["opacity"] = 2.0
    arr["scale_0"] = arr["scale_1"] = arr["scale_2"] = np.log(0.08)
    arr["rot_0"] = 1.0
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


def test_render_a_ply_written_by_plyfile(tmp_path):
    ply = tmp_path / "blob.ply"
    _write_plyfile_scene(ply)
    png = tmp_path / "blob.png"
    assert main(["render", str(ply), "--out", str(png), "--width", "96", "--height", "80"]) == 0
    img = np.asarray(Image.open(png)).astype(np.float32) / 255
    assert img.shape == (80, 96, 3)
    centre = img[30:50, 38:58]
    # the blob is framed in the middle, red dominates there, and the corners stay background (black)
    assert centre[..., 0].mean() > 0.5 and centre[..., 0].mean() > 2 * centre[..., 1].mean()
    assert img[:5, :5].max() < 0.05


def test_render_with_camera_from_dataset(tmp_path):
    ply = tmp_path / "blob.ply"
    _write_plyfile_scene(ply)
    png = tmp_path / "v.png"
    assert main(["render", str(ply), "--out", str(png), "--camera-from", "demo", "--view", "2", "--width", "64"]) == 0
    assert Image.open(png).size == (64, 64)


def test_demo_writes_contact_sheet_and_ply(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--views", "12", "--size", "48"]) == 0
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] >= 4 * 48
    arr = np.asarray(sheet).astype(np.float32)
    assert arr.std() > 10  # not a blank sheet
    assert (out / "demo_scene.ply").stat().st_size > 100_000


@pytest.mark.parametrize(
    "args, needle",
    [
        (["render", "missing.ply", "--out", "x.png"], "missing.ply"),
        (["info", "missing.progs"], "missing.progs"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, needle):
    out = subprocess.run([sys.executable, "-m", "progs", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


def test_not_a_ply_gives_one_line(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"this is not a ply file at all")
    out = run_cli("render", str(bad), "--out", str(tmp_path / "x.png"))
    assert out.returncode == 2 and str(bad) in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.png").exists()
