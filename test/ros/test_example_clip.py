"""examples/clip_labels_and_depth.py: zero-shot labels and depth from one encoder pass, published
over real DDS with the depth node's conventions (a tiny CLIP that reads real text)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header, String

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.inference import TorchEstimator
from space_clip_ros.io.msg_arrays import depth_image_to_metres
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics
from space_clip_ros.ros.image_codec import array_to_image
from testing.harness import wait_for
from testing.tiny_hosts import zero_shot_files

REPO = Path(__file__).resolve().parents[2]
W, H = 96, 48


def load_example():
    spec = importlib.util.spec_from_file_location(
        "clip_labels_and_depth", REPO / "examples" / "clip_labels_and_depth.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return zero_shot_files(tmp_path_factory.mktemp("zero_shot"))


def test_labels_and_depth_come_from_one_encoder_pass(ros, files):
    from rclpy.parameter import Parameter

    files, model = files
    example = load_example()
    params = {k: str(v) for k, v in files.items()}
    params.update(labels="car,tree,sky", device="cpu")
    node = example.ClipLabelsAndDepth(
        namespace="/t_example",
        context=ros.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
    )
    ros.adopt(node)
    try:
        got = {
            topic: ros.subscribe(f"/t_example/{topic}", msg_type, wait=False)
            for topic, msg_type in (("labels", String), ("depth", Image), ("points", PointCloud2))
        }
        images = ros.publisher("/t_example/image")
        infos = ros.publisher("/t_example/camera_info", CameraInfo)
        rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
        intrinsics = Intrinsics(60.0, 60.0, (W - 1) / 2, (H - 1) / 2, W, H)
        header = Header(frame_id="camera_optical")
        header.stamp.sec = 3
        msg = array_to_image(rgb, "rgb8", header)
        infos.publish(camera_info_from_intrinsics(intrinsics, msg.header))
        assert wait_for(lambda: node.camera_info is not None)
        images.publish(msg)
        assert wait_for(lambda: all(got.values()))
    finally:
        node.tap.detach()
    labels = json.loads(got["labels"][0].data)
    assert list(labels) == ["car", "tree", "sky"] and sum(labels.values()) == pytest.approx(1.0)
    depth = depth_image_to_metres(got["depth"][0])
    assert depth.shape == (H, W) and got["depth"][0].header.stamp.sec == 3
    assert (got["points"][0].width, got["points"][0].height) == (W, H)
    # the tap's depth is the standalone model's on the same image (the same tower weights)
    standalone = TorchEstimator(model, device="cpu")
    expected = standalone.predict(rgb)
    expected[~((expected >= 0.1) & (expected <= 80.0))] = np.nan  # the node's default range
    np.testing.assert_allclose(depth, expected, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(torch.from_numpy(depth)).any()


def test_the_example_refuses_a_missing_checkpoint_with_exit_2_naming_it(capfd):
    """As the package's nodes do (node_main.run_node): one FATAL line and the usage exit code."""
    status = load_example().main(["--ros-args", "-p", "device:=cpu"])
    assert status == 2
    err = capfd.readouterr().err
    assert "checkpoint: not set" in err and "-p checkpoint:=DIR" in err
    assert "Traceback" not in err
