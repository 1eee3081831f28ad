"""Suite ``scaling``: encode/decode time and peak memory against the anchor count.

Synthetic anchors (uniform random points on a 5-level octree whose finest grid is 256^3, random
attributes as in ``tests/test_codec.py``) go through the real context model and coder. Each size is
encoded in a fresh process (spawn), which writes the stream to disk; a second fresh process decodes
it, so ``decode_peak_mb`` is the honest peak RSS (``VmHWM``) of a client decoding that stream
(interpreter and torch included; ``decode_baseline_mb`` is the peak before decoding starts).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from progs.bench.common import loglog_exponent, pyplot, rounded, save_figure

BASE_DEPTH = 4
LEVELS = 5


def _maxrss_mb() -> float:
    """Peak RSS (MiB) of this process's own address space: ``VmHWM`` on Linux. (``ru_maxrss`` keeps the
    parent's RSS at fork time across the spawn's exec, which would inflate small children.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def points_for_anchors(target: int) -> int:
    """Uniform points whose expected anchor count (occupied voxels over all levels) is ``target``."""
    cells = [(2 ** (BASE_DEPTH + l)) ** 3 for l in range(LEVELS)]

    def expected(p: float) -> float:
        return sum(m * -math.expm1(-p / m) for m in cells)

    lo, hi = 1.0, float(target)
    if expected(hi) < target:
        raise ValueError(f"{target} anchors do not fit the synthetic octree")
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < target else (lo, mid)
    return max(1, int(round(hi)))


def _encode_worker(target: int, path: str, seed: int) -> dict[str, Any]:
    """Fresh process: build ~``target`` synthetic anchors, encode them to ``path``."""
    import torch

    from progs import octree
    from progs.codec.stream import encode
    from progs.model.anchors import AnchorSet
    from progs.model.context import ContextConfig, ContextModel
    from progs.model.model import ProGSModel

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    grid = octree.OctreeGrid((-1.0, -1.0, -1.0), 2.0, BASE_DEPTH, LEVELS)
    t0 = time.perf_counter()
    a = AnchorSet.random(grid, points_for_anchors(target), g)
    with torch.no_grad():
        a.feature.copy_(torch.randn(a.feature.shape, generator=g))
        a.offsets.copy_(torch.randn(a.offsets.shape, generator=g) * 0.5)
        a.scaling.add_(torch.randn(a.scaling.shape, generator=g) * 0.01)
    ctx = ContextModel(ContextConfig.for_anchor_count(len(a)), seed=seed)
    model = ProGSModel(a, context=ctx)
    build_s = time.perf_counter() - t0
    baseline = _maxrss_mb()
    t0 = time.perf_counter()
    res = encode(model)
    seconds = time.perf_counter() - t0
    Path(path).write_bytes(res.data)
    return {
        "anchors": len(a),
        "per_level": a.count_per_level(),
        "bytes": len(res.data),
        "build_s": build_s,
        "encode_s": seconds,
        "encode_level_s": [s.seconds for s in res.lods],
        "encode_peak_mb": _maxrss_mb(),
        "encode_baseline_mb": baseline,
        "threads": torch.get_num_threads(),
    }


def _decode_worker(path: str) -> dict[str, Any]:
    """Fresh process: decode the stream at ``path``."""
    from progs.codec.stream import decode

    data = Path(path).read_bytes()
    baseline = _maxrss_mb()
    t0 = time.perf_counter()
    d = decode(data)
    seconds = time.perf_counter() - t0
    assert d.problem is None and d.model is not None
    return {
        "decode_s": seconds,
        "decode_level_s": [s.seconds for s in d.lods],
        "decode_anchors": len(d.model.anchors),
        "decode_peak_mb": _maxrss_mb(),
        "decode_baseline_mb": baseline,
    }


def _isolated(fn, *args) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


def plot_scaling(rows: list[dict[str, Any]], fits: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 4), dpi=110)
    n = [r["anchors"] for r in rows]
    for key, label in (("encode_s", "encode"), ("decode_s", "decode")):
        ax.loglog(n, [r[key] for r in rows], "-o", label=f"{label} (slope {fits[key]:.2f})" if fits[key] else label)
    ax.set_xlabel("anchors")
    ax.set_ylabel("seconds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("coding time vs anchors (log-log)", fontsize=9)
    for key, label in (("encode_peak_mb", "encode peak RSS"), ("decode_peak_mb", "decode peak RSS")):
        ax2.loglog(n, [r[key] for r in rows], "-o", label=label)
    ax2.set_xlabel("anchors")
    ax2.set_ylabel("MiB")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    ax2.set_title("peak memory vs anchors", fontsize=9)
    save_figure(fig, path)


def run_sizes(sizes: list[int], work: Path, seed: int = 0, log=print) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in sizes:
        path = work / f"synthetic_{target}.progs"
        e = _isolated(_encode_worker, target, str(path), seed)
        d = _isolated(_decode_worker, str(path))
        path.unlink(missing_ok=True)
        row = {"target": target, **e, **d, "loadavg_1m": round(os.getloadavg()[0], 2)}
        row["decode_anchors_per_s"] = row["anchors"] / row["decode_s"]
        row["encode_anchors_per_s"] = row["anchors"] / row["encode_s"]
        for k, v in list(row.items()):
            if isinstance(v, float):
                row[k] = rounded(v, 4)
            elif isinstance(v, list) and v and isinstance(v[0], float):
                row[k] = [rounded(x, 4) for x in v]
        log(
            f"  {row['anchors']} anchors: encode {row['encode_s']:.2f} s, decode {row['decode_s']:.2f} s "
            f"({row['decode_anchors_per_s']:.0f} anchors/s), decode peak {row['decode_peak_mb']:.0f} MiB"
        )
        rows.append(row)
    n = [r["anchors"] for r in rows]
    fits = {k: loglog_exponent(n, [r[k] for r in rows]) for k in ("encode_s", "decode_s", "decode_peak_mb")}
    return {"rows": rows, "exponents": {k: rounded(v, 3) for k, v in fits.items()}}


def run(ws, out: Path) -> dict[str, Any]:
    work = out / "scaling_work"
    try:
        res = run_sizes(list(ws.cfg.profile.scaling_sizes), work, ws.cfg.seed, ws.log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plot_scaling(res["rows"], res["exponents"], out / "scaling.png")
    largest = max(res["rows"], key=lambda r: r["anchors"])
    res.update(
        {
            "plot": "scaling.png",
            "largest": {
                "anchors": largest["anchors"],
                "decode_peak_mb": largest["decode_peak_mb"],
                "decode_s": largest["decode_s"],
                "decode_anchors_per_s": largest["decode_anchors_per_s"],
            },
        }
    )
    return res


def markdown(res: dict[str, Any]) -> list[str]:
    e = res["exponents"]
    lines = [
        "| anchors | bytes | encode s | decode s | decode anchors/s | encode peak MiB | decode peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['anchors']} | {r['bytes']} | {r['encode_s']} | {r['decode_s']} | "
            f"{r['decode_anchors_per_s']:.0f} | {r['encode_peak_mb']:.0f} | {r['decode_peak_mb']:.0f} |"
        )
    lines += [
        "",
        f"Fitted log-log exponents: encode time {e['encode_s']}, decode time {e['decode_s']}, "
        f"decode peak memory {e['decode_peak_mb']}.",
    ]
    return lines
