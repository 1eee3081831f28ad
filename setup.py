"""Builds progs' C++ kernels (src/progs/csrc) into the package as ``progs._kernels`` when it is installed.

Everything else about the package is in pyproject.toml. The kernels are compiled against the torch
that is installed, so install torch first and build without isolation (scripts/setup_env.sh does)::

    pip install torch==2.13.0 && pip install --no-build-isolation .

With build isolation (a plain ``pip install .``) torch is not there to build against, and without a
C++ compiler the build fails: either way the package installs without the prebuilt module, and
progs compiles the kernels on first use where it can, or uses its pure-PyTorch paths
(``progs.kernels``). ``PROGS_NO_KERNEL_BUILD=1`` skips the build.

The web player that ``progs serve`` and ``progs view`` serve (``src/progs/stream/player``) is built
from ``web/`` with npm when a non-editable install does not find it built yet and npm is there
(Node 20+; ``npm ci`` fetches its packages from the registry); without npm the package installs
without it and those commands say how to build it. ``PROGS_NO_PLAYER_BUILD=1`` skips that build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CSRC = "src/progs/csrc"
PLAYER = ROOT / "src/progs/stream/player/player.html"


def _note(msg: str) -> None:
    print(f"progs: {msg}", file=sys.stderr)


def _kernel_build() -> dict:
    """``ext_modules`` and ``cmdclass`` for the kernels, or nothing when they cannot be built here."""
    if os.environ.get("PROGS_NO_KERNEL_BUILD", "") not in ("", "0"):
        return {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        _note(
            "torch is not installed where the package is built, so the C++ kernels are not prebuilt "
            "(install torch, then `pip install --no-build-isolation .`); they are compiled on first use instead"
        )
        return {}
    # progs/kernels.py names the sources and flags and the digest the loader checks; it needs only torch
    spec = importlib.util.spec_from_file_location("_progs_kernels_setup", ROOT / "src/progs/kernels.py")
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    cflags, ldflags = kernels.compile_flags()

    class OptionalBuildExtension(BuildExtension):
        """A failed kernel build (no compiler, say) leaves the package without them instead of failing."""

        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any build failure leaves the fallback in place
                lines = str(exc).strip().splitlines()
                _note(
                    f"the C++ kernels could not be built ({type(exc).__name__}: {lines[-1] if lines else ''}); "
                    "progs compiles them on first use where it can, or uses its pure-PyTorch paths"
                )
                self.extensions = []

    sources = [os.path.relpath(p, ROOT) for p in kernels._SOURCES]
    ext = CppExtension(
        "progs._kernels",
        sources,
        # -g0: no debug information (Python's own flags ask for it: 26 MB instead of 0.6 MB; same code)
        extra_compile_args=[*cflags, "-g0", f"-DPROGS_BUILD_DIGEST=0x{kernels.build_digest():016x}ULL"],
        extra_link_args=ldflags,
        depends=[os.path.relpath(p, ROOT) for p in kernels._HEADERS],
    )
    return {"ext_modules": [ext], "cmdclass": {"build_ext": OptionalBuildExtension}}


def _build_player() -> None:
    """``npm ci && npm run build`` in web/, which writes the player into src/progs/stream/player; a
    failure leaves the package without the player (a note says so) instead of failing the install."""
    if os.environ.get("PROGS_NO_PLAYER_BUILD", "") not in ("", "0") or PLAYER.is_file():
        return
    if not (ROOT / "web" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    hint = "progs serve and progs view need it: `cd web && npm ci && npm run build`, then install progs again"
    if npm is None:
        _note(f"npm (Node.js 20+) not found, so the web player is not built; {hint}")
        return
    _note("building the web player (npm ci && npm run build in web/)")
    try:
        for step in (["ci", "--no-audit", "--no-fund", "--loglevel=error"], ["run", "--silent", "build"]):
            subprocess.run([npm, *step], cwd=ROOT / "web", check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        _note(f"the web player could not be built ({exc}); {hint}")


class BuildPyWithPlayer(build_py):
    """build_py that first builds the web player into the package when it is missing (not for an
    editable install, which serves src/ itself: `npm run build` there is enough)."""

    def run(self) -> None:
        if not self.editable_mode:
            _build_player()
        super().run()


options = _kernel_build()
options["cmdclass"] = {**options.get("cmdclass", {}), "build_py": BuildPyWithPlayer}
setup(**options)
