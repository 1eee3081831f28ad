"""Suite ``bitstream``: bytes per component (header, structure, f, s, o) and LoD (paper Fig. 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from progs.bench.common import pyplot, save_figure
from progs.bench.workspace import Workspace

COMPONENTS = ("structure", "prediction", "f", "s", "o")


def plot_bitstream(res: dict[str, Any], path: Path, title: str) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 4), dpi=110, gridspec_kw={"width_ratios": [3, 1.3]})
    names = ["header"] + [f"LoD{r['lod']}" for r in res["lods"]]
    bottom = [0.0] * len(names)
    colors = {
        "header": "#444444",
        "framing": "#bbbbbb",
        "structure": "#e4572e",
        "prediction": "#9b5de5",
        "f": "#17bebb",
        "s": "#ffc914",
        "o": "#76b041",
    }
    series = {"header": [res["header_bytes"]] + [0] * len(res["lods"])}
    for c in (*COMPONENTS, "framing"):
        series[c] = [0] + [r[c] for r in res["lods"]]
    for c, vals in series.items():
        kib = [v / 1024 for v in vals]
        ax.bar(names, kib, bottom=bottom, color=colors[c], label=c)
        bottom = [b + v for b, v in zip(bottom, kib)]
    ax.set_ylabel("KiB")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    total = res["total_bytes"]
    shares = [res["header_bytes"]] + [r["bytes"] for r in res["lods"]]
    ax2.pie(shares, labels=names, autopct=lambda p: f"{p:.0f}%" if p >= 3 else "", textprops={"fontsize": 7})
    ax2.set_title(f"share of {total / 1024:.0f} KiB", fontsize=9)
    save_figure(fig, path)


def run(ws: Workspace, out: Path) -> dict[str, Any]:
    t = ws.get("full")
    enc = t.encode
    lods = []
    for s in enc.lods:
        comp = {c: int(s.components[c]) for c in COMPONENTS}
        framing = s.bytes - sum(comp.values())  # chunk tag, length, CRC, level byte, ranges, word counts
        lods.append(
            {
                "lod": s.lod,
                "anchors": s.anchors,
                "bytes": s.bytes,
                **comp,
                "framing": framing,
                "structure_method": s.structure_method,
                "bytes_per_anchor": round(s.bytes / max(1, s.anchors), 2),
            }
        )
    total = len(enc.data)
    res = {
        "lambda_e": t.lambda_e,
        "total_bytes": total,
        "header_bytes": enc.header_bytes,
        "header_share": round(enc.header_bytes / total, 4),
        "lods": lods,
        "component_totals": {c: sum(r[c] for r in lods) for c in (*COMPONENTS, "framing")},
        "note": "f and s share one range-coder stream per LoD: split in proportion to their ideal code lengths; o has its own stream; prediction = the parent predictor's table",
        "plot": "bitstream.png",
    }
    plot_bitstream(res, out / "bitstream.png", f"{ws.dataset_name}, λe={t.lambda_e:g}: bytes per component and LoD")
    return res


def markdown(res: dict[str, Any]) -> list[str]:
    lines = [
        f"Header: {res['header_bytes']} bytes ({res['header_share'] * 100:.1f}% of {res['total_bytes']}).",
        "",
        "| LoD | anchors | bytes | structure | prediction | f | s | o | framing | structure method |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["lods"]:
        lines.append(
            f"| {r['lod']} | {r['anchors']} | {r['bytes']} | {r['structure']} | {r['prediction']} | {r['f']} | {r['s']} | "
            f"{r['o']} | {r['framing']} | {r['structure_method']} |"
        )
    return lines
