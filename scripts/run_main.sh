#!/usr/bin/env bash
# The main job: set the workspace up, then run the sim loop of launch/sim.launch.py (fake Baxter,
# simulated webcam, perception, the shipped 3-DoF controller, the Baxter bridge) and print the
# reaching results of REACH_TRIALS (default 20) random targets.
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

echo "[run_main] python -m reach_bringup.run sim.launch.py --trials ${REACH_TRIALS:-20} $*"
exec python -m reach_bringup.run sim.launch.py --trials "${REACH_TRIALS:-20}" "$@"
