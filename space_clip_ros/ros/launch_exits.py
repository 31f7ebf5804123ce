"""A launch fails, with the reason, when a process it depends on fails.

`ros2 launch` exits 0 whatever its processes do: a bag player that dies on start, a depth node
refusing its checkpoint or an accuracy node with no result would all end in a clean-looking exit.
launch's own way to make its exit status non-zero is an exception raised while it handles an
event (it logs "Caught exception in launch: <reason>", shuts down and returns 1), so the handler
here raises one when its process exits non-zero on its own. While the launch is shutting down,
a process killed by the signal launch sent it (a negative return code) has not failed; one that
exits with a positive code (the accuracy node without a result) has.

Imported by the launch files only; `launch` is imported lazily so this module stays importable
where only the pip wheels are installed.
"""

from __future__ import annotations

from typing import Any, Optional


class DependencyFailed(RuntimeError):
    """A process the launch depends on failed; the message says which, how and what to do."""


def failure(name: str, returncode: int, shutting_down: bool, hint: str = "") -> Optional[str]:
    """The launch's error for `name` exiting with `returncode`, or None when that is no failure."""
    if returncode == 0 or (shutting_down and returncode < 0):
        return None
    how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited {returncode}"
    return f"{name} {how} (its log above says why)" + (f"; {hint}" if hint else "")


def fail_launch_on_error(process: Any, name: str, hint: str = "") -> Any:
    """A RegisterEventHandler making the launch fail with `failure(...)` when `process` does."""
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit

    def on_exit(event: Any, context: Any) -> None:
        reason = failure(name, event.returncode, context.is_shutdown, hint)
        if reason:
            raise DependencyFailed(reason)

    return RegisterEventHandler(OnProcessExit(target_action=process, on_exit=on_exit))
