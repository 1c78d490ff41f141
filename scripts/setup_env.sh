#!/usr/bin/env bash
# Set up the reach workspace from a clean clone; safe to run again (it only redoes what changed).
#
#   1. .venv/ at the repository root (python3 -m venv)
#   2. torch==2.13.0 (CPU) FIRST, on its own, so nothing later can pull another (CUDA) torch;
#      then requirements-dev.txt (runtime deps, ROS 2 Jazzy wheels, colcon, test-only deps)
#   3. colcon build of src/ into build/ install/ log/ at the repository root
#
# Afterwards: . scripts/env.sh
#
# Environment knobs:
#   PYTHON=python3.11            interpreter for the venv (default: python3)
#   REACH_FORCE_INSTALL=1        reinstall the requirements even if they are unchanged
#   REACH_SYMLINK_INSTALL=0      colcon build without --symlink-install (a copy install)
#   REACH_SKIP_BUILD=1           skip the colcon build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.reach-requirements.sha256"
t_start=$SECONDS

say() { printf '[setup_env %3ds] %s\n' "$((SECONDS - t_start))" "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. virtual environment
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(0)' 2>/dev/null; then
  say "virtual environment: $VENV (exists)"
else
  if [ -e "$VENV" ]; then
    say "virtual environment at $VENV is broken; recreating it"
    rm -rf "$VENV"
  fi
  command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH"
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1); need Python >= 3.10"
  say "creating virtual environment $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
# the ROS wheels install package.xml files under .venv/share: keep colcon from crawling the venv
touch "$VENV/COLCON_IGNORE"
# scripts/env.sh puts the venv on AMENT_PREFIX_PATH (it is the ROS 2 underlay: the wheels'
# share/ament_index lives there). colcon warns about a prefix without local_setup.* files, so give
# it no-op ones; the real activation is scripts/env.sh.
for sh in sh bash zsh; do
  if [ ! -f "$VENV/local_setup.$sh" ]; then
    printf '# ROS 2 underlay marker for colcon: ROS 2 Jazzy wheels live in this venv.\n# Nothing to do here; activate the workspace with scripts/env.sh.\n' > "$VENV/local_setup.$sh"
  fi
done

PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# ---------------------------------------------------------------- 1b. system libraries
# MuJoCo's offscreen renderer (reach_core.hifi_renderer, MUJOCO_GL=egl) needs an EGL and a Mesa
# driver; Debian's libegl1 + libgl1-mesa-dri give a software one on machines without a GPU.
if command -v dpkg >/dev/null 2>&1; then
  missing_debs=()
  for deb in libegl1 libgl1-mesa-dri; do
    dpkg -s "$deb" >/dev/null 2>&1 || missing_debs+=("$deb")
  done
  if [ "${#missing_debs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing ${missing_debs[*]} (apt-get; for MuJoCo's offscreen rendering)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
    else
      say "warning: ${missing_debs[*]} missing and not root: install them for MuJoCo's renderer"
    fi
  fi
fi

# ---------------------------------------------------------------- 2. packages
want_stamp="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version)' | head -1)"
if [ "${REACH_FORCE_INSTALL:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
  say "packages: requirements unchanged since the last install (REACH_FORCE_INSTALL=1 to redo)"
else
  rm -f "$STAMP"
  torch_req="$(grep -E '^torch==' requirements.txt | head -1 | tr -d '[:space:]')"
  [ -n "$torch_req" ] || die "requirements.txt must pin torch (torch==X.Y.Z)"
  say "installing $torch_req (CPU wheel) first"
  "${PIP[@]}" install --quiet "$torch_req"
  say "installing requirements-dev.txt (numpy, matplotlib, tqdm, ROS 2 Jazzy wheels, colcon, pytest, roboticstoolbox-python, stable-baselines3, gymnasium)"
  # torch stays pinned by requirements.txt, so pip can only keep the torch installed above
  "${PIP[@]}" install --quiet -r requirements-dev.txt
  echo "$want_stamp" > "$STAMP"
fi

say "checking the interpreter's packages"
"$PY" - <<'EOF' || die "package check failed (REACH_FORCE_INSTALL=1 bash scripts/setup_env.sh to reinstall)"
import importlib.metadata as md
import torch
assert torch.__version__.split("+")[0] == "2.13.0", f"torch {torch.__version__}, expected 2.13.0"
assert torch.version.cuda is None, f"a CUDA build of torch slipped in ({torch.version.cuda})"
import numpy, matplotlib, tqdm, rclpy, std_msgs.msg, sensor_msgs.msg, geometry_msgs.msg  # noqa: F401
names = ["torch", "numpy", "ros-jazzy-rclpy", "colcon-core", "pytest", "stable-baselines3",
         "gymnasium", "roboticstoolbox-python"]
print("  " + ", ".join(f"{n} {md.version(n)}" for n in names))
EOF

# ---------------------------------------------------------------- 3. colcon build
if [ "${REACH_SKIP_BUILD:-0}" = 1 ]; then
  say "colcon build skipped (REACH_SKIP_BUILD=1)"
else
  # a build made in another checkout (copied tree) holds symlinks and paths into that checkout
  if [ -f build/.reach_root ] && [ "$(cat build/.reach_root)" != "$ROOT" ]; then
    say "build/ was made in $(cat build/.reach_root); removing build/ install/ log/"
    rm -rf build install log
  fi
  build_args=(--base-paths src)
  if [ "${REACH_SYMLINK_INSTALL:-1}" = 1 ]; then
    build_args+=(--symlink-install)
  fi
  # switching between symlink and copy installs needs a clean tree
  mode="symlink=${REACH_SYMLINK_INSTALL:-1}"
  if [ -f build/.reach_mode ] && [ "$(cat build/.reach_mode)" != "$mode" ]; then
    say "install mode changed; removing build/ install/"
    rm -rf build install
  fi
  say "colcon build ${build_args[*]}"
  (
    # colcon and the console-script shebangs must use the venv's interpreter
    set +u
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
    set -u
    # the interface packages (ament_cmake + rosidl) find the wheels' typesupports through the
    # ament index: the venv is the ROS 2 underlay
    export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
    colcon build "${build_args[@]}"
  ) || die "colcon build failed (see log/latest_build)"
  echo "$ROOT" > build/.reach_root
  echo "$mode" > build/.reach_mode
fi

say "done. Activate with:  . scripts/env.sh"
