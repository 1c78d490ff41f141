#!/bin/bash
# Source ROS 2 Jazzy and the workspace's install space, then run the command.
set -e
# shellcheck disable=SC1091
. /opt/ros/jazzy/setup.bash
# shellcheck disable=SC1091
. /ws/install/setup.bash
# Fast DDS: shared memory large enough for 640x480 camera frames (see config/fastdds.xml)
export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-/ws/config/fastdds.xml}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$FASTRTPS_DEFAULT_PROFILES_FILE}"
exec "$@"
