"""SPZ baseline for the demo-scene λe sweep: plain 3DGS fits at the full profile's capped sizes
(600 iterations, the demo's budget), each written as SPZ through gsply and read back for its PSNR,
then the BD-rate of progs' LoD-L points (the `progs demo --lambda-e X` runs given as arguments,
their results.json) against that SPZ curve. Writes JSON to the path given last.

    python benchmarks/scripts/spz_vs_demo.py RUN_DIR [RUN_DIR ...] OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from progs.bench.baselines import spz_curve
from progs.bench.common import PROFILES, BenchConfig, bd_rate, machine_info
from progs.bench.workspace import Workspace


def main(argv: list[str]) -> None:
    *runs, out = argv
    out = Path(out)
    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(out=work, profile=PROFILES["full"], iterations=600)
    ws = Workspace(cfg, print)
    t0 = time.perf_counter()
    spz = spz_curve(ws, work)
    points = []
    for r in runs:
        for _ in range(360):  # the runs may still be going: wait for their results (up to an hour)
            if (Path(r) / "results.json").is_file():
                break
            time.sleep(10)
        res = json.loads((Path(r) / "results.json").read_text())
        last = res["stream"][-1]
        lam = json.loads((Path(r) / "run" / "run.json").read_text())["config"]["rate"]["lambda_e"]
        points.append(
            {
                "run": str(r),
                "lambda_e": lam,
                "bytes": last["cumulative_bytes"],
                "psnr": last["psnr"],
                "lods": res["stream"],
            }
        )
    value = bd_rate([(s["bytes"], s["psnr"]) for s in spz], [(p["bytes"], p["psnr"]) for p in points])
    result = {
        "machine": machine_info(),
        "seconds": round(time.perf_counter() - t0, 1),
        "spz": spz,
        "progs": points,
        "bd_rate_vs_spz_percent": value,
        "note": "negative BD-rate: progs smaller than SPZ at equal PSNR; None: PSNR ranges do not overlap",
    }
    out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                "spz": [(s["gaussians"], s["bytes"], round(s["psnr"], 2)) for s in spz],
                "progs": [(p["lambda_e"], p["bytes"], round(p["psnr"], 2)) for p in points],
                "bd_rate": value,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
