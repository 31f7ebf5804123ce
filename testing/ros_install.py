"""What the tests of test/launch need from a ROS install with this package colcon-built into
it: what is missing, the installed share folder, a tiny checkpoint made before pytest's fixtures
exist, the processes a launch left behind. They talk to the launched nodes through the one
harness (testing/harness.py).

The tests skip, naming the missing piece, on a pip-only machine; `.ci/run`'s colcon stage is
where they run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

PACKAGE = "space_clip_ros"


def missing_install() -> Optional[str]:
    """Why this package cannot be launched here, or None when `ros2 launch` / `ros2 run` can."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return "ament_index_python is missing: source a ROS 2 install (setup.bash)"
    try:
        get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        return f"{PACKAGE} is not installed: colcon build && source install/setup.bash"
    except OSError:  # no AMENT_PREFIX_PATH at all
        return "no ament index (AMENT_PREFIX_PATH): source a ROS 2 install and install/setup.bash"
    if shutil.which("ros2") is None:
        return "the ros2 command (ros2cli) is not on PATH: source a ROS 2 install"
    return None


def share(relative: str) -> str:
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory(PACKAGE), relative)


def tiny_checkpoint() -> Path:
    """A tiny checkpoint in a fresh temporary folder (the caller's to keep or remove): a launch
    test builds it before pytest's fixtures exist (generate_test_description)."""
    from testing.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tempfile.mkdtemp(prefix="space_clip_launch_test_"))


def processes_in_session(session: int) -> list[str]:
    """Command lines of live processes in `session` (a launch started with start_new_session:
    whatever it started and left running is there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(cmdline.strip())
    return found
