"""launch_testing: the shared-encoder example (examples/clip_labels_and_depth.py, as installed in
the package share) started by launch as its own process publishes zero-shot labels and depth,
depth/camera_info and points from one encoder pass.

Runs where launch_testing is installed and space_clip_ros is colcon-built (`.ci/run`'s colcon
stage); skips elsewhere, naming what is missing.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing comes with a ROS 2 install, not as a wheel"
)

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch.actions import ExecuteProcess  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from launch import LaunchDescription  # noqa: E402
from testing.harness import Harness, wait_for_topics  # noqa: E402
from testing.ros_install import missing_install, share  # noqa: E402

NAMESPACE = f"lt_example_{os.getpid()}"


@pytest.mark.launch_test
def generate_test_description():
    reason = missing_install()
    if reason:
        raise unittest.SkipTest(reason)
    from testing.tiny_hosts import zero_shot_files

    folder = Path(tempfile.mkdtemp(prefix="space_clip_example_"))
    files, _ = zero_shot_files(folder)
    params = [arg for k, v in files.items() for arg in ("-p", f"{k}:={v}")]
    example = ExecuteProcess(
        cmd=[sys.executable, share("examples/clip_labels_and_depth.py"), "--ros-args",
             "-r", f"__ns:=/{NAMESPACE}", "-p", "device:=cpu", "-p", "labels:=car,tree",
             *params],
        output="screen",
    )  # fmt: skip
    return LaunchDescription([example, launch_testing.actions.ReadyToTest()]), {"folder": folder}


class TestSharedEncoderExample(unittest.TestCase):
    def test_labels_depth_and_points_from_one_encoder_pass(self):
        outputs = {
            "labels": (f"/{NAMESPACE}/labels", String),
            "depth": (f"/{NAMESPACE}/depth", Image),
            "depth/camera_info": (f"/{NAMESPACE}/depth/camera_info", CameraInfo),
            "points": (f"/{NAMESPACE}/points", PointCloud2),
        }
        with Harness("lt_example_client") as ros:
            camera = ros.camera(f"/{NAMESPACE}/image", f"/{NAMESPACE}/camera_info")
            with ros.repeating(camera):
                got = wait_for_topics(list(outputs.values()))
        labels, depth, _, cloud = (got[name][0] for name, _ in outputs.values())
        self.assertEqual(set(json.loads(labels.data)), {"car", "tree"})
        self.assertEqual((depth.encoding, depth.width, depth.height), ("32FC1", 160, 48))
        self.assertEqual((cloud.width, cloud.height), (160, 48))


@launch_testing.post_shutdown_test()
class TestSharedEncoderExampleShutdown(unittest.TestCase):
    def test_the_example_exits_cleanly(self, proc_info, folder):
        shutil.rmtree(folder, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info)
