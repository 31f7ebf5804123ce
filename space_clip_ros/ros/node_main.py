"""How a node's run ends: the nodes' errors.run_tool, the one place a node's error becomes a
FATAL log line and an exit status (node_cli.py answers --help before rclpy is imported)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException

from space_clip_ros.errors import EXIT_OK, EXIT_USAGE, SpaceClipError
from space_clip_ros.ros.param_overrides import explain_init_failure


def run_node(name: str, args: Optional[list[str]], body: Callable[[list[str]], int]) -> int:
    """rclpy.init with the command line, then `body(argv)` (argv: the whole command line), its
    exit status, and one rule for everything else that ends a node:

    - rclpy.init refusing the ROS arguments (a params file or -p rule rcl cannot parse):
      explained with the file and the fix (param_overrides.explain_init_failure), exit 2;
    - a SpaceClipError (an invalid, unknown or misplaced parameter, a calibration that cannot
      be read): one FATAL line, the class's exit code (2 for configuration);
    - Ctrl-C or a shutdown from outside (launch stopping the node): exit 0, a node stopped on
      purpose, also when it was started with SIGINT ignored (stop_on_sigint).

    rclpy is shut down however it ends. args: main()'s arguments (None: the command line).
    """
    argv = sys.argv if args is None else [name, *args]
    fatal = rclpy.logging.get_logger(name).fatal
    stop_on_sigint()
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


def stop_on_sigint() -> None:
    """SIGINT stops the node even when the node was started with SIGINT ignored.

    A shell starts background jobs (`node &`, `(cmd &)` in a script, many CI runners) with
    SIGINT ignored, and Python keeps it so. rclpy's handler then only wakes the executor and
    shuts the context down from another thread; an executor that wakes before the shutdown
    lands waits again, for good (seen: a node still serving 120 s after `kill -INT`). With
    Python's own handler back in the chain, the executor it wakes raises KeyboardInterrupt.
    SIGINT is how ROS stops a node (launch sends it), so it stops ours whatever was inherited.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored and threading.current_thread() is threading.main_thread():  # signal's rule
        signal.signal(signal.SIGINT, signal.default_int_handler)


def spin(executor: Any) -> None:
    """Serve until Ctrl-C or a shutdown from outside: the ordinary ends of a node's work, after
    which the node still reports (a summary, its exit status)."""
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
