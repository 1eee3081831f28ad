"""Per-LoD tables and rate-distortion plots."""

from __future__ import annotations

import os
from typing import Any

from progs.atomic import atomic_path
from progs.errors import optional_import


def _fmt(v: Any, spec: str) -> str:
    if v is None:
        return "n/a"
    return format(v, spec)


def lod_table(rows: list[dict[str, Any]]) -> str:
    """A text table of per-LoD rows with any of: lod, anchors, bytes, cumulative_bytes, psnr, ssim."""
    cols = [
        ("lod", "LoD", "d"),
        ("anchors", "anchors", "d"),
        ("bytes", "bytes", "d"),
        ("cumulative_bytes", "cum.bytes", "d"),
        ("psnr", "PSNR", ".2f"),
        ("ssim", "SSIM", ".4f"),
        ("psnr_float", "PSNR float", ".2f"),
    ]
    cols = [c for c in cols if any(c[0] in r for r in rows)]
    head = "  ".join(f"{title:>10}" for _, title, _ in cols)
    lines = [head]
    for r in rows:
        lines.append("  ".join(f"{_fmt(r.get(key), spec):>10}" for key, _, spec in cols))
    return "\n".join(lines)


def markdown_lod_table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in ("lod", "anchors", "bytes", "cumulative_bytes", "psnr", "ssim") if any(k in r for r in rows)]
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            cells.append("n/a" if v is None else (f"{v:.2f}" if k == "psnr" else f"{v:.4f}" if k == "ssim" else str(v)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def rd_plot(curves: dict[str, list[tuple[float, float, int]]], path: str | os.PathLike[str], title: str = "") -> None:
    """Rate-distortion plot: per curve name, points (bytes, PSNR, LoD). Written atomically as PNG."""
    matplotlib = optional_import("matplotlib", "bench", "drawing the rate-distortion figure")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, pts in curves.items():
        xs = [p[0] / 1024 for p in pts]
        ys = [p[1] for p in pts]
        ax.plot(xs, ys, marker="o", label=name)
        for x, y, (_, _, lod) in zip(xs, ys, pts):
            ax.annotate(f"LoD{lod}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("stream bytes received (KiB)")
    ax.set_ylabel("test PSNR (dB)")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
