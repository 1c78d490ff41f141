#!/usr/bin/env bash
# Issue 19's GPU figures on one GPU, each benchmark alone on the machine (timings side by side):
#   bash scripts/speed_gpu.sh control OUT    # control: the CPU trainer (on the CPU) vs the vectorised
#                                            # trainer on the GPU, 60 s each, to 98.5 % (VEC: its runs)
#   bash scripts/speed_gpu.sh sim OUT        # the SIM network from scratch (perception_sim_fast; its
#                                            # budget, or SIM_BUDGET s), the command's wall time, then
#                                            # e on 1000 test scenes
#   bash scripts/speed_gpu.sh speed OUT      # perception images/s per speed option side by side
#                                            # (RECIPES; VARIANTS, else the bench's; EACH s each)
#   bash scripts/speed_gpu.sh pipeline OUT   # reach pipeline --config pipeline_fast, stage times
#                                            # (Table 3 is left for a CPU machine: --stop-after finetune)
# Data for the pipeline: .devdata/hifi_train (reach data render --source hifi --n 200 --seed 11).
set -euo pipefail
PART="${1:?PART control|sim|speed|pipeline}"; OUT="${2:?OUT}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
case "$PART" in control|sim|speed|pipeline) ;; *) echo "PART is control, sim, speed or pipeline" >&2; exit 2 ;; esac
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader | tee -a "$OUT/gpu.txt"
case "$PART" in
  control)
    vec=()
    for v in ${VEC:-control_vec_dof3}; do vec+=(--vec "$v"); done
    "$PY" "$ROOT/bench/bench_control_vec.py" --device cuda --baseline-device cpu --budget "${BUDGET:-60}" \
      --eval-every 250000 --component-seconds 3 "${vec[@]}" 2>&1 | tee "$OUT/control_vec.txt" ;;
  sim)
    t0=$("$PY" -c 'import time; print(time.time())')
    "$PY" -m reach_core.cli train perception --config perception_sim_fast ${SIM_BUDGET:+--time-budget "$SIM_BUDGET"} \
      --out "$OUT/sim_fast" --no-progress 2>&1 | grep -v '^render' | tee "$OUT/sim_fast.txt"
    "$PY" -c "import time; print(f'wall seconds of reach train perception: {time.time() - $t0:.1f}')" \
      | tee -a "$OUT/sim_fast.txt"
    "$PY" -m reach_core.cli eval perception --model "$OUT/sim_fast/model.pt" --sim-test 1000 \
      --json "$OUT/sim_fast_eval.json" 2>&1 | tee -a "$OUT/sim_fast.txt" ;;
  speed)
    for recipe in ${RECIPES:-perception_sim perception_sim_dr}; do   # the shipped SIM, SIM-DR nets
      "$PY" "$ROOT/bench/bench_perception_speed.py" --device cuda --recipe "$recipe" --seconds "${EACH:-8}" \
        --pool 16384 ${VARIANTS:+--variants "$VARIANTS"} 2>&1 | grep -v '^render' | tee -a "$OUT/perception_speed.txt"
    done ;;
  pipeline)
    "$PY" -m reach_core.cli pipeline --config pipeline_fast --device cuda --hifi-train "$ROOT/.devdata/hifi_train" \
      --out "$OUT/pipe" --stop-after finetune 2>&1 | tee "$OUT/pipeline.txt" ;;
  *) echo "PART is control, sim, speed or pipeline" >&2; exit 2 ;;
esac
