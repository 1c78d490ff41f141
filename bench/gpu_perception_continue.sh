#!/usr/bin/env bash
# Second stage of bench/gpu_perception.sh: continue one SIM network alone on the GPU (it shared
# the GPU with two others there), then adapt it with <= 200 higher-fidelity frames (P75 and P50
# side by side) and evaluate (Table 1 style).
#
#   bash bench/gpu_perception_continue.sh OUT_DIR SIM_MODEL HIFI_TRAIN HIFI_TEST
#
# Knobs (environment): SIM_BUDGET / ADAPT_BUDGET (seconds), RANDOMIZE (0.5), SS (2), DEVICE
# (cuda), TEST_N (1000), VIRT (20), EVAL (1; 0: leave the evaluation to the caller), SIM_LR (5e-4),
# ADAPT_LR (3e-4).
set -euo pipefail
OUT="${1:?OUT dir}"; SIM_MODEL="${2:?SIM model}"; HIFI_TRAIN="${3:?hifi train}"; HIFI_TEST="${4:?hifi test}"
SIM_BUDGET="${SIM_BUDGET:-300}"; ADAPT_BUDGET="${ADAPT_BUDGET:-100}"; RANDOMIZE="${RANDOMIZE:-0.5}"
SIM_LR="${SIM_LR:-5e-4}"; ADAPT_LR="${ADAPT_LR:-3e-4}"
SS="${SS:-2}"; DEVICE="${DEVICE:-cuda}"; TEST_N="${TEST_N:-1000}"; VIRT="${VIRT:-20}"; EVAL="${EVAL:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/perception_eval_runs.sh"
RUNS="$OUT/runs"; mkdir -p "$RUNS"
t0=$SECONDS
stamp() { echo "[gpu_perception_continue $((SECONDS - t0))s] $*"; }

stamp "SIM: continue $SIM_MODEL for ${SIM_BUDGET}s on GPU-rendered scenes (${RANDOMIZE} randomised)"
reach train perception --out "$RUNS/sim2" --adapt-from "$SIM_MODEL" --online --randomize "$RANDOMIZE" \
  --supersample "$SS" --batch 256 --device "$DEVICE" --time-budget "$SIM_BUDGET" --steps 100000000 \
  --lr "$SIM_LR" --warmup 200 --eval-every 2000 --checkpoint-every 20000 --val-sim 1000 --no-progress \
  > "$RUNS/sim2.log" 2>&1
tail -n 1 "$RUNS/sim2.log"

stamp "adaptation with $(($(wc -l < "$HIFI_TRAIN/labels.csv") - 1)) hifi frames x $VIRT virtual targets"
for frac in 0.75 0.5; do
  tag="p$(python3 -c "print(round($frac * 100))")"
  reach train perception --out "$RUNS/${tag}_sim2" --adapt-from "$RUNS/sim2/model.pt" \
    --real "$HIFI_TRAIN" --real-fraction "$frac" --virtual-targets "$VIRT" --online \
    --randomize "$RANDOMIZE" --supersample "$SS" --device "$DEVICE" --time-budget "$ADAPT_BUDGET" \
    --steps 100000000 --batch 256 --lr "$ADAPT_LR" --warmup 100 --noise 0.01 --brightness 0.1 \
    --eval-every 1000 --checkpoint-every 100000 --val-sim 1000 --no-progress \
    > "$RUNS/${tag}_sim2.log" 2>&1 &
done
wait
[ "$EVAL" = 1 ] || { stamp "done (evaluation left to the caller)"; exit 0; }

stamp "evaluation"
eval_runs "$RUNS" "$OUT" "$TEST_N" "$HIFI_TEST"
stamp "done"
