"""launch_testing's LaunchService runs the installed depth.launch.py and depth comes out.

Runs where `launch` / `launch_ros` are importable and the package is installed (a sourced colcon
workspace); skips elsewhere, naming what is missing.
"""

from __future__ import annotations

import threading

import pytest

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

    from testing.harness import PROCESS_START_TIMEOUT_S, Harness

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
                TimerAction(
                    period=PROCESS_START_TIMEOUT_S + 30,
                    actions=[Shutdown(reason="launch test timed out")],
                ),
            ]
        )
    )
    ros = Harness("launch_service_client")
    depth = ros.subscribe("/launch_test/depth", Image, wait=False)
    camera = ros.camera("/launch_test_cam/image", "/launch_test_cam/camera_info")

    def client() -> None:  # beside service.run(), which wants the main thread
        try:
            ros.wait_until(lambda: depth, timeout=PROCESS_START_TIMEOUT_S, every=camera)
        finally:
            service.shutdown()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        service.run()
    finally:
        thread.join(timeout=PROCESS_START_TIMEOUT_S)
        ros.close()
    assert depth, "no depth from the launched node"
    assert depth[0].header.frame_id == "launch_test_optical" and depth[0].encoding == "32FC1"
