#!/bin/bash
# ros1_bridge for Baxter: load the bridged topics into Baxter's ROS 1 parameter server, then run
# parameter_bridge (its ROS 2 node is "ros_bridge", in the SROS2 enclave /reach/robot when
# ROS_SECURITY_ENABLE=true; docs/safety.md). Any other command runs in the same environment.
set -e
. /opt/ros/humble/setup.bash
. /ros1_msgs/install/setup.bash
. /ros2_msgs/install/local_setup.bash
. /bridge/install/local_setup.bash
if [ "$1" = "bridge" ]; then
    : "${ROS_MASTER_URI:?set ROS_MASTER_URI to the master of Baxter, e.g. http://011502P0001.local:11311}"
    rosparam load /bridge/topics.yaml
    exec ros2 run ros1_bridge parameter_bridge --ros-args --enclave /reach/robot
fi
exec "$@"
