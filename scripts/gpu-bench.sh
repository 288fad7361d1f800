#!/usr/bin/env bash
# The one GPU bench run: installs the carried wheels, prints the versions, then `sdxl-nb bench --gpu --gpu-only`
# on full-size SDXL with random weights under a time limit, writing $OUT/bench-gpu.json after every part and
# $OUT/bench-gpu.log. Prepare the wheels first with scripts/gpu-wheels.sh and carry `.whl` (docs/PERFORMANCE.md,
# "Taking the GPU figures").
#
#   scripts/gpu-bench.sh [--tiny] [PARTS]
#
# PARTS: a comma list of fastest, stages, product, recipe, run in that order (default: all four, most wanted
# first; a part cut off by the time limit loses only its own figures). --tiny (or GPU_BENCH_TINY=1): the same run
# on this machine's CPU with the tiny architecture, which checks the script and the JSON in well under a minute.
# Environment: OUT (output folder; default ./gpu-bench-out), GPU_BENCH_TIMEOUT (seconds for the bench itself,
# default 540: the device allows 600 per command), GPU_BENCH_IMAGES (images per sustained job, default 16),
# PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."

tiny=${GPU_BENCH_TINY:-0}
parts=${GPU_BENCH_PARTS:-fastest,stages,product,recipe}
for arg in "$@"; do
  case "$arg" in
    --tiny) tiny=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "gpu-bench: unknown option $arg; accepted: --tiny, then an optional comma list of parts" >&2; exit 2 ;;
    *) parts=$arg ;;
  esac
done
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-bench-out}
mkdir -p "$OUT"
log=$OUT/bench-gpu.log
: >"$log"
say() { echo "$@" | tee -a "$log"; }

if [ "$tiny" = 1 ]; then
  timeout_s=${GPU_BENCH_TIMEOUT:-300}
  mode=(--gpu-tiny)
else
  timeout_s=${GPU_BENCH_TIMEOUT:-540}
  mode=()
  if compgen -G ".whl/*.whl" >/dev/null; then
    started=$(date +%s)
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl 2>&1 | tee -a "$log" || { say "gpu-bench: installing the carried wheels failed"; exit 3; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    say "installed $(ls .whl/*.whl | wc -l) carried wheel(s) in $(( $(date +%s) - started )) s"
  else
    say "no .whl/*.whl here: using the installed packages (scripts/gpu-wheels.sh prepares them)"
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 \
    | tee -a "$log"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
"$PYTHON" - <<'PY' 2>&1 | tee -a "$log"
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"

print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
      f"available: {torch.cuda.is_available()}), diffusers {v('diffusers')}, transformers {v('transformers')}, "
      f"torchao {v('torchao')}, peft {v('peft')}")
if torch.cuda.is_available():
    print(f"GPU {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}")
PY

images=()
[ -n "${GPU_BENCH_IMAGES:-}" ] && images=(--gpu-images "$GPU_BENCH_IMAGES")
say "bench: parts $parts, time limit ${timeout_s} s, JSON $OUT/bench-gpu.json"
timeout --signal=INT --kill-after=30 "$timeout_s" "$PYTHON" -m sdxl_nb bench --gpu --gpu-only "${mode[@]}" --gpu-parts "$parts" \
  "${images[@]}" --json "$OUT/bench-gpu.json" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 124 ] && say "gpu-bench: the time limit (${timeout_s} s) ended the run; the JSON holds the parts that finished"
say "gpu-bench: exit $rc"
exit "$rc"
