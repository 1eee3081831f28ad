"""Suite ``rd``: rate-distortion of ProGS across λ_e and LoDs (paper Fig. 4), from decoded streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progs.bench.common import pyplot, save_figure
from progs.bench.workspace import Workspace


def plot_rd(curves: list[dict[str, Any]], path: Path, title: str, spz: list[dict[str, Any]] | None = None) -> None:
    """Solid: one LoD across λ_e; dotted: one λ_e across LoDs (x: cumulative stream KiB, log); red: SPZ of
    plain 3DGS fits at several sizes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    n_lods = max(len(c["lods"]) for c in curves)
    cmap = plt.get_cmap("viridis")
    for lod in range(1, n_lods + 1):
        pts = sorted((r["cumulative_bytes"] / 1024, r["psnr"]) for c in curves for r in c["lods"] if r["lod"] == lod)
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "-o",
            color=cmap((lod - 1) / max(1, n_lods - 1)),
            label=f"LoD {lod}",
            markersize=4,
        )
    for c in curves:
        ax.plot(
            [r["cumulative_bytes"] / 1024 for r in c["lods"]],
            [r["psnr"] for r in c["lods"]],
            ":",
            color="gray",
            linewidth=1,
        )
        last = c["lods"][-1]
        ax.annotate(
            f"λe={c['lambda_e']:g}",
            (last["cumulative_bytes"] / 1024, last["psnr"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(4, 2),
        )
    if spz:
        pts = sorted((s["bytes"] / 1024, s["psnr"]) for s in spz)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-D", color="tab:red", markersize=4, label="3DGS as SPZ")
    ax.set_xscale("log")
    ax.set_xlabel("stream bytes up to the LoD (KiB, log)")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, title="solid: same LoD across λe\ndotted: same λe across LoDs", title_fontsize=7)
    save_figure(fig, path)


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    curves = []
    for lam in ws.cfg.profile.lambdas:
        t = ws.get("full", lam)
        curves.append(
            {
                "lambda_e": lam,
                "total_bytes": t.total_bytes,
                "header_bytes": t.encode.header_bytes,
                "train_seconds": round(t.train_seconds, 2),
                "lods": t.lods,
            }
        )
    plot = out / "rd.png"
    from progs.bench.baselines import bd_rate_vs_spz, spz_curve

    spz = spz_curve(ws, out)
    plot_rd(curves, plot, f"ProGS on {ws.dataset_name}: rate-distortion per LoD and λe", spz)
    return {"curves": curves, "plot": plot.name, "bd_rate_vs_spz": bd_rate_vs_spz(ws, out)}


def markdown(res: dict[str, Any]) -> list[str]:
    lines = ["| λe | LoD | anchors | cum. bytes | PSNR | SSIM |", "|---|---|---|---|---|---|"]
    for c in res["curves"]:
        for r in c["lods"]:
            lines.append(
                f"| {c['lambda_e']:g} | {r['lod']} | {r['anchors']} | {r['cumulative_bytes']} | "
                f"{r['psnr']:.2f} | {r['ssim']:.4f} |"
            )
    bd = res.get("bd_rate_vs_spz", {})
    lines += ["", f"BD-rate vs SPZ of plain 3DGS fits: **{bd.get('bd_rate_percent')}** % (negative = progs smaller)."]
    return lines
