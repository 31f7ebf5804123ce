"""launch/kitti_replay.launch.py: what it references exists, and it builds where launch_ros is
installed (it runs end to end in test_launch_kitti_replay.py)."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture
def launch_module():
    """The launch file as a module, where launch_ros is installed and the package is built."""
    pytest.importorskip(
        "launch_ros", reason="launch_ros is not a pip wheel; this runs on a ROS install"
    )
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("space_clip_ros")
    except PackageNotFoundError:
        pytest.skip("space_clip_ros is not installed in an ament prefix (colcon build) here")
    spec = importlib.util.spec_from_file_location("kitti_replay_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_player_auto_picks_ros2_bag_only_where_it_is_installed(launch_module, monkeypatch):
    """Issue 17, item 2: without rosbag2 the default player died and the launch exited 0."""
    installed: set[str] = set()
    monkeypatch.setattr(
        launch_module.importlib.util, "find_spec", lambda name: name if name in installed else None
    )
    assert launch_module.choose_player("auto") == "replay"
    assert launch_module.choose_player("replay") == "replay"
    with pytest.raises(
        RuntimeError, match=r"player:=ros2 needs `ros2 bag`, but .* use player:=replay"
    ):
        launch_module.choose_player("ros2")
    installed |= {"ros2bag", "rosbag2_py"}
    assert launch_module.choose_player("auto") == "ros2"
    assert launch_module.choose_player("ros2") == "ros2"
    with pytest.raises(RuntimeError, match="player:=rosbag: use auto, ros2, replay"):
        launch_module.choose_player("rosbag")


@pytest.mark.parametrize(
    "clouds, fix",
    [
        (["/kitti/velodyne_points"], "pass lidar_topic:=/kitti/velodyne_points"),
        (["/a", "/b"], r"pass lidar_topic:= one of \['/a', '/b'\]"),
        ([], "convert the drive with its Velodyne scans"),
    ],
)
def test_a_bag_without_the_lidar_topic_is_refused_with_the_fix(launch_module, clouds, fix):
    topics = {c: launch_module.POINT_CLOUD2 for c in clouds} | {
        launch_module.IMAGE_TOPIC: "sensor_msgs/msg/Image"
    }
    with pytest.raises(
        RuntimeError, match=rf"has no PointCloud2 topic /kitti/velo/pointcloud .*{fix}"
    ):
        launch_module.check_topics("b", topics, launch_module.VELO_TOPIC)
    launch_module.check_topics("b", topics | {"/x": launch_module.POINT_CLOUD2}, "/x")
    with pytest.raises(RuntimeError, match="has no /kitti/camera_color_left/image_raw"):
        launch_module.check_topics("b", {"/x": launch_module.POINT_CLOUD2}, "/x")


def test_rviz_shows_the_lidar_topic_given(launch_module, tmp_path):
    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    (share / "config" / "kitti_replay.rviz").write_text(
        (ROOT / "config" / "kitti_replay.rviz").read_text()
    )
    shipped = str(share / "config" / "kitti_replay.rviz")
    assert launch_module.rviz_config(str(share), launch_module.VELO_TOPIC, "auto") == shipped
    assert launch_module.rviz_config(str(share), "/kitti/velodyne_points", "false") == shipped
    tailored = launch_module.rviz_config(str(share), "/kitti/velodyne_points", "auto")
    manager = yaml.safe_load(Path(tailored).read_text())["Visualization Manager"]
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert "/kitti/velodyne_points" in topics and launch_module.VELO_TOPIC not in topics
    Path(tailored).unlink()


def test_launch_builds_where_launch_ros_is_installed(tmp_path, launch_module):
    from launch.actions import IncludeLaunchDescription, OpaqueFunction

    from launch import LaunchContext

    module = launch_module
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
