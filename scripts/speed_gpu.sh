#!/usr/bin/env bash
# Issue 19's GPU figures on one GPU, each benchmark alone on the machine (timings side by side):
#   bash scripts/speed_gpu.sh speed OUT      # perception images/s per speed option; control:
#                                            # the vectorised trainer on the GPU vs the CPU trainer
#   bash scripts/speed_gpu.sh pipeline OUT   # reach pipeline --config pipeline_fast, stage times
#                                            # (Table 3 is left for a CPU machine: --stop-after finetune)
# COMPILE=1: the vectorised control trainer's update compiled (CUDA graphs).
# Data for the pipeline: .devdata/hifi_train (reach data render --source hifi --n 200 --seed 11).
set -euo pipefail
PART="${1:?PART speed|pipeline}"; OUT="${2:?OUT}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
case "$PART" in
  speed)
    for recipe in ${RECIPES:-perception_sim perception_sim_dr}; do   # the shipped SIM, SIM-DR nets
      "$PY" "$ROOT/bench/bench_perception_speed.py" --device cuda --recipe "$recipe" --seconds "${EACH:-8}" \
        --pool 16384 2>&1 | grep -v '^render' | tee -a "$OUT/perception_speed.txt"
    done
    "$PY" "$ROOT/bench/bench_control_vec.py" --device cuda --baseline-device cpu --budget 60 --envs 4096 \
      --batch-size 4096 --updates-per-step 0.0078125 --eval-every 500000 ${COMPILE:+--compile} \
      2>&1 | tee "$OUT/control_vec.txt" ;;
  pipeline)
    "$PY" -m reach_core.cli pipeline --config pipeline_fast --device cuda --hifi-train "$ROOT/.devdata/hifi_train" \
      --out "$OUT/pipe" --stop-after finetune 2>&1 | tee "$OUT/pipeline.txt" ;;
  *) echo "PART is speed or pipeline" >&2; exit 2 ;;
esac
