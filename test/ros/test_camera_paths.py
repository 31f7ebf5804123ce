"""Every inference path maps depth to the input camera by the one rule (canonical_camera):
the estimator (single frames, mixed-size batches, ONNX), the depth node (camera_info, the
default_focal_length parameter, the assumed training camera, all reported on /diagnostics) and
the shared-encoder tap (the focal ratio of a host's squashed input)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.inference import DepthEstimator, TorchEstimator
from space_clip_ros.io.msg_arrays import depth_image_to_metres
from space_clip_ros.model import build_model, save_checkpoint
from space_clip_ros.model.canonical_camera import (
    assumed_intrinsics,
    canonical_view,
    plan_view,
    squashed_view,
)
from space_clip_ros.model.config import CameraConfig
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics
from space_clip_ros.ros.image_codec import array_to_image
from space_clip_ros.shared import attach
from testing.harness import wait_for
from testing.tiny import tiny_config
from testing.tiny_hosts import clip_config, open_clip_host, saved, standalone

CAMERA = CameraConfig((40, 80), (70.0, 70.0), (39.5, 17.0), "test crops")
W, H = 96, 48
CAMERA_K = Intrinsics(50.0, 50.0, 47.5, 23.5, W, H)  # a wider camera than the training one


def with_camera(config, camera=CAMERA):
    config.camera = camera
    return config


@pytest.fixture(scope="module")
def estimator():
    torch.manual_seed(0)
    return TorchEstimator(build_model(with_camera(tiny_config())), device="cpu")


def image(seed: int = 1, height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_estimator_maps_depth_to_the_camera_it_is_given(estimator):
    rgb = image()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    view = canonical_view(CAMERA_K, CAMERA, estimator.input_size)
    with torch.no_grad():
        expected = estimator.model(x, output_size=(H, W), view=view)[0, 0].numpy()
    np.testing.assert_allclose(estimator.predict(rgb, camera=CAMERA_K), expected, rtol=1e-6)
    other = estimator.predict(rgb, camera=Intrinsics(100.0, 100.0, 47.5, 23.5, W, H))
    assert not np.allclose(other, expected)  # the camera changes the metric depth


def test_without_intrinsics_the_training_cameras_focal_is_assumed_loudly(caplog):
    torch.manual_seed(0)
    fresh = TorchEstimator(build_model(with_camera(tiny_config())), device="cpu")
    rgb = image()
    with caplog.at_level(logging.WARNING):
        assumed = fresh.predict(rgb)
        fresh.predict(rgb)
    warnings = [r for r in caplog.records if "assuming fx = 70.00 px" in r.getMessage()]
    assert len(warnings) == 1  # once per image size, not per frame
    explicit = fresh.predict(rgb, camera=assumed_intrinsics(CAMERA, W, H))
    np.testing.assert_array_equal(assumed, explicit)


def test_mixed_sizes_in_one_batch_equal_each_frame_mapped_alone(estimator):
    frames = [(image(2), CAMERA_K), (image(3, 40, 64), Intrinsics(40.0, 38.0, 30.0, 20.0, 64, 40))]
    batch = []
    for rgb, camera in frames:
        plan = estimator.view_plan(rgb.shape[1], rgb.shape[0], camera)
        batch.append((estimator.upload(rgb)[0], "rgb", rgb.shape[:2], plan.view))
    together = estimator.infer_frames(batch)
    for (rgb, camera), depth in zip(frames, together):
        alone = estimator.predict(rgb, camera=camera)
        np.testing.assert_allclose(depth.numpy(), alone, rtol=1e-5, atol=1e-5)


def test_an_onnx_graph_keeps_the_camera_record_and_maps_alike(estimator, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements/training.txt")
    from space_clip_ros.model.onnx_export import export_onnx

    path = export_onnx(estimator.model, tmp_path / "tiny.onnx")
    graph = DepthEstimator.from_checkpoint(path, device="cpu", precision="fp32")
    assert graph.camera == CAMERA
    rgb = image(4)
    np.testing.assert_allclose(
        graph.predict(rgb, camera=CAMERA_K),
        estimator.predict(rgb, camera=CAMERA_K),
        rtol=1e-4,
        atol=1e-4,
    )


def test_the_node_maps_to_camera_info_else_default_focal_length_and_says_which(ros, tmp_path):
    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model(with_camera(tiny_config())), tmp_path / "ckpt")
    reference = DepthEstimator.from_checkpoint(checkpoint, device="cpu", precision="fp32")
    rgb = image(5)
    header = Header(frame_id="cam")

    def masked(depth: np.ndarray) -> np.ndarray:
        return np.where((depth >= 0.1) & (depth <= 80.0), depth, np.nan)

    node = ros.start("/t_cam_paths", checkpoint=str(checkpoint), precision="fp32",
                     diagnostics_period=0.2)  # fmt: skip
    depth = ros.subscribe("/t_cam_paths/depth", Image)
    diagnostics = ros.subscribe("/diagnostics", DiagnosticArray)
    images = ros.publisher("/t_cam_paths/image")
    infos = ros.publisher("/t_cam_paths/camera_info", CameraInfo)
    assert wait_for(lambda: node.wanted())

    def send(sec: int) -> np.ndarray:
        header.stamp.sec = sec
        images.publish(array_to_image(rgb, "rgb8", header))
        assert wait_for(lambda: depth and depth[-1].header.stamp.sec == sec)
        return depth_image_to_metres(depth[-1])

    def reported() -> str:
        for array in reversed(list(diagnostics)):
            for status in array.status:
                if status.name.startswith("/t_cam_paths/"):
                    return {kv.key: kv.value for kv in status.values}["depth_camera"]
        return ""

    node.set_parameters([Parameter("camera_info_wait", value=0.0)])
    assumed = assumed_intrinsics(CAMERA, W, H)
    np.testing.assert_allclose(send(1), masked(reference.predict(rgb, camera=assumed)),
                               rtol=1e-5, equal_nan=True)  # fmt: skip
    assert wait_for(lambda: reported().startswith("assumed: the training camera"))

    node.set_parameters([Parameter("default_focal_length", value=60.0)])
    given = Intrinsics(60.0, 60.0, (W - 1) / 2, (H - 1) / 2, W, H)
    np.testing.assert_allclose(send(2), masked(reference.predict(rgb, camera=given)),
                               rtol=1e-5, equal_nan=True)  # fmt: skip
    assert wait_for(lambda: reported() == "assumed: default_focal_length 60 px")

    infos.publish(camera_info_from_intrinsics(CAMERA_K, header))
    assert wait_for(lambda: node.camera(W, H) is not None)
    np.testing.assert_allclose(send(3), masked(reference.predict(rgb, camera=CAMERA_K)),
                               rtol=1e-5, equal_nan=True)  # fmt: skip
    assert wait_for(lambda: reported() == "camera_info")


def test_the_tap_corrects_a_hosts_squashed_input_by_the_focal_ratio(tmp_path, caplog):
    model = standalone(with_camera(clip_config()))
    checkpoint = saved(model, tmp_path / "ckpt")
    host = open_clip_host(model)
    x = model.backbone.normalize(torch.rand(1, 3, 64, 64))
    tap = attach(host, checkpoint, mean=tuple(model.backbone.mean.flatten().tolist()),
                 std=tuple(model.backbone.std.flatten().tolist()))  # fmt: skip
    try:
        with torch.no_grad():
            host.encode_image(x)
        mapped = tap.depth(size=(H, W), camera=CAMERA_K)
        with torch.no_grad():
            host.encode_image(x)
        with caplog.at_level(logging.WARNING):
            assumed = tap.depth(size=(H, W))
    finally:
        tap.detach()
    assert mapped.shape == assumed.shape == (1, 1, H, W)
    k_given = squashed_view(CAMERA_K, CAMERA, (64, 64)).depth_scale
    plan = plan_view(CAMERA, None, W, H, (64, 64), squashed=True)
    assert plan.warning and any("assuming fx" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(mapped / k_given, assumed / plan.view.depth_scale)


def test_space_clip_predict_maps_to_the_camera_its_flags_give(tmp_path, caplog):
    from PIL import Image as PILImage

    from space_clip_ros.predict import main

    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model(with_camera(tiny_config())), tmp_path / "ckpt")
    reference = DepthEstimator.from_checkpoint(checkpoint, device="cpu", precision="fp32")
    rgb = image(6)
    PILImage.fromarray(rgb).save(tmp_path / "photo.png")
    calibration = tmp_path / "camera.yaml"
    k = [CAMERA_K.fx, 0, CAMERA_K.cx, 0, CAMERA_K.fy, CAMERA_K.cy, 0, 0, 1]
    calibration.write_text(
        f"image_width: {W}\nimage_height: {H}\ncamera_name: test\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: {k}}}\n"
    )

    def run(*flags: str, out: str) -> np.ndarray:
        argv = [str(tmp_path / "photo.png"), "-o", str(tmp_path / out), "--checkpoint",
                str(checkpoint), "--device", "cpu", "--precision", "fp32", "--npy",
                *flags]  # fmt: skip
        assert main(argv) == 0
        return np.load(tmp_path / out / "photo_depth.npy")

    given = Intrinsics(60.0, 60.0, (W - 1) / 2, (H - 1) / 2, W, H)
    np.testing.assert_allclose(
        run("--focal-length", "60", out="focal"), reference.predict(rgb, camera=given), rtol=1e-5
    )
    np.testing.assert_allclose(
        run("--camera-info", str(calibration), out="info"),
        reference.predict(rgb, camera=CAMERA_K),
        rtol=1e-5,
    )
    with caplog.at_level(logging.WARNING):
        assumed = run(out="assumed")
    warning = [r.getMessage() for r in caplog.records if "assuming fx" in r.getMessage()]
    assert warning and "--camera-info" in warning[0] and "--focal-length" in warning[0]
    np.testing.assert_allclose(
        assumed, reference.predict(rgb, camera=assumed_intrinsics(CAMERA, W, H)), rtol=1e-5
    )
    small = tmp_path / "small.yaml"
    small.write_text(calibration.read_text().replace(f"image_width: {W}", "image_width: 10"))
    argv = [str(tmp_path / "photo.png"), "-o", str(tmp_path / "bad"), "--checkpoint",
            str(checkpoint), "--device", "cpu", "--camera-info", str(small)]  # fmt: skip
    assert main(argv) == 2  # a calibration of another size is refused, naming the flag
