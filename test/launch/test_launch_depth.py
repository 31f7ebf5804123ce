"""launch_testing: depth.launch.py as a user starts it serves depth, depth/camera_info and points
under its namespace, reading the remapped image and camera_info topics (tiny checkpoint), and
starts the node with the large-message allocator (seen in the node's memory mappings).

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
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from launch import LaunchDescription  # noqa: E402
from testing.allocator import huge_pages_unseen, mappings  # noqa: E402
from testing.harness import Harness, wait_for_topics  # noqa: E402
from testing.ros_install import missing_install, share, tiny_checkpoint  # noqa: E402

NAMESPACE = f"lt_depth_{os.getpid()}"
CAMERA = f"/lt_cam_{os.getpid()}"


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
            "image": f"{CAMERA}/image",
            "camera_info": f"{CAMERA}/camera_info",
            "checkpoint": str(checkpoint),
            "device": "cpu",
        }.items(),
    )
    return LaunchDescription([depth, launch_testing.actions.ReadyToTest()]), {
        "checkpoint": checkpoint
    }


class TestDepthLaunch(unittest.TestCase):
    def test_depth_camera_info_and_points_come_out_under_the_namespace(self):
        outputs = {
            "depth": (f"/{NAMESPACE}/depth", Image),
            "depth/camera_info": (f"/{NAMESPACE}/depth/camera_info", CameraInfo),
            "points": (f"/{NAMESPACE}/points", PointCloud2),
        }
        with Harness("lt_depth_client") as ros:
            camera = ros.camera(f"{CAMERA}/image", f"{CAMERA}/camera_info")
            with ros.repeating(camera):  # until the node, started beside this test, answers
                got = wait_for_topics(list(outputs.values()))
        depth, info, cloud = (got[name][0] for name, _ in outputs.values())
        self.assertEqual((depth.encoding, depth.width, depth.height), ("32FC1", 160, 48))
        self.assertEqual(depth.header.frame_id, "launch_test_optical")
        self.assertEqual((info.width, info.height), (160, 48))
        self.assertEqual((cloud.width, cloud.height), (160, 48))

    def test_the_node_runs_with_the_large_message_allocator(self, proc_info):
        # seen in the running node: glibc asked for huge pages on its heap (glibc.malloc.hugetlb)
        reason = huge_pages_unseen()
        if reason:
            self.skipTest(reason)
        heap = [m for m in mappings(proc_info["space_clip_depth"].pid) if m.name == "[heap]"]
        self.assertTrue(heap, "the node has no [heap] mapping")
        self.assertTrue(any("hg" in m.flags for m in heap), [sorted(m.flags) for m in heap])


@launch_testing.post_shutdown_test()
class TestDepthLaunchShutdown(unittest.TestCase):
    def test_the_node_exits_cleanly(self, proc_info, checkpoint):
        shutil.rmtree(checkpoint.parent, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info)
