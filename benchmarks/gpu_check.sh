#!/usr/bin/env bash
# The GPU checks of training, in one run of a few minutes on a machine with CUDA: the CUDA
# tests (the recorded step against the eager one, the model and loss on CUDA), then
# bench_train's GPU rows (eager against CUDA graph, fp32 / tf32 / bf16, side by side), fit()
# epochs of ICBHI size with validation, and the GPU's busy share of a step. The output is the
# table docs/training-speed.md keeps, with the GPU's name.
#
#   bash benchmarks/gpu_check.sh            # writes gpu_check.md here, or under $OUT if set
#
# The GPU image of this workplace (docs/training-speed.md, "Measuring on a GPU") has torch
# but not pydantic; its wheels travel in .whl (ignored by git), fetched once here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 -d .whl \
#     pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
# and installed by this script when .whl is there.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_check.md"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
{
  echo "# GPU check at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))" || exit 1
  echo
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_step.py tests/test_model.py tests/test_loss.py -k "cuda or gpu"
  echo
  timeout 420 python3 -m benchmarks.bench_train --no-cpu --steps 20 --warmup 2 --fit-cycles 3540 --profile
} 2>&1 | tee "$out"
