#!/usr/bin/env bash
# The perception training runs on a CUDA machine, in one go: render the simulator set, train SIM
# networks (four variants side by side on one GPU), adapt each with <= 200 higher-fidelity
# frames (P75 for each; P25/P50/P100 for the best domain-randomised SIM network), evaluate (Table 1 style) and pack the
# results.  Everything goes through the project's own `reach` commands.
#
#   bash bench/gpu_perception.sh OUT_DIR HIFI_TRAIN HIFI_TEST
#
# Knobs (environment): SIM_N (simulator images), SIM_BUDGET / ADAPT_BUDGET (training seconds),
# WORKERS (rendering processes), DEVICE (cuda), TEST_N (simulator test images), VIRT (virtual
# targets per hifi frame).  bench/ship_perception_models.py copies the chosen models into the
# package with their commands and metrics.
set -euo pipefail
OUT="${1:?OUT dir}"; HIFI_TRAIN="${2:?hifi train dataset}"; HIFI_TEST="${3:?hifi test dataset}"
SIM_N="${SIM_N:-400000}"; SIM_BUDGET="${SIM_BUDGET:-280}"; ADAPT_BUDGET="${ADAPT_BUDGET:-60}"
WORKERS="${WORKERS:-15}"; DEVICE="${DEVICE:-cuda}"; TEST_N="${TEST_N:-1000}"; VIRT="${VIRT:-20}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
reach() { python3 -m reach_core.cli "$@"; }
RUNS="$OUT/runs"; SIM="$OUT/sim_data"; mkdir -p "$RUNS"
t0=$SECONDS
stamp() { echo "[gpu_perception $((SECONDS - t0))s] $*"; }

python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())'
nproc
stamp "render $SIM_N simulator images"
reach data render --net --n "$SIM_N" --seed 0 --workers "$WORKERS" --out "$SIM" 2>/dev/null

# SIM variants: the paper's 3 conv + FC, the same with batch norm and a hidden FC layer ("wide"),
# and domain-randomised ("_dr": --randomize) versions that the adaptations start from
declare -A ARCH=(
  [paper]="--arch paper --batch 512"
  [wide]="--arch paper --batchnorm --fc-hidden 256 --batch 512"
  [wide_dr]="--arch paper --batchnorm --fc-hidden 256 --batch 512 --randomize 0.7"
  [spatial_dr]="--arch spatial --keypoints 32 --batch 256 --randomize 0.7"
)
if [ -n "${VARIANTS:-}" ]; then  # e.g. VARIANTS="paper wide" for a subset
  for name in "${!ARCH[@]}"; do [[ " $VARIANTS " == *" $name "* ]] || unset "ARCH[$name]"; done
fi
stamp "SIM training: ${!ARCH[*]} side by side, ${SIM_BUDGET}s each"
for name in "${!ARCH[@]}"; do
  # shellcheck disable=SC2086
  reach train perception --out "$RUNS/sim_$name" --sim "$SIM" ${ARCH[$name]} --device "$DEVICE" \
    --time-budget "$SIM_BUDGET" --steps 100000000 --lr 1e-3 --eval-every 2000 \
    --checkpoint-every 20000 --val-sim 1000 --no-progress > "$RUNS/sim_$name.log" 2>&1 &
done
wait
for name in "${!ARCH[@]}"; do tail -n 1 "$RUNS/sim_$name.log"; done

adapt() {  # name fraction
  local name=$1 frac=$2 tag dr=""
  tag="p$(python3 -c "print(round($frac * 100))")"
  [[ $name == *_dr ]] && dr="--randomize 0.5"
  # shellcheck disable=SC2086
  reach train perception --out "$RUNS/${tag}_$name" --adapt-from "$RUNS/sim_$name/model.pt" \
    --real "$HIFI_TRAIN" --real-fraction "$frac" --virtual-targets "$VIRT" --sim "$SIM" \
    --sim-limit 100000 --device "$DEVICE" --time-budget "$ADAPT_BUDGET" --steps 100000000 \
    --batch 256 --lr 3e-4 --warmup 100 --noise 0.01 --brightness 0.1 $dr --eval-every 1000 \
    --checkpoint-every 100000 --val-sim 1000 --no-progress > "$RUNS/${tag}_$name.log" 2>&1
}
stamp "adaptation with $(($(wc -l < "$HIFI_TRAIN/labels.csv") - 1)) hifi frames x $VIRT virtual targets"
for name in "${!ARCH[@]}"; do
  [ -f "$RUNS/sim_$name/model.pt" ] && adapt "$name" 0.75 &
done
best=$(python3 - "$RUNS" <<'PY'
import json, pathlib, sys
res = {}
for m in pathlib.Path(sys.argv[1]).glob("sim_*/metrics.json"):
    res[m.parent.name[4:]] = json.loads(m.read_text())["final"].get("e_sim", 1e9)
dr = {k: v for k, v in res.items() if k.endswith("_dr")} or res
print(min(dr, key=dr.get))
PY
)
stamp "best (domain-randomised) SIM network: $best; it also gets P25, P50, P100"
for frac in 0.25 0.5 1.0; do
  adapt "$best" "$frac" &
done
wait

stamp "evaluation"
models=()
for run in "$RUNS"/*/; do
  [ -f "$run/model.pt" ] && models+=(--model "$(basename "$run")=$run/model.pt")
done
reach eval perception "${models[@]}" --sim-test "$TEST_N" --dataset "hifi_test=$HIFI_TEST" \
  --json "$OUT/eval.json" --plot "$OUT/perception_errors.png"
if [ "${GPU_BENCH:-1}" = 1 ]; then
  stamp "GPU training throughput, one process alone"
  python3 "$ROOT/bench/bench_perception.py" --skip-eval --gpu-throughput 2>&1 | sed -n '/measured here/,$p'
fi
stamp "done"
