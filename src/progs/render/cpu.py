"""The C++/OpenMP compositing kernel (``csrc/rasterize.cpp``): JIT build, availability and autograd.

The kernel is built lazily on first use with ``torch.utils.cpp_extension.load`` (``-O3 -fopenmp``)
into ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/progs/torch_extensions``, in a subfolder per Python and
torch version; torch's file baton serialises concurrent builds and later imports load the cached
library without compiling. If the build fails, :func:`kernel_available` warns once and returns
False, and callers fall back to the pure-PyTorch reference. ``PROGS_DISABLE_CPU_KERNEL=1`` turns the
kernel off without a warning.

:func:`composite` has the signature and the exact semantics of
:func:`progs.render.reference.composite_reference`; it accepts float32 (the fast path) and float64.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from progs.render.projection import ALPHA_MAX, ALPHA_MIN, T_MIN, TILE_SIZE

__all__ = ["kernel_available", "composite", "load_kernel", "build_directory"]

_EXT_NAME = "progs_rasterize"
_SOURCE = Path(__file__).resolve().parent / "csrc" / "rasterize.cpp"
_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "module": None, "error": None}


def build_directory() -> Path:
    """Where the compiled kernel is cached (created on demand)."""
    base = os.environ.get("TORCH_EXTENSIONS_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "progs" / "torch_extensions"
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}_torch{torch.__version__.replace('+', '_')}"
    return root / tag / _EXT_NAME


def load_kernel() -> ModuleType | None:
    """Build (first time) or load the extension; None if that fails. Never raises."""
    with _lock:
        if _state["tried"]:
            return _state["module"]
        _state["tried"] = True
        if os.environ.get("PROGS_DISABLE_CPU_KERNEL", "") not in ("", "0"):
            _state["error"] = "disabled by PROGS_DISABLE_CPU_KERNEL"
            return None
        try:
            from torch.utils.cpp_extension import load

            build_dir = build_directory()
            build_dir.mkdir(parents=True, exist_ok=True)
            module = load(
                name=_EXT_NAME,
                sources=[str(_SOURCE)],
                extra_cflags=["-O3", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                verbose=False,
            )
            _state["module"] = module
        except BaseException as exc:  # noqa: BLE001 - a failed build must never crash progs
            if isinstance(exc, KeyboardInterrupt):
                raise
            msg = str(exc).strip().splitlines()
            short = msg[-1] if msg else type(exc).__name__
            _state["error"] = f"{type(exc).__name__}: {short}"
            warnings.warn(
                "progs: the C++ CPU rasterizer could not be built "
                f"({_state['error']}); falling back to the slow pure-PyTorch reference renderer",
                RuntimeWarning,
                stacklevel=3,
            )
        return _state["module"]


def kernel_available() -> bool:
    """Whether the C++ kernel can be used (builds it on the first call; warns once on failure)."""
    return load_kernel() is not None


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        means2d: torch.Tensor,
        conics: torch.Tensor,
        colors: torch.Tensor,
        opacities: torch.Tensor,
        background: torch.Tensor,
        depths: torch.Tensor,
        radii: torch.Tensor,
        width: int,
        height: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ext = load_kernel()
        assert ext is not None
        image, alpha, t_final, last, tile_offsets, ids, slots, goff = ext.forward(
            means2d, conics, colors, opacities, depths, radii, background,
            width, height, TILE_SIZE, ALPHA_MAX, ALPHA_MIN, T_MIN,
        )
        ctx.save_for_backward(
            means2d, conics, colors, opacities, background, t_final, last, tile_offsets, ids, slots, goff
        )
        ctx.size = (width, height)
        return image, alpha

    @staticmethod
    def backward(ctx: Any, v_image: torch.Tensor | None, v_alpha: torch.Tensor | None):  # type: ignore[override]
        (means2d, conics, colors, opacities, background, t_final, last, tile_offsets, ids, slots, goff) = (
            ctx.saved_tensors
        )
        width, height = ctx.size
        C = colors.shape[1]
        if v_image is None:
            v_image = torch.zeros(height, width, C, dtype=means2d.dtype)
        if v_alpha is None:
            v_alpha = torch.zeros(height, width, 1, dtype=means2d.dtype)
        v_image = v_image.to(means2d.dtype).contiguous()
        v_alpha = v_alpha.to(means2d.dtype).contiguous()
        v_means2d = v_conics = v_colors = v_opac = v_bg = None
        if any(ctx.needs_input_grad[:4]):
            ext = load_kernel()
            assert ext is not None
            v_means2d, v_conics, v_colors, v_opac = ext.backward(
                means2d, conics, colors, opacities, background, v_image, v_alpha, t_final, last,
                tile_offsets, ids, slots, goff, width, height, TILE_SIZE, ALPHA_MAX, ALPHA_MIN, T_MIN,
            )
        if ctx.needs_input_grad[4]:
            v_bg = (v_image * t_final[..., None]).sum(dim=(0, 1))
        return v_means2d, v_conics, v_colors, v_opac, v_bg, None, None, None, None


def composite(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    radii: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians into an image [H, W, C] and alpha [H, W, 1] with the C++ kernel.

    Same arguments and semantics as :func:`progs.render.reference.composite_reference`; differentiable
    w.r.t. means2d, conics, colors, opacities and background. Requires :func:`kernel_available`."""
    if load_kernel() is None:
        raise RuntimeError(f"the C++ CPU rasterizer is unavailable ({_state['error']})")
    dtype = torch.float64 if means2d.dtype == torch.float64 else torch.float32
    C = colors.shape[-1]

    def prep(t: torch.Tensor) -> torch.Tensor:
        return t.to(device="cpu", dtype=dtype).contiguous()

    image, alpha = _Composite.apply(
        prep(means2d.reshape(-1, 2)),
        prep(conics.reshape(-1, 3)),
        prep(colors.reshape(-1, C)),
        prep(opacities.reshape(-1)),
        prep(background.reshape(C)),
        prep(depths.detach().reshape(-1)),
        radii.detach().reshape(-1).to(device="cpu", dtype=torch.int32).contiguous(),
        int(width),
        int(height),
    )
    return image, alpha
