"""Replay a KITTI bag (from space-clip-kitti2bag) through the depth node and score it against the
LiDAR, showing it in rviz2 where rviz2 is installed.

    ros2 launch space_clip_ros kitti_replay.launch.py bag:=/data/2011_09_26_drive_0002_sync \\
        checkpoint:=/path/to/checkpoint device:=cuda

  * player:=auto (default) plays with `ros2 bag play` where rosbag2 is installed (latched
    /tf_static re-offered from the bag's QoS metadata), else with space_clip_bag_replay;
    player:=replay always uses space_clip_bag_replay, in lockstep with the node (every frame
    scored however slow the device; tf_static needs tf2_msgs; CameraInfo goes out before the
    image of its stamp whatever the bag's order); player:=ros2 always `ros2 bag play`.
  * The depth node is depth.launch.py, included with namespace /kitti/camera_color_left and the
    bag's image_raw / camera_info, so it publishes .../depth, .../depth/camera_info, .../points,
    .../depth/colorized.
  * space_clip_accuracy (same namespace, its lidar_points remapped to lidar_topic) publishes
    .../accuracy (diagnostic_msgs/DiagnosticArray) and prints the metrics table when the launch
    ends; the velo->camera transform comes from /tf_static, or from calib_dir:=<KITTI date folder>.
  * With exit_on_end:=true (default) everything stops a few seconds after the bag ends, so the
    table (and output_json) appear without Ctrl-C.
  * use_rviz:=auto (default) starts rviz2 only where it is installed.

The launch fails (exit status 1, the reason in its last lines) rather than ending quietly when
the bag lacks the camera or lidar_topic (checked before anything starts, naming the bag's topics),
when the player, the depth node or the accuracy node fails, or when no frame got ground truth.
"""

import atexit
import importlib.util
import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
    TimerAction,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from space_clip_ros.ros.launch_exits import fail_launch_on_error

PACKAGE = "space_clip_ros"
DEPTH_LAUNCH = "launch/depth.launch.py"
ACCURACY_EXECUTABLE = "space_clip_accuracy"
REPLAY_EXECUTABLE = "space_clip_bag_replay"
RVIZ_CONFIG = "config/kitti_replay.rviz"
CAMERA_NAMESPACE = "/kitti/camera_color_left"
VELO_TOPIC = "/kitti/velo/pointcloud"
IMAGE_TOPIC = f"{CAMERA_NAMESPACE}/image_raw"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
GRACE_AFTER_BAG_S = 5.0
TRUE = ("true", "1", "yes")
PLAYERS = ("auto", "ros2", "replay")
ROS2_BAG_MODULES = ("ros2bag", "rosbag2_py")  # what `ros2 bag play` imports

ARGUMENTS = {
    "bag": ("", "rosbag2 folder written by space-clip-kitti2bag (required)."),
    "rate": (
        "1.0",
        "Playback speed factor for player:=ros2 (player:=replay runs in lockstep with the node).",
    ),
    "player": (
        "auto",
        "auto: ros2 where `ros2 bag` is installed, else replay; ros2: `ros2 bag play`; replay: "
        "space_clip_bag_replay in lockstep with the depth node.",
    ),
    "lidar_topic": (
        VELO_TOPIC,
        "The bag's Velodyne sensor_msgs/PointCloud2 topic (kitti2mcap bags: "
        "/kitti/velodyne_points).",
    ),
    "params_file": ("", "Depth node parameter YAML; empty uses the package's config/depth.yaml."),
    "checkpoint": (
        "",
        "Checkpoint directory or .safetensors; empty keeps the params file's value.",
    ),
    "device": ("", "auto, cpu, cuda or cuda:N; empty keeps the params file's value."),
    "calib_dir": (
        "",
        "KITTI date folder for the velo->camera transform; empty: use /tf_static from the bag.",
    ),
    "output_json": (
        "",
        "Where space_clip_accuracy writes per-frame metrics and the mean at exit (empty: none).",
    ),
    "max_dt": ("0.05", "Max stamp difference (s) when pairing depth with a Velodyne scan."),
    "use_rviz": (
        "auto",
        f"auto: start rviz2 with {RVIZ_CONFIG} where it is installed; true: also warn where it "
        "is not; false: never.",
    ),
    "exit_on_end": ("true", f"Shut everything down {GRACE_AFTER_BAG_S:.0f} s after the bag ends."),
}


def ros2_bag_missing() -> str:
    """Why `ros2 bag play` cannot run here ('' when it can): rosbag2 is a separate install
    (ros-$ROS_DISTRO-rosbag2), missing on ros-core images and pip-only machines."""
    missing = [name for name in ROS2_BAG_MODULES if importlib.util.find_spec(name) is None]
    return f"`ros2 bag` is not installed here (no module {', '.join(missing)})" if missing else ""


def bag_topics(bag: str) -> dict[str, str]:
    """topic -> message type of the bag, {} where the bag cannot be read here (a lone .mcap
    file, or no rosbags): `ros2 bag play` may still play it, and then nothing is checked."""
    try:
        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.errors import ReaderError
    except ImportError:
        get_logger(PACKAGE).warning("rosbags is not installed: the bag's topics are not checked")
        return {}
    try:
        with Reader(bag) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except (ReaderError, OSError) as err:  # OSError: no metadata.yaml (a lone .mcap file)
        get_logger(PACKAGE).warning(f"bag:={bag}: topics not checked ({err})")
        return {}


def check_topics(bag: str, topics: dict[str, str], lidar_topic: str) -> None:
    """Refuse, before anything starts, a bag without the camera or the LiDAR topic."""
    clouds = sorted(t for t, kind in topics.items() if kind == POINT_CLOUD2)
    if topics and topics.get(lidar_topic) != POINT_CLOUD2:
        fix = (
            f"pass lidar_topic:={clouds[0]}"
            if len(clouds) == 1
            else f"pass lidar_topic:= one of {clouds}"
            if clouds
            else "convert the drive with its Velodyne scans (space-clip-kitti2bag)"
        )
        raise RuntimeError(
            f"bag:={bag} has no PointCloud2 topic {lidar_topic} (its PointCloud2 topics: "
            f"{clouds or 'none'}): {fix}"
        )
    if topics and IMAGE_TOPIC not in topics:
        raise RuntimeError(
            f"bag:={bag} has no {IMAGE_TOPIC}, the camera this launch replays (its topics: "
            f"{sorted(topics)}); write the bag with space-clip-kitti2bag"
        )


def choose_player(requested: str) -> str:
    missing = ros2_bag_missing()
    if requested == "auto":
        reason = f"space_clip_bag_replay: {missing}" if missing else "`ros2 bag play`"
        get_logger(PACKAGE).info(f"player:=auto plays with {reason}")
        return "replay" if missing else "ros2"
    if requested == "ros2" and missing:
        raise RuntimeError(
            f"player:=ros2 needs `ros2 bag`, but {missing}: use player:=replay (the package's "
            "own player) or install ros-$ROS_DISTRO-rosbag2"
        )
    if requested not in PLAYERS:
        raise RuntimeError(f"player:={requested}: use {', '.join(PLAYERS)}")
    return requested


def _actions(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    # Every refusal comes before the first process starts, so a bad argument leaves no orphan.
    bag = os.path.expanduser(value["bag"])
    if not bag:
        raise RuntimeError(
            "kitti_replay.launch.py needs bag:=<rosbag2 folder> "
            "(make one with space-clip-kitti2bag)"
        )
    if not os.path.exists(bag):
        raise RuntimeError(f"bag:={bag} does not exist (make one with space-clip-kitti2bag)")
    lidar_topic = value["lidar_topic"]
    check_topics(bag, bag_topics(bag), lidar_topic)
    player_kind = choose_player(value["player"])
    share = get_package_share_directory(PACKAGE)

    if player_kind == "ros2":
        player = ExecuteProcess(
            cmd=["ros2", "bag", "play", bag, "--rate", value["rate"]], output="screen"
        )
        player_hint = "player:=replay plays with the package's own player instead"
    else:
        player = Node(
            package=PACKAGE,
            executable=REPLAY_EXECUTABLE,
            output="screen",
            arguments=[
                bag,
                "--wait-for",
                f"{CAMERA_NAMESPACE}/depth",
                "--wait-timeout",
                "30",
                "--wait-for-subscriber",  # the accuracy node is up before the first scan
                lidar_topic,
            ],
        )
        player_hint = ""

    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, DEPTH_LAUNCH)),
        launch_arguments={
            "namespace": CAMERA_NAMESPACE,
            "image": IMAGE_TOPIC,
            "camera_info": f"{CAMERA_NAMESPACE}/camera_info",
            "params_file": value["params_file"],
            "checkpoint": value["checkpoint"],
            "device": value["device"],
            "use_rviz": value["use_rviz"],
            "rviz_config": rviz_config(share, lidar_topic, value["use_rviz"]),
        }.items(),
    )
    accuracy = Node(
        package=PACKAGE,
        executable=ACCURACY_EXECUTABLE,
        name="space_clip_accuracy",
        namespace=CAMERA_NAMESPACE,
        parameters=[
            {
                "calib_dir": value["calib_dir"],
                "output_json": value["output_json"],
                "max_dt": float(value["max_dt"]),
            }
        ],
        remappings=[("lidar_points", lidar_topic)],
        output="screen",
        emulate_tty=True,
    )
    actions = [
        depth,
        accuracy,
        fail_launch_on_error(accuracy, ACCURACY_EXECUTABLE),
        # The player starts once the nodes had a moment to subscribe, so no first frame is lost.
        TimerAction(period=3.0, actions=[player]),
        fail_launch_on_error(player, f"the bag player ({player_kind})", player_hint),
    ]
    if value["exit_on_end"].lower() in TRUE:
        actions.append(
            RegisterEventHandler(
                OnProcessExit(
                    target_action=player,
                    on_exit=[
                        TimerAction(
                            period=GRACE_AFTER_BAG_S,
                            actions=[EmitEvent(event=Shutdown(reason="bag finished"))],
                        )
                    ],
                )
            )
        )
    return actions


def rviz_config(share: str, lidar_topic: str, use_rviz: str) -> str:
    """config/kitti_replay.rviz, or (when rviz2 may start) a temporary copy whose LiDAR display
    shows `lidar_topic`, removed when the launch process exits."""
    path = os.path.join(share, RVIZ_CONFIG)
    if lidar_topic == VELO_TOPIC or use_rviz.lower() in ("false", "0", "no"):
        return path
    with open(path) as stream:
        text = stream.read()
    handle, tailored = tempfile.mkstemp(prefix="space_clip_kitti_replay_", suffix=".rviz")
    with os.fdopen(handle, "w") as stream:
        stream.write(text.replace(f"Value: {VELO_TOPIC}\n", f"Value: {lidar_topic}\n"))
    atexit.register(lambda: os.path.exists(tailored) and os.remove(tailored))
    return tailored


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=_actions)]
    )
