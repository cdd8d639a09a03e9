#!/usr/bin/env bash
# Run the training measurements on a GPU host, in stages, inside one time budget, and always pack
# the results (resumable: a later call continues where this one stopped).
#
#   bash benchmarks/gpu_session.sh check bench select quality grid        # on the GPU host
#
# Stages: check | bench | select | quality | report | grid | budget | original | naive | randomized | cross
# Env: DATASETS (default "cifar10-jpg"; add food101-64px once its data is on the host),
#      BUDGET_S (seconds for all stages together, default 540), OUT (where results.tgz goes).
#
# The host has torch/timm/pandas/pyarrow/scipy/tqdm but not imagecodecs or airbench, and it cannot
# reach ../shared/data. Prepare a carried folder .cache/gpu (ignored by git) on this machine first:
#
#   mkdir -p .cache/gpu/whl .cache/gpu/data
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .cache/gpu/whl imagecodecs==2026.3.6
#   cp .cache/wheels/airbench-0.1.8-py3-none-any.whl .cache/gpu/whl/   # built from the PyPI sdist
#   cp -r ../shared/data/SHA256SUMS ../shared/data/cifar10-jpg .cache/gpu/data/
#   git describe --always --dirty --abbrev=12 > .cache/gpu/CODE_VERSION
#
# and name ".cache/gpu" in the call's carry. CIFAR-10 (18 MB) fits in one call's 64 MiB; Food-101
# 64 px (121 MB) does not: bring it in pieces over back-to-back calls (the warm host keeps ignored
# folders between calls) and reassemble under .cache/gpu/data/food101-64px before using it.
set -uo pipefail
GPU=.cache/gpu
if ls "$GPU"/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU"/whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
[ -d "$GPU/data" ] && export STORAGE_SCALING_DATA=$PWD/$GPU/data
export STORAGE_SCALING_CODE_VERSION=${STORAGE_SCALING_CODE_VERSION:-$(cat "$GPU/CODE_VERSION" 2>/dev/null || echo unknown)}
DATASETS=${DATASETS:-cifar10-jpg}
export DATASETS

stages() {
  for stage in "$@"; do
    echo "=== $stage ($(date -u +%H:%M:%S))"
    case $stage in
      check)
        nvidia-smi -L
        python3 -c "import torch, timm, imagecodecs; from storage_scaling import train, experiments; \
print('torch', torch.__version__, torch.cuda.get_device_name(0), 'timm', timm.__version__, 'imagecodecs', imagecodecs.__version__)"
        python3 -c "import airbench" 2>/dev/null && echo "airbench importable" || echo "airbench missing" ;;
      bench)
        if [ -d "${STORAGE_SCALING_DATA:-/nonexistent}/food101-64px" ]; then python3 benchmarks/bench_train.py
        else python3 benchmarks/bench_train.py --skip-food; fi ;;
      select|quality) python3 benchmarks/gpu_quality.py "$stage" --datasets $DATASETS ;;
      report) python3 benchmarks/gpu_quality.py report ;;
      grid|budget|original|naive|randomized|cross)
        python3 -m storage_scaling.experiments "$stage" --profile full --datasets $DATASETS ;;
      *) echo "unknown stage $stage"; return 2 ;;
    esac || echo "stage $stage failed (exit $?)"
  done
}
export -f stages
timeout "${BUDGET_S:-540}" bash -c 'stages "$@"' _ "$@"
echo "=== done or out of time (exit $?); packing results/"
if [ -n "${OUT:-}" ]; then tar czf "$OUT/results.tgz" results; ls -la "$OUT"; fi
