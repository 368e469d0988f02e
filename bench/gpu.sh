#!/usr/bin/env bash
# The inference, retraining and fine-tuning benchmarks on a CUDA machine: GPU batch sizes and half
# precision. Results go to bench/results/gpu/ so that the CPU figures in bench/results/ stay.
# The scripts pick the GPU by themselves (`--device` defaults to cuda when torch sees one);
# this only says so explicitly and sets the sizes.
#
#   bench/gpu.sh [--full]                  bf16 autocast, inference batches of 256
#   DTYPE=fp16 BATCH=512 bench/gpu.sh
#
# Needs a CUDA build of torch in .venv (`make install` on a Linux GPU machine gets one), the
# default bundle (`make bundle`) and, for bench/retrain.py, a PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DTYPE=${DTYPE:-bf16}
BATCH=${BATCH:-256}
OUT=${OUT:-bench/results/gpu}

"$PYTHON" -c '
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"bench/gpu.sh: torch {torch.__version__} sees no CUDA device")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
'

"$PYTHON" bench/inference.py --device cuda --dtype "$DTYPE" --batch-size "$BATCH" --out "$OUT" "$@"
"$PYTHON" bench/retrain.py --device cuda --out "$OUT" "$@"
# One epoch of the `full` preset's fine-tuning (6,013 prompts), beside the frozen head's fit.
"$PYTHON" bench/finetune.py --device cuda --out "$OUT"
