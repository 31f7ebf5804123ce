"""The depth node's start-up under wrong parameters: typos, unknown keys, params files keyed for
another node, and params files rcl cannot parse. Each must stop the start with exit 2 and name
the parameter or file (with a did-you-mean), never start with defaults or end in a traceback.

Real processes: `python -m space_clip_ros.ros.depth_node --ros-args ...`. No start reaches the
model: a good command line is recognised by the model failing to load (exit 1) instead.
Six processes, three at a time (each imports torch).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from space_clip_ros.ros.param_overrides import _matches, params_files

REPO = Path(__file__).resolve().parents[2]


def start(*ros_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "space_clip_ros.ros.depth_node", "--ros-args", *ros_args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def params_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every start-up of this module, run three at a time (each process imports torch)."""
    tmp = tmp_path_factory.mktemp("params")
    missing = str(tmp / "no_checkpoint_here")
    cases = {
        "typos": [
            "-p",
            f"chekpoint:={missing}",
            "--params-file",
            params_file(
                tmp,
                "typo.yaml",
                "space_clip_depth:\n  ros__parameters:\n    max_dept: 10.0\n    devise: cpu\n",
            ),
        ],
        "other_node": [
            "--params-file",
            params_file(tmp, "other.yaml", "depth_node:\n  ros__parameters:\n    device: cpu\n"),
        ],
        "missing_file": ["--params-file", str(tmp / "absent.yaml")],
        "bad_yaml": ["--params-file", params_file(tmp, "bad.yaml", "a: [b\n")],
        "bad_rule": ["-p", "checkpoint"],
        # a renamed node, parameters keyed by its new name and by wildcard, ROS's own and QoS ones
        "good": [
            "-r",
            "__node:=front_depth",
            "--params-file",
            params_file(
                tmp,
                "good.yaml",
                "front_depth:\n  ros__parameters:\n    use_sim_time: false\n"
                "    qos_overrides./depth.publisher.reliability: reliable\n"
                f"    checkpoint: {missing}\n",
            ),
            "--params-file",
            params_file(tmp, "all.yaml", "/**:\n  ros__parameters:\n    device: cpu\n"),
        ],
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = {name: pool.submit(start, *args) for name, args in cases.items()}
        return {name: future.result() for name, future in done.items()}, tmp


def test_misspelled_parameters_on_the_command_line_and_in_a_file_are_each_named(runs):
    result = runs[0]["typos"]
    assert result.returncode == 2, result.stderr
    for typo, meant in (
        ("chekpoint", "checkpoint"),
        ("max_dept", "max_depth"),
        ("devise", "device"),
    ):
        assert f"'{typo}': not a parameter of this node (did you mean '{meant}'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_params_file_keyed_for_another_node_is_refused(runs):
    result, tmp = runs[0]["other_node"], runs[1]
    assert result.returncode == 2, result.stderr
    assert (
        f"--params-file {tmp / 'other.yaml'}: has parameters for '/depth_node' but none for "
        "this node (/space_clip_depth); key them under 'space_clip_depth:' or '/**:'"
    ) in result.stderr


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing_file", "absent.yaml: no such file"),
        ("bad_yaml", "bad.yaml: line 2, column 1: expected ',' or ']'"),
        ("bad_rule", "-p name:=value"),
    ],
)
def test_a_params_file_or_rule_rcl_cannot_parse_is_exit_2_without_a_traceback(runs, case, words):
    result = runs[0][case]
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


def test_standard_and_qos_override_parameters_of_a_renamed_node_reach_the_model_loading(runs):
    result = runs[0]["good"]
    assert result.returncode == 1, result.stderr  # got as far as loading the checkpoint
    assert "cannot load the model" in result.stderr and "no_checkpoint_here" in result.stderr
    assert "unknown parameters" not in result.stderr and "another node" not in result.stderr


@pytest.mark.parametrize(
    "key, fqn, expected",
    [
        ("/**", "/cam/space_clip_depth", True),
        ("space_clip_depth", "/space_clip_depth", True),
        ("space_clip_depth", "/cam/space_clip_depth", False),  # as rcl: bare keys are at the root
        ("/*/space_clip_depth", "/cam/space_clip_depth", True),
        ("/*/space_clip_depth", "/space_clip_depth", False),
        ("/cam/*", "/cam/space_clip_depth", True),
        ("/**/space_clip_depth", "/a/b/space_clip_depth", True),
        ("other", "/space_clip_depth", False),
    ],
)
def test_node_name_matching_follows_rcl(key, fqn, expected):
    assert _matches(key, fqn) is expected


def test_params_files_are_found_only_inside_ros_args():
    argv = ["prog", "--params-file", "app.yaml", "--ros-args", "--params-file", "a.yaml", "--"]
    argv += ["--ros-args", "-p", "x:=1", "--params-file", "b.yaml"]
    assert params_files(argv) == [Path("a.yaml"), Path("b.yaml")]


def test_help_detection_ignores_ros_arguments_without_parsing_them():
    """--help is found among the node's own arguments; a bad params file is left to main()."""
    from space_clip_ros.ros.node_cli import non_ros_args

    argv = ["-h", "--ros-args", "--params-file", "absent.yaml", "-p", "x:=1", "--", "tail"]
    assert non_ros_args(argv) == ["-h", "tail"]
    assert non_ros_args(["--ros-args", "-r", "--help:=x"]) == []  # a ROS value, not --help
