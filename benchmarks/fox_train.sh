#!/usr/bin/env bash
# ProGS on the real fox capture (../shared/data/fox) at downscale 8 (135×240), within a 30-minute
# budget on 2 CPU cores; writes benchmarks/results/fox_train.json (per-LoD test PSNR/SSIM, anchors,
# wall time, stream bytes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITER="${ITER:-1200}"
RUN="${RUN:-runs/fox}"
mkdir -p benchmarks/results
start=$(date +%s)
progs train ../shared/data/fox --downscale 8 --out "$RUN" --iterations "$ITER" \
  --init-points 4000 --c2f-samples 1 --checkpoint-every 200
end=$(date +%s)
progs encode "$RUN" --out "$RUN/fox.progs"
python - "$RUN" "$ITER" "$((end - start))" <<'PY'
import json, sys, platform, datetime
run, iters, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
info = json.load(open(f"{run}/run.json"))
manifest = json.load(open(f"{run}/fox.progs.json"))
out = {
    "dataset": "../shared/data/fox", "downscale": 8, "iterations": iters, "train_wall_s": secs,
    "command": f"ITER={iters} bash benchmarks/fox_train.sh",
    "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
    "date": datetime.date.today().isoformat(),
    "checkpoint_lods": info["lods"],
    "stream": {"total_bytes": manifest["total_bytes"], "lods": manifest["lods"]},
}
json.dump(out, open("benchmarks/results/fox_train.json", "w"), indent=2)
print(json.dumps(out["checkpoint_lods"], indent=1))
PY
