"""`--help` for the ROS nodes, which are configured by ROS parameters rather than flags.

`ros2 run space_clip_ros space_clip_depth --help` should say what the node does and where its
parameters are documented instead of starting it; everything after --ros-args stays ROS's.
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
