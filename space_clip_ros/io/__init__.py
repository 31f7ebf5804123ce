"""Files and wire formats without ROS: depth files, previews, names, bag messages, arrays."""
