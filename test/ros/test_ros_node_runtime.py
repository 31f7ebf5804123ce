"""`ros2 param set` on a running depth node, Ctrl-C during inference, and the start-up advice on
glibc's allocator.

Runtime parameters (config/depth.yaml marks them) change the next frame; the others are refused
while the node is configured, with the reconfigure that applies them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from space_clip_ros.frame_plan import Output
from space_clip_ros.io.msg_arrays import depth_image_to_metres
from space_clip_ros.ros import params
from space_clip_ros.ros.depth_node import DepthNode
from space_clip_ros.ros.large_messages import VARIABLE, allocator_advice, large_message_env
from space_clip_ros.ros.qos import QOS_SHORTHANDS
from testing.estimators import KnownDepth, plane
from testing.harness import Harness, make_image, wait_for

REPO = Path(__file__).resolve().parents[2]


def set_one(node: DepthNode, name: str, value):
    return node.set_parameters([Parameter(name, value=value)])[0]


def test_runtime_parameters_change_the_next_frame(ros):
    node = ros.start("/t_rt", estimator=KnownDepth(plane(5.0)))
    out = ros.subscribe_outputs("/t_rt", ("depth",))
    images = ros.publisher("/t_rt/image")
    images.publish(make_image(sec=1))
    assert wait_for(lambda: out["depth"] and out["depth"][-1].header.stamp.sec == 1)
    assert np.all(depth_image_to_metres(out["depth"][-1]) == 5.0)

    result = set_one(node, "max_depth", 4.0)  # 5 m is now beyond the range: NaN
    assert result.successful and node.config.max_depth == 4.0
    images.publish(make_image(sec=2))
    assert wait_for(lambda: out["depth"][-1].header.stamp.sec == 2)
    assert np.all(np.isnan(depth_image_to_metres(out["depth"][-1])))

    assert set_one(node, "publish_depth", False).successful  # outputs switch off at once
    assert Output.DEPTH not in node.wanted()


def test_parameters_that_need_a_reconfigure_are_refused_with_the_way_to_apply_them(ros):
    node = ros.start("/t_fixed", estimator=KnownDepth(plane(5.0)))
    for name, value in (
        ("device", "cuda"),
        ("precision", "fp16"),
        ("checkpoint", "/elsewhere"),
        ("use_compressed", True),
    ):
        before = node.get_parameter(name).value
        result = set_one(node, name, value)
        assert not result.successful, name
        assert name in result.reason and "reconfigure" in result.reason
        assert "ros2 lifecycle set /t_fixed/space_clip_depth" in result.reason
        assert node.get_parameter(name).value == before  # nothing pretends to have changed
    assert set_one(node, "device", "cpu").successful  # the value it runs with: no change
    qos = set_one(node, "output_reliability", "best_effort")  # fixed for the node's lifetime
    assert not qos.successful and "restart the node" in qos.reason


def test_unconfigured_every_valid_parameter_waits_for_configure(ros):
    node = ros.start("/t_unconf", autostart=False, estimator=KnownDepth(plane(5.0)))
    assert set_one(node, "precision", "bf16").successful
    assert set_one(node, "precision", "fp32").successful


def test_a_new_log_or_diagnostics_period_restarts_its_timer(ros):
    node = ros.start("/t_period", estimator=KnownDepth(plane(5.0)))

    def periods() -> list[int]:  # rclpy's Node.timers: the node's live timers
        return sorted(t.timer_period_ns for t in node.timers)

    assert periods() == [1_000_000_000]  # diagnostics only: the harness sets log_period 0
    assert set_one(node, "log_period", 0.5).successful
    assert periods() == [500_000_000, 1_000_000_000]
    assert set_one(node, "diagnostics_period", 2.0).successful
    assert periods() == [500_000_000, 2_000_000_000]


def test_depth_yaml_says_which_parameters_apply_at_runtime():
    """Each parameter's comment in config/depth.yaml starts with [runtime], [reconfigure] or
    [restart] (the QoS shorthands: ROS fixes a topic's QoS once it exists)."""
    text = (REPO / "config" / "depth.yaml").read_text()
    tags = dict(
        (name, tag)
        for tag, name in re.findall(
            r"^    # \[(runtime|reconfigure|restart)\][^\n]*\n(?:    #[^\n]*\n)*    (\w+):",
            text,
            re.M,
        )
    )
    assert set(tags) == set(yaml.safe_load(text)["/**/space_clip_depth"]["ros__parameters"])
    assert {n for n, t in tags.items() if t == "runtime"} == params.NodeConfig.runtime_parameters()
    assert {n for n, t in tags.items() if t == "restart"} == set(QOS_SHORTHANDS)


def test_ctrl_c_during_inference_is_no_frame_failure(capfd):
    """SIGINT shuts the context down while the worker runs the model: the frame's publish fails
    with 'context is invalid', which must end the worker quietly: no error counted, nothing
    logged (the node's log is read from the process's stderr, where rclpy writes it)."""
    with Harness("t_ctrl_c_client") as ros:  # its own context: this test shuts it down

        class ShutsDownMidFrame(KnownDepth):
            def infer_frames(self, frames):
                rclpy.shutdown(context=ros.context)  # what rclpy's SIGINT handler does
                return super().infer_frames(frames)

        node = ros.start("/t_ctrl_c", estimator=ShutsDownMidFrame(plane(5.0)))
        ros.subscribe("/t_ctrl_c/depth", Image)
        assert wait_for(lambda: Output.DEPTH in node.wanted())
        pipeline = node.pipeline
        capfd.readouterr()  # start-up logs are not this test's business
        node.receive_image(make_image(sec=1))
        assert pipeline.join(timeout_s=60)  # the pipeline ended with the context
        assert node.stats.snapshot().errors == 0
        logged = capfd.readouterr()
    node_lines = [
        line
        for line in (logged.err + logged.out).splitlines()
        if "t_ctrl_c.space_clip_depth" in line
    ]
    assert not [line for line in node_lines if "WARN" in line or "ERROR" in line], node_lines


def test_a_node_started_without_the_allocator_setting_says_how_to_start_it(
    ros, capfd, monkeypatch
):
    if allocator_advice({}) is None:
        pytest.skip("the setting is glibc's; this Python does not run on glibc")
    monkeypatch.delenv(VARIABLE, raising=False)
    ros.start("/t_alloc_plain", estimator=KnownDepth(plane(5.0)))
    monkeypatch.setenv(VARIABLE, large_message_env({})[VARIABLE])
    ros.start("/t_alloc_tuned", estimator=KnownDepth(plane(5.0)))
    logged = capfd.readouterr()
    lines = [
        line
        for line in (logged.err + logged.out).splitlines()
        if "python3 -m space_clip_ros.ros.large_messages" in line
    ]
    assert len(lines) == 1, lines  # the node started without it, once; not the tuned one
    assert "[t_alloc_plain.space_clip_depth]: " + allocator_advice({}) in lines[0]
