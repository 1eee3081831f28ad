"""How many anchors a training starts from and may grow to, when the configuration leaves it to the scene.

A capture without SfM points (the fox, most instant-ngp style captures) starts from random points. How
many it needs follows the images, not the scene: an anchor carries 10 neural Gaussians, and once there
are several per pixel of a view the extra ones cost bytes without adding detail the views can show.
The two ratios below are the fox's best measured sizes (2,500 points, 6,000 anchors at 135x240) per
pixel of a view (docs/RESULTS.md, "Anchor counts of a capture without SfM points").

A scene with SfM points (or a PLY's Gaussian centres) starts from those, and keeps the cap of 200,000.
"""

from __future__ import annotations

from typing import Any

INIT_PIXELS_PER_POINT = 13.0
CAP_PIXELS_PER_ANCHOR = 5.4
MIN_INIT_POINTS, MAX_INIT_POINTS = 500, 20_000
MIN_CAP, MAX_CAP = 1_200, 200_000
DEFAULT_CAP = 200_000  # scenes that start from their own points
CAP_PER_INIT_POINT = 2.4  # the measured 6,000 / 2,500: the cap when only --init-points is given


def _hundreds(x: float) -> int:
    return int(round(x / 100.0)) * 100


def random_init_sizing(pixels_per_view: int) -> dict[str, int]:
    """``{"init_random_points", "max_anchors"}`` for a capture without points whose views have
    ``pixels_per_view`` pixels (rounded to hundreds, within the bounds above)."""
    init = min(MAX_INIT_POINTS, max(MIN_INIT_POINTS, _hundreds(pixels_per_view / INIT_PIXELS_PER_POINT)))
    cap = min(MAX_CAP, max(MIN_CAP, _hundreds(pixels_per_view / CAP_PIXELS_PER_ANCHOR)))
    return {"init_random_points": init, "max_anchors": max(cap, init)}


def has_points(scene: Any) -> bool:
    """Whether training starts from the scene's own points (else from random ones)."""
    return scene.points is not None and scene.points.shape[0] >= 2


def pixels_per_view(scene: Any) -> int:
    """The median pixel count of the training views (of all views if there are no training views)."""
    views = list(scene.train_views) or list(scene.test_views)
    if not views:
        return 0
    counts = sorted(int(v.camera.width) * int(v.camera.height) for v in views)
    return counts[len(counts) // 2]


def scene_sizing(scene: Any, config: Any) -> Any:
    """``config`` with ``init_random_points`` and ``growth.max_anchors`` sized from ``scene`` where they are
    None (values given stay). With points: 20,000 (unused) and 200,000; without: :func:`random_init_sizing`."""
    if config.init_random_points is not None and config.growth.max_anchors is not None:
        return config
    if has_points(scene):
        sized = {"init_random_points": MAX_INIT_POINTS, "max_anchors": DEFAULT_CAP}
    else:
        sized = random_init_sizing(pixels_per_view(scene))
        if config.init_random_points is not None:  # the cap follows the points given
            sized["max_anchors"] = max(sized["max_anchors"], _hundreds(config.init_random_points * CAP_PER_INIT_POINT))
    changes = {}
    if config.init_random_points is None:
        changes["init_random_points"] = sized["init_random_points"]
    if config.growth.max_anchors is None:
        changes["max_anchors"] = sized["max_anchors"]
    return config.replace(**changes)
