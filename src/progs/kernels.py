"""progs' C++ kernels (``csrc/``): one extension module, built when the package is installed.

It holds the CPU rasterizer's compositing (``forward``/``backward``, used by
``progs.render.cpu``), the context model's exact hash-grid interpolation
(``hashgrid_features``, used by ``progs.model.context`` when coding) and the training loss's fused
SSIM (``ssim_forward``/``ssim_backward``, used by ``progs.train.losses``). Flags: ``-O3 -march=native
-fopenmp -ffp-contract=off``: vector instructions of this CPU, but no fused multiply-add and no
reassociation, so float64 results are the same on every CPU.

:func:`load_kernel` looks in this order:

1. the prebuilt module ``progs._kernels``, compiled by ``pip install`` (``setup.py``), used when
   it was built from these sources, with this torch and for this CPU (:func:`build_digest`);
2. otherwise (no compiler at install, an install with build isolation, sources edited since) a
   build with ``torch.utils.cpp_extension.load`` into ``$TORCH_EXTENSIONS_DIR`` or
   ``~/.cache/progs/torch_extensions``, in a subfolder per install (the package's folder), Python
   version, torch version and CPU instruction set, so two installs never rebuild each other's;
   torch's file baton serialises concurrent builds and later imports load the cached library;
3. if that fails too, it warns once and returns None, and callers fall back to their pure-PyTorch
   paths (same results, slower).

``PROGS_DISABLE_CPU_KERNEL=1`` turns the kernels off without a warning. :func:`kernel_origin` says
which of them is in use.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

__all__ = [
    "load_kernel",
    "kernel_available",
    "kernel_origin",
    "build_directory",
    "build_digest",
    "compile_flags",
    "kernel_error",
]

_EXT_NAME = "progs_kernels"  # the module built on first use
_PREBUILT = "progs._kernels"  # the module setup.py builds at install
_CSRC = Path(__file__).resolve().parent / "csrc"
_SOURCES = [
    _CSRC / "bindings.cpp",
    _CSRC / "rasterize.cpp",
    _CSRC / "context_exact.cpp",
    _CSRC / "visibility.cpp",
    _CSRC / "ssim.cpp",
]
_HEADERS = [_CSRC / "kernels.h"]
_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "module": None, "error": None, "origin": None}


def _cpu_tag() -> str:
    """A short fingerprint of this CPU's instruction set: the kernels are built with -march=native,
    so a cache shared between machines (a network home directory) must not mix their builds."""
    flags = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags += line
                break
    except OSError:
        flags += platform.processor()
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def build_directory() -> Path:
    """Where the compiled kernels are cached (created on demand)."""
    base = os.environ.get("TORCH_EXTENSIONS_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "progs" / "torch_extensions"
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}_torch{torch.__version__.replace('+', '_')}_cpu{_cpu_tag()}"
    install = hashlib.sha1(str(_CSRC).encode()).hexdigest()[:8]  # this install's own sources
    return root / f"{tag}_install{install}" / _EXT_NAME


def _headers_hash() -> str:
    h = hashlib.sha1()
    for p in _HEADERS:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def compile_flags() -> tuple[list[str], list[str]]:
    """``(compile flags, link flags)`` of the kernels, for both builds (install and first use)."""
    return ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off"], ["-fopenmp"]


def build_digest() -> int | None:
    """What a prebuilt module must have been built from to be used here: 64 bits of a hash of the
    sources, the flags, the torch version and this CPU's instruction set (the flags say -march=native).
    ``setup.py`` compiles it into the module; None if the sources cannot be read."""
    h = hashlib.sha1()
    try:
        for p in [*_SOURCES, *_HEADERS]:
            h.update(Path(p).name.encode() + b"\0" + Path(p).read_bytes())
    except OSError:
        return None
    cflags, ldflags = compile_flags()
    h.update(" ".join([*cflags, *ldflags, torch.__version__, _cpu_tag()]).encode())
    return int(h.hexdigest()[:16], 16)


def _prebuilt() -> ModuleType | None:
    """The module ``pip install`` built, if it is there and was built for these sources, torch and CPU."""
    want = build_digest()
    if want is None:
        return None
    try:
        module = importlib.import_module(_PREBUILT)
    except (ImportError, OSError):  # not built, or built against another torch (its symbols are missing)
        return None
    return module if getattr(module, "build_digest", None) == want else None


def load_kernel() -> ModuleType | None:
    """Build (first time) or load the extension; None if that fails. Never raises."""
    with _lock:
        if _state["tried"]:
            return _state["module"]
        _state["tried"] = True
        if os.environ.get("PROGS_DISABLE_CPU_KERNEL", "") not in ("", "0"):
            _state["error"] = "disabled by PROGS_DISABLE_CPU_KERNEL"
            return None
        module = _prebuilt()
        if module is not None:
            _state.update(module=module, origin="prebuilt")
            return module
        try:
            from torch.utils.cpp_extension import load

            build_dir = build_directory()
            build_dir.mkdir(parents=True, exist_ok=True)
            cflags, ldflags = compile_flags()
            module = load(
                name=_EXT_NAME,
                sources=[str(s) for s in _SOURCES],
                # the header's hash in the flags: torch rebuilds when sources or flags change
                extra_cflags=[*cflags, f"-DPROGS_HEADERS_HASH=0x{_headers_hash()}"],
                extra_ldflags=ldflags,
                build_directory=str(build_dir),
                verbose=False,
            )
            _state.update(origin="built on first use")
            _state["module"] = module
        except BaseException as exc:  # noqa: BLE001 - a failed build must never crash progs
            if isinstance(exc, KeyboardInterrupt):
                raise
            msg = str(exc).strip().splitlines()
            short = msg[-1] if msg else type(exc).__name__
            _state["error"] = f"{type(exc).__name__}: {short}"
            warnings.warn(
                "progs: the C++ kernels could not be built "
                f"({_state['error']}); falling back to the slow pure-PyTorch paths "
                "(reference rasterizer, PyTorch hash grid)",
                RuntimeWarning,
                stacklevel=3,
            )
        return _state["module"]


def kernel_available() -> bool:
    """Whether the C++ kernels can be used (builds them on the first call; warns once on failure)."""
    return load_kernel() is not None


def kernel_origin() -> str | None:
    """Which kernels are in use: ``"prebuilt"`` (built at install), ``"built on first use"``, or None
    (not loaded: unavailable, or not tried yet)."""
    return _state["origin"]


def kernel_error() -> str | None:
    """Why the kernels are unavailable (None if they loaded or were not tried yet)."""
    return _state["error"]
