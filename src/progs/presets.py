"""Training presets: `progs demo`'s defaults for the embedded scene (also used by `progs bench`
on that scene, so that its figures describe the model the demo trains)."""

from __future__ import annotations

from typing import Any

# `progs demo`'s own training defaults (options given on the command line still win). Tuned so that
# the whole demo (128x128, 52 train / 8 test views) runs in minutes on 2 CPU cores with every LoD
# populated and the decoded PSNR rising from LoD 1 to LoD L:
# - L = 4 levels: with b = 4 the finest grid is 128^3, about one 128x128 pixel's footprint on the
#   scene; a fifth level is sub-pixel and added nothing measurable (docs/RESULTS.md, "Demo preset").
#   `progs train` keeps the paper's L = 5;
# - b = 4 instead of the point-spacing rule's b = 2: level 1 then holds ~400 anchors (~6 % of the
#   final count) rather than 25, enough for a recognisable LoD 1 (≥ 75 % of LoD L's PSNR in dB);
# - initial anchors at level max(1, L - 3) instead of L: the finer levels
#   are grown (paper §III-C), which keeps the model small and every level populated;
# - the paper's near-flat growth thresholds (β = 0.01; "very significant" means above τ_{l+1}) so that
#   growth reaches the finest levels within a short run, adjusting every 50 instead of 100 steps;
# - 600 iterations, L_c2f estimated from LoD L plus 2 random coarser LoDs per step (unbiased);
# - beyond the paper: LoD L weighs 0.5 in L_c2f instead of 1/L, and no InfoNCE loss; both gave more dB
#   per byte on this scene (docs/RESULTS.md, "Beyond the paper"; demo_rate_sweep.json, exp_*).
DEMO_DEFAULTS = {
    "iterations": 600,
    "levels": 4,
    "base_depth": 4,
    "growth.beta": 0.01,
    "growth.very_factor": 1.0,
    "growth.interval": 50,
    "c2f_coarse_samples": 2,
    "c2f_finest_weight": 0.5,
    "infonce": False,
}


def demo_overrides(levels: int | None = None) -> dict[str, Any]:
    """TrainConfig fields of the demo preset (initial level derived from L)."""
    d = dict(DEMO_DEFAULTS)
    L = int(levels if levels is not None else d["levels"])
    d["levels"] = L
    d["init_level"] = max(1, L - 3)
    return d


# `progs fit` trains on the demo preset's schedule (L = 4, the near-flat growth thresholds adjusted every 50
# steps, LoD L plus 2 sampled coarser LoDs per step), the one measured on fits (`progs bench --suite fit`),
# with its own iteration count. The octree's base depth follows the teacher's point spacing
# (octree.default_base_depth) but is at least FIT_MIN_BASE_DEPTH, the preset's b = 4: on the demo PLY the
# spacing asks b = 3, and a 256² fit with b = 3 (L = 5) reached 31.66 dB against 33.24 dB with b = 4.
FIT_DEFAULTS = {k: v for k, v in DEMO_DEFAULTS.items() if k not in ("iterations", "base_depth")}
FIT_MIN_BASE_DEPTH = 4

# `progs fit`: the anchor set is sized from the teacher (the PLY's Gaussian count N). Each anchor
# carries 10 neural Gaussians, so an anchor per teacher Gaussian spends bytes on capacity the teacher
# does not have; N/4 is the best trade measured (docs/RESULTS.md, "A user who already has the PLY").
# A teacher with view-dependent colour (SH degree >= 1) gets N/2: its Gaussians cost SPZ four times the
# bytes (playbot LoD 4, SH 2: 36 B each; the demo PLY, SH 0: 9 B), and the neural Gaussians' view-dependent
# colour uses the extra anchors. Playbot LoD 4 at N/2 (4,200 anchors): 71,016 B at 33.23 dB, above its
# streamed SOG at equal bytes, BD-rate -52.1 % against decimate+SPZ (at N/4: 41,620 B at 31.43 dB, below
# SOG's coarsest level, -58.9 %); the SH-0 demo PLY at N/2 fell from -16.7 % to -0.05 % and keeps N/4
# (docs/RESULTS.md, "Fitting a splat file").
TEACHER_ANCHORS_PER_GAUSSIAN = 0.25
TEACHER_ANCHORS_PER_GAUSSIAN_SH = 0.5
MIN_TEACHER_ANCHORS = 64
# The context model's hash grid of a fit: (6, 2) levels instead of (12, 4) cut the header of the demo PLY's
# fit from 20.3 to 15.6 kB, and its stream from 59,748 B at 34.72 dB to 55,609 B at 34.77 dB (scored at
# 1024²; BD-rate against decimate+SPZ +59.7 % -> +47.0 %; docs/RESULTS.md, "Fitting a splat file").
TEACHER_CONTEXT_LEVELS = (6, 2)
# A small fit (a budget of at most SMALL_FIT_ANCHORS anchors) takes a narrower model: 16-d anchor features
# (the generator's MLPs follow the feature width), a context grid of 3 and 1 levels and context MLPs 8 and
# 4 wide, instead of 32, (6, 2), 16 and 8. Scored at 1024² (600 iterations), the demo PLY's fit went from 55,609 B at
# 34.77 dB to 37,509 B at 34.10 dB (header 15.6 -> 6.9 kB; BD-rate against decimate+SPZ +47.0 % -> -8.2 %)
# and playbot's LoD 4 from 62,700 B at 30.82 dB to 44,192 B at 30.96 dB (-10.4 % -> -26.3 %;
# docs/RESULTS.md, "Fitting a splat file"). Larger fits keep the widths measured on captures, where the
# header is a small share of the stream.
# It also takes 5 neural Gaussians per anchor instead of 10 (`progs bench --suite fit`, 2,000 iterations,
# 512² teacher): the demo PLY went from 32,814 B at 35.70 dB to 26,980 B at 35.33 dB (BD-rate against
# decimate+SPZ -24.5 % -> -39.4 %) and playbot's LoD 4 from 61,382 B at 32.95 dB to 47,779 B at 32.63 dB
# (-55.1 % -> -58.2 %; against streamed SOG -34.9 % -> -43.0 %): half the offsets to code, at equal bytes
# 0.3-0.6 dB more (docs/RESULTS.md, "Five offsets per anchor").
SMALL_FIT_ANCHORS = 20_000
SMALL_FIT_MODEL = {"feat_dim": 16, "n_offsets": 5, "context_hash_levels": (3, 1), "context_mlp": (8, 4)}


def teacher_anchors_per_gaussian(sh_degree: int) -> float:
    """Anchors per teacher Gaussian of SH degree ``sh_degree``: ``TEACHER_ANCHORS_PER_GAUSSIAN``, or
    ``TEACHER_ANCHORS_PER_GAUSSIAN_SH`` with view-dependent colour."""
    return TEACHER_ANCHORS_PER_GAUSSIAN_SH if sh_degree > 0 else TEACHER_ANCHORS_PER_GAUSSIAN


def teacher_anchor_budget(gaussians: int, per_gaussian: float | None = None, sh_degree: int = 0) -> int:
    """Growth cap for fitting a teacher of ``gaussians`` Gaussians of SH degree ``sh_degree``:
    ``per_gaussian`` anchors each (default :func:`teacher_anchors_per_gaussian`), at least
    ``MIN_TEACHER_ANCHORS``."""
    if per_gaussian is None:
        per_gaussian = teacher_anchors_per_gaussian(sh_degree)
    return max(MIN_TEACHER_ANCHORS, int(round(gaussians * per_gaussian)))


def teacher_init_level(level_counts: list[int], budget: int) -> int:
    """The finest level whose initial anchors (``level_counts[l - 1]``: the teacher's points voxelised at
    level ``l``, with all their ancestors) fill at most half of ``budget``, leaving the rest to growth;
    level 1 when even that is more."""
    level = 1
    for lvl, count in enumerate(level_counts, start=1):
        if count <= budget // 2:
            level = lvl
    return level


def teacher_levels(level_counts: list[int], budget: int) -> int:
    """The octree levels a fit's ``budget`` can fill: one past the first level whose cells (``level_counts[l
    - 1]``: the teacher's points voxelised at level ``l``, with all their ancestors) number at least
    ``budget``, at most ``len(level_counts)`` and at least 2. Growth fills that level in part and spills into
    the next; the level after stays (nearly) empty: with 4 levels, the finest of the demo PLY's fit held 0
    anchors and playbot LoD 4's 11, for no measurable quality."""
    first = next((lvl for lvl, count in enumerate(level_counts, start=1) if count >= budget), len(level_counts))
    return max(2, min(len(level_counts), first + 1))


def teacher_sizing(
    scene: Any, levels: int | None, base_depth: int | None, max_anchors: int | None = None, sh_degree: int = 0
) -> dict[str, Any]:
    """What fitting the teacher ``scene`` (its ``points`` are the PLY's Gaussian centres; its colours of SH
    degree ``sh_degree``) sets in the training configuration:

    - ``levels``: as given, else :func:`teacher_levels` of at most ``FIT_DEFAULTS["levels"]``;
    - ``base_depth``: as given, else the points' spacing rule (for the most levels) but at least
      ``FIT_MIN_BASE_DEPTH``;
    - ``max_anchors``: ``max_anchors``, else :func:`teacher_anchor_budget` (of ``sh_degree``) but at most one anchor per
      ``CAP_PIXELS_PER_ANCHOR`` pixels of a teacher view;
    - ``init_level``: :func:`teacher_init_level`;
    - ``context_hash_levels``: ``TEACHER_CONTEXT_LEVELS``;
    - for a budget of at most ``SMALL_FIT_ANCHORS``, the narrower model ``SMALL_FIT_MODEL`` too.
    """
    import torch

    from progs.octree import complete_upward, default_base_depth
    from progs.train.trainer import build_grid

    from progs.train.sizing import CAP_PIXELS_PER_ANCHOR, pixels_per_view

    points = scene.points.double()
    most = int(levels if levels is not None else FIT_DEFAULTS["levels"])
    if base_depth is None:
        base_depth = max(FIT_MIN_BASE_DEPTH, default_base_depth(points, most))
    if max_anchors is None:
        # No more anchors than the teacher's views can show (as for a capture: one per 5.4 pixels of a view).
        budget = min(
            teacher_anchor_budget(points.shape[0], sh_degree=sh_degree),
            max(MIN_TEACHER_ANCHORS, int(pixels_per_view(scene) / CAP_PIXELS_PER_ANCHOR)),
        )
    else:
        budget = int(max_anchors)
    grid = build_grid(scene, most, base_depth)
    lo, hi = grid.bounds
    inside = ((points >= lo) & (points < hi)).all(dim=1)
    if bool(inside.any()):  # as AnchorSet.from_points
        points = points[inside]
    # The points' level-L voxels with all their ancestors hold, at each level l, exactly the points'
    # level-l voxels: one completion gives every level's initial anchor count. Fewer levels keep the
    # same cells (the grid's cube does not depend on the level count), so these counts serve them too.
    keys = grid.voxel_of(points, most)
    _, key_levels = complete_upward(keys, torch.full((keys.shape[0],), most, dtype=torch.int64))
    counts = [int((key_levels <= level).sum()) for level in range(1, most + 1)]
    if levels is None:
        levels = teacher_levels(counts, budget)
        counts = counts[:levels]
    return {
        "levels": levels,
        "base_depth": base_depth,
        "max_anchors": budget,
        "init_level": teacher_init_level(counts, budget),
        "context_hash_levels": TEACHER_CONTEXT_LEVELS,
        **(SMALL_FIT_MODEL if budget <= SMALL_FIT_ANCHORS else {}),
    }
