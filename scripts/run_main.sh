#!/usr/bin/env bash
# The main job: set the workspace up, then run the vision loop of launch/sim.launch.py (fake
# Baxter, simulated webcam, the shipped perception network, the shipped 3-DoF controller, the
# Baxter bridge) and print the reaching results of REACH_TRIALS (default 20) random targets.
# REACH_GROUND_TRUTH=1: ground-truth perception instead of the network.
#
# With ros2 launch installed (a ROS 2 Jazzy machine) the graph is started by
# `ros2 launch reach_bringup sim.launch.py`; on this PyPI-wheels machine reach_bringup.run starts
# the same nodes with the same parameter files, overrides and remappings (reach_bringup.graph).
# Extra arguments go to `python -m reach_bringup.run`, e.g. launch arguments `noise_std:=0.01`,
# `--trials 5` or `--quiet`. REACH_SKIP_SETUP=1 skips scripts/setup_env.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${REACH_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup_env.sh
fi
# shellcheck disable=SC1091
. scripts/env.sh

# The vision loop by default: the perception half of the shipped combined network (run by ncnn,
# docs/inference.md; its ONNX export end2end_ee2ft.onnx runs on ONNX Runtime, about 2x slower) reads the
# simulated webcam (REACH_GROUND_TRUTH=1, or a perception_model:= argument of your own, to change that).
vision=()
case " $* " in *" perception_model:="*) ;; *)
  [ "${REACH_GROUND_TRUTH:-0}" = 1 ] || \
    vision=("perception_model:=$ROOT/src/reach_core/reach_core/models/end2end_ee2ft.pt") ;;
esac
echo "[run_main] python -m reach_bringup.run sim.launch.py ${vision[*]} --trials ${REACH_TRIALS:-20} $*"
exec python -m reach_bringup.run sim.launch.py ${vision[@]+"${vision[@]}"} --trials "${REACH_TRIALS:-20}" "$@"
