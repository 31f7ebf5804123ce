"""launch/depth.launch.py, config/depth.yaml and config/depth.rviz, without a ROS install or DDS.

(1) Everything the launch file references exists and would be installed by setup.py; (2) the
launch file's node construction (remappings, parameter files, overrides, rviz) runs against
recording stand-ins for the launch API. The node reading depth.yaml is test/ros/
test_depth_params_file.py; the real launch description running is test/launch/
test_launch_service.py.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from space_clip_ros.ros.depth_node import NODE_NAME
from testing.package_files import DEPTH_LAUNCH_FILE as LAUNCH_FILE
from testing.package_files import installed_files, launch_constants, setup_kwargs

REPO = Path(__file__).resolve().parents[2]
PARAMS_KEY = f"/**/{NODE_NAME}"
REQUIRED_ARGUMENTS = {
    "image",
    "camera_info",
    "namespace",
    "params_file",
    "checkpoint",
    "device",
    "use_rviz",
}


def test_everything_the_launch_file_references_is_in_the_package_and_installed():
    constants = launch_constants()
    kwargs = setup_kwargs()
    package = constants["PACKAGE"]
    assert kwargs["name"] == package
    executables = {
        entry.split("=")[0].strip() for entry in kwargs["entry_points"]["console_scripts"]
    }
    assert constants["EXECUTABLE"] in executables
    target = next(
        e
        for e in kwargs["entry_points"]["console_scripts"]
        if e.startswith(constants["EXECUTABLE"])
    )
    module, function = target.split("=")[1].strip().split(":")
    assert callable(getattr(importlib.import_module(module), function))
    installed = installed_files(kwargs)
    for relative in (constants["PARAMS_FILE"], constants["RVIZ_CONFIG"]):
        assert (REPO / relative).is_file(), relative
        assert f"share/{package}/{relative}" in installed, relative
    assert f"share/{package}/launch/{LAUNCH_FILE.name}" in installed
    assert constants["NODE_NAME"] == NODE_NAME
    assert REQUIRED_ARGUMENTS <= set(constants["ARGUMENTS"])


def test_rviz_config_shows_camera_colorized_depth_and_cloud_in_the_camera_frame():
    rviz = yaml.safe_load((REPO / launch_constants()["RVIZ_CONFIG"]).read_text())
    manager = rviz["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"] if "Topic" in d}
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    image_default = launch_constants()["ARGUMENTS"]["image"][0]  # relative: in the namespace
    assert {f"/{image_default}", "/depth/colorized", "/points"} <= topics
    assert displays["rviz_default_plugins/PointCloud2"]["Color Transformer"] == "RGB8"
    assert all(
        d["Topic"]["Reliability Policy"] == "Reliable" for d in manager["Displays"] if "Topic" in d
    )
    assert manager["Global Options"]["Fixed Frame"] == "camera_color_left"


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _Node(_Recorded):
    pass


class _Handler(_Recorded):
    pass


class _Configuration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


class _PackageNotFound(KeyError):
    pass


class _RecordingLogger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(("warning", text))

    def info(self, text):
        self.lines.append(("info", text))


@pytest.fixture
def fake_launch(monkeypatch, tmp_path):
    """Recording stand-ins for launch, launch_ros and the ament index, so the launch file's own
    logic runs without a ROS install. rviz2 counts as installed unless `installed` loses it."""
    installed = {"rviz2", "space_clip_ros"}
    logger = _RecordingLogger()

    def prefix(package):
        if package not in installed:
            raise _PackageNotFound(package)
        return str(tmp_path / package)

    modules = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda entities: list(entities)),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=_Recorded,
            OpaqueFunction=_Recorded,
            RegisterEventHandler=_Handler,
        ),
        "launch.event_handlers": types.SimpleNamespace(
            OnShutdown=_Recorded, OnProcessExit=_Recorded
        ),
        "launch.logging": types.SimpleNamespace(get_logger=lambda name: logger),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=_Configuration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=_Node),
        "ament_index_python": types.SimpleNamespace(),
        "ament_index_python.packages": types.SimpleNamespace(
            get_package_share_directory=lambda p: str(tmp_path / p),
            get_package_prefix=prefix,
            PackageNotFoundError=_PackageNotFound,
        ),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("depth_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_installed, module.test_log = installed, logger.lines
    return module, tmp_path / "space_clip_ros"


def install_rviz_config(share) -> None:
    """The shipped rviz config in the fake install's share folder (the launch file tailors it)."""
    (share / "config").mkdir(parents=True, exist_ok=True)
    (share / "config" / "depth.rviz").write_text((REPO / "config" / "depth.rviz").read_text())


def run_opaque(module, **arguments):
    """The nodes the launch file starts, then its other actions (event handlers)."""
    entities = module.generate_launch_description()
    declared = {
        e.args[0] if e.args else e.kwargs["name"]: e.kwargs["default_value"] for e in entities[:-1]
    }
    assert REQUIRED_ARGUMENTS <= set(declared)
    context = {**declared, **arguments}
    actions = entities[-1].kwargs["function"](context)
    nodes = [a for a in actions if isinstance(a, _Node)]
    handlers = [a for a in actions if isinstance(a, _Handler)]
    # The depth node is watched: its failure is the launch's (exit 1 with the reason).
    (watch,) = [h for h in handlers if "on_exit" in h.args[0].kwargs]
    assert watch.args[0].kwargs["target_action"] is nodes[0]
    return (*nodes, *[h for h in handlers if h is not watch])


def test_the_depth_nodes_failure_fails_the_launch_with_the_reason(fake_launch):
    module, _ = fake_launch
    actions = module.generate_launch_description()[-1].kwargs["function"](
        {name: default for name, (default, _) in module.ARGUMENTS.items()}
    )
    (watch,) = [a for a in actions if isinstance(a, _Handler)]
    on_exit = watch.args[0].kwargs["on_exit"]
    running, shutting_down = (types.SimpleNamespace(is_shutdown=flag) for flag in (False, True))
    with pytest.raises(
        RuntimeError, match=r"^space_clip_depth exited 2 \(its log above says why\)"
    ):
        on_exit(types.SimpleNamespace(returncode=2), running)
    with pytest.raises(RuntimeError, match="space_clip_depth exited 1"):
        on_exit(types.SimpleNamespace(returncode=1), shutting_down)
    with pytest.raises(RuntimeError, match="space_clip_depth was killed by signal 9"):
        on_exit(types.SimpleNamespace(returncode=-9), running)
    # A clean exit, or the signal launch itself sends at shutdown (Ctrl-C), is no failure.
    assert on_exit(types.SimpleNamespace(returncode=0), running) is None
    assert on_exit(types.SimpleNamespace(returncode=-2), shutting_down) is None


def test_inputs_follow_the_namespace_by_default_and_use_compressed_is_an_argument(fake_launch):
    module, share = fake_launch
    (node,) = run_opaque(module, namespace="front")
    assert node.kwargs["namespace"] == "front"
    assert node.kwargs["remappings"] == [  # relative: /front/image, /front/camera_info
        ("image", "image"),
        ("image/compressed", "image/compressed"),
        ("camera_info", "camera_info"),
    ]
    assert node.kwargs["parameters"] == [str(share / "config" / "depth.yaml")]
    (node,) = run_opaque(module, namespace="front", use_compressed="true")
    assert node.kwargs["parameters"][1] == {"use_compressed": True}
    (node,) = run_opaque(module, use_compressed="False", checkpoint="/ckpt")
    assert node.kwargs["parameters"][1] == {"checkpoint": "/ckpt", "use_compressed": False}
    with pytest.raises(RuntimeError, match="use_compressed:=yes please: use true or false"):
        run_opaque(module, use_compressed="yes please")


def test_cameras_and_the_large_data_profile_are_launch_arguments(fake_launch):
    module, share = fake_launch
    (node,) = run_opaque(
        module, namespace="car", cameras="front,left", large_message_allocator="false"
    )
    assert node.kwargs["parameters"][1] == {"cameras": "front,left"}
    assert node.kwargs["remappings"] == []  # each camera reads <camera>/image, <camera>/...
    assert node.kwargs["additional_env"] == {}
    with pytest.raises(RuntimeError, match="image rename the single camera"):
        run_opaque(module, cameras="front,left", image="/cam/image_raw")
    install_rviz_config(share)
    node, rviz = run_opaque(
        module, large_data_profile="true", use_rviz="true", large_message_allocator="False"
    )[:2]
    profile = {"FASTDDS_DEFAULT_PROFILES_FILE": str(share / "config/fastdds_large_data.xml")}
    assert node.kwargs["additional_env"] == profile == rviz.kwargs["additional_env"]
    with pytest.raises(RuntimeError, match="large_data_profile:=maybe: use true or false"):
        run_opaque(module, large_data_profile="maybe")


def test_the_node_and_rviz_start_with_the_large_message_allocator_by_default(
    fake_launch, monkeypatch
):
    module, share = fake_launch
    install_rviz_config(share)
    # the user's own tunables are kept, theirs winning where both set one
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0")
    node, rviz = run_opaque(module, use_rviz="true")[:2]
    tunables = (
        "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"
        f":glibc.malloc.mmap_threshold={32 << 20}:glibc.malloc.trim_threshold={256 << 20}"
    )
    assert node.kwargs["additional_env"] == {"GLIBC_TUNABLES": tunables}
    assert rviz.kwargs["additional_env"] == node.kwargs["additional_env"]
    monkeypatch.delenv("GLIBC_TUNABLES")
    (node,) = run_opaque(module, large_data_profile="true")
    assert node.kwargs["additional_env"] == {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(share / "config/fastdds_large_data.xml"),
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"
        f":glibc.malloc.mmap_threshold={32 << 20}:glibc.malloc.trim_threshold={256 << 20}",
    }
    with pytest.raises(RuntimeError, match="large_message_allocator:=no: use true or false"):
        run_opaque(module, large_message_allocator="no")


def test_launch_file_remaps_inputs_and_layers_parameters(fake_launch):
    module, share = fake_launch
    (node,) = run_opaque(
        module, image="/cam/image_raw", camera_info="/cam/camera_info", namespace="front"
    )
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == (
        "space_clip_ros",
        "space_clip_depth",
        NODE_NAME,
        "front",
    )
    assert kw["remappings"] == [
        ("image", "/cam/image_raw"),
        ("image/compressed", "/cam/image_raw/compressed"),
        ("camera_info", "/cam/camera_info"),
    ]
    assert kw["parameters"] == [str(share / "config" / "depth.yaml")]  # nothing overrides the file

    install_rviz_config(share)
    node, rviz = run_opaque(
        module, params_file="/my.yaml", checkpoint="/ckpt", device="cuda", use_rviz="true"
    )
    assert node.kwargs["parameters"] == ["/my.yaml", {"checkpoint": "/ckpt", "device": "cuda"}]
    assert (rviz.kwargs["package"], rviz.kwargs["arguments"]) == (
        "rviz2",
        ["-d", str(share / "config" / "depth.rviz")],
    )


def test_rviz_follows_the_namespace_and_image_of_the_launch(fake_launch):
    module, share = fake_launch
    install_rviz_config(share)
    _, rviz, cleanup = run_opaque(
        module, namespace="front", image="/cam/image_raw", use_rviz="true"
    )
    path = rviz.kwargs["arguments"][1]
    assert path != str(share / "config" / "depth.rviz")
    manager = yaml.safe_load(Path(path).read_text())["Visualization Manager"]
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert {"/cam/image_raw", "/front/depth/colorized", "/front/points"} <= topics
    assert "/points" not in topics and "/depth/colorized" not in topics
    # the tailored copy is a temporary file the launch removes when it shuts down
    (on_shutdown,) = cleanup.args
    on_shutdown.kwargs["on_shutdown"](None, None)
    assert not Path(path).exists()
    _, rviz = run_opaque(module, use_rviz="true")  # defaults: the shipped file as it is
    assert rviz.kwargs["arguments"] == ["-d", str(share / "config" / "depth.rviz")]
    _, rviz = run_opaque(module, namespace="front", use_rviz="true", rviz_config="/mine.rviz")
    assert rviz.kwargs["arguments"] == ["-d", "/mine.rviz"]  # a given config is used as it is


def test_without_rviz2_use_rviz_warns_and_starts_only_the_depth_node(fake_launch):
    module, _ = fake_launch
    module.test_installed.discard("rviz2")
    (node,) = run_opaque(module, namespace="front", use_rviz="true")
    assert node.kwargs["executable"] == "space_clip_depth"
    ((level, text),) = module.test_log
    assert level == "warning" and "rviz2 is not installed" in text
    (node,) = run_opaque(module, use_rviz="auto")  # auto: where installed, said quietly
    assert module.test_log[-1][0] == "info"
    module.test_installed.add("rviz2")
    node, rviz = run_opaque(module, use_rviz="auto", rviz_config="/mine.rviz")
    assert rviz.kwargs["package"] == "rviz2"
