"""The nodes' command line: `--help`, and how the way a node ends becomes its exit status.

`ros2 run space_clip_ros space_clip_depth --help` should say what the node does and where its
parameters are documented instead of starting it; everything after --ros-args stays ROS's.
`run_node` is the nodes' errors.run_tool: the one place a node's error becomes a FATAL log line
and an exit status.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException

from space_clip_ros.errors import EXIT_OK, EXIT_USAGE, SpaceClipError
from space_clip_ros.ros.param_overrides import explain_init_failure


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


def run_node(name: str, args: Optional[list[str]], body: Callable[[list[str]], int]) -> int:
    """rclpy.init with the command line, then `body(argv)` (argv: the whole command line), its
    exit status, and one rule for everything else that ends a node:

    - rclpy.init refusing the ROS arguments (a params file or -p rule rcl cannot parse):
      explained with the file and the fix (param_overrides.explain_init_failure), exit 2;
    - a SpaceClipError (an invalid, unknown or misplaced parameter, a calibration that cannot
      be read): one FATAL line, the class's exit code (2 for configuration);
    - Ctrl-C or a shutdown from outside (launch stopping the node): exit 0, a node stopped on
      purpose.

    rclpy is shut down however it ends. args: main()'s arguments (None: the command line).
    """
    argv = sys.argv if args is None else [name, *args]
    fatal = rclpy.logging.get_logger(name).fatal
    try:
        rclpy.init(args=argv)
    except Exception as exc:  # rcl's RCLError: a params file or -p rule it cannot parse
        fatal(str(explain_init_failure(exc, argv)))
        return EXIT_USAGE
    try:
        return body(argv)
    except SpaceClipError as exc:
        fatal(str(exc))
        return exc.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        return EXIT_OK
    finally:
        rclpy.try_shutdown()


def spin(executor: Any) -> None:
    """Serve until Ctrl-C or a shutdown from outside: the ordinary ends of a node's work, after
    which the node still reports (a summary, its exit status)."""
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
