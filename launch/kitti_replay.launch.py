"""Replay a KITTI bag (from space-clip-kitti2bag) through the depth node and score it against the
LiDAR, showing it in rviz2 where rviz2 is installed.

    ros2 launch space_clip_ros kitti_replay.launch.py bag:=/data/2011_09_26_drive_0002_sync \\
        checkpoint:=/path/to/checkpoint device:=cuda

  * player:=ros2 (default) plays with `ros2 bag play` (latched /tf_static re-offered from the bag's
    QoS metadata); player:=replay uses space_clip_bag_replay in lockstep with the node (every frame
    scored however slow the device; tf_static needs tf2_msgs).
  * The depth node is depth.launch.py, included with namespace /kitti/camera_color_left and the
    bag's image_raw / camera_info, so it publishes .../depth, .../depth/camera_info, .../points,
    .../depth/colorized.
  * space_clip_accuracy (same namespace, lidar_points:=/kitti/velo/pointcloud) publishes
    .../accuracy (diagnostic_msgs/DiagnosticArray) and prints the metrics table when the launch
    ends; the velo->camera transform comes from /tf_static, or from calib_dir:=<KITTI date folder>.
  * With exit_on_end:=true (default) everything stops a few seconds after the bag ends, so the
    table (and output_json) appear without Ctrl-C.
  * use_rviz:=auto (default) starts rviz2 only where it is installed.
"""

import os

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
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "space_clip_ros"
DEPTH_LAUNCH = "launch/depth.launch.py"
ACCURACY_EXECUTABLE = "space_clip_accuracy"
REPLAY_EXECUTABLE = "space_clip_bag_replay"
RVIZ_CONFIG = "config/kitti_replay.rviz"
CAMERA_NAMESPACE = "/kitti/camera_color_left"
VELO_TOPIC = "/kitti/velo/pointcloud"
GRACE_AFTER_BAG_S = 5.0
TRUE = ("true", "1", "yes")

ARGUMENTS = {
    "bag": ("", "rosbag2 folder written by space-clip-kitti2bag (required)."),
    "rate": (
        "1.0",
        "Playback speed factor for player:=ros2 (player:=replay runs in lockstep with the node).",
    ),
    "player": (
        "ros2",
        "ros2: `ros2 bag play`; replay: space_clip_bag_replay in lockstep with the depth node.",
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
    share = get_package_share_directory(PACKAGE)

    if value["player"] == "ros2":
        player = ExecuteProcess(
            cmd=["ros2", "bag", "play", bag, "--rate", value["rate"]], output="screen"
        )
    elif value["player"] == "replay":
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
                VELO_TOPIC,
            ],
        )
    else:
        raise RuntimeError(f"player:={value['player']}: use ros2 or replay")

    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, DEPTH_LAUNCH)),
        launch_arguments={
            "namespace": CAMERA_NAMESPACE,
            "image": f"{CAMERA_NAMESPACE}/image_raw",
            "camera_info": f"{CAMERA_NAMESPACE}/camera_info",
            "params_file": value["params_file"],
            "checkpoint": value["checkpoint"],
            "device": value["device"],
            "use_rviz": value["use_rviz"],
            "rviz_config": os.path.join(share, RVIZ_CONFIG),
        }.items(),
    )
    actions = [
        depth,
        Node(
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
            remappings=[("lidar_points", VELO_TOPIC)],
            output="screen",
            emulate_tty=True,
        ),
        # The player starts once the nodes had a moment to subscribe, so no first frame is lost.
        TimerAction(period=3.0, actions=[player]),
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


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=_actions)]
    )
