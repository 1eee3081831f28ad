#!/usr/bin/env bash
# Fit a splat scene on a lent GPU at the resolution a viewer looks at, as `progs fit` does on a CPU but
# with the iterations a CPU cannot afford, then encode it and keep the stream:
#
#   bash scripts/gpu_fit.sh [SCENE] [progs fit options...]
#
# SCENE defaults to gpu_data/playbot/lod-meta.json (scripts/gpu_wheels.sh copies it there; carry
# gpu_data and gpu_wheels). Run it after scripts/gpu_check.sh on the same warm machine, which installed
# progs and built gsplat's CUDA extension; on a machine not yet set up it runs that setup first
# (GPU_CHECK_SETUP_ONLY=1 bash scripts/gpu_check.sh, a few minutes).
#
# Defaults (each an environment variable):
#   GPU_FIT_LOD=4              the streamed SOG level to fit (0: the full 500,000-Gaussian playbot)
#   GPU_FIT_SIZE=1024          teacher image size: the viewer's 1024 pixels the score uses
#   GPU_FIT_SECONDS=420        time for the whole script; the fit is stopped at its end (`timeout`),
#                              and a stopped fit has no stream
#   GPU_FIT_ITERATIONS=auto    training iterations (the CPU runs use 2,000-3,000); auto: a probe fit of
#                              200 iterations times a step, and the run gets 60 % of what the time left
#                              (less 60 s for the teacher, the scoring and the encoding) allows, in
#                              hundreds, between 1,000 and 20,000
#   GPU_FIT_LAMBDA_E=0.0012    entropy weight; more iterations give the rate term longer, so they call
#                              for a lower weight to land at the same bytes
# Options after SCENE go to `progs fit` as they are (they override the defaults above).
#
# $OUT (else gpu_fit_out/) receives gpu_fit.log (the fit's printout: the held-out viewer views' PSNR per
# LoD at 1024² with SH colours, the model as decoded), gpu_fit.json (the card, the command, seconds, the
# stream's bytes per LoD) and the stream. Back on a CPU machine, score it beside SPZ, decimate+SPZ and
# streamed SOG with
#   python benchmarks/scripts/score_fit.py ../shared/data/playbot/lod-meta.json STREAM --lod 4 --out DIR
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scene="${1:-gpu_data/playbot/lod-meta.json}"
shift || true
out="${OUT:-$root/gpu_fit_out}"
site="${PROGS_GPU_SITE:-/tmp/progs-gpu-site}"
py="${PYTHON:-python3}"
device="${GPU_CHECK_DEVICE:-cuda}"
lod="${GPU_FIT_LOD:-4}"
size="${GPU_FIT_SIZE:-1024}"
iterations="${GPU_FIT_ITERATIONS:-auto}"
lambda_e="${GPU_FIT_LAMBDA_E:-0.0012}"
seconds="${GPU_FIT_SECONDS:-420}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-/tmp/progs-gpu-extensions}"
export PYTHONUNBUFFERED=1
mkdir -p "$out"
log="$out/gpu_fit.log"
: >"$log"
say() { echo "$@" | tee -a "$log"; }
t_start=$(date +%s)

[ -e "$scene" ] || { say "gpu_fit: $scene does not exist (scripts/gpu_wheels.sh copies playbot to gpu_data/)"; exit 2; }
if [ ! -d "$site/progs" ] && [ -z "${GPU_FIT_NO_SETUP:-}" ]; then
  say "== $(date +%T) progs is not installed in $site: setting up (scripts/gpu_check.sh, GPU_CHECK_SETUP_ONLY=1)"
  OUT="$out/setup" GPU_CHECK_SETUP_ONLY=1 bash scripts/gpu_check.sh 2>&1 | tee -a "$log"
fi
if [ -d "$site/progs" ]; then
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
fi

left() { echo $(( seconds - ($(date +%s) - t_start) )); }
if [ "$iterations" = auto ]; then
  say "== $(date +%T) probe: 200 iterations to time a step"
  "$py" -m progs fit "$scene" --lod "$lod" --size "$size" --iterations 200 --device "$device" --out "$out/probe" \
    --overwrite --checkpoint-every 0 --eval-size 0 "$@" >"$out/probe.log" 2>&1 || { cat "$out/probe.log" | tee -a "$log"; exit 1; }
  iterations=$("$py" - "$out/probe.log" "$(left)" <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\r", "\n")
steps = re.findall(r"iteration (\d+)/\d+:.*?, (\d+) s, ETA", text)
it, s = (int(v) for v in steps[-1])
rate = it / max(s, 1)
n = int(0.6 * (int(sys.argv[2]) - 60) * rate) // 100 * 100
print(max(1000, min(20000, n)))
PY
)
  say "probe: $(grep -o 'iteration 200/200[^E]*' "$out/probe.log" | tr '\r' ' ' | tail -1) -> $iterations iterations in the $(left) s left"
fi
run="$out/fit"
stream="$out/$(basename "$(dirname "$scene")")_lod${lod}.progs"
cmd=("$py" -m progs fit "$scene" --lod "$lod" --size "$size" --iterations "$iterations" --lambda-e "$lambda_e"
  --device "$device" --out "$run" --overwrite --checkpoint-every 0 "$@")
say "== $(date +%T) ${cmd[*]} (stopped after $(left) s)"
fit_rc=0
timeout --kill-after=10 "$(left)" "${cmd[@]}" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tee -a "$log" || fit_rc=${PIPESTATUS[0]}
fit_s=$(( $(date +%s) - t_start ))
enc_rc=1
if [ "$fit_rc" = 0 ]; then
  say "== $(date +%T) encode"
  enc_rc=0
  "$py" -m progs encode "$run" --out "$stream" --no-eval 2>&1 | tee -a "$log" || enc_rc=${PIPESTATUS[0]}
else
  say "the fit ended with exit $fit_rc (124: stopped after ${seconds} s; lower GPU_FIT_ITERATIONS): no stream"
fi

FIT_RC="$fit_rc" ENC_RC="$enc_rc" FIT_S="$fit_s" STREAM="$stream" CMD="${cmd[*]}" OUTJSON="$out/gpu_fit.json" \
  "$py" - <<'PY' 2>&1 | tee -a "$log"
import json, os, platform, datetime
import torch
res = {
    "what": "progs fit on a lent GPU (scripts/gpu_fit.sh)",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": os.environ["CMD"],
    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or 'unknown'})",
    "torch": torch.__version__,
    "fit_exit": int(os.environ["FIT_RC"]),
    "encode_exit": int(os.environ["ENC_RC"]),
    "fit_seconds": int(os.environ["FIT_S"]),
}
stream = os.environ["STREAM"]
if res["encode_exit"] == 0 and os.path.exists(stream):
    res["stream"] = os.path.basename(stream)
    res["total_bytes"] = os.path.getsize(stream)
    manifest = stream + ".json"
    if os.path.exists(manifest):
        m = json.load(open(manifest))
        res["header_bytes"] = m["header"]["length"]
        res["lods"] = [{k: lod[k] for k in ("lod", "cumulative_bytes", "anchors_cumulative")} for lod in m["lods"]]
with open(os.environ["OUTJSON"], "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps(res, indent=1))
PY
say "== $(date +%T) done in $(( $(date +%s) - t_start )) s: $out"
[ "$fit_rc" = 0 ] && exit "$enc_rc"
exit "$fit_rc"
