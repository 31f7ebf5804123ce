"""The depth node over real DDS (rclpy + Fast DDS from the PyPI ROS 2 wheels).

A test client node publishes images and camera info and subscribes to the outputs; the node
under test runs either the tiny SPACE-CLIP checkpoint or, where the test needs a depth it can
predict (geometry, range masking, slow inference), an estimator that returns a known depth.
The `ros` fixture (test/ros/conftest.py) is the harness: one rclpy context and executor per
module, spinning in a background thread.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image as PILImage
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from space_clip_ros.io.msg_arrays import depth_image_to_metres
from space_clip_ros.ros import depth_outputs
from space_clip_ros.ros.camera_info import intrinsics_from_camera_info
from space_clip_ros.ros.depth_node import Camera, CameraInfoStore, DepthNode
from space_clip_ros.ros.loopback import CameraClient
from space_clip_ros.ros.params import ParameterError
from space_clip_ros.ros.pointcloud import cloud_rgb, cloud_to_points
from testing.estimators import GatedDepth, KnownDepth, plane
from testing.harness import INTR, H, W, make_camera_info, make_header, make_image, wait_for

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------- outputs


def test_tiny_model_outputs_keep_the_header_with_the_right_encodings_and_sizes(ros):
    node = ros.start("/t_out")
    out = ros.subscribe_outputs("/t_out")
    images, infos = ros.publisher("/t_out/image"), ros.publisher("/t_out/camera_info", CameraInfo)
    infos.publish(make_camera_info())
    assert wait_for(lambda: node.camera(W, H) is not None)
    images.publish(make_image(sec=41, frame_id="cam_left_optical"))
    assert wait_for(lambda: all(out.values())), {t: len(v) for t, v in out.items()}
    for topic, msgs in out.items():
        assert (
            msgs[0].header.stamp.sec,
            msgs[0].header.stamp.nanosec,
            msgs[0].header.frame_id,
        ) == (41, 5000, "cam_left_optical"), topic
    depth = out["depth"][0]
    assert (depth.encoding, depth.width, depth.height, depth.step) == ("32FC1", W, H, 4 * W)
    values = depth_image_to_metres(depth)
    assert (
        np.isfinite(values).all() and (values > 0).all()
    )  # the tiny model predicts ~10 m everywhere
    info = out["depth/camera_info"][0]
    assert (info.width, info.height) == (W, H) and intrinsics_from_camera_info(info) == INTR
    cloud = out["points"][0]
    assert (cloud.height, cloud.width, cloud.is_dense) == (H, W, False)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    assert np.allclose(cloud_to_points(cloud)[..., 2], values)
    colorized = out["depth/colorized"][0]
    assert (colorized.encoding, colorized.width, colorized.height) == ("bgr8", W, H)
    # counted after the messages are out (the publisher thread): waited for, not raced
    assert wait_for(lambda: node.stats.snapshot().processed == 1)


def test_points_back_project_a_known_plane_and_depth_is_nan_outside_the_range(ros):
    def ramp(h, w):  # 0 m at the left edge to 100 m at the right, constant down each column
        return np.tile(np.linspace(0.0, 100.0, w, dtype=np.float32), (h, 1))

    ros.start("/t_geo", estimator=KnownDepth(ramp), min_depth=2.0, max_depth=60.0)
    out = ros.subscribe_outputs("/t_geo", ("depth", "points"))
    images, infos = ros.publisher("/t_geo/image"), ros.publisher("/t_geo/camera_info", CameraInfo)
    infos.publish(make_camera_info())
    assert wait_for(lambda: ros.nodes[0].camera(W, H) is not None)
    images.publish(make_image(sec=3))
    assert wait_for(lambda: out["depth"] and out["points"])
    truth = ramp(H, W)
    inside = (truth >= 2.0) & (truth <= 60.0)
    depth = depth_image_to_metres(out["depth"][0])
    assert np.isnan(depth[~inside]).all() and np.array_equal(depth[inside], truth[inside])
    assert not (depth == 0).any()  # invalid is NaN, never 0
    points = cloud_to_points(out["points"][0])
    u = np.arange(W, dtype=np.float64)
    v = np.arange(H, dtype=np.float64)
    z = np.where(inside, truth, np.nan)
    assert np.allclose(points[..., 2], z, equal_nan=True)
    assert np.allclose(
        points[..., 0], (u[None, :] - INTR.cx) * z / INTR.fx, atol=1e-4, equal_nan=True
    )
    assert np.allclose(
        points[..., 1], (v[:, None] - INTR.cy) * z / INTR.fy, atol=1e-4, equal_nan=True
    )


def test_decimated_cloud_and_downscaled_depth_have_matching_intrinsics(ros):
    d = 6.0
    ros.start(
        "/t_scale",
        estimator=KnownDepth(plane(d)),
        output_scale=0.5,
        point_decimation=2,
        points_rgb=False,
    )
    out = ros.subscribe_outputs("/t_scale", ("depth", "depth/camera_info", "points"))
    images, infos = (
        ros.publisher("/t_scale/image"),
        ros.publisher("/t_scale/camera_info", CameraInfo),
    )
    infos.publish(make_camera_info())
    assert wait_for(lambda: ros.nodes[0].camera(W, H) is not None)
    images.publish(make_image(sec=4))
    assert wait_for(lambda: all(out.values()))
    depth = out["depth"][0]
    info = out["depth/camera_info"][0]
    assert (depth.width, depth.height) == (W // 2, H // 2) == (info.width, info.height)
    assert info.header.stamp == depth.header.stamp  # depth_image_proc pairs them by exact stamp
    scaled = INTR.scaled(W // 2, H // 2)
    assert intrinsics_from_camera_info(info) == pytest.approx(scaled)
    cloud = out["points"][0]
    assert (cloud.height, cloud.width, [f.name for f in cloud.fields]) == (
        H // 4,
        W // 4,
        ["x", "y", "z"],
    )
    points = cloud_to_points(cloud)
    u = np.arange(0, W // 2, 2, dtype=np.float64)
    assert np.allclose(points[..., 2], d) and np.allclose(
        points[3, :, 0], (u - scaled.cx) * d / scaled.fx, atol=1e-4
    )


def test_a_first_image_sent_before_its_camera_info_still_gets_points_and_camera_info(ros):
    """kitti2mcap bags and some drivers send an image before the CameraInfo of its stamp."""
    ros.start("/t_late", estimator=KnownDepth(plane(4.0)), camera_info_wait=10.0)
    out = ros.subscribe_outputs("/t_late", ("depth", "depth/camera_info", "points"))
    images = ros.publisher("/t_late/image")
    infos = ros.publisher("/t_late/camera_info", CameraInfo)
    images.publish(make_image(sec=1))
    infos.publish(make_camera_info(sec=1))
    assert wait_for(lambda: all(out.values()))
    assert [m[0].header.stamp.sec for m in out.values()] == [1, 1, 1]


def test_the_camera_info_wait_happens_once_per_image_size():
    store = CameraInfoStore()
    camera = Camera(make_camera_info(), INTR)
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(store.get(W, H, wait_s=60.0)[0]))
    waiter.start()
    store.put(camera)  # the wait ends when the camera info arrives, not when it times out
    waiter.join(timeout=30)
    assert not waiter.is_alive() and result == [camera]
    assert store.get(7, 5, wait_s=0.01)[0] is None  # this size waited once, in vain
    later = threading.Thread(target=lambda: store.get(7, 5, wait_s=60.0))
    later.start()
    later.join(timeout=30)
    assert not later.is_alive()  # and never again: a camera without CameraInfo is not slowed


@pytest.mark.parametrize(
    "encoding,order", [("bgr8", "bgr"), ("rgba8", "rgb"), ("bgra8", "bgr"), ("mono8", "rgb")]
)
def test_every_input_encoding_reaches_the_model_with_its_colour_order(ros, encoding, order):
    estimator = KnownDepth(plane(5.0))
    ros.start("/t_enc", estimator=estimator)
    out = ros.subscribe_outputs("/t_enc", ("depth", "points"))
    images, infos = ros.publisher("/t_enc/image"), ros.publisher("/t_enc/camera_info", CameraInfo)
    infos.publish(make_camera_info())
    assert wait_for(lambda: ros.nodes[0].camera(W, H) is not None)
    msg = make_image(sec=5, encoding=encoding)
    images.publish(msg)
    assert wait_for(lambda: out["depth"] and out["points"])
    pixels, given_order = estimator.calls[-1]
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, -1)
    expected = np.repeat(raw, 3, axis=2) if encoding == "mono8" else raw[..., :3]
    assert given_order == order and np.array_equal(pixels, expected)
    rgb = expected[..., ::-1] if order == "bgr" else expected
    assert np.array_equal(cloud_rgb(out["points"][0]), rgb)  # the cloud is coloured in true RGB


def test_compressed_input(ros):
    ros.start("/t_jpeg", use_compressed=True)
    out = ros.subscribe_outputs("/t_jpeg", ("depth",))
    pub = ros.publisher("/t_jpeg/image/compressed", CompressedImage)
    buf = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        buf, "JPEG"
    )
    pub.publish(CompressedImage(header=make_header(8), format="jpeg", data=b"garbage, not a jpeg"))
    assert wait_for(lambda: ros.nodes[0].stats.snapshot().rejected.get("undecodable") == 1)
    pub.publish(CompressedImage(header=make_header(9), format="jpeg", data=buf.getvalue()))
    assert wait_for(lambda: out["depth"])
    assert (out["depth"][0].header.stamp.sec, out["depth"][0].width, out["depth"][0].height) == (
        9,
        W,
        H,
    )


def test_the_golden_frame_through_the_node_gives_the_committed_depth(ros, golden):
    params = {"checkpoint": str(golden.checkpoint), "backbone_weights": str(golden.backbone)}
    params["precision"] = "fp32"  # the committed depth is fp32; auto may pick bf16 on a CPU
    node = ros.start("/t_golden", **params)
    camera = CameraClient(ros, "/t_golden", outputs=("depth",))
    out = camera.send(golden.image, None, make_header(sec=12), timeout_s=60)
    cfg = node.config
    expected = golden.depth.copy()
    expected[~((expected >= cfg.min_depth) & (expected <= cfg.max_depth))] = np.nan
    assert np.isnan(expected).any() and np.isfinite(expected).any()  # both sides of the mask
    golden.assert_matches(depth_image_to_metres(out.depth), expected=expected)


# --------------------------------------------------------------------------- real-time behaviour


def test_a_burst_processes_only_the_newest_frame_and_counts_the_dropped(ros):
    estimator = GatedDepth(plane(4.0))  # frame 1's inference waits: a model slower than the camera
    node = ros.start("/t_burst", estimator=estimator)
    out = ros.subscribe_outputs("/t_burst", ("depth",))
    images = ros.publisher("/t_burst/image")
    images.publish(make_image(sec=1))
    assert estimator.waiting.wait(timeout=60)
    for sec in range(2, 11):  # nine frames while the model is busy: only the newest waits
        images.publish(make_image(sec=sec))
        assert wait_for(lambda: node.stats.snapshot().received == sec)
    estimator.gate.set()
    assert wait_for(lambda: node.stats.snapshot().processed == 2)
    stats = node.stats.snapshot()
    assert wait_for(lambda: len(out["depth"]) == 2)
    assert [m.header.stamp.sec for m in out["depth"]] == [1, 10] and len(estimator.calls) == 2
    assert stats.received == 10 and stats.dropped == 8  # each frame processed or counted


def test_nothing_is_computed_without_subscribers_and_only_subscribed_outputs_are_built(
    ros, monkeypatch
):
    built = []
    original = depth_outputs.cloud_message
    monkeypatch.setattr(
        depth_outputs, "cloud_message", lambda *a, **k: built.append(1) or original(*a, **k)
    )
    estimator = KnownDepth(plane(4.0))
    node = ros.start("/t_lazy", estimator=estimator)
    images, infos = (
        ros.publisher("/t_lazy/image"),
        ros.publisher("/t_lazy/camera_info", CameraInfo),
    )
    infos.publish(make_camera_info())
    images.publish(make_image(sec=1))
    assert wait_for(lambda: node.stats.snapshot().skipped == 1)  # taken, found unwanted
    assert estimator.calls == []
    out = ros.subscribe_outputs("/t_lazy", ("depth",))
    images.publish(make_image(sec=2))
    assert wait_for(lambda: out["depth"])
    assert len(estimator.calls) == 1 and built == []


def test_diagnostics_report_rate_latency_and_device(ros):
    node = ros.start("/t_diag", estimator=KnownDepth(plane(3.0)), diagnostics_period=0.2)
    diagnostics = ros.subscribe("/diagnostics", DiagnosticArray)
    out = ros.subscribe_outputs("/t_diag", ("depth",))
    images = ros.publisher("/t_diag/image")
    for sec in range(1, 4):
        images.publish(make_image(sec=sec))
        assert wait_for(lambda: len(out["depth"]) == sec)

    def ours():
        return [
            s
            for a in list(diagnostics)
            for s in a.status
            if s.name.startswith("/t_diag/space_clip_depth")
        ]

    assert wait_for(
        lambda: any(
            s.values and dict((kv.key, kv.value) for kv in s.values)["frames_processed"] == "3"
            for s in ours()
        )
    )
    values = {kv.key: kv.value for kv in ours()[-1].values}
    assert (
        values["device"] == "cpu"
        and float(values["rate_hz"]) > 0
        and float(values["latency_mean_ms"]) > 0
    )
    assert values["subscribers_depth"] == "1" and node.stats.snapshot().processed == 3


# ------------------------------------------------------------------------------------- bad input


def bad_images() -> list[tuple[str, Image]]:
    wrong_encoding = make_image(sec=100)
    wrong_encoding.encoding = "16UC1"  # a depth encoding, not a camera image
    bad_step = make_image(sec=101)
    bad_step.step = W  # rgb8 rows need 3 * W bytes
    truncated = make_image(sec=102)
    truncated.data = bytes(truncated.data)[:-W]
    zero = Image(header=make_header(103), height=0, width=0, encoding="rgb8", step=0)
    huge = make_image(sec=104, width=200, height=60)  # above max_image_pixels = 10000 below
    return [
        ("encoding", wrong_encoding),
        ("step", bad_step),
        ("data_size", truncated),
        ("zero_size", zero),
        ("too_large", huge),
    ]


def test_every_bad_input_is_counted_dropped_and_the_next_good_frame_is_served(ros):
    node = ros.start("/t_bad", estimator=KnownDepth(plane(5.0)), max_image_pixels=10_000)
    out = ros.subscribe_outputs("/t_bad", ("depth", "points"))
    images, infos = ros.publisher("/t_bad/image"), ros.publisher("/t_bad/camera_info", CameraInfo)
    zero_focal = make_camera_info()
    zero_focal.k = [0.0] * 9
    zero_focal.p = [0.0] * 12
    infos.publish(zero_focal)
    assert wait_for(lambda: node.stats.snapshot().rejected.get("camera_info") == 1)
    for n, (reason, msg) in enumerate(bad_images(), start=1):
        images.publish(msg)  # waited for: a newer frame would replace it unseen (newest wins)
        assert wait_for(lambda: node.stats.snapshot().rejected.get(reason) == 1), reason
        images.publish(make_image(sec=n))
        assert wait_for(lambda: out["depth"] and out["depth"][-1].header.stamp.sec == n), reason
    assert out["points"] == []  # no valid camera_info yet: depth only
    infos.publish(make_camera_info())
    assert wait_for(lambda: node.camera(W, H) is not None)
    images.publish(make_image(sec=50))
    assert wait_for(lambda: out["points"] and out["points"][-1].header.stamp.sec == 50)
    assert node.stats.snapshot().errors == 0


@pytest.mark.parametrize(
    "failure",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
        RuntimeError("kernel exploded"),
    ],
)
def test_an_inference_failure_on_one_frame_is_survived(ros, failure):
    node = ros.start("/t_oom", estimator=KnownDepth(plane(5.0), fail_with=failure))
    out = ros.subscribe_outputs("/t_oom", ("depth",))
    images = ros.publisher("/t_oom/image")
    images.publish(make_image(sec=1))
    assert wait_for(lambda: node.stats.snapshot().errors == 1)
    images.publish(make_image(sec=2))
    assert wait_for(lambda: out["depth"] and out["depth"][-1].header.stamp.sec == 2)


def test_camera_info_of_another_size_turns_points_off_but_keeps_depth(ros):
    node = ros.start("/t_size", estimator=KnownDepth(plane(5.0)))
    out = ros.subscribe_outputs("/t_size", ("depth", "points", "depth/camera_info"))
    images, infos = (
        ros.publisher("/t_size/image"),
        ros.publisher("/t_size/camera_info", CameraInfo),
    )
    infos.publish(make_camera_info(INTR.scaled(2 * W, 2 * H)))
    assert wait_for(lambda: node.camera(2 * W, 2 * H) is not None)
    images.publish(make_image(sec=1))
    assert wait_for(lambda: out["depth"])
    infos.publish(make_camera_info())  # now one of the image's size: frame 2 has all outputs
    assert wait_for(lambda: node.camera(W, H) is not None)
    images.publish(make_image(sec=2))
    assert wait_for(lambda: out["points"] and out["depth/camera_info"])
    # One reliable publisher per topic delivers in order: frame 1's would have come first.
    assert [m.header.stamp.sec for m in out["depth"]] == [1, 2]
    assert [m.header.stamp.sec for m in out["points"]] == [2]
    assert [m.header.stamp.sec for m in out["depth/camera_info"]] == [2]


# ---------------------------------------------------------------------- parameters and lifecycle


@pytest.mark.parametrize(
    "overrides,words",
    [
        (
            {"min_depth": 50.0, "max_depth": 10.0},
            "min_depth (50.0) must be below max_depth (10.0)",
        ),
        ({"point_decimation": 100}, "point_decimation"),
        ({"point_decimation": 2.5}, "point_decimation: wrong type"),
        ({"device": "tpu"}, "device: 'tpu' is not valid"),
        (
            {"output_reliability": "best_available"},
            "output_reliability: 'best_available' is not one of reliable, best_effort",
        ),
    ],
)
def test_invalid_parameters_fail_construction_with_the_name_and_fix(ros, overrides, words):
    with pytest.raises(ParameterError) as info:
        DepthNode(
            namespace="/t_param",
            context=ros.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
    assert words in str(info.value)


def test_runtime_parameter_changes_are_validated(ros):
    node = ros.start("/t_set", autostart=False)
    assert not node.set_parameters([Parameter("max_depth", value=0.05)])[
        0
    ].successful  # below min_depth 0.1
    assert node.set_parameters([Parameter("max_depth", value=40.0)])[0].successful


def test_lifecycle_subscribes_only_while_active_and_a_bad_checkpoint_fails_configure(
    ros, tmp_path
):
    node = ros.start("/t_life", autostart=False)
    assert ros.lifecycle_state("/t_life/space_clip_depth") == "unconfigured"
    assert ros.client.count_subscribers("/t_life/image") == 0
    assert (
        node.trigger_configure().name == "SUCCESS"
        and ros.client.count_subscribers("/t_life/image") == 0
    )
    assert node.trigger_activate().name == "SUCCESS"
    assert wait_for(lambda: ros.client.count_subscribers("/t_life/image") == 1)
    ros.publisher("/t_life/camera_info", CameraInfo).publish(make_camera_info())
    assert wait_for(lambda: node.camera(W, H) is not None)
    assert node.trigger_deactivate().name == "SUCCESS"
    assert wait_for(lambda: ros.client.count_subscribers("/t_life/image") == 0)
    assert node.pipeline is None and node.camera(W, H) is not None  # inactive keeps the camera
    assert node.trigger_cleanup().name == "SUCCESS"
    assert node.estimator is None and node.outputs is None
    assert node.camera(W, H) is None  # cleaned up: nothing of the old camera survives

    (tmp_path / "decoder.safetensors").write_bytes(b"not safetensors")
    bad = ros.start("/t_life_bad", autostart=False, checkpoint=str(tmp_path))
    assert bad.trigger_configure().name == "FAILURE"
    assert ros.lifecycle_state("/t_life_bad/space_clip_depth") == "unconfigured"


def run_main(*ros_args: str) -> subprocess.CompletedProcess:
    code = "import sys; from space_clip_ros.ros.depth_node import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "--ros-args", *ros_args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_main_exits_non_zero_with_a_clear_message(tmp_path):
    result = run_main("-p", "point_decimation:=0", "-p", "precision:=fp8")
    assert result.returncode == 2, result.stderr
    assert (
        "point_decimation" in result.stderr
        and "precision: 'fp8' is not one of auto, fp32, fp16, bf16" in result.stderr
    )
    missing = tmp_path / "no_such_checkpoint"
    result = run_main("-p", f"checkpoint:={missing}", "-p", "device:=cpu")
    assert result.returncode == 1, result.stderr
    assert "cannot load the model" in result.stderr and str(missing) in result.stderr


# ---------------------------------------------------------------------- namespaces and processes


def test_two_namespaced_nodes_side_by_side(ros):
    ros.start("/cam_a", estimator=KnownDepth(plane(3.0)))
    ros.start("/cam_b", estimator=KnownDepth(plane(7.0)))
    out_a, out_b = ros.subscribe("/cam_a/depth", Image), ros.subscribe("/cam_b/depth", Image)
    pub_a, pub_b = ros.publisher("/cam_a/image"), ros.publisher("/cam_b/image")
    for sec in (1, 2):  # one frame at a time: the newest wins, so a burst would drop one
        pub_a.publish(make_image(sec=sec, frame_id="a_optical"))
        pub_b.publish(make_image(sec=sec, frame_id="b_optical"))
        assert wait_for(lambda: len(out_a) >= sec and len(out_b) >= sec)

    def seen(out: list) -> list:
        return [(m.header.frame_id, float(depth_image_to_metres(m)[0, 0])) for m in out]

    # each node answers its own camera only, on its own topic
    assert seen(out_a) == [("a_optical", 3.0)] * 2 and seen(out_b) == [("b_optical", 7.0)] * 2


SEPARATE_PROCESS_CLIENT = textwrap.dedent("""
    import json, sys, time
    import numpy as np, rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    W, H, NS = 1242, 375, sys.argv[1]
    rclpy.init()
    node = Node("separate_process_client")
    got = {"depth": [], "points": []}
    # Plain depth-10 profiles: what rviz2 and `ros2 topic echo` use (RELIABLE, VOLATILE).
    def record(key):
        return lambda m: got[key].append((m.header.stamp.sec, m.width, m.height, len(m.data)))

    node.create_subscription(Image, NS + "/depth", record("depth"), 10)
    node.create_subscription(PointCloud2, NS + "/points", record("points"), 10)
    images = node.create_publisher(Image, NS + "/image", 10)
    infos = node.create_publisher(CameraInfo, NS + "/camera_info", 10)
    info = CameraInfo(width=W, height=H)
    info.k = [721.5, 0.0, 609.6, 0.0, 721.5, 172.9, 0.0, 0.0, 1.0]
    pixels = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8).tobytes()
    end, sent, sec = time.monotonic() + 150, [], 0
    while time.monotonic() < end and (len(got["depth"]) < 3 or len(got["points"]) < 3):
        if images.get_subscription_count() and node.count_publishers(NS + "/points"):
            sec += 1
            msg = Image(height=H, width=W, encoding="rgb8", step=3 * W, data=pixels)
            msg.header.stamp.sec, msg.header.frame_id = sec, "camera_color_left"
            infos.publish(info)
            images.publish(msg)
            sent.append(sec)
        rclpy.spin_once(node, timeout_sec=0.4)
    print(json.dumps({"sent": sent, **got}))
""")


def test_a_subscriber_in_another_process_receives_full_size_depth_and_points_with_default_qos(ros):
    node = ros.start("/t_xproc", point_decimation=1)
    result = subprocess.run(
        [sys.executable, "-c", SEPARATE_PROCESS_CLIENT, "/t_xproc"],
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["depth"]) >= 3 and len(report["points"]) >= 3, (
        report,
        node.stats.snapshot().summary(),
    )
    assert {tuple(d[1:]) for d in report["depth"]} == {(1242, 375, 1242 * 375 * 4)}
    assert {tuple(p[1:]) for p in report["points"]} == {(1242, 375, 1242 * 375 * 16)}
    assert {d[0] for d in report["depth"]} <= set(report["sent"])
