"""Helpers for the tests that need a ROS install with this package colcon-built into it
(test_launch_*.py, test_ros2_cli.py): what is missing, a tiny checkpoint, a camera, a client.

Not a test module itself (no test_ prefix). The tests skip, naming the missing piece, on a
pip-only machine; `.ci/run`'s colcon stage is where they run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics

PACKAGE = "space_clip_ros"
WIDTH, HEIGHT = 160, 48
INTRINSICS = Intrinsics(100.0, 100.0, 79.5, 23.5, WIDTH, HEIGHT)


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


def camera_frame(
    sec: int, frame_id: str = "launch_test_optical", width: int = WIDTH, height: int = HEIGHT
) -> tuple[Image, CameraInfo]:
    header = Header(frame_id=frame_id)
    header.stamp.sec = sec
    pixels = np.random.default_rng(sec).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image(header=header, height=height, width=width, encoding="rgb8", step=width * 3)
    image.data = pixels.tobytes()
    return image, camera_info_from_intrinsics(INTRINSICS.scaled(width, height), header)


class Client:
    """A node of its own rclpy.Context, spun by its own executor (never the global one, which
    serves the default context), so it works beside anything else in the test process."""

    def __init__(self, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def collect(self, msg_type, topic: str) -> list:
        received: list = []
        self.node.create_subscription(msg_type, topic, received.append, 10)
        return received

    def spin_until(
        self,
        done: Callable[[], bool],
        timeout: float,
        every: Optional[Callable[[], None]] = None,
    ) -> bool:
        """Spin until done() (True) or timeout (False), calling every() twice a second."""
        end, next_call = time.monotonic() + timeout, 0.0
        while not done():
            now = time.monotonic()
            if now > end:
                return False
            if every is not None and now >= next_call:
                every()
                next_call = now + 0.5
            self.executor.spin_once(timeout_sec=0.1)
        return True

    def camera(
        self, image_topic: str, info_topic: str, width: int = WIDTH, height: int = HEIGHT
    ) -> Callable[[], None]:
        """A function that publishes the next frame (width x height) and its camera_info."""
        image_pub = self.node.create_publisher(Image, image_topic, 10)
        info_pub = self.node.create_publisher(CameraInfo, info_topic, 10)
        count = iter(range(1, 1 << 30))

        def publish() -> None:
            image, info = camera_frame(next(count), width=width, height=height)
            info_pub.publish(info)
            image_pub.publish(image)

        return publish

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


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
