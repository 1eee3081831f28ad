"""Quality of a model per LoD on a scene's test views (PSNR, SSIM, anchors).

:func:`evaluate_coded` is the honest figure for a trained model: the quality of the model exactly as a
decoder of its stream rebuilds it (attributes quantized with the context model's means and steps,
MLP weights as the header stores them), beside the quality of the unquantized model (``psnr_float``).
"""

from __future__ import annotations

from typing import Any

import torch

from progs.codec.stream import encode
from progs.metrics import psnr, ssim
from progs.model.model import ProGSModel
from progs.scene import Scene, View, scale_views


@torch.no_grad()
def evaluate_lods(
    model: ProGSModel,
    scene: Scene | list[View],
    *,
    lods: list[int] | None = None,
    downscale: float = 1.0,
    background: torch.Tensor | None = None,
    backend: str = "auto",
) -> list[dict[str, Any]]:
    """Per LoD the mean PSNR/SSIM over the test views and the anchor count of that LoD (level ≤ l).

    ``scene`` is a Scene (its test views, downscaled by ``downscale``) or a list of views.
    """
    if isinstance(scene, Scene):
        views = scale_views(scene.test_views or scene.train_views, downscale)
        bg = scene.background if background is None else background
    else:
        views = list(scene)
        bg = background
    lods = lods or list(range(1, model.num_levels + 1))
    rows = []
    for lod in lods:
        ps, ss = [], []
        for v in views:
            out = model.render(v.camera, lod, bg, backend=backend)
            ps.append(psnr(out.image, v.image))
            ss.append(ssim(out.image.clamp(0, 1), v.image))
        rows.append(
            {
                "lod": lod,
                "psnr": sum(ps) / max(1, len(ps)),
                "ssim": sum(ss) / max(1, len(ss)),
                "anchors": int((model.anchors.levels <= lod).sum()),
            }
        )
    return rows


def evaluate_coded(
    model: ProGSModel,
    scene: Scene | list[View],
    *,
    lods: list[int] | None = None,
    background: torch.Tensor | None = None,
    backend: str = "auto",
) -> list[dict[str, Any]]:
    """Per LoD: ``psnr``/``ssim`` of ``model`` as its decoded stream reconstructs it, ``psnr_float``/
    ``ssim_float`` of the unquantized model, and the anchor count. Both are rendered on the model's
    device (the coding itself runs on the CPU)."""
    coded = encode(model).model.to(model.device)
    rows = evaluate_lods(coded, scene, lods=lods, background=background, backend=backend)
    floats = evaluate_lods(model, scene, lods=lods, background=background, backend=backend)
    for r, f in zip(rows, floats):
        r.update({"psnr_float": f["psnr"], "ssim_float": f["ssim"]})
    return rows
