# Sourced by bench/gpu_perception*.sh: puts this repository's reach_core on PYTHONPATH, defines
# `reach` (python3 -m reach_core.cli), and eval_runs, which evaluates every run under RUNS that has
# a model.pt (Table 1 style) on TEST_N simulator images and the held-out hifi set, writing
# OUT/eval.json and OUT/perception_errors.png.
#   eval_runs RUNS OUT TEST_N HIFI_TEST
_bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$_bench_root/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
reach() { python3 -m reach_core.cli "$@"; }

eval_runs() {
  local runs=$1 out=$2 test_n=$3 hifi_test=$4 run models=()
  for run in "$runs"/*/; do
    [ -f "$run/model.pt" ] && models+=(--model "$(basename "$run")=$run/model.pt")
  done
  reach eval perception "${models[@]}" --sim-test "$test_n" --dataset "hifi_test=$hifi_test" \
    --json "$out/eval.json" --plot "$out/perception_errors.png"
}
