"""launch/kitti_replay.launch.py: what it references exists, and it builds where launch_ros is
installed (it runs end to end in test_launch_kitti_replay.py)."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "kitti_replay.launch.py"


def constants() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    return {
        t.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)
    }


def test_launch_references_existing_executables_and_files():
    names = constants()
    scripts = set(re.findall(r'f?"(\w+) = \{PACKAGE\}', (ROOT / "setup.py").read_text()))
    for key in ("ACCURACY_EXECUTABLE", "REPLAY_EXECUTABLE"):
        assert names[key] in scripts, f"{names[key]} is not a console script in setup.py"
    for key in ("DEPTH_LAUNCH", "RVIZ_CONFIG"):
        assert (ROOT / names[key]).is_file(), names[key]
    yaml.safe_load((ROOT / names["RVIZ_CONFIG"]).read_text())
    from space_clip_ros.kitti.to_bag import VELO_TOPIC, image_topic

    assert names["VELO_TOPIC"] == VELO_TOPIC
    assert (
        image_topic(2) == names["CAMERA_NAMESPACE"] + "/image_raw"
    )  # the node's image:=image_raw remap


def test_launch_builds_where_launch_ros_is_installed(tmp_path):
    pytest.importorskip(
        "launch_ros", reason="launch_ros is not a pip wheel; this runs on a ROS install"
    )
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch.actions import IncludeLaunchDescription, OpaqueFunction

    from launch import LaunchContext

    try:
        get_package_share_directory("space_clip_ros")
    except PackageNotFoundError:
        pytest.skip("space_clip_ros is not installed in an ament prefix (colcon build) here")

    spec = importlib.util.spec_from_file_location("kitti_replay_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    for entity in description.entities:
        if not isinstance(entity, OpaqueFunction):
            entity.visit(context)
    context.launch_configurations["bag"] = str(tmp_path)
    opaque = next(e for e in description.entities if isinstance(e, OpaqueFunction))
    actions = opaque.execute(context)
    assert len(actions) >= 4
    assert any(isinstance(a, IncludeLaunchDescription) for a in actions)  # depth.launch.py
