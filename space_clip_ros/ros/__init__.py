"""The ROS 2 layer: the only part of space_clip_ros that imports rclpy and ROS messages.

It is thin glue over the ROS-free core: `image_codec`, `camera_info` and `pointcloud` convert
messages to and from numpy arrays, `params` and `qos` turn ROS parameters into typed settings,
`diagnostics` reports latency and rate, and `depth_node` wires them around
`space_clip_ros.inference.DepthEstimator`. Nothing is imported here, so importing a single
codec does not pull in the model.
"""
