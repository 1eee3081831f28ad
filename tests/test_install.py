"""What a plain ``pip install .`` (no extras) can do: import progs and decode a stream; what needs an
extra says which one in one line. The extras' packages are hidden from a subprocess by an import hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from progs.codec.stream import encode
from test_codec import _random_model

EXTRAS_PACKAGES = ("aiohttp", "matplotlib", "cv2", "gsply", "pygltflib", "zstandard", "gsplat")

_WITHOUT_EXTRAS = f"""
import sys

class HideExtras:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_PACKAGES!r}:
            raise ImportError(f"No module named {{name!r}} (hidden by the test)")
        return None

sys.meta_path.insert(0, HideExtras())
from progs.cli import main
code = main(sys.argv[1:])
hidden = sorted(m for m in sys.modules if m.split(".")[0] in {EXTRAS_PACKAGES!r})
assert not hidden, hidden
sys.exit(code)
"""


def _progs_without_extras(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    path = tmp_path_factory.mktemp("install") / "scene.progs"
    model, _ = _random_model(200)
    path.write_bytes(encode(model, background=torch.zeros(3)).data)
    return path


def test_decode_and_info_need_no_extra(stream, tmp_path):
    out = _progs_without_extras("decode", str(stream), "--lod", "2", "--distill", "0", "--out", str(tmp_path / "x.ply"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "x.ply").stat().st_size > 0
    out = _progs_without_extras("info", str(stream))
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_demo_needs_no_extra_but_for_its_figure(tmp_path):
    """`pip install .` runs the whole demo; only the figure (matplotlib, [bench]) is left out, with a warning."""
    out = _progs_without_extras(
        "demo", "--out", str(tmp_path), "--views", "8", "--size", "32", "--iterations", "4", "--distill", "0"
    )
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("progs: warning:")]
    assert len(warnings) == 1 and "rd.png" in warnings[0] and "'.[bench]'" in warnings[0], out.stderr
    assert not (tmp_path / "rd.png").exists()
    for name in ("scene.progs", "decoded.ply", "results.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    import json

    lods = json.loads((tmp_path / "scene.progs.json").read_text())["lods"]
    assert all(lod["psnr"] is not None for lod in lods)  # the demo's measurements are in its manifest


@pytest.mark.parametrize(
    "args, extra",
    [
        (["decode", "{stream}", "--distill", "0", "--out", "{tmp}/x.spz"], "export"),
        (["decode", "{stream}", "--distill", "0", "--out", "{tmp}/x.glb"], "export"),
        (["serve", "{tmp}", "--port", "0"], "viewer"),
        (["view", "{stream}", "--port", "0"], "viewer"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(stream, tmp_path, args, extra):
    out = _progs_without_extras(*(a.format(stream=stream, tmp=tmp_path) for a in args))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert f"pip install '.[{extra}]'" in lines[0]


def test_each_install_builds_its_kernels_in_its_own_folder(monkeypatch, tmp_path):
    from progs import kernels

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    here = kernels.build_directory()
    monkeypatch.setattr(kernels, "_CSRC", tmp_path / "another" / "install" / "csrc")
    assert kernels.build_directory() != here and kernels.build_directory().parent.parent == here.parent.parent


def test_a_bare_dataset_name_is_found_under_the_data_root(monkeypatch, tmp_path):
    from progs.errors import InputError
    from progs.io.dataset import DatasetSpec, data_root

    (tmp_path / "garden").mkdir()
    monkeypatch.setenv("PROGS_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    assert data_root() == tmp_path
    assert DatasetSpec.from_argument("garden").path == str((tmp_path / "garden").resolve())
    with pytest.raises(InputError, match=f"also looked for {tmp_path / 'bicycle'}: set the data root"):
        DatasetSpec.from_argument("bicycle")


def _fresh_kernel_state(monkeypatch) -> None:
    from progs import kernels

    monkeypatch.setattr(kernels, "_state", {"tried": False, "module": None, "error": None, "origin": None})
    monkeypatch.delenv("PROGS_DISABLE_CPU_KERNEL", raising=False)


@pytest.mark.skipif(
    shutil.which("c++") is None or os.environ.get("PROGS_NO_KERNEL_BUILD", "") not in ("", "0"),
    reason="installed without a C++ compiler: no prebuilt kernels",
)
def test_the_install_built_the_kernels(monkeypatch):
    """scripts/setup_env.sh installs with the kernels compiled (progs._kernels); progs loads them
    instead of compiling anything."""
    from progs import kernels

    _fresh_kernel_state(monkeypatch)
    monkeypatch.setattr("torch.utils.cpp_extension.load", _no_build)
    assert kernels.load_kernel() is not None, "the package was installed without its kernels (setup.py)"
    assert kernels.kernel_origin() == "prebuilt"
    assert kernels.load_kernel().__name__ == "progs._kernels"


def _no_build(*args, **kwargs):
    raise AssertionError("compiled on first use although the install built the kernels")


def test_kernels_built_for_other_sources_are_not_used(monkeypatch, tmp_path):
    """A prebuilt module whose digest (sources, flags, torch, CPU) differs is skipped: progs compiles
    the kernels on first use (tests/test_render.py: and where that fails, uses PyTorch)."""
    from progs import kernels

    built = []
    _fresh_kernel_state(monkeypatch)
    monkeypatch.setattr(kernels, "build_digest", lambda: 12345)  # sources edited since the install
    monkeypatch.setattr("torch.utils.cpp_extension.load", lambda **kw: built.append(kw["name"]) or "jit module")
    monkeypatch.setattr(kernels, "build_directory", lambda: tmp_path)
    assert kernels.load_kernel() == "jit module" and built == ["progs_kernels"]
    assert kernels.kernel_origin() == "built on first use"
