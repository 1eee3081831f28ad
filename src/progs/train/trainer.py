"""The ProGS training loop (paper §III-F, Fig. 5) on top of the Scaffold-GS recipe.

Per iteration: one training view; before ``schedule.c2f_start`` the single-LoD photometric loss of the
full model (LoD L), afterwards the coarse-to-fine loss L_c2f (paper Eq. 12) over all LoDs, or (to save
CPU time) estimated from LoD L plus ``c2f_coarse_samples`` random coarser LoDs with unbiased weights
(``losses.c2f_lod_weights``);
plus λ_vol·L_vol (on the finest render) and λ_NCE·L_NCE. Between ``adjust_start`` and ``adjust_end``
anchors are grown/pruned every ``growth.interval`` steps by the growth strategy
(``strategy.GrowthStrategy``; spawning paused as in the paper once quantisation noise starts). Deterministic for a seed: every random draw uses the trainer's own
generator, whose state is checkpointed with everything else.

The trainer runs on one device (``device``, default the CPU): model, anchors, the growth statistics,
octree edits, context model, losses, optimiser state and the training images live there; rendering
uses gsplat on CUDA and the C++ kernel on the CPU (``render.rasterize``'s ``auto`` backend). Draws that
choose views, LoDs and anchors come from the CPU generator ``gen`` on every device; the large
elementwise draws (quantization noise, InfoNCE negatives) come from ``device_gen``, a generator on
the training device (on the CPU the same object as ``gen``, so CPU runs are what they always were).
Determinism is a CPU promise: on CUDA, gsplat's atomic adds make runs differ in their last bits.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict
from typing import Any, Callable

import torch

from progs.device import CPU, randperm
from progs.metrics import psnr
from progs.model.anchors import AnchorSet
from progs.model.context import ContextConfig, ContextModel
from progs.model.gaussians import GaussianGenerator
from progs.model.model import ProGSModel, model_from_state
from progs.octree import OctreeGrid
from progs.scene import Scene, View, scale_views, views_on
from progs.train.checkpoint import load_checkpoint, save_checkpoint
from progs.train.config import TrainConfig
from progs.train.losses import c2f_lod_weights, infonce_loss, photometric_loss, volume_loss
from progs.train.rate import RateTrainer, park_hidden_offsets
from progs.train.schedule import exp_lr
from progs.train.sizing import has_points, scene_sizing
from progs.train.strategy import GrowthStrategy


def build_grid(scene: Scene, levels: int, base_depth: int | None) -> OctreeGrid:
    """Octree grid from the SfM points (robust cube), else from the scene/camera bounds."""
    if has_points(scene):
        return OctreeGrid.from_points(scene.points, levels, base_depth)
    bounds = scene.bounds if scene.bounds is not None else scene.camera_bounds()
    b = base_depth if base_depth is not None else max(0, 6 - (levels - 1))
    return OctreeGrid.from_bounds(bounds[0], bounds[1], levels, b, margin=0.05)


def view_distance(views: list[View], grid: OctreeGrid) -> float:
    """Median distance of the cameras of ``views`` from the octree cube's centre."""
    centre = grid.origin_tensor.float() + grid.size / 2
    return float(torch.stack([(v.camera.center - centre).norm() for v in views]).median())


def camera_extent(views: list[View]) -> float:
    """Scaffold-GS ``cameras_extent``: 1.1 × the largest camera distance from the cameras' mean."""
    centers = torch.stack([v.camera.center for v in views])
    r = float((centers - centers.mean(0)).norm(dim=-1).max())
    return 1.1 * r if r > 0 else 1.0


class Trainer:
    """Trains a :class:`ProGSModel` on a :class:`Scene` on ``device`` (default the CPU); ``train()``
    runs to ``config.iterations``."""

    def __init__(self, scene: Scene, config: TrainConfig | None = None, device: torch.device | None = None):
        # counts the configuration leaves to the scene are fixed here, so the run records them
        self.config = cfg = scene_sizing(scene, config or TrainConfig())
        self.device = CPU if device is None else torch.device(device)
        self.scene = scene
        self.train_views = views_on(list(scene.train_views), self.device)
        self.test_views = views_on(list(scene.test_views), self.device)
        if not self.train_views:
            raise ValueError(f"scene {scene.name!r} has no training views")
        self.background = scene.background.float().to(self.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.device_gen = self._device_generator(cfg.seed)
        torch.manual_seed(cfg.seed)  # MLP initialisation
        grid = build_grid(scene, cfg.levels, cfg.base_depth)
        if has_points(scene):
            anchors = AnchorSet.from_points(
                grid, scene.points, feat_dim=cfg.feat_dim, n_offsets=cfg.n_offsets, level=cfg.init_level
            )
        else:
            bounds = scene.bounds if scene.bounds is not None else scene.camera_bounds()
            anchors = AnchorSet.random(
                grid,
                cfg.init_random_points,
                self.gen,
                feat_dim=cfg.feat_dim,
                n_offsets=cfg.n_offsets,
                lo=bounds[0].double(),
                hi=bounds[1].double(),
                level=cfg.init_level,
            )
        generator = GaussianGenerator(cfg.feat_dim, cfg.n_offsets, cfg.levels, hidden=cfg.generator_hidden)
        if cfg.opacity_start > 0:
            with torch.no_grad():
                last = generator.mlp_opacity[2]
                last.weight.mul_(0.1)
                last.bias.fill_(math.atanh(cfg.opacity_start))
        context_sizes: dict[str, int] = {}
        for value, names in (
            (cfg.context_hash_levels, ("levels_3d", "levels_2d")),
            (cfg.context_mlp, ("hidden", "q_hidden")),
        ):
            if value is not None:
                context_sizes.update(zip(names, value))
        context = ContextModel(
            ContextConfig.for_anchor_count(
                len(anchors), num_levels=cfg.levels, attr_dims=tuple(anchors.layout.dims), **context_sizes
            ),
            seed=cfg.seed,
        )
        self.model = ProGSModel(
            anchors,
            generator,
            context,
            cull_margin=cfg.cull_margin,
            view_distance=view_distance(self.train_views, grid),
        ).to(self.device)
        self.rate = self._rate_trainer()
        self.spatial_lr_scale = camera_extent(self.train_views)
        self.optimizer = self._make_optimizer()
        self.stages = cfg.schedule.at(cfg.iterations)
        self.strategy = GrowthStrategy(cfg.growth, self.model.anchors)
        self.iteration = 0
        self.view_queue: list[int] = []
        # the warm-up's smaller copies of the training views (same cameras, area-averaged images)
        self.warmup_views = (
            views_on(scale_views(list(scene.train_views), cfg.warmup_downscale), self.device)
            if cfg.warmup_downscale > 1 and self.stages.full_size_start > 0
            else None
        )
        self.history: list[dict[str, float]] = []
        self.adjustments: list[dict[str, int]] = []

    def _device_generator(self, seed: int) -> torch.Generator:
        """The generator of the large draws: ``gen`` itself on the CPU, else one on the device."""
        if self.device.type == "cpu":
            return self.gen
        return torch.Generator(self.device).manual_seed(seed)

    # -- optimisation -------------------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Adam:
        a, g, ctx = self.model.anchors, self.model.generator, self.model.context
        groups = [
            {"params": [a.feature], "name": "feature", "lr": self.config.lr.feature},
            {"params": [a.scaling], "name": "scaling", "lr": self.config.lr.scaling},
            {"params": [a.offsets], "name": "offsets", "lr": self.config.lr.offsets_init * self.spatial_lr_scale},
            {"params": list(g.mlp_opacity.parameters()), "name": "mlp_opacity", "lr": self.config.lr.mlp_opacity_init},
            {"params": list(g.mlp_cov.parameters()), "name": "mlp_cov", "lr": self.config.lr.mlp_cov_init},
            {"params": list(g.mlp_color.parameters()), "name": "mlp_color", "lr": self.config.lr.mlp_color_init},
            {"params": [ctx.grid3, ctx.grid2], "name": "context_grid", "lr": self.config.rate.lr_context_grid_init},
            {"params": list(ctx.mlp_d.parameters()), "name": "context_mlp", "lr": self.config.rate.lr_context_mlp_init},
            {
                "params": list(ctx.mlp_q.parameters()),
                "name": "context_step",
                "lr": self.config.rate.lr_context_step_init,
            },
        ]
        return torch.optim.Adam(groups, lr=0.0, eps=1e-15)

    def _update_lr(self, it: int) -> None:
        c, total = self.config, self.config.iterations
        sched = {
            "offsets": (c.lr.offsets_init * self.spatial_lr_scale, c.lr.offsets_final * self.spatial_lr_scale),
            "mlp_opacity": (c.lr.mlp_opacity_init, c.lr.mlp_opacity_final),
            "mlp_cov": (c.lr.mlp_cov_init, c.lr.mlp_cov_final),
            "mlp_color": (c.lr.mlp_color_init, c.lr.mlp_color_final),
        }
        # The context model only learns once quantization noise starts: its rates decay over those
        # stages, not over the whole run (which left ~1e-5 by the entropy stage: it barely trained).
        start = self.stages.noise_start
        rate_sched = {
            "context_grid": (c.rate.lr_context_grid_init, c.rate.lr_context_grid_final),
            "context_mlp": (c.rate.lr_context_mlp_init, c.rate.lr_context_mlp_final),
            "context_step": (c.rate.lr_context_step_init, c.rate.lr_context_step_final),
        }
        for group in self.optimizer.param_groups:
            if group["name"] in sched:
                group["lr"] = exp_lr(it, total, *sched[group["name"]])
            elif group["name"] in rate_sched:
                group["lr"] = exp_lr(max(0, it - start), max(1, total - start), *rate_sched[group["name"]])

    def _next_view(self) -> View:
        if not self.view_queue:
            self.view_queue = randperm(len(self.train_views), self.gen, CPU).tolist()
        warm = self.warmup_views is not None and not self.stages.full_size(self.iteration)
        return (self.warmup_views if warm else self.train_views)[self.view_queue.pop()]

    def step(self) -> dict[str, float]:
        """One training iteration; returns its loss terms, PSNR (LoD L) and anchor count.

        With ``config.deterministic`` a CPU step runs under ``torch.use_deterministic_algorithms``
        (restored afterwards): with more than one thread, CPU index-put accumulation (the backward of
        the gathers in the generator and InfoNCE) otherwise sums in a varying order, and runs with the
        same seed drift apart after a few steps. On CUDA it is not used: gsplat accumulates gradients
        with atomics anyway, and the deterministic CUDA scatter paths would only slow the step down.
        """
        if not self.config.deterministic or self.device.type != "cpu":
            return self._step()
        prev = torch.are_deterministic_algorithms_enabled()
        prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return self._step()
        finally:
            torch.use_deterministic_algorithms(prev, warn_only=prev_warn)

    def _step(self) -> dict[str, float]:
        cfg, it = self.config, self.iteration
        model, anchors = self.model, self.model.anchors
        L = model.num_levels
        self._update_lr(it)
        view = self._next_view()
        if cfg.loss.c2f and self.stages.c2f(it):
            weights = c2f_lod_weights(L, cfg.loss.c2f_coarse_samples, self.gen, cfg.loss.c2f_finest_weight)
        else:
            weights = {L: 1.0}
        collect = cfg.growth.enabled and (self.stages.adjust_start - cfg.growth.interval) <= it < self.stages.adjust_end

        attributes = None
        rate_loss = None
        if cfg.rate.enabled and it in (self.stages.entropy_start, self.stages.quantize_start):
            park_hidden_offsets(model)
        quantizing = cfg.rate.enabled and self.stages.quantize(it)
        if quantizing:  # the codec's rounding (straight-through); the context model stays as it is
            attributes = self.rate.quantized(anchors)
        elif cfg.rate.enabled and self.stages.noise(it):
            attributes, rate_loss, bits_per_attr = self.rate.step(
                anchors, self.gen, entropy=self.stages.entropy(it), noise_gen=self.device_gen
            )

        outs = {}
        photo = torch.zeros((), device=self.device)
        for lod in sorted(weights, reverse=True):
            out = model.render(view.camera, lod, self.background, backend=cfg.backend, attributes=attributes)
            outs[lod] = out
            photo = photo + weights[lod] * photometric_loss(out.image, view.image, cfg.loss.lambda_ssim)
        loss = photo
        finest = outs[max(outs)]
        terms = {"photo": float(photo.detach())}
        if cfg.loss.lambda_vol > 0 and self.stages.regularizers(it):
            vol = volume_loss(finest.gaussians.scales)
            loss = loss + cfg.loss.lambda_vol * vol
            terms["vol"] = float(vol.detach())
        if cfg.loss.infonce and cfg.loss.lambda_nce > 0 and self.stages.regularizers(it):
            attrs = anchors.attribute_matrix()
            nce = infonce_loss(
                attrs,
                anchors.parent,
                fraction=cfg.loss.nce_fraction,
                negatives=cfg.loss.nce_negatives,
                tau=cfg.loss.nce_tau,
                gen=self.gen,
                negatives_gen=self.device_gen,
            )
            loss = loss + cfg.loss.lambda_nce * nce
            terms["nce"] = float(nce.detach())
        if self.rate.penalty is not None:  # RateConfig.step_ceiling
            loss = loss + self.rate.penalty
            terms["step_penalty"] = float(self.rate.penalty.detach())
            self.rate.penalty = None
        if rate_loss is not None and cfg.rate.lambda_e > 0:
            loss = loss + cfg.rate.lambda_e * rate_loss
            terms["rate"] = float(rate_loss.detach())
            terms["bits_per_attr"] = bits_per_attr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if quantizing:
            for p in model.context.parameters():
                p.grad = None  # Adam skips parameters without a gradient

        if collect:
            for lod, out in outs.items():
                grad = out.info["means2d"].grad
                if grad is not None:
                    self.strategy.record_gradients(
                        anchors,
                        out.gaussians.anchor_index,
                        out.gaussians.offset_index,
                        grad,
                        out.info["radii"],
                        view.camera.width,
                        view.camera.height,
                        scale=1.0 / weights[lod],
                    )
            self.strategy.record_opacity(finest.gaussians.visible_anchors, finest.gaussians.anchor_opacity)
        self.optimizer.step()
        self.iteration = it = it + 1

        if cfg.growth.enabled and self.stages.adjusting(it) and it % cfg.growth.interval == 0:
            report = self.strategy.adjust(anchors, self.optimizer, grow=self.stages.spawning(it))
            self.rate.invalidate()
            self.adjustments.append({"iteration": it, **asdict(report)})
        elif cfg.growth.enabled and it == self.stages.adjust_end:
            self.strategy.reset(anchors)

        rec = {
            "iteration": it,
            "loss": float(loss.detach()),
            **terms,
            "psnr": psnr(finest.image, view.image),
            "anchors": len(anchors),
        }
        self.history.append(rec)
        return rec

    def train(
        self,
        iterations: int | None = None,
        *,
        progress: bool | None = None,
        callback: Callable[["Trainer", dict[str, float]], None] | None = None,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 0,
    ) -> list[dict[str, float]]:
        """Run until ``iterations`` (default ``config.iterations``) total iterations have been done.

        ``progress``: a tqdm bar with loss/PSNR/anchors (default: only when stderr is a TTY).
        """
        from tqdm import tqdm

        target = self.config.iterations if iterations is None else int(iterations)
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(total=target, initial=self.iteration, disable=not show, dynamic_ncols=True, desc="train")
        try:
            while self.iteration < target:
                rec = self.step()
                if callback is not None:
                    callback(self, rec)
                if checkpoint_path and checkpoint_every and self.iteration % checkpoint_every == 0:
                    self.save(checkpoint_path)
                bar.update(1)
                if self.iteration % 10 == 0 or self.iteration == target:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", psnr=f"{rec['psnr']:.2f}", anchors=rec["anchors"])
        finally:
            bar.close()
        return self.history

    def _rate_trainer(self) -> RateTrainer:
        """The rate stage's helper for the model's context model, from the config's ``rate`` section."""
        r = self.config.rate
        return RateTrainer(
            self.model.context, fraction=r.entropy_fraction, step_scale=r.step_scale, ceiling=r.step_ceiling
        )

    # -- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The model's state (:meth:`ProGSModel.to_state`) plus everything needed to continue, as CPU
        tensors whatever the training device (so a checkpoint continues on either)."""
        state = self.model.to_state()
        state["anchors"].update(self.strategy.state_dict())  # the growth statistics, for an exact resume
        extra = {}
        if self.device_gen is not self.gen:
            extra = {"device_rng": self.device_gen.get_state(), "device_rng_type": self.device.type}
        return {
            **state,
            **extra,
            "config": self.config.to_dict(),
            "iteration": self.iteration,
            "rate_cache": self.rate.state(),
            "optimizer": _cpu_state(self.optimizer.state_dict()),
            "rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "view_queue": list(self.view_queue),
            "spatial_lr_scale": self.spatial_lr_scale,
            "history": list(self.history),
            "adjustments": list(self.adjustments),
        }

    def save(self, path: str) -> None:
        """Checkpoint to ``path`` atomically."""
        save_checkpoint(path, self.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (saved on any device) on this trainer's device.

        The device generator's state is restored when the checkpoint was made on the same kind of
        device; otherwise it restarts from the seed and the iteration (the run goes on, not bit-exactly)."""
        view_distance = self.model.view_distance
        self.model = model_from_state(state).to(self.device)
        if self.model.view_distance is None:  # checkpoints before 2026-11-27
            self.model.view_distance = view_distance
        self.strategy.reset(self.model.anchors)
        self.strategy.load_state_dict(state["anchors"])
        self.rate = self._rate_trainer()
        self.rate.load_state(state.get("rate_cache"))
        self.spatial_lr_scale = float(state["spatial_lr_scale"])
        self.optimizer = self._make_optimizer()
        saved = state["optimizer"]
        if len(saved["param_groups"]) == len(self.optimizer.param_groups) - 1:
            # checkpoints before the steps had a group of their own
            saved = _split_context_group(saved, len(list(self.model.context.mlp_q.parameters())))
        self.optimizer.load_state_dict(saved)
        self.iteration = int(state["iteration"])
        self.gen.set_state(state["rng"])
        if self.device_gen is not self.gen:
            if state.get("device_rng_type") == self.device.type:
                self.device_gen.set_state(state["device_rng"])
            else:
                self.device_gen.manual_seed(self.config.seed + self.iteration)
        torch.set_rng_state(state["torch_rng"])
        self.view_queue = list(state["view_queue"])
        self.history = list(state.get("history", []))
        self.adjustments = list(state.get("adjustments", []))

    def resume(self, path: str) -> "Trainer":
        """Load a checkpoint into this trainer (built for the same scene and config); returns self."""
        state = load_checkpoint(path)
        self.load_state_dict(state)
        return self

    @classmethod
    def from_checkpoint(
        cls, path: str, scene: Scene, device: torch.device | None = None, **overrides: Any
    ) -> "Trainer":
        """A trainer for ``scene`` on ``device`` (default the CPU) with the checkpoint's config
        (``overrides`` applied) and state."""
        state = load_checkpoint(path)
        cfg = TrainConfig.from_dict(state["config"]).replace(**overrides)
        trainer = cls(scene, cfg, device)
        trainer.load_state_dict(state)
        return trainer


def _split_context_group(saved: dict[str, Any], n_step_params: int) -> dict[str, Any]:
    """An optimizer state whose last group held MLP_d's and then MLP_q's parameters (its last
    ``n_step_params`` tensors), split into a "context_mlp" and a "context_step" group."""
    groups = [dict(g) for g in saved["param_groups"]]
    last = groups.pop()
    params = list(last["params"])
    groups.append({**last, "params": params[:-n_step_params]})
    groups.append({**last, "params": params[-n_step_params:], "name": "context_step"})
    return {"state": saved["state"], "param_groups": groups}


def _cpu_state(obj: Any) -> Any:
    """``obj`` (nested dicts and lists, e.g. an optimiser's state dict) with every tensor on the CPU."""
    if torch.is_tensor(obj):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _cpu_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_state(v) for v in obj]
    return obj
