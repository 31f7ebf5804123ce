"""config/depth.yaml loads into a real depth node: exactly the node's declared parameters with
their defaults, and a params file applies to the node in any namespace, as depth.launch.py
passes it."""

from __future__ import annotations

from pathlib import Path

import yaml

from space_clip_ros.ros import params
from space_clip_ros.ros.depth_node import NODE_NAME, DepthNode
from testing.harness import Harness
from testing.package_files import launch_constants

REPO = Path(__file__).resolve().parents[2]
PARAMS_KEY = f"/**/{NODE_NAME}"


def test_depth_yaml_lists_every_declared_parameter_with_its_default(ros):
    data = yaml.safe_load((REPO / launch_constants()["PARAMS_FILE"]).read_text())
    assert list(data) == [PARAMS_KEY]
    values = data[PARAMS_KEY]["ros__parameters"]
    assert values == params.NodeConfig.defaults()
    # the yaml must load into a real node: same names, same types
    node = ros.start_node("", values, autostart=False)  # exactly the file's values
    assert all(node.has_parameter(k) for k in values)
    assert set(values) == {
        name
        for name in node.list_parameters([], 0).names
        if not name.startswith(("use_sim_time", "start_type"))
    }


def test_params_file_applies_to_a_node_in_any_namespace(tmp_path):
    """As `ros2 launch depth.launch.py namespace:=front params_file:=...` passes it:
    --params-file."""
    data = yaml.safe_load((REPO / launch_constants()["PARAMS_FILE"]).read_text())
    data[PARAMS_KEY]["ros__parameters"]["max_depth"] = 42.0
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    # Its own harness: the arguments belong to the context, as on a launched process's line.
    args = ["--ros-args", "-r", "__ns:=/front/left", "--params-file", str(path)]
    with Harness("t_params_file_client", args=args) as ros:
        node = ros.adopt(DepthNode(context=ros.context))
        assert node.get_fully_qualified_name() == f"/front/left/{NODE_NAME}"
        assert node.get_parameter("max_depth").value == 42.0
