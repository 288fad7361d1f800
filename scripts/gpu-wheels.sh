#!/usr/bin/env bash
# Downloads into .whl/ the wheels the GPU machine lacks for `sdxl-nb bench --gpu` (scripts/gpu-bench.sh installs
# them there; the machine reaches no package index). Its image has torch 2.11, transformers, accelerate, peft,
# safetensors, huggingface_hub, scipy, pandas, pillow, opencv (see the device notes), but not:
#   diffusers  the version the test suite runs with (scripts/setup.sh's venv; the H100 run of 2026-11-22 too)
#   torchao    the recipe's "+ FP8" step (dynamic float8); 0.17.0 is the first release built for torch 2.11
#              (ABI-stable from there on; 0.16 wants torch 2.10 exactly and skips its kernels otherwise)
# Nothing else: the bench path imports no other package the image lacks (spandrel, controlnet-aux, ipywidgets,
# boto3... stay behind: scripts/gpu_import_check.py runs the --gpu-tiny bench with them hidden, in the tests).
# Usage: scripts/gpu-wheels.sh   (run where pip reaches PyPI; prints each wheel and the total)
set -euo pipefail
cd "$(dirname "$0")/.."
DIFFUSERS_VERSION=${DIFFUSERS_VERSION:-0.42.1}
TORCHAO_VERSION=${TORCHAO_VERSION:-0.17.0}
PYTHON=${PYTHON:-python3}
LIMIT_MIB=32  # the working tree that travels is limited to 64 MiB in all

rm -rf .whl
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl "diffusers==$DIFFUSERS_VERSION" "torchao==$TORCHAO_VERSION"
ls -l .whl/*.whl | awk '{printf "  %-70s %8.2f MiB\n", $NF, $5 / 1048576}'
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
printf "  total %.2f MiB (limit %d MiB)\n" "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu-wheels: the wheels are over $LIMIT_MIB MiB; the device run carries at most 64 MiB" >&2
  exit 1
fi
