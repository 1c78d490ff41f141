"""reach_bringup: launch and parameter files of the reach ROS graph, and a reader for them."""
