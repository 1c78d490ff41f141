#!/usr/bin/env bash
# The data of the sim-to-real runs (scripts/sim2real_gpu.sh) and benchmark (bench/bench_sim2real.py),
# on the CPU, about 2 minutes on 2 cores:
#   bash scripts/sim2real_data.sh [DATA]        # DATA: .devdata (default)
# The held-out proxy stands for a user's robot: a user's collected frames (seeds 100-102) are
# calibrated and rectified as a user would; its test sets (seeds >= 2100) are only ever measured.
#   hifi_train (seed 11), hifi_val (seed 3: the recipe's choice), hifi_unlabelled (seed 4)
#   proxy_collect_raw (seed 100, 200 painted), proxy_unlabelled_raw (seed 101), proxy_calib (seed
#   102, 60 marker frames), proxy_test_painted (seed 2100) and proxy_test_physical (seed 2101),
#   400 each; then reach calibrate (bench_sim2real.py calibrate: 15 checkerboard views drawn
#   through the proxy's lens + the marker frames) -> proxy_camera.yaml, and the collected and
#   unlabelled frames rectified through it -> proxy_collect, proxy_collect50 (its first 50),
#   proxy_unlabelled.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="${1:-$ROOT/.devdata}"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
render() { "$PY" -m reach_core.cli data render "$@" 2>&1 | tr '\r' '\n' | grep -v '^render'; }
rectify() { "$PY" -m reach_core.cli data rectify "$@" --camera "$D/proxy_camera.yaml" 2>&1 | tr '\r' '\n' | grep -v '^render'; }
mkdir -p "$D"
(   # two rendering processes, one a core
  render --source proxy --target painted --n 200 --seed 100 --out "$D/proxy_collect_raw"
  render --source proxy --target painted --marker --n 60 --seed 102 --out "$D/proxy_calib"
  render --source proxy --target painted --n 400 --seed 2100 --out "$D/proxy_test_painted"
  render --source hifi --n 200 --seed 3 --out "$D/hifi_val"
) &
(
  render --source proxy --target painted --n 200 --seed 101 --out "$D/proxy_unlabelled_raw"
  render --source proxy --target physical --n 400 --seed 2101 --out "$D/proxy_test_physical"
  render --source hifi --n 200 --seed 4 --out "$D/hifi_unlabelled"
  [ -d "$D/hifi_train" ] || render --source hifi --n 200 --seed 11 --out "$D/hifi_train"
) &
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
[ "$status" = 0 ] || { echo "sim2real_data: a render failed" >&2; exit 1; }
"$PY" "$ROOT/bench/bench_sim2real.py" calibrate --data "$D" --out "$D/proxy_camera.yaml"
rectify "$D/proxy_collect_raw" --out "$D/proxy_collect"
rectify "$D/proxy_collect_raw" --out "$D/proxy_collect50" --first 50
rectify "$D/proxy_unlabelled_raw" --out "$D/proxy_unlabelled"
