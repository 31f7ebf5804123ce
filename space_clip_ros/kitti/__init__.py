"""KITTI raw: reading synced drives and calibration, LiDAR ground truth, rosbag2 conversion.

Pure Python (numpy, PIL, rosbags); nothing here imports rclpy, so the converter and the offline
accuracy tool run on machines without ROS.
"""

from space_clip_ros.kitti.errors import KittiFormatError

__all__ = ["KittiFormatError"]
