"""launch_testing: one depth.launch.py node serves three cameras of different sizes (cameras:=),
each on its own topics at its own size, and keeps serving two when the third stops publishing.

Runs where launch_testing is installed and space_clip_ros is colcon-built (`.ci/run`'s colcon
stage); skips elsewhere, naming what is missing.
"""

import os
import shutil
import unittest

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing comes with a ROS 2 install, not as a wheel"
)

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from launch import LaunchDescription  # noqa: E402
from testing.harness import PROCESS_START_TIMEOUT_S, Harness, wait_for_topics  # noqa: E402
from testing.ros_install import missing_install, share, tiny_checkpoint  # noqa: E402

NAMESPACE = f"lt_cameras_{os.getpid()}"
SIZES = {"front": (160, 48), "left": (96, 64), "rear": (64, 40)}  # width, height


@pytest.mark.launch_test
def generate_test_description():
    reason = missing_install()
    if reason:
        raise unittest.SkipTest(reason)
    checkpoint = tiny_checkpoint()
    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(share("launch/depth.launch.py")),
        launch_arguments={
            "namespace": NAMESPACE,
            "cameras": ",".join(SIZES),
            "checkpoint": str(checkpoint),
            "device": "cpu",
        }.items(),
    )
    return LaunchDescription([depth, launch_testing.actions.ReadyToTest()]), {
        "checkpoint": checkpoint
    }


class TestCamerasLaunch(unittest.TestCase):
    def test_three_cameras_each_at_its_own_size_and_a_stopped_one_holds_no_one_back(self):
        outputs = [
            (f"/{NAMESPACE}/{camera}/{topic}", msg_type)
            for camera in SIZES
            for topic, msg_type in (("depth", Image), ("points", PointCloud2))
        ]
        with Harness("lt_cameras_client") as ros:
            depth = {c: ros.subscribe(f"/{NAMESPACE}/{c}/depth", Image, wait=False) for c in SIZES}
            cameras = {
                c: ros.camera(f"/{NAMESPACE}/{c}/image", f"/{NAMESPACE}/{c}/camera_info", w, h)
                for c, (w, h) in SIZES.items()
            }

            def all_publish() -> None:
                for publish in cameras.values():
                    publish()

            with ros.repeating(all_publish):
                got = wait_for_topics(outputs)
            for camera, (width, height) in SIZES.items():
                image = got[f"/{NAMESPACE}/{camera}/depth"][0]
                cloud = got[f"/{NAMESPACE}/{camera}/points"][0]
                self.assertEqual((image.width, image.height), (width, height))
                self.assertEqual((cloud.width, cloud.height), (width, height))

            # `rear` stops: front and left go on being served
            seen = {c: len(depth[c]) for c in SIZES}

            def two_publish() -> None:
                cameras["front"]()
                cameras["left"]()

            served = ros.wait_until(
                lambda: all(len(depth[c]) >= seen[c] + 3 for c in ("front", "left")),
                timeout=PROCESS_START_TIMEOUT_S,
                every=two_publish,
            )
            self.assertTrue(served, {c: len(depth[c]) - seen[c] for c in SIZES})


@launch_testing.post_shutdown_test()
class TestCamerasLaunchShutdown(unittest.TestCase):
    def test_the_node_exits_cleanly(self, proc_info, checkpoint):
        shutil.rmtree(checkpoint.parent, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info)
