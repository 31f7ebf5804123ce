"""The ROS 2 layer: the only part of space_clip_ros that imports rclpy and ROS messages.

It is thin glue over the ROS-free core: `image_codec`, `camera_info` and `pointcloud` convert
messages to and from numpy arrays, `params` and `qos` turn ROS parameters into typed settings,
`diagnostics` reports latency and rate, and `depth_node` wires them around
`space_clip_ros.inference.DepthEstimator`. Nothing is imported here, so importing a single
codec does not pull in the model.
"""

import os

# CPU inference in a node always shares the cores with I/O threads (DDS, image decoding, the
# executor).
# OpenMP's default busy-waiting keeps torch's idle workers spinning on those cores: on a 2-core
# machine the node's predict() ran 3x slower than bare until the workers were told to sleep
# (bench/RESULTS.md). Set here, for the ROS layer only (training and the
# offline tools keep OpenMP's default), before torch loads libgomp; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
