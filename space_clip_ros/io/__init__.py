"""Files and wire formats without ROS: depth files, previews, output naming, rosbag2 messages, message arrays."""
