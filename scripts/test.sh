#!/usr/bin/env bash
# The test command: sets the workspace up if needed (scripts/setup_env.sh, quick when nothing
# changed), activates it (scripts/env.sh) and runs pytest on tests/ (pytest.ini).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k workspace -x
# Set REACH_SKIP_SETUP=1 to skip the setup step.
# pytest's "no tests collected" (exit 5) counts as a failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${REACH_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup_env.sh
fi
# shellcheck disable=SC1091
. scripts/env.sh

echo "[test] python -m pytest $*"
rc=0
python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] FAILED: pytest collected no tests (exit 5)" >&2
  exit 1
fi
exit "$rc"
