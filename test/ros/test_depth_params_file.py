"""config/depth.yaml loads into a real depth node: exactly the node's declared parameters with
their defaults, and a params file applies to the node in any namespace, as depth.launch.py
passes it."""

from __future__ import annotations

from pathlib import Path

import rclpy
import yaml
from rclpy.parameter import Parameter

from space_clip_ros.ros import params
from space_clip_ros.ros.depth_node import NODE_NAME, DepthNode
from testing.package_files import launch_constants

REPO = Path(__file__).resolve().parents[2]
PARAMS_KEY = f"/**/{NODE_NAME}"


def test_depth_yaml_lists_every_declared_parameter_with_its_default():
    data = yaml.safe_load((REPO / launch_constants()["PARAMS_FILE"]).read_text())
    assert list(data) == [PARAMS_KEY]
    values = data[PARAMS_KEY]["ros__parameters"]
    assert values == params.defaults()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:  # the yaml must load into a real node: same names, same types
        node = DepthNode(
            context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()]
        )
        assert all(node.has_parameter(k) for k in values)
        assert set(values) == {
            name
            for name in node.list_parameters([], 0).names
            if not name.startswith(("use_sim_time", "start_type"))
        }
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_params_file_applies_to_a_node_in_any_namespace(tmp_path):
    """As `ros2 launch depth.launch.py namespace:=front params_file:=...` passes it:
    --params-file."""
    data = yaml.safe_load((REPO / launch_constants()["PARAMS_FILE"]).read_text())
    data[PARAMS_KEY]["ros__parameters"]["max_depth"] = 42.0
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    context = rclpy.Context()
    rclpy.init(
        context=context, args=["--ros-args", "-r", "__ns:=/front/left", "--params-file", str(path)]
    )
    try:
        node = DepthNode(context=context)
        assert node.get_fully_qualified_name() == f"/front/left/{NODE_NAME}"
        assert node.get_parameter("max_depth").value == 42.0
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


