"""ProGSModel: an octree of anchors, the neural-Gaussian generator and the context (entropy) model,
rendered per LoD; its typed state for checkpoints (``to_state`` / ``model_from_state``).

As in CompressAI, the model owns its entropy model (``context``): training, evaluation and the codec
all reach it through the model, and one place builds and restores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from progs.model.anchors import AnchorSet
from progs.model.context import ContextConfig, ContextModel
from progs.model.gaussians import GaussianGenerator, NeuralGaussians
from progs.model.layout import AttributeLayout
from progs.octree import OctreeGrid
from progs.render import rasterize
from progs.scene import Camera

ANCHOR_TENSORS = ("keys", "levels", "feature", "scaling", "offsets")


@dataclass
class RenderOutput:
    image: torch.Tensor  # [H, W, 3]
    alpha: torch.Tensor  # [H, W, 1]
    info: dict[str, Any]  # rasterizer info: means2d (grad retained), radii, ...
    gaussians: NeuralGaussians
    lod: int


class ProGSModel(nn.Module):
    """Anchors (``anchors``) + MLPs (``generator``) + context model (``context``); ``render(camera,
    lod)`` draws LoD ``lod`` (anchors of level ≤ lod only).

    ``view_distance`` is the training cameras' typical distance from the scene centre (None when
    unknown); the view-independent export (:mod:`progs.model.cloud`) looks at anchors from there.
    """

    def __init__(
        self,
        anchors: AnchorSet,
        generator: GaussianGenerator | None = None,
        context: ContextModel | None = None,
        *,
        cull_margin: float = 0.1,
        view_distance: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.anchors = anchors
        if generator is None:
            generator = GaussianGenerator(anchors.feat_dim, anchors.n_offsets, anchors.num_levels)
        if context is None:
            context = ContextModel(
                ContextConfig.for_anchor_count(len(anchors), num_levels=anchors.num_levels), seed=seed
            )
        self.generator = generator
        self.context = context
        self.cull_margin = float(cull_margin)
        self.view_distance = None if view_distance is None else float(view_distance)
        if self.context.layout != self.layout:
            raise ValueError(
                f"context model codes attributes {self.context.layout.dims}, anchors have {self.layout.dims}"
            )

    @property
    def grid(self) -> OctreeGrid:
        return self.anchors.grid

    @property
    def num_levels(self) -> int:
        return self.anchors.num_levels

    @property
    def layout(self) -> AttributeLayout:
        return self.anchors.layout

    @property
    def dist_scale(self) -> float:
        return float(self.grid.size)

    @property
    def device(self) -> torch.device:
        """Where the model lives (anchors, MLPs and context model move together with ``.to``)."""
        return self.anchors.device

    def generate(
        self,
        camera: Camera,
        lod: int | None = None,
        *,
        cull: bool = True,
        attributes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> NeuralGaussians:
        """Neural Gaussians of LoD ``lod``; ``attributes`` optionally replaces the anchors'
        (feature, scaling, offsets), e.g. by their quantized or noise-perturbed versions."""
        a = self.anchors
        feature, scaling, offsets = attributes if attributes is not None else (a.feature, a.scaling, a.offsets)
        return self.generator(
            a.positions,
            a.levels,
            feature,
            scaling,
            offsets,
            camera,
            lod=lod,
            dist_scale=self.dist_scale,
            cull=cull,
            margin=self.cull_margin,
        )

    def render(
        self,
        camera: Camera,
        lod: int | None = None,
        background: torch.Tensor | None = None,
        backend: str = "auto",
        attributes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> RenderOutput:
        lod = self.num_levels if lod is None else int(lod)
        g = self.generate(camera, lod, attributes=attributes)
        image, alpha, info = rasterize(
            g.means, g.quats, g.scales, g.opacities, g.colors, camera, background, backend=backend
        )
        return RenderOutput(image, alpha, info, g, lod)

    # -- state ----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The model as plain CPU tensors and numbers (the model part of a training checkpoint): the
        same state whichever device the model is on, so it loads anywhere."""
        a = self.anchors
        return {
            "grid": self.grid.to_dict(),
            "anchors": {name: getattr(a, name).detach().cpu().clone() for name in ANCHOR_TENSORS},
            "generator_args": self.generator.args(),
            "generator": _cpu_tensors(self.generator.state_dict()),
            "context_config": self.context.cfg.to_json(),
            "context": _cpu_tensors(self.context.state_dict()),
            "cull_margin": self.cull_margin,
            "view_distance": self.view_distance,
        }


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A module's state dict on the CPU (tensors already there are kept as they are)."""
    return {name: t.cpu() for name, t in state.items()}


def cpu_model(model: ProGSModel) -> ProGSModel:
    """``model`` itself when it is on the CPU, else a CPU copy rebuilt from :meth:`ProGSModel.to_state`
    (exactly the same values: moving float32 tensors between devices does not round)."""
    if model.device.type == "cpu":
        return model
    return model_from_state(model.to_state())


def model_from_state(state: dict[str, Any]) -> ProGSModel:
    """The model held by ``state`` (:meth:`ProGSModel.to_state`, or a checkpoint that contains it), on
    the CPU (move it with ``.to(device)``).

    Checkpoints written before 2026-11-27 keep the generator's sizes and the cull margin in the
    training config (``state["config"]``) and have no view distance (it is in their run.json)."""
    grid = OctreeGrid.from_dict(state["grid"])
    sa = state["anchors"]
    anchors = AnchorSet(grid, *(torch.as_tensor(sa[name]).cpu() for name in ANCHOR_TENSORS))
    legacy = state.get("config", {})
    args = state.get("generator_args") or {k: legacy[k] for k in ("feat_dim", "n_offsets", "levels")}
    generator = GaussianGenerator(**args)
    generator.load_state_dict(state["generator"])
    context = ContextModel(ContextConfig.from_json(state["context_config"]))
    context.load_state_dict(state["context"])
    return ProGSModel(
        anchors,
        generator,
        context,
        cull_margin=state.get("cull_margin", legacy.get("cull_margin", 0.1)),
        view_distance=state.get("view_distance"),
    )
