#!/usr/bin/env bash
# The perception training runs on a CUDA machine, in one go: SIM networks trained on fresh
# simulator scenes rendered on the GPU (--online; domain-randomised ones with --randomize),
# several side by side on one GPU; each domain-randomised one adapted with <= 200
# higher-fidelity frames (P75); evaluation
# (Table 1 style).  spatial_dr (the best on held-out hifi frames in the first such run) gets
# P25/P50/P100 too.  Everything goes through the project's own `reach` commands.
#
#   bash bench/gpu_perception.sh OUT_DIR HIFI_TRAIN HIFI_TEST
#
# Knobs (environment): SIM_BUDGET / ADAPT_BUDGET (training seconds), DEVICE (cuda), TEST_N
# (simulator test images), VIRT (virtual targets per hifi frame), VARIANTS (a subset of the SIM
# variants below), SS (supersampling of the GPU renderer).  bench/ship_perception_models.py
# copies the chosen models into the package with their commands and metrics.
set -euo pipefail
OUT="${1:?OUT dir}"; HIFI_TRAIN="${2:?hifi train dataset}"; HIFI_TEST="${3:?hifi test dataset}"
SIM_BUDGET="${SIM_BUDGET:-330}"; ADAPT_BUDGET="${ADAPT_BUDGET:-90}"; SS="${SS:-2}"
DEVICE="${DEVICE:-cuda}"; TEST_N="${TEST_N:-1000}"; VIRT="${VIRT:-20}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/perception_eval_runs.sh"
RUNS="$OUT/runs"; mkdir -p "$RUNS"
t0=$SECONDS
stamp() { echo "[gpu_perception $((SECONDS - t0))s] $*"; }

python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())'
python3 - "$DEVICE" "$SS" <<'PY'  # rendering speed of the GPU renderer, alone
import sys, time, torch
from reach_core.randomized_renderer import render_batch
dev, ss = sys.argv[1], int(sys.argv[2])
gen = torch.Generator(device=dev).manual_seed(0)
for n in (256, 2048):
    render_batch(n, gen, dev, randomize=0.5, supersample=ss)
    torch.cuda.synchronize() if dev.startswith("cuda") else None
    t = time.perf_counter()
    for _ in range(5):
        render_batch(n, gen, dev, randomize=0.5, supersample=ss)
    torch.cuda.synchronize() if dev.startswith("cuda") else None
    print(f"GPU renderer, batch {n}, supersample {ss}: {5 * n / (time.perf_counter() - t):,.0f} images/s")
PY

# SIM variants: "wide" = the paper's 3 conv + FC with batch norm and a hidden FC layer, on plain
# simulator images (the SIM figure); the _dr ones see half of their images with a random look
declare -A ARCH=(
  [wide]="--arch paper --batchnorm --fc-hidden 256 --randomize 0"
  [wide_dr]="--arch paper --batchnorm --fc-hidden 256 --randomize 0.5"
  [spatial_dr]="--arch spatial --keypoints 32 --randomize 0.5"
)
if [ -n "${VARIANTS:-}" ]; then  # e.g. VARIANTS="wide wide_dr" for a subset
  for name in "${!ARCH[@]}"; do [[ " $VARIANTS " == *" $name "* ]] || unset "ARCH[$name]"; done
fi
stamp "SIM training on GPU-rendered scenes: ${!ARCH[*]} side by side, ${SIM_BUDGET}s each"
for name in "${!ARCH[@]}"; do
  # shellcheck disable=SC2086
  reach train perception --out "$RUNS/sim_$name" --online --supersample "$SS" ${ARCH[$name]} \
    --batch 256 --device "$DEVICE" --time-budget "$SIM_BUDGET" --steps 100000000 --lr 1e-3 \
    --eval-every 2000 --checkpoint-every 20000 --val-sim 1000 --no-progress > "$RUNS/sim_$name.log" 2>&1 &
done
wait
for name in "${!ARCH[@]}"; do tail -n 1 "$RUNS/sim_$name.log"; done

adapt() {  # name fraction
  local name=$1 frac=$2 tag
  tag="p$(python3 -c "print(round($frac * 100))")"
  reach train perception --out "$RUNS/${tag}_$name" --adapt-from "$RUNS/sim_$name/model.pt" \
    --real "$HIFI_TRAIN" --real-fraction "$frac" --virtual-targets "$VIRT" --online \
    --randomize 0.5 --supersample "$SS" --device "$DEVICE" --time-budget "$ADAPT_BUDGET" \
    --steps 100000000 --batch 256 --lr 3e-4 --warmup 100 --noise 0.01 --brightness 0.1 \
    --eval-every 1000 --checkpoint-every 100000 --val-sim 1000 --no-progress \
    > "$RUNS/${tag}_$name.log" 2>&1
}
stamp "adaptation with $(($(wc -l < "$HIFI_TRAIN/labels.csv") - 1)) hifi frames x $VIRT virtual targets"
for name in "${!ARCH[@]}"; do
  [[ $name == *_dr ]] && [ -f "$RUNS/sim_$name/model.pt" ] && adapt "$name" 0.75 &
done
if [ -f "$RUNS/sim_spatial_dr/model.pt" ]; then
  for frac in 0.25 0.5 1.0; do adapt spatial_dr "$frac" & done
fi
wait

stamp "evaluation"
eval_runs "$RUNS" "$OUT" "$TEST_N" "$HIFI_TEST"
stamp "done"
