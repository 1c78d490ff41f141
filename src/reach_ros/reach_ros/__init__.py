"""reach_ros: the ROS 2 nodes of reach (thin rclpy adapters around reach_core)."""
