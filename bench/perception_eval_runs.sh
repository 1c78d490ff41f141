# Sourced by bench/gpu_perception*.sh: evaluate every run under RUNS that has a model.pt
# (Table 1 style) on TEST_N simulator images and the held-out hifi set, writing OUT/eval.json and
# OUT/perception_errors.png.  Needs a `reach` function (python3 -m reach_core.cli) in the caller.
#   eval_runs RUNS OUT TEST_N HIFI_TEST
eval_runs() {
  local runs=$1 out=$2 test_n=$3 hifi_test=$4 run models=()
  for run in "$runs"/*/; do
    [ -f "$run/model.pt" ] && models+=(--model "$(basename "$run")=$run/model.pt")
  done
  reach eval perception "${models[@]}" --sim-test "$test_n" --dataset "hifi_test=$hifi_test" \
    --json "$out/eval.json" --plot "$out/perception_errors.png"
}
