"""space_clip_accuracy's parameters on the depth node's typed path (ros/params.Parameters):
declared with descriptors and ranges, validated together, unknown names refused with a
did-you-mean, exit 2 from a real process; the names and defaults launch files rely on stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
from rclpy.parameter import Parameter

from space_clip_ros.ros.accuracy_node import AccuracyConfig, AccuracyNode
from space_clip_ros.ros.params import ParameterError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def start(context, **values) -> AccuracyNode:
    """The node with `values` as overrides; /tf_static needs tf2_msgs, absent from pip-only
    machines, so a calib_dir-free start is checked where it is installed only."""
    overrides = [Parameter(name, value=value) for name, value in values.items()]
    return AccuracyNode(context=context, parameter_overrides=overrides)


def test_the_parameters_and_defaults_launch_files_pass_are_kept():
    assert AccuracyConfig.defaults() == {
        "calib_dir": "",
        "camera": 2,
        "max_dt": 0.05,
        "min_depth": 1e-3,
        "max_depth": 80.0,
        "crop": "garg",
        "output_json": "",
    }
    launch = (REPO / "launch" / "kitti_replay.launch.py").read_text()
    for name in ("calib_dir", "output_json", "max_dt"):
        assert f'"{name}": ' in launch and name in AccuracyConfig.defaults()


def test_a_misspelled_parameter_is_refused_with_a_did_you_mean(context, tmp_path):
    with pytest.raises(ParameterError) as info:
        start(context, calib_dir=str(tmp_path), max_dept=10.0)
    text = str(info.value)
    assert "'max_dept': not a parameter of this node (did you mean 'max_depth'?)" in text


def test_every_bad_value_is_named_in_one_error(context, tmp_path):
    with pytest.raises(ParameterError) as info:
        start(context, calib_dir=str(tmp_path), crop="nyu", camera=7, min_depth=90.0)
    text = str(info.value)
    for words in (
        "crop: 'nyu' is not one of garg, eigen, none",
        "(7) for parameter",  # camera: ROS refuses it at declaration, outside 0..3
        "camera; pick a value in the declared range",
        "min_depth (90.0) must be below max_depth (80.0)",
        f"Fix: correct the parameter(s) above ({AccuracyConfig.LISTING} lists each parameter)",
    ):
        assert words in text, text


def test_a_running_node_refuses_a_change_it_would_not_apply(context, tmp_path):
    from space_clip_ros.kitti.generated_drive import write_synthetic_drive

    calib = write_synthetic_drive(tmp_path / "kitti", frames=1).parent
    node = start(context, calib_dir=str(calib))
    try:
        (result,) = node.set_parameters([Parameter("max_depth", value=50.0)])
        assert not result.successful and "read at start-up" in result.reason
        assert node.settings.max_depth == 80.0
        (result,) = node.set_parameters([Parameter("use_sim_time", value=False)])
        assert result.successful  # not ours to refuse
    finally:
        node.destroy_node()


def test_the_process_exits_2_naming_the_typo_and_help_lists_the_parameters():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "space_clip_ros.ros.accuracy_node"]
    typo = subprocess.run(
        [*command, "--ros-args", "-p", "calib_dri:=/tmp", "-p", "max_dt:=0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert typo.returncode == 2, typo.stderr
    assert "'calib_dri': not a parameter of this node (did you mean 'calib_dir'?)" in typo.stderr
    assert "Traceback" not in typo.stderr
    shown = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, env=env
    )
    assert shown.returncode == 0
    for name, default in AccuracyConfig.defaults().items():
        assert f"{name} ({default!r}):" in shown.stdout
