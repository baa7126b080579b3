#!/usr/bin/env bash
# The GPU check of issue 15, in one run of under 9 minutes on a lent H100/H200 (no package registry there).
#
# Here, once, in the project root:   ../shared/gpu/fetch-wheels        (mlflow, omegaconf, mlxtend wheels -> .whl/)
# Then with the device tool:         run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)
#
# Steps (each under its own time limit, logs in $OUT/<step>.log, one line per step in $OUT/summary.txt):
#   nvidia-smi -L; the GPU tests (pytest -m gpu); benchmarks/throughput.py (the issue's four rows, fp32 and
#   bf16 + channels_last); benchmarks/oip_batch.py; benchmarks/dream.py; `latentdream train cnn_mnist_bundled
#   trainer.max_epochs=2` into a temporary store, then `latentdream runs` of it.
# Quote the figures with the card's name (first line of nvidia-smi.txt). THROUGHPUT_ARGS="--images 16384" shrinks
# the benchmark if time runs short.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
WORK=$(mktemp -d)
mkdir -p "$OUT"
if [ ! -f .whl/gpu-env.sh ]; then
  echo "no .whl/gpu-env.sh: run ../shared/gpu/fetch-wheels here first and carry .whl" | tee "$OUT/summary.txt"
  exit 2
fi
source .whl/gpu-env.sh
export MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db"

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, keep its log, print its tail
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "== $name (limit ${limit} s): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
  tail -n 30 "$OUT/$name.log"
}

nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/nvidia-smi.txt"
step gpu_tests 150 python3 -m pytest -q -m gpu -rs tests
step throughput 210 python3 benchmarks/throughput.py ${THROUGHPUT_ARGS:-}
step oip_batch 45 python3 benchmarks/oip_batch.py
step dream 30 python3 benchmarks/dream.py
step train 90 latentdream train cnn_mnist_bundled trainer.max_epochs=2 trainer.enable_progress_bar=false \
  "tracking.artifact_root=$WORK/mlruns" "tracking.checkpoint_dir=$WORK/checkpoints"
step runs 20 latentdream runs cnn_mnist_bundled
echo "logs in $OUT"; cat "$OUT/summary.txt"
