"""The public API: every name in ``progs.__all__`` resolves, ``import progs`` stays light, and the
README's Python example runs (on a tiny scene, for a few iterations)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import progs
from _tiny_scene import tiny_scene
from conftest import REPO


def test_every_public_name_resolves():
    assert "encode" in progs.__all__ and "decode" in progs.__all__
    assert sorted(progs.__all__) == sorted(["__version__", *progs._WHERE])
    for name in progs.__all__:
        assert getattr(progs, name) is not None, name
    assert set(progs.__all__) <= set(dir(progs))
    with pytest.raises(AttributeError):
        progs.no_such_name  # noqa: B018


def test_import_progs_loads_no_submodule_or_torch():
    code = "import sys, progs; print(sorted(m for m in sys.modules if m.startswith(('progs.', 'torch'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.strip() == "[]"


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    code = _readme_python()
    # The example as a user runs it, on a tiny scene and for a few iterations so that the test is quick.
    assert 'progs.load_scene("demo")' in code and "iterations=600" in code and "iterations=100" in code
    code = code.replace("iterations=600", "iterations=4").replace("iterations=100", "iterations=2")
    monkeypatch.setattr(progs, "load_scene", lambda path: tiny_scene())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "scene.progs").stat().st_size > 0
    cloud = progs.read_ply(tmp_path / "lod2.ply")
    assert len(cloud) > 0
