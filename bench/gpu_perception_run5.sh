#!/usr/bin/env bash
# Run 5 on one lent GPU (about 9 minutes): two SIM networks continued from the shipped ones, side
# by side, then evaluated on simulator and held-out higher-fidelity images (Table 1 style).
#   * sim_wide2: perception_sim.pt (wide, plain simulator images) continued for WIDE_BUDGET s on
#     GPU-rendered plain scenes, a lower learning rate: the SIM target (e <= 0.005);
#   * sim2 -> p75_sim2 / p50_sim2: the shipped adapted spatial network's SIM stage continued on
#     half-randomised scenes for SIM_BUDGET s, then adapted with the 200 hifi frames
#     (bench/gpu_perception_continue.sh).
#
#   bash bench/gpu_perception_run5.sh OUT HIFI_TRAIN HIFI_TEST
# Knobs (environment): WIDE_FROM / SPATIAL_FROM (the networks continued; default the shipped
# perception_sim.pt / perception_adapted.pt), WIDE_BUDGET (450 s), WIDE_LR (3e-4), and those of
# bench/gpu_perception_continue.sh. Run 7 continued run 6's wide network and run 5's sim2:
#   WIDE_FROM=.devdata/w3/runs/sim_wide3/model.pt WIDE_LR=1e-4 WIDE_BUDGET=480 \
#   SPATIAL_FROM=.devdata/run5/runs/sim2/model.pt SIM_BUDGET=280 ADAPT_BUDGET=170 \
#   bash bench/gpu_perception_run5.sh OUT .devdata/hifi_train .devdata/hifi_test
# The hifi sets: reach data render --source hifi --n 200 --seed 1 --out HIFI_TRAIN and
# --n 400 --seed 2 --out HIFI_TEST.  Results: OUT/eval.json, OUT/perception_errors.png and
# OUT/runs.tar.gz (each run's model.pt, metrics, progress and log).
set -euo pipefail
OUT="${1:?OUT dir}"; HIFI_TRAIN="${2:?hifi train}"; HIFI_TEST="${3:?hifi test}"
WIDE_BUDGET="${WIDE_BUDGET:-450}"; WIDE_LR="${WIDE_LR:-3e-4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/perception_eval_runs.sh"
MODELS="$ROOT/src/reach_core/reach_core/models"
WIDE_FROM="${WIDE_FROM:-$MODELS/perception_sim.pt}"; SPATIAL_FROM="${SPATIAL_FROM:-$MODELS/perception_adapted.pt}"
RUNS="$OUT/runs"; mkdir -p "$RUNS"
t0=$SECONDS

reach train perception --out "$RUNS/sim_wide2" --adapt-from "$WIDE_FROM" --online \
  --randomize 0 --supersample 2 --batch 256 --device "${DEVICE:-cuda}" --time-budget "$WIDE_BUDGET" \
  --steps 100000000 --lr "$WIDE_LR" --warmup 200 --eval-every 2000 --checkpoint-every 20000 \
  --val-sim 1000 --no-progress > "$RUNS/sim_wide2.log" 2>&1 &
wide=$!
EVAL=0 bash "$ROOT/bench/gpu_perception_continue.sh" "$OUT" "$SPATIAL_FROM" "$HIFI_TRAIN" "$HIFI_TEST"
wait "$wide" || echo "sim_wide2 failed: $(tail -n 3 "$RUNS/sim_wide2.log")"
tail -n 1 "$RUNS/sim_wide2.log"
echo "[run5 $((SECONDS - t0))s] evaluation"
eval_runs "$RUNS" "$OUT" 1000 "$HIFI_TEST"
(cd "$OUT" && tar czf runs.tar.gz --exclude='checkpoint*' --exclude='*.npz' runs)
echo "[run5 $((SECONDS - t0))s] done"
