#!/usr/bin/env bash
# Adaptations of one SIM network with the 200 hifi frames, side by side on one lent GPU, each with
# a different regulariser against memorising so few frames (reach train perception
# --real-clutter / --l2sp / fewer steps / a smaller real fraction), then Table 1 style figures.
#
#   bash bench/gpu_perception_regularise.sh OUT SIM_MODEL HIFI_TRAIN HIFI_VAL HIFI_TEST
#
# Every run is the shipped P75 recipe (the adapted network's .json) plus its own arguments
# (VARIANTS, one "name|arguments" per line). HIFI_VAL (other hifi frames, never trained on) is
# monitored every 1000 steps and selects the run: the lowest final e on HIFI_VAL among the runs
# whose simulator e is <= 0.011.  HIFI_TEST is only evaluated at the end (OUT/eval.json).
# Knobs: BUDGET (training seconds per run, 230; a run's own --time-budget wins), LR (3e-4), DEVICE.
# The hifi sets: reach data render --source hifi --n 200 --seed 1 / 3 / 2 (train / val / test).
set -euo pipefail
OUT="${1:?OUT dir}"; SIM_MODEL="${2:?SIM model}"; HIFI_TRAIN="${3:?hifi train}"
HIFI_VAL="${4:?hifi val}"; HIFI_TEST="${5:?hifi test}"
BUDGET="${BUDGET:-230}"; LR="${LR:-3e-4}"; DEVICE="${DEVICE:-cuda}"
VARIANTS="${VARIANTS:-base|
clutter|--real-clutter 0.75
l2sp|--l2sp 3e-5
clutter_l2sp|--real-clutter 0.75 --l2sp 3e-5
clutter_half|--real-clutter 0.75 --time-budget 115
clutter_p50|--real-clutter 0.75 --real-fraction 0.5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/perception_eval_runs.sh"
RUNS="$OUT/runs"; mkdir -p "$RUNS"
t0=$SECONDS

while IFS='|' read -r name extra; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086  # extra holds several arguments
  reach train perception --out "$RUNS/$name" --adapt-from "$SIM_MODEL" --real "$HIFI_TRAIN" \
    --real-fraction 0.75 --virtual-targets 20 --online --randomize 0.5 --supersample 2 \
    --device "$DEVICE" --time-budget "$BUDGET" --steps 100000000 --batch 256 --lr "$LR" \
    --warmup 100 --noise 0.01 --brightness 0.1 --eval-every 1000 --checkpoint-every 100000 \
    --val-sim 1000 --val-real "$HIFI_VAL" --no-progress $extra > "$RUNS/$name.log" 2>&1 &
done <<< "$VARIANTS"
wait || true
for log in "$RUNS"/*.log; do echo "$(basename "$log" .log): $(tail -n 1 "$log")"; done
echo "[regularise $((SECONDS - t0))s] evaluation"
eval_runs "$RUNS" "$OUT" 1000 "$HIFI_TEST"
python3 - "$RUNS" <<'EOF'
import json, pathlib, sys
rows = []
for m in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.json")):
    metrics = json.loads(m.read_text())
    f = metrics["final"]
    rows.append((m.parent.name, f.get("e_real_val"), f.get("e_sim"), metrics["steps"]))
ok = [r for r in rows if r[2] is not None and r[2] <= 0.011]
for r in rows:
    print(f"{r[0]:14s} e hifi_val {r[1]:.4f}  e sim {r[2]:.4f}  steps {r[3]}")
if ok:
    print("selected (lowest hifi_val e with sim e <= 0.011):", min(ok, key=lambda r: r[1])[0])
EOF
(cd "$OUT" && tar czf runs.tar.gz --exclude='checkpoint*' runs)
echo "[regularise $((SECONDS - t0))s] done"
