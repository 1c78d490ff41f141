#!/usr/bin/env bash
# The main job: set the workspace up, then evaluate the shipped 3-DOF control module
# (the 400-trial protocol of the paper's Table 2). Extra arguments go to `reach eval control`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup_env.sh
# shellcheck disable=SC1091
. scripts/env.sh

model="$(python -c "import reach_core, pathlib; print(pathlib.Path(reach_core.__file__).parent / 'models' / 'control_dof3.pt')")"
echo "[run_main] reach eval control --model $model $*"
exec reach eval control --model "$model" "$@"
