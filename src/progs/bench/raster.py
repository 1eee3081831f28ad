"""Suite ``raster``: the rasterizer benchmark (``progs.bench.raster_runs``) plus a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progs.bench.common import pyplot, save_figure
from progs.bench.speed import raster_rows


def plot_raster(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=110)
    ok = [r for r in rows if r.get("fwd_bwd_s")]
    labels = [
        f"{r['backend']}\n{r['gaussians'] // 1000}k {r['width']}²"
        if r["gaussians"] >= 1000
        else f"{r['backend']}\n{r['gaussians']} {r['width']}²"
        for r in ok
    ]
    x = range(len(ok))
    ax.bar([i - 0.2 for i in x], [r["fwd_s"] * 1000 for r in ok], width=0.4, label="forward")
    ax.bar([i + 0.2 for i in x], [r["fwd_bwd_s"] * 1000 for r in ok], width=0.4, label="forward+backward")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title("CPU rasterization", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def run(ws, out: Path) -> dict[str, Any]:
    from progs.bench.raster_runs import run_raster_bench

    rows = raster_rows(ws, out) if ws.cfg.quick else run_raster_bench(out / "raster", quick=False)
    plot_raster(rows, out / "raster.png")
    import json

    from progs.atomic import write_bytes_atomic

    write_bytes_atomic(out / "raster.json", (json.dumps(rows, indent=2) + "\n").encode())
    return {"rows": rows, "plot": "raster.png", "json": "raster.json"}


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def markdown(res: dict[str, Any]) -> list[str]:
    lines = [
        "| backend | Gaussians | size | fwd s | fwd+bwd s | peak MB | x reference | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['backend']} | {r['gaussians']} | {r['width']}x{r['height']} | {_num(r.get('fwd_s'))} | "
            f"{_num(r.get('fwd_bwd_s'))} | {r.get('peak_mb')} | {r.get('ratio_vs_reference')} | {r.get('note') or ''} |"
        )
    return lines
