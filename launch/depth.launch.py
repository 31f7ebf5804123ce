"""Start the SPACE-CLIP depth node (and optionally rviz2) on a camera.

    ros2 launch space_clip_ros depth.launch.py image:=/camera/image_raw \\
        camera_info:=/camera/camera_info checkpoint:=/path/to/checkpoint device:=cuda \\
        use_rviz:=true

Outputs appear under the namespace: <namespace>/depth, <namespace>/depth/camera_info,
<namespace>/points, <namespace>/depth/colorized. The inputs default to the relative `image` and
`camera_info`, so they follow the namespace too (namespace:=front reads /front/image).
cameras:=front,left serves several cameras from one node, one model, batched: each camera reads
<namespace>/<camera>/image and camera_info and publishes under <namespace>/<camera>/. checkpoint,
device and use_compressed override the params file only when given, so a params file alone can
configure everything. When the depth node fails (a bad checkpoint, a fatal device error) the
launch ends with exit status 1 and the reason (space_clip_ros.ros.launch_exits).
rviz2 is optional (ros-base and headless robots lack it): without it, use_rviz:=true warns and the
depth node runs alone, rather than aborting the launch. kitti_replay.launch.py includes this file.
The module-level names below are what this file references; a test checks they exist in the
installed package.
"""

import os
import tempfile

import yaml
from ament_index_python.packages import (
    PackageNotFoundError,
    get_package_prefix,
    get_package_share_directory,
)
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnShutdown
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from space_clip_ros.ros.large_messages import large_message_env
from space_clip_ros.ros.launch_exits import fail_launch_on_error

PACKAGE = "space_clip_ros"
EXECUTABLE = "space_clip_depth"
NODE_NAME = "space_clip_depth"
PARAMS_FILE = "config/depth.yaml"
LARGE_DATA_PROFILE = "config/fastdds_large_data.xml"
RVIZ_CONFIG = "config/depth.rviz"
RVIZ_PACKAGE = "rviz2"

BOOLEANS = {"true": True, "false": False}

ARGUMENTS = {
    "image": (
        "image",
        "Input sensor_msgs/Image topic (its /compressed is used with use_compressed); relative "
        "names are in the namespace.",
    ),
    "camera_info": (
        "camera_info",
        "Input sensor_msgs/CameraInfo topic; relative names are in the namespace.",
    ),
    "use_compressed": (
        "",
        "true: subscribe to <image>/compressed (sensor_msgs/CompressedImage, jpeg/png); false: "
        "to <image>; empty keeps the params file's value.",
    ),
    "namespace": (
        "",
        "Namespace of the node and its outputs.",
    ),
    "cameras": (
        "",
        "Several cameras served by this one node, comma-separated (front,left,right): camera "
        "`front` reads <namespace>/front/image and front/camera_info and publishes front/depth, "
        "... (remap those topics to your drivers'); one model, batched. Empty: one camera, "
        "read from `image` and `camera_info`; keeps the params file's value.",
    ),
    "params_file": ("", "Parameter YAML; empty uses the package's config/depth.yaml."),
    "checkpoint": (
        "",
        "Checkpoint directory, .safetensors or .onnx; empty keeps the params file's value.",
    ),
    "device": ("", "auto, cpu, cuda or cuda:N; empty keeps the params file's value."),
    "use_rviz": (
        "false",
        "true: also start rviz2 (warns and goes on without it where rviz2 is not installed); "
        "auto: start it only where installed; false: never.",
    ),
    "large_data_profile": (
        "false",
        "true: start the node (and rviz2) with the Fast DDS profile for large messages "
        "(config/fastdds_large_data.xml: 64 MiB shared-memory segment; clouds at 1080p and up; "
        "README 'Large messages'); costs 64 MiB of /dev/shm per process.",
    ),
    "large_message_allocator": (
        "true",
        "true: start the node (and rviz2) with glibc's allocator set for large messages "
        "(GLIBC_TUNABLES: huge pages and fixed mmap/trim thresholds; settings of your own "
        "GLIBC_TUNABLES are kept; README 'Large messages'); false: the environment as it is.",
    ),
    "rviz_config": (
        "",
        "rviz2 config used as it is; empty: config/depth.rviz following namespace and image.",
    ),
}


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = get_package_share_directory(PACKAGE)
    parameters = [value["params_file"] or os.path.join(share, PARAMS_FILE)]
    overrides = {name: value[name] for name in ("checkpoint", "device") if value[name]}
    if value["use_compressed"]:
        if value["use_compressed"].lower() not in BOOLEANS:
            raise RuntimeError(
                f"use_compressed:={value['use_compressed']}: use true or false (or leave it "
                "empty to keep the params file's value)"
            )
        overrides["use_compressed"] = BOOLEANS[value["use_compressed"].lower()]
    remappings = [
        ("image", value["image"]),
        ("image/compressed", value["image"] + "/compressed"),
        ("camera_info", value["camera_info"]),
    ]
    if value["cameras"]:
        renamed = [n for n in ("image", "camera_info") if value[n] != ARGUMENTS[n][0]]
        if renamed:
            raise RuntimeError(
                f"{' and '.join(renamed)} rename the single camera's topics, but cameras:="
                f"{value['cameras']} serves several, each on <camera>/image and "
                "<camera>/camera_info: remap those (e.g. in a launch file of yours), or drop "
                "cameras:="
            )
        overrides["cameras"] = value["cameras"]
        remappings = []
    if overrides:
        parameters.append(overrides)
    env = _large_data_env(value["large_data_profile"], share)
    if _boolean("large_message_allocator", value["large_message_allocator"]):
        env.update(large_message_env(os.environ))
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=value["namespace"],
        parameters=parameters,
        remappings=remappings,
        additional_env=env,
        output="screen",
        emulate_tty=True,
    )
    actions = [node, fail_launch_on_error(node, EXECUTABLE)]
    mode = value["use_rviz"].lower()
    if mode in ("true", "1", "yes", "auto") and _rviz_installed(warn=mode != "auto"):
        actions += _rviz(value, share, env)
    return actions


def _boolean(name: str, text: str) -> bool:
    if text.lower() not in BOOLEANS:
        raise RuntimeError(f"{name}:={text}: use true or false")
    return BOOLEANS[text.lower()]


def _large_data_env(flag: str, share: str) -> dict:
    """The environment that gives a process the large-message Fast DDS profile, or none."""
    if not _boolean("large_data_profile", flag):
        return {}
    return {"FASTDDS_DEFAULT_PROFILES_FILE": os.path.join(share, LARGE_DATA_PROFILE)}


def _rviz_installed(warn: bool) -> bool:
    """Whether rviz2 is in the ament index; `ros2 launch` aborts on a Node of a missing package
    and leaves the nodes it already started running, so the check comes first."""
    try:
        get_package_prefix(RVIZ_PACKAGE)
        return True
    except PackageNotFoundError:
        log = get_logger("space_clip_ros.launch")
        (log.warning if warn else log.info)(
            "use_rviz: rviz2 is not installed here (ros-base or a headless robot), so it is not "
            "started; depth is served without it. Install ros-$ROS_DISTRO-rviz2 to view it."
        )
        return False


def _rviz(value: dict, share: str, env: dict) -> list:
    """rviz2 on the given config, or on the shipped one tailored to this launch; a tailored copy
    is a temporary file removed when the launch shuts down."""
    config = value["rviz_config"]
    tailored = None
    if not config:
        config = os.path.join(share, RVIZ_CONFIG)
        # several cameras: rviz shows the first one
        first = value["cameras"].split(",")[0].strip()
        namespace = "/".join(p for p in (value["namespace"].strip("/"), first) if p)
        tailored = _tailored_rviz_config(config, namespace, value["image"])
    actions = [
        Node(
            package=RVIZ_PACKAGE,
            executable="rviz2",
            name="rviz2",
            arguments=["-d", tailored or config],
            additional_env=env,
            output="screen",
        )
    ]
    if tailored:
        actions.append(
            RegisterEventHandler(OnShutdown(on_shutdown=lambda event, context: _remove(tailored)))
        )
    return actions


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


def _tailored_rviz_config(path: str, namespace: str, image: str):
    """A copy of the rviz config whose displays follow this launch's namespace and image, or None
    when the shipped file already does.

    rviz2 display topics are absolute, so `namespace:=front` would otherwise leave the depth and
    cloud panels on /depth/colorized and /points, empty.
    """
    with open(path) as stream:
        config = yaml.safe_load(stream)
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    changed = False
    for display in config["Visualization Manager"]["Displays"]:
        topic = display.get("Topic")
        if not topic:
            continue
        if topic["Value"] in ("/depth/colorized", "/points"):  # the node's outputs
            wanted = prefix + topic["Value"]
        elif display["Class"] == "rviz_default_plugins/Image":  # the camera panel
            wanted = image if image.startswith("/") else f"{prefix}/{image}"
        else:
            continue
        if topic["Value"] != wanted:
            topic["Value"], changed = wanted, True
    if not changed:
        return None
    handle, tailored = tempfile.mkstemp(prefix="space_clip_depth_", suffix=".rviz")
    with os.fdopen(handle, "w") as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    return tailored


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=_nodes)]
    )
