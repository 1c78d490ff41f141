#!/usr/bin/env bash
# Sim-to-real training runs on one GPU (issue: sim-to-real on a robot and camera never seen).
#   bash scripts/sim2real_gpu.sh sim   OUT            # SIM stage with the real look, from the shipped SIM-DR net
#   bash scripts/sim2real_gpu.sh hifi  OUT SIM_NET    # recipe variants adapted on the hifi domain (tuning)
#   bash scripts/sim2real_gpu.sh proxy OUT SIM_NET    # the same variants on a user's proxy frames (held out)
#   bash scripts/sim2real_gpu.sh all   OUT            # sim, then hifi and proxy side by side on its net,
#                                                     # OUT/sim2real_runs.tgz packed (one GPU call, ~8 min)
# Variants of a stage run side by side on the GPU; OUT/runs/<name>/ holds each run folder.  Data
# (scripts/sim2real_data.sh writes it all): .devdata/hifi_train, .devdata/hifi_unlabelled, and for
# the proxy .devdata/proxy_collect{,50}, .devdata/proxy_unlabelled, already resampled into the
# virtual camera (reach data rectify ... --camera CAMERA: the camera file of reach calibrate).
# Only the adaptation recipe chosen on the hifi domain is reported on the proxy:
#   python bench/bench_sim2real.py perception --runs OUT/runs --choose-on hifi_val --camera ...
set -euo pipefail
STAGE="${1:?STAGE sim|hifi|proxy}"; OUT="${2:?OUT}"; SIM_NET="${3:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
mkdir -p "$OUT/runs"
common=(--device "${DEVICE:-cuda}" --online-pool "${POOL:-65536}" --online --supersample 2 --batch 256 --steps 100000000 --lr 3e-4
        --checkpoint-every 100000000 --val-sim 1000 --no-progress)
adapt=(--real-fraction 0.75 --virtual-targets 20 --randomize 0.5 --realism 0.5 --distractors 0.3
       --near-target 0.2 --warmup 100 --noise 0.01 --brightness 0.1 --eval-every 1000
       --time-budget "${ADAPT_BUDGET:-120}")
train() { "$PY" -m reach_core.cli train perception "$@"; }
run() {   # NAME ARGS...: one run in the background, its log beside its folder
  local name="$1"; shift
  echo "[sim2real] $name: reach train perception --out $OUT/runs/$name $*"
  train --out "$OUT/runs/$name" "$@" >"$OUT/runs/$name.log" 2>&1 &
}
variants() {   # DOMAIN REAL UNLABELLED: the recipe variants, side by side
  local d="$1" real="$2" unl="$3"
  run "${d}_base"   --adapt-from "$SIM_NET" --real "$real" "${adapt[@]}" "${common[@]}"
  run "${d}_unlab"  --adapt-from "$SIM_NET" --real "$real" --unlabelled "$unl" "${adapt[@]}" "${common[@]}"
  run "${d}_feat"   --adapt-from "$SIM_NET" --real "$real" --adapt-part features "${adapt[@]}" "${common[@]}"
}
case "$STAGE" in
  sim)
    run sim_real --adapt-from "$ROOT/src/reach_core/reach_core/models/perception_sim_dr.pt" \
      --randomize 0.8 --realism 0.6 --distractors 0.3 --near-target 0.2 --warmup 200 \
      --eval-every 2000 --time-budget "${SIM_BUDGET:-270}" "${common[@]}" ;;
  hifi)
    variants hifi "$ROOT/.devdata/hifi_train" "$ROOT/.devdata/hifi_unlabelled" ;;
  proxy)
    variants proxy200 "$ROOT/.devdata/proxy_collect" "$ROOT/.devdata/proxy_unlabelled"
    run proxy50_base --adapt-from "$SIM_NET" --real "$ROOT/.devdata/proxy_collect50" "${adapt[@]}" "${common[@]}"
    run proxy50_unlab --adapt-from "$SIM_NET" --real "$ROOT/.devdata/proxy_collect50" \
      --unlabelled "$ROOT/.devdata/proxy_unlabelled" "${adapt[@]}" "${common[@]}" ;;
  all)   # the whole plan in one call: the stages in order, each stage's variants side by side
    bash "${BASH_SOURCE[0]}" sim "$OUT"
    net="$OUT/runs/sim_real/model.pt"
    bash "${BASH_SOURCE[0]}" hifi "$OUT" "$net" > "$OUT/hifi_stage.txt" 2>&1 &
    bash "${BASH_SOURCE[0]}" proxy "$OUT" "$net" > "$OUT/proxy_stage.txt" 2>&1 &
    ok=0
    for job in $(jobs -p); do wait "$job" || ok=1; done
    tail -n 4 "$OUT"/*_stage.txt
    tar czf "$OUT/sim2real_runs.tgz" --exclude=checkpoint.pt -C "$OUT" runs
    exit "$ok" ;;
  *) echo "STAGE is sim, hifi, proxy or all" >&2; exit 2 ;;
esac
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for log in "$OUT"/runs/*.log; do echo "== $log"; tail -n 3 "$log"; done
exit "$status"
