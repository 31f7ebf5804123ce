"""launch_testing: depth.launch.py with autostart false waits unconfigured; configure and activate
through the lifecycle services (what a lifecycle manager or `ros2 lifecycle set` does) make it
serve depth.

Runs where launch_testing is installed and space_clip_ros is colcon-built (`.ci/run`'s colcon
stage); skips elsewhere, naming what is missing.
"""

import os
import shutil
import tempfile
import unittest

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing comes with a ROS 2 install, not as a wheel"
)

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import yaml  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from launch import LaunchDescription  # noqa: E402
from testing.harness import PROCESS_START_TIMEOUT_S, Harness, wait_for_topics  # noqa: E402
from testing.ros_install import missing_install, share, tiny_checkpoint  # noqa: E402

NAMESPACE = f"lt_lifecycle_{os.getpid()}"
NODE = f"/{NAMESPACE}/space_clip_depth"
CAMERA = f"/lt_lifecycle_cam_{os.getpid()}"


@pytest.mark.launch_test
def generate_test_description():
    reason = missing_install()
    if reason:
        raise unittest.SkipTest(reason)
    checkpoint = tiny_checkpoint()
    params = yaml.safe_load(open(share("config/depth.yaml")))  # the shipped file, autostart off
    params["/**/space_clip_depth"]["ros__parameters"]["autostart"] = False
    params_file = os.path.join(tempfile.mkdtemp(prefix="space_clip_lifecycle_"), "params.yaml")
    with open(params_file, "w") as stream:
        yaml.safe_dump(params, stream)
    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(share("launch/depth.launch.py")),
        launch_arguments={
            "namespace": NAMESPACE,
            "image": f"{CAMERA}/image",
            "camera_info": f"{CAMERA}/camera_info",
            "params_file": params_file,
            "checkpoint": str(checkpoint),
            "device": "cpu",
        }.items(),
    )
    return LaunchDescription([depth, launch_testing.actions.ReadyToTest()]), {
        "temporary": [checkpoint.parent, os.path.dirname(params_file)]
    }


class TestLifecycle(unittest.TestCase):
    def test_configure_and_activate_through_the_lifecycle_services(self):
        with Harness("lt_lifecycle_client") as ros:
            # autostart false: the node waits unconfigured (first answer: the process is up)
            state = ros.lifecycle_state(NODE, timeout=PROCESS_START_TIMEOUT_S)
            self.assertEqual(state, "unconfigured")
            for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
                self.assertTrue(ros.change_state(NODE, transition), transition)
            self.assertEqual(ros.lifecycle_state(NODE), "active")
            camera = ros.camera(f"{CAMERA}/image", f"{CAMERA}/camera_info")
            with ros.repeating(camera):
                got = wait_for_topics([(f"/{NAMESPACE}/depth", Image)])
        self.assertEqual(got[f"/{NAMESPACE}/depth"][0].encoding, "32FC1")


@launch_testing.post_shutdown_test()
class TestLifecycleShutdown(unittest.TestCase):
    def test_the_node_exits_cleanly(self, proc_info, temporary):
        for folder in temporary:
            shutil.rmtree(folder, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info)
