#!/bin/bash
# Source ROS 2 Jazzy and the workspace's install space, then run the command.
set -e
# shellcheck disable=SC1091
. /opt/ros/jazzy/setup.bash
# shellcheck disable=SC1091
. /ws/install/setup.bash
exec "$@"
