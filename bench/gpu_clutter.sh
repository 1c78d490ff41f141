#!/usr/bin/env bash
# Issue 3's clutter experiments on one lent GPU. bench/diagnose_hifi.py found that the hifi
# domain's background boxes, most of all those touching the arm, cost the adapted network most of
# its gap; these runs train against that:
#   1. margin0:    the shipped adaptation recipe (.devdata/p75n: P75, 20 virtual targets, real
#                  clutter 0.75, near target 0.25) from SIM network FROM, pasted clutter allowed up
#                  to the arm's edge (--clutter-margin 0);
#   2. margin0_d:  the same, with bars at any angle in half the randomised and pasted images
#                  (--distractors 0.5); runs 1 and 2 side by side;
#   3. sim_d:      FROM continued as a SIM network on half-randomised scenes with --distractors 0.5
#                  for SIM_BUDGET s;
#   4. sim_d_p75:  sim_d adapted as run 2.
#   5. swap*:      the shipped adaptation recipe from FROM, with each real frame's robot shown over
#                  another frame's background (--background-swap: share, --clutter-margin: pixels
#                  around the robot carried over): swap50_m1 | swap50_m2 side by side (stage
#                  "swap"), swap75_m1 | swap25_m1 (stage "swap2").
#   6. part_*:     the shipped adaptation recipe from FROM, training only part of the network
#                  (--adapt-part): part_features | part_early (stage "part"), and the same at a
#                  learning rate of 1e-3 (stage "part2").
#   7. design_*:   the shipped adaptation recipe from FROM on 200 frames whose joint configurations
#                  fill the joint box evenly (reach data render --source hifi --seed 1 --design
#                  halton|grid: the same looks as HIFI_TRAIN): design_halton | design_grid (stage
#                  "design"), design_uniform (HIFI_TRAIN again, as a baseline side by side) |
#                  design_halton_s1 (training seed 1) (stage "design2"); HALTON, GRID: those folders.
#
#   bash bench/gpu_clutter.sh STAGES OUT FROM HIFI_TRAIN HIFI_VAL
# STAGES: any of "adapt" (runs 1 and 2), "sim" (run 3), "simadapt" (run 4: OUT/runs/sim_d must
# hold run 3), "swap", "swap2" (runs 5), "part",
# "part2" (runs 6), "design", "design2" (runs 7), e.g. "adapt sim" (about 7 minutes; the device allows 10 a call). FROM: the SIM
# network (the shipped adapted network's SIM stage is run 7's sim2). Knobs (environment):
# ADAPT_BUDGET (150 s), SIM_BUDGET (250 s), DEVICE (cuda). Each run's hifi validation error is in
# its metrics.json (e_real_val); the held-out hifi test set is evaluated afterwards (reach eval
# perception --model NAME=PATH --dataset hifi_test=...). Results: OUT/runs.tgz (each run's
# model.pt, metrics, progress, curve and log).
set -euo pipefail
STAGES=" ${1:?STAGES} "; OUT="${2:?OUT dir}"; FROM="${3:?SIM network}"; HIFI_TRAIN="${4:?hifi train}"
HIFI_VAL="${5:?hifi val}"
ADAPT_BUDGET="${ADAPT_BUDGET:-150}"; SIM_BUDGET="${SIM_BUDGET:-250}"; DEVICE="${DEVICE:-cuda}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/perception_eval_runs.sh"
RUNS="$OUT/runs"; mkdir -p "$RUNS"
t0=$SECONDS
common=(--online --randomize 0.5 --supersample 2 --device "$DEVICE" --steps 100000000 --batch 256
        --val-sim 1000 --val-real "$HIFI_VAL" --checkpoint-every 100000 --no-progress)
adapt() {  # NAME FROM extra args...: the shipped adaptation recipe (p75n) plus the extra args
  local name=$1 from=$2; shift 2
  reach train perception --out "$RUNS/$name" --adapt-from "$from" --real "$HIFI_TRAIN" \
    --real-fraction 0.75 --virtual-targets 20 --time-budget "$ADAPT_BUDGET" --lr 3e-4 --warmup 100 \
    --noise 0.01 --brightness 0.1 --eval-every 1000 --real-clutter 0.75 --near-target 0.25 \
    "${common[@]}" "$@" > "$RUNS/$name.log" 2>&1
}
summary() { python3 - "$RUNS/$1/metrics.json" <<'EOF'
import json, sys
f = json.load(open(sys.argv[1]))["final"]
print(f"  {sys.argv[1]}: step {f['step']}, e_sim {f.get('e_sim', float('nan')):.4f}, "
      f"e_real_val {f.get('e_real_val', float('nan')):.4f}")
EOF
}
pair() {  # NAME1 "ARGS1" NAME2 "ARGS2": two adaptations from FROM side by side
  local a b
  adapt "$1" "$FROM" $2 & a=$!
  adapt "$3" "$FROM" $4 & b=$!
  wait "$a" || { status=1; tail -n 3 "$RUNS/$1.log"; }
  wait "$b" || { status=1; tail -n 3 "$RUNS/$3.log"; }
  echo "[clutter $((SECONDS - t0))s] $1 | $3 done"; summary "$1" || true; summary "$3" || true
}
status=0
if [[ $STAGES == *" adapt "* ]]; then
  pair margin0 "--clutter-margin 0" margin0_d "--clutter-margin 0 --distractors 0.5"
fi
if [[ $STAGES == *" sim "* ]]; then
  reach train perception --out "$RUNS/sim_d" --adapt-from "$FROM" --distractors 0.5 \
    --time-budget "$SIM_BUDGET" --lr 3e-4 --warmup 200 --eval-every 2000 "${common[@]}" \
    > "$RUNS/sim_d.log" 2>&1 || { status=1; tail -n 3 "$RUNS/sim_d.log"; }
  echo "[clutter $((SECONDS - t0))s] sim_d done"; summary sim_d || true
fi
if [[ $STAGES == *" simadapt "* ]]; then
  adapt sim_d_p75 "$RUNS/sim_d/model.pt" --clutter-margin 0 --distractors 0.5 \
    || { status=1; tail -n 3 "$RUNS/sim_d_p75.log"; }
  echo "[clutter $((SECONDS - t0))s] sim_d_p75 done"; summary sim_d_p75 || true
fi
if [[ $STAGES == *" swap "* ]]; then
  pair swap50_m1 "--background-swap 0.5 --clutter-margin 1" swap50_m2 "--background-swap 0.5"
fi
if [[ $STAGES == *" swap2 "* ]]; then
  pair swap75_m1 "--background-swap 0.75 --clutter-margin 1" swap25_m1 "--background-swap 0.25 --clutter-margin 1"
fi
if [[ $STAGES == *" part "* ]]; then
  pair part_features "--adapt-part features" part_early "--adapt-part early"
fi
if [[ $STAGES == *" part2 "* ]]; then
  pair part_features_lr1e-3 "--adapt-part features --lr 1e-3" part_early_lr1e-3 "--adapt-part early --lr 1e-3"
fi
if [[ $STAGES == *" design "* ]]; then
  pair design_halton "--real ${HALTON:?HALTON dataset}" design_grid "--real ${GRID:?GRID dataset}"
fi
if [[ $STAGES == *" design2 "* ]]; then
  pair design_uniform "" design_halton_s1 "--real ${HALTON:?HALTON dataset} --seed 1"
fi
(cd "$OUT" && tar czf runs.tgz --exclude='checkpoint*' runs)
exit "$status"
