"""space_clip_ros: metric monocular depth for ROS 2 with SPACE-CLIP."""

__version__ = "0.1.0"
