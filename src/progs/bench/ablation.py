"""Suite ``ablation``: raw / w/o MI / w/o c2f / full ProGS at the same budget (paper Table III), and
progs' default training where it differs from the paper's (the demo preset): per-LoD PSNR and
cumulative size from the decoded streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progs.bench.common import pyplot, save_figure
from progs.bench.workspace import Workspace

ABLATIONS = (
    ("raw", "raw (no adjust, no InfoNCE, no c2f)"),
    ("no_mi", "w/o MI (no InfoNCE)"),
    ("no_c2f", "w/o c2f"),
    ("paper", "full (paper)"),
    ("full", "progs default"),
)


def plot_ablation(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 4), dpi=110)
    for r in rows:
        lods = [x["lod"] for x in r["lods"]]
        ax.plot(lods, [x["psnr"] for x in r["lods"]], "-o", label=r["label"], markersize=4)
        ax2.plot(
            [x["cumulative_bytes"] / 1024 for x in r["lods"]],
            [x["psnr"] for x in r["lods"]],
            "-o",
            label=r["label"],
            markersize=4,
        )
    ax.set_xlabel("LoD")
    ax.set_ylabel("test PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    ax2.set_xscale("log")
    ax2.set_xlabel("stream bytes up to the LoD (KiB, log)")
    ax2.grid(True, alpha=0.3, which="both")
    save_figure(fig, path)


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    rows = []
    for name, label in ABLATIONS:
        t = ws.get(name)
        rows.append(
            {
                "variant": name,
                "label": label,
                "overrides": t.overrides,
                "lambda_e": t.lambda_e,
                "iterations": t.iterations,
                "train_seconds": round(t.train_seconds, 2),
                "total_bytes": t.total_bytes,
                "lods": t.lods,
            }
        )
    plot_ablation(rows, out / "ablation.png", f"{ws.dataset_name}: ablations, same budget")
    return {"rows": rows, "plot": "ablation.png"}


def markdown(res: dict[str, Any]) -> list[str]:
    L = len(res["rows"][0]["lods"])
    lines = [
        "| variant | " + " | ".join(f"LoD{i} PSNR" for i in range(1, L + 1)) + " | bytes (all LoDs) | LoD1 bytes |",
        "|---" * (L + 3) + "|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['label']} | "
            + " | ".join(f"{x['psnr']:.2f}" for x in r["lods"])
            + f" | {r['total_bytes']} | {r['lods'][0]['cumulative_bytes']} |"
        )
    return lines
