#!/usr/bin/env bash
# Weighted end-to-end fine-tuning (Eq. 4) of the shipped networks at GPU scale: the paper's
# mini-batches (task 64; perception 256, 75 % real), several settings side by side on one lent GPU,
# each evaluated on the same 400 simulator trials before, half-way and at the end.
#
#   bash bench/gpu_end2end_finetune.sh OUT HIFI_TRAIN
#
# Knobs (environment): STEPS (1500), DEVICE (cuda), THREADS (3 per run), EVAL_TRIALS (400),
# EVAL_EVERY (STEPS / 2), RUN_LIMIT (s, 530: a run still going then is stopped), VARIANTS_ENV
# (';'-separated "name options" entries replacing the list below), PERCEPTION / CONTROL (the
# shipped perception_adapted.pt / control_dof3.pt). The shipped end2end_ee2ft.pt came from
#   PERCEPTION=.devdata/p75n/model.pt STEPS=1200 EVAL_EVERY=1200 EVAL_TRIALS=100 THREADS=5 \
#   RUN_LIMIT=265 VARIANTS_ENV="adn_near25_s1200 --beta 0.99 --lr-perception 2e-5 \
#   --lr-control 2e-6 --near-target 0.25" bash bench/gpu_end2end_finetune.sh OUT .devdata/hifi_train
# where .devdata/p75n is an adaptation with near-reach targets (its command: end2end_ee2ft.json).
# Results: OUT/runs/<name>/ (model.pt, best.pt, metrics.json, progress.csv, loss_curves.png, log)
# and OUT/finetune.tar.gz; ship one with python bench/ship_end2end_model.py.
set -euo pipefail
OUT="${1:?OUT dir}"; HIFI_TRAIN="${2:?hifi train}"
STEPS="${STEPS:-1500}"; DEVICE="${DEVICE:-cuda}"; THREADS="${THREADS:-3}"; EVAL_TRIALS="${EVAL_TRIALS:-400}"
RUN_LIMIT="${RUN_LIMIT:-530}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="$ROOT/src/reach_core/reach_core/models"
PERCEPTION="${PERCEPTION:-$MODELS/perception_adapted.pt}"; CONTROL="${CONTROL:-$MODELS/control_dof3.pt}"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
RUNS="$OUT/runs"; mkdir -p "$RUNS"
t0=$SECONDS

# name and the options that differ; VARIANTS_ENV replaces them (learning rates a tenth of the
# defaults or less: at the defaults the fine-tuning drifts away from the trained networks)
VARIANTS=(
  "b80_lr1e-5   --beta 0.8  --lr-perception 1e-5 --lr-control 1e-6"
  "b80_lr3e-6   --beta 0.8  --lr-perception 3e-6 --lr-control 3e-7"
  "b95_lr1e-5   --beta 0.95 --lr-perception 1e-5 --lr-control 1e-6"
  "b99_lr1e-5   --beta 0.99 --lr-perception 1e-5 --lr-control 1e-6"
  "b80_r50_lr1e-5 --beta 0.8 --real-fraction 0.5 --lr-perception 1e-5 --lr-control 1e-6"
)
if [ -n "${VARIANTS_ENV:-}" ]; then IFS=';' read -r -a VARIANTS <<< "$VARIANTS_ENV"; fi
half="${EVAL_EVERY:-$((STEPS / 2))}"
for v in "${VARIANTS[@]}"; do
  read -r name opts <<< "$v"
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086
  timeout "$RUN_LIMIT" python3 -m reach_core.cli train end2end --perception "$PERCEPTION" --control "$CONTROL" --real "$HIFI_TRAIN" \
    --out "$RUNS/$name" --device "$DEVICE" --threads "$THREADS" --steps "$STEPS" \
    --eval-every "$half" --eval-trials "$EVAL_TRIALS" --seed 0 --no-progress $opts \
    > "$RUNS/$name.log" 2>&1 &
done
wait || true
for v in "${VARIANTS[@]}"; do
  read -r name _ <<< "$v"
  [ -n "$name" ] || continue
  echo "== $name: $(grep -E '^(before|step)' "$RUNS/$name.log" | tr '\n' ' ')"
done
(cd "$OUT" && tar czf finetune.tar.gz --exclude='checkpoint*' runs)
echo "[gpu_end2end_finetune $((SECONDS - t0))s] done"
