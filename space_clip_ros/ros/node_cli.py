"""`--help` for the ROS nodes, which are configured by ROS parameters rather than flags.

`ros2 run space_clip_ros space_clip_depth --help` should say what the node does and where its
parameters are documented instead of starting it; everything after --ros-args stays ROS's.
The depth node's console entry point lives here, with its help text, so --help is answered
before rclpy, torch or the model are imported (bench/bench_startup.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional


def non_ros_args(argv: list[str]) -> list[str]:
    """argv without the --ros-args ... [--] sections.

    Not rclpy's remove_ros_args: that parses the ROS arguments with rcl and raises on a missing or
    broken params file, an error main() must report itself (exit 2, file named), not --help.
    """
    kept, in_ros = [], False
    for arg in argv:
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--" and in_ros:
            in_ros = False
        elif not in_ros:
            kept.append(arg)
    return kept


def handle_help(prog: str, description: str, epilog: str, args: Optional[list[str]]) -> None:
    """Print the node's help and exit 0 when --help / -h is among the non-ROS arguments.

    `args` are main()'s arguments (None: the command line); other non-ROS arguments are left
    alone, as rclpy leaves them.
    """
    argv = sys.argv if args is None else [prog, *args]
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_known_args(non_ros_args(argv[1:]))


DEPTH_NODE = "space_clip_depth"
DEPTH_NODE_HELP = """Metric depth from a camera with SPACE-CLIP: a managed lifecycle node that
subscribes to camera images (+ CameraInfo) and publishes a 32FC1 depth image in metres, its
CameraInfo, a PointCloud2 and a colourised preview. One node can serve several cameras with one
model (the `cameras` parameter). Exit status: 2 for an invalid, unknown or unparsable parameter,
1 when the model fails to load or inference keeps failing (max_consecutive_failures)."""
DEPTH_NODE_EPILOG = """Topics (relative: remap them): image (or image/compressed), camera_info in;
depth, depth/camera_info, points, depth/colorized, /diagnostics out (with `cameras`: each under
<camera>/). Parameters: config/depth.yaml in the package share lists each with its default, e.g.
  ros2 run space_clip_ros space_clip_depth --ros-args -p checkpoint:=/path/to/checkpoint \\
      -p device:=cuda -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
or ros2 launch space_clip_ros depth.launch.py (ros2 launch ... --show-args lists its arguments)."""


def space_clip_depth(args: Optional[list[str]] = None) -> int:
    """The `space_clip_depth` executable: --help here, everything else in depth_node.main."""
    handle_help(DEPTH_NODE, DEPTH_NODE_HELP, DEPTH_NODE_EPILOG, args)
    from space_clip_ros.ros.depth_node import main

    return main(args)
