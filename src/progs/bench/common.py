"""Shared pieces of the benchmark suites: the size profile, machine facts, JSON and plot helpers."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from progs.device import CPU

from progs.atomic import atomic_path, write_bytes_atomic
from progs.errors import optional_import

# Environment variable that shrinks every suite to a smoke-test size (used by tests/test_bench.py).
TINY_ENV = "PROGS_BENCH_TINY"
LAMBDAS = (5e-4, 2e-3, 8e-3)  # λ_e sweep of the rd suite; the middle one is the reference model
REFERENCE_LAMBDA = 2e-3


@dataclass
class Profile:
    """How big every suite runs. ``tiny`` < ``quick`` < ``full``."""

    name: str
    views: int  # demo views (every 8th is a test view)
    size: int  # demo image side in pixels
    iterations: int  # ProGS training iterations per model
    fit_iterations: int  # plain 3DGS baseline iterations
    scaling_sizes: tuple[int, ...]  # target anchor counts of the scaling suite
    render_size: int  # inference render benchmark resolution
    render_reps: int
    coder_reps: int
    lambdas: tuple[float, ...] = LAMBDAS
    fit_caps: tuple[int, ...] = (2_000, 5_000, 10_000, 20_000)  # plain 3DGS model sizes (SPZ curve)


PROFILES = {
    "tiny": Profile(
        "tiny",
        views=12,
        size=32,
        iterations=8,
        fit_iterations=12,
        scaling_sizes=(400, 1200),
        render_size=64,
        render_reps=1,
        coder_reps=1,
        fit_caps=(300, 600),
    ),
    "quick": Profile(
        "quick",
        views=24,
        size=64,
        iterations=200,
        fit_iterations=300,
        scaling_sizes=(10_000, 30_000, 100_000),
        render_size=256,
        render_reps=3,
        coder_reps=3,
    ),
    "full": Profile(
        "full",
        views=60,
        size=128,
        iterations=2000,
        fit_iterations=3000,
        scaling_sizes=(10_000, 100_000, 1_000_000),
        render_size=256,
        render_reps=5,
        coder_reps=5,
    ),
}
# Training budget on the real fox capture (50 photos, 1080x1920 / downscale): per profile.
FOX_ITERATIONS = {"tiny": 5, "quick": 150, "full": 2000}


@dataclass
class BenchConfig:
    out: Path
    profile: Profile
    dataset: str = "demo"  # "demo", "fox" or a dataset folder
    downscale: float = 8.0  # for real datasets
    iterations: int | None = None  # overrides the profile's training iterations
    fit_iterations: int | None = None  # iterations of the SPZ curve's plain 3DGS fits (None: as progs)
    seed: int = 0
    command: str = ""
    device: torch.device = (
        CPU  # where the ProGS variants and plain 3DGS fits train and render (coding stays on the CPU)
    )
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.profile.name != "full"

    @property
    def tiny(self) -> bool:
        return self.profile.name == "tiny"

    def train_iterations(self) -> int:
        if self.iterations is not None:
            return int(self.iterations)
        if self.dataset != "demo":
            return FOX_ITERATIONS[self.profile.name]
        return self.profile.iterations

    def spz_fit_iterations(self) -> int:
        """Iterations of the plain 3DGS fits behind the SPZ curve: as many as progs unless set."""
        return self.train_iterations() if self.fit_iterations is None else int(self.fit_iterations)


def profile_for(quick: bool) -> Profile:
    if os.environ.get(TINY_ENV, "").strip() not in ("", "0"):
        return PROFILES["tiny"]
    return PROFILES["quick" if quick else "full"]


def repo_root() -> Path:
    """The source checkout holding this package (src layout), else the working directory."""
    here = Path(__file__).resolve()
    for p in here.parents:
        if (p / "pyproject.toml").is_file():
            return p
    return Path.cwd()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        mem = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "memory_gib": None if mem is None else round(mem, 1),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def clean(obj: Any) -> Any:
    """JSON-safe copy: tuples to lists, non-finite floats to None, tensors and paths to plain values."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, torch.Tensor):
        return clean(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(clean(obj), indent=2) + "\n").encode())


def pyplot():
    matplotlib = optional_import("matplotlib", "bench", "drawing figures")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    plt = pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def loglog_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) against log(x) (None with fewer than two usable points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _pchip(x, y, q):
    """Monotone piecewise-cubic Hermite interpolation (Fritsch–Carlson) of the points ``(x, y)`` (``x``
    increasing) at ``q`` (within ``[x[0], x[-1]]``)."""
    import numpy as np

    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    if len(x) == 2:
        d[:] = delta[0]
    else:
        for k in range(1, len(x) - 1):
            if delta[k - 1] * delta[k] > 0:
                w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
                d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
        for end in (0, -1):  # one-sided three-point slopes at the ends, kept monotone
            h1, h2 = (h[0], h[1]) if end == 0 else (h[-1], h[-2])
            a, b = (delta[0], delta[1]) if end == 0 else (delta[-1], delta[-2])
            e = ((2 * h1 + h2) * a - h1 * b) / (h1 + h2)
            if np.sign(e) != np.sign(a):
                e = 0.0
            elif np.sign(a) != np.sign(b) and abs(e) > abs(3 * a):
                e = 3 * a
            d[end] = e
    i = np.clip(np.searchsorted(x, q, side="right") - 1, 0, len(x) - 2)
    t = (q - x[i]) / h[i]
    h00, h10 = (1 + 2 * t) * (1 - t) ** 2, t * (1 - t) ** 2
    h01, h11 = t**2 * (3 - 2 * t), t**2 * (t - 1)
    return h00 * y[i] + h10 * h[i] * d[i] + h01 * y[i + 1] + h11 * h[i] * d[i + 1]


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]]) -> float | None:
    """Bjøntegaard delta rate (%) of ``test`` against ``anchor``, each a list of (bytes, PSNR) points:
    the average bitrate difference at equal PSNR over the PSNR range both curves cover (negative: the
    test curve needs fewer bytes). log10(rate) is interpolated as a function of PSNR over each curve's
    Pareto frontier with a monotone piecewise-cubic Hermite (PCHIP) curve, as the current JVET/AOM
    practice does, rather than VCEG-M33's single cubic polynomial, which swings between the points of a
    curve that saturates (a progressive stream's last LoDs), and integrated numerically. Lossless points
    (infinite PSNR) are left out. None when the curves do not overlap or a frontier has fewer than 2
    points."""
    import math

    import numpy as np

    def prep(points: list[tuple[float, float]]):
        # the Pareto frontier only: a point with more bytes and no more PSNR than another is dominated
        # a lossless point (PSNR +inf, e.g. a streamed SOG level that is the teacher itself) has no place
        # on a curve of finite PSNR
        pts = sorted({(float(r), float(p)) for r, p in points if r > 0 and math.isfinite(float(p))})
        front, best = [], float("-inf")
        for r, p in pts:
            if p > best:
                front.append((p, r))
                best = p
        return np.array([p for p, _ in front]), np.log10([r for _, r in front])

    pa, ra = prep(anchor)
    pt, rt = prep(test)
    if len(pa) < 2 or len(pt) < 2:
        return None
    lo, hi = max(pa.min(), pt.min()), min(pa.max(), pt.max())
    if hi <= lo:
        return None
    q = np.linspace(lo, hi, 2001)
    diff = _pchip(pt, rt, q) - _pchip(pa, ra, q)
    avg = float(np.sum((diff[1:] + diff[:-1]) / 2) * (q[1] - q[0]) / (hi - lo))
    return float((10.0**avg - 1.0) * 100.0)
