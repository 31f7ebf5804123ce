"""launch_testing's LaunchService runs the installed depth.launch.py and depth comes out.

Runs where `launch` / `launch_ros` are importable and the package is installed (a sourced colcon
workspace); skips elsewhere, naming what is missing.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from testing.package_files import DEPTH_LAUNCH_FILE as LAUNCH_FILE


def test_the_launch_description_runs_the_node_and_depth_comes_out(tmp_path, tiny_checkpoint):
    launch = pytest.importorskip(
        "launch", reason="the launch package comes with a ROS install, not as a wheel"
    )
    if not hasattr(
        launch, "LaunchService"
    ):  # only the repository's launch/ folder, as a namespace package
        pytest.skip(
            "the ROS launch package is not installed (comes with a ROS install, not as a wheel)"
        )
    pytest.importorskip("launch_ros", reason="launch_ros comes with a ROS install, not as a wheel")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch.actions import IncludeLaunchDescription, Shutdown, TimerAction
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from sensor_msgs.msg import Image

    try:
        get_package_share_directory("space_clip_ros")
    except PackageNotFoundError:
        pytest.skip(
            "space_clip_ros is not installed in an ament index: colcon build, "
            "source install/setup.bash"
        )
    checkpoint = tiny_checkpoint
    service = launch.LaunchService()
    service.include_launch_description(
        launch.LaunchDescription(
            [
                IncludeLaunchDescription(
                    PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
                    launch_arguments={
                        "namespace": "launch_test",
                        "image": "/launch_test_cam/image",
                        "camera_info": "/launch_test_cam/camera_info",
                        "checkpoint": str(checkpoint),
                        "device": "cpu",
                        "use_rviz": "false",
                    }.items(),
                ),
                TimerAction(period=90.0, actions=[Shutdown(reason="launch test timed out")]),
            ]
        )
    )
    received: list = []

    def client() -> None:
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("launch_test_client", context=context)
        executor = SingleThreadedExecutor(context=context)  # the global one serves another context
        executor.add_node(node)
        node.create_subscription(Image, "/launch_test/depth", received.append, 10)
        pub = node.create_publisher(Image, "/launch_test_cam/image", 10)
        end = time.monotonic() + 80
        while not received and time.monotonic() < end:
            msg = Image(
                height=48,
                width=160,
                encoding="rgb8",
                step=480,
                data=np.zeros(48 * 480, np.uint8).tobytes(),
            )
            msg.header.frame_id = "launch_test_optical"
            pub.publish(msg)
            executor.spin_once(timeout_sec=0.5)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        service.shutdown()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    service.run()
    thread.join(timeout=10)
    assert (
        received
        and received[0].header.frame_id == "launch_test_optical"
        and received[0].encoding == "32FC1"
    )
