"""What real cameras and ROS users bring, through the node over real DDS.

Every camera encoding reaches the tiny model and comes back as depth of the input's size; bad
compressed frames are counted under their own reason on /diagnostics and never as inference
failures; QoS follows ROS's own qos_overrides parameters from a params file; outputs are
lifecycle publishers that publish nothing while the node is inactive.
"""

from __future__ import annotations

import io

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image as PILImage
from rclpy.lifecycle import LifecyclePublisher, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from space_clip_ros.frame_plan import Output
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.image_decoding import INPUT_ENCODINGS
from space_clip_ros.ros.depth_node import DepthNode
from testing.estimators import KnownDepth, plane
from testing.harness import make_camera_info, make_header, wait_for
from testing.image_encoding import encode_rgb

W, H = 48, 32  # even: the YUV encodings share chroma between pixel pairs


def camera_frame(encoding: str, sec: int) -> Image:
    rng = np.random.default_rng(sec)
    frame = encode_rgb(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), encoding, pad=2)
    return Image(
        header=make_header(sec),
        height=frame.height,
        width=frame.width,
        encoding=frame.encoding,
        step=frame.step,
        is_bigendian=frame.is_bigendian,
        data=frame.data,
    )


def test_every_camera_encoding_gets_depth_of_the_input_size_from_one_node(ros):
    node = ros.start("/t_cam")  # the tiny SPACE-CLIP checkpoint
    depth = ros.subscribe("/t_cam/depth", Image)
    images = ros.publisher("/t_cam/image")
    for sec, encoding in enumerate(INPUT_ENCODINGS, start=1):
        images.publish(camera_frame(encoding, sec))  # one at a time: the node keeps the newest
        assert wait_for(lambda: depth and depth[-1].header.stamp.sec == sec), encoding
        out = depth[-1]
        assert (out.encoding, out.width, out.height) == ("32FC1", W, H), encoding
        values = np.frombuffer(bytes(out.data), np.float32)
        assert np.isfinite(values).all() and (values > 0).all(), encoding
    assert wait_for(lambda: node.stats.snapshot().processed == len(INPUT_ENCODINGS))
    stats = node.stats.snapshot()  # counted after the messages are out: waited for, not raced
    assert not stats.rejected and stats.errors == 0


def png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_compressed_frames_are_input_errors_with_their_own_reason_on_diagnostics(ros):
    node = ros.start(
        "/t_cmp", estimator=KnownDepth(plane(5.0)), use_compressed=True, max_image_pixels=10_000
    )
    depth = ros.subscribe("/t_cmp/depth", Image)
    diagnostics = ros.subscribe("/diagnostics", DiagnosticArray)
    pub = ros.publisher("/t_cmp/image/compressed", CompressedImage)
    good = png_bytes(W, H)
    bad = [
        ("format", "gif", good),
        ("format", "png\n\x1b[31m[FATAL] forged line", good),
        ("compressed_depth", "16UC1; compressedDepth png", good),
        ("undecodable", "png", good[:20] + b"\x00" * 40),  # Pillow: SyntaxError
        ("undecodable", "jpeg", b"\xff\xd8 not really a jpeg"),
        ("too_large", "png", png_bytes(200, 60)),  # above max_image_pixels, caught from the header
    ]
    for n, (reason, fmt, data) in enumerate(bad, start=1):
        before = node.stats.snapshot().rejected.get(reason, 0)
        msg = CompressedImage(header=make_header(100 + n), format=fmt, data=data)
        pub.publish(msg)
        assert wait_for(lambda: node.stats.snapshot().rejected.get(reason, 0) == before + 1), fmt
        pub.publish(
            CompressedImage(header=make_header(n), format="bgr8; png compressed bgr8", data=good)
        )
        assert wait_for(lambda: depth and depth[-1].header.stamp.sec == n), fmt
    assert node.stats.snapshot().errors == 0  # never counted as an inference failure

    def reported() -> dict[str, str]:
        for array in reversed(diagnostics):
            for status in array.status:
                if status.name.startswith("/t_cmp/"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    expected = {
        "rejected_format": "2",
        "rejected_compressed_depth": "1",
        "rejected_undecodable": "2",
        "rejected_too_large": "1",
    }
    # /diagnostics goes out once a second: wait for a message sent after the last rejection
    assert wait_for(lambda: expected.items() <= reported().items(), timeout=60), reported()


def test_qos_overrides_from_a_params_file_set_the_reliability(ros, tmp_path):
    params = tmp_path / "qos.yaml"
    params.write_text(
        "/**:\n"
        "  ros__parameters:\n"
        "    qos_overrides:\n"
        "      /t_qos/image:\n"
        "        subscription:\n"
        "          reliability: best_effort\n"
        "          depth: 1\n"
        "      /t_qos/depth:\n"
        "        publisher:\n"
        "          reliability: best_effort\n"
    )
    node = ros.adopt(
        DepthNode(
            namespace="/t_qos",
            context=ros.context,
            cli_args=["--ros-args", "--params-file", str(params)],
            parameter_overrides=[
                Parameter("device", value="cpu"),
                Parameter("log_period", value=0.0),
                Parameter("input_reliability", value="reliable"),  # the override must win over it
            ],
            estimator_factory=lambda cfg: KnownDepth(plane(5.0)),
        )
    )
    assert node.autostart()
    (image_sub,) = node.get_subscriptions_info_by_topic("/t_qos/image")
    assert image_sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert node.get_parameter("qos_overrides./t_qos/image.subscription.depth").value == 1
    (info_sub,) = node.get_subscriptions_info_by_topic("/t_qos/camera_info")
    assert info_sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE  # the shorthand
    (depth_pub,) = node.get_publishers_info_by_topic("/t_qos/depth")
    assert depth_pub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    (points_pub,) = node.get_publishers_info_by_topic("/t_qos/points")
    assert points_pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE  # output_reliability
    # Declared read-only by ROS: a later shorthand change would be silently ignored: refused.
    (result,) = node.set_parameters([Parameter("input_reliability", value="best_effort")])
    assert not result.successful and "restart" in result.reason


def test_outputs_are_lifecycle_publishers_silent_while_inactive(ros):
    node = ros.start("/t_life", estimator=KnownDepth(plane(5.0)))
    publishers = node.outputs.publishers
    assert all(isinstance(pub, LifecyclePublisher) for pub in publishers.values())
    depth = ros.subscribe("/t_life/depth", Image)
    images = ros.publisher("/t_life/image")
    images.publish(camera_frame("rgb8", 1))
    assert wait_for(lambda: len(depth) == 1)

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    images.publish(camera_frame("rgb8", 2))
    direct = Image(header=make_header(3), encoding="32FC1", height=1, width=1, step=4)
    direct.data = np.float32([1.0]).tobytes()
    publishers[Output.DEPTH].publish(direct)  # what an in-flight frame would do: dropped

    # Inactive, the node has no image subscription; active again, it makes a new one, which the
    # camera must match before frame 4 (a frame sent earlier is lost: this failed under load).
    assert wait_for(lambda: images.get_subscription_count() == 0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    ros.wait_for_subscribers(images)
    images.publish(camera_frame("rgb8", 4))
    assert wait_for(lambda: depth and depth[-1].header.stamp.sec == 4)
    # One reliable publisher delivers in order: had frame 2 or the direct message (3) gone out
    # while inactive, it would have arrived before 4.
    assert [m.header.stamp.sec for m in depth] == [1, 4]


def jpeg_claiming(width: int, height: int) -> bytes:
    """A W x H camera JPEG whose frame header claims width x height."""
    buf = io.BytesIO()
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def many_scans() -> bytes:
    """A progressive JPEG whose last scan repeats 1,000 times (libjpeg decodes every one)."""
    buf = io.BytesIO()
    PILImage.new("RGB", (W, H), (90, 90, 90)).save(buf, format="JPEG", progressive=True)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * 1000 + b"\xff\xd9"


def test_lying_and_overly_complex_jpegs_and_absurd_camera_infos_are_counted_rejections(ros):
    """A JPEG claiming more pixels than it holds was published as a grey frame's depth; a
    CameraInfo with fx = 1e-300 gave a cloud of inf; neither was counted."""
    node = ros.start("/t_lie", estimator=KnownDepth(plane(5.0)), use_compressed=True)
    out = ros.subscribe_outputs("/t_lie", ("depth", "points"))
    pub = ros.publisher("/t_lie/image/compressed", CompressedImage)
    infos = ros.publisher("/t_lie/camera_info", CameraInfo)
    for n, (reason, data) in enumerate(
        [("truncated", jpeg_claiming(W, 4 * H)), ("too_complex", many_scans())], start=1
    ):
        pub.publish(CompressedImage(header=make_header(100 + n), format="jpeg", data=data))
        assert wait_for(lambda: node.stats.snapshot().rejected.get(reason) == 1), reason
    sane = Intrinsics(40.0, 40.0, W / 2 - 0.5, H / 2 - 0.5, W, H)
    absurd = [dict(fx=1e-300), dict(cx=1e300), dict(fx=1e39), dict(fy=float("inf"))]
    for n, change in enumerate(absurd, start=1):
        intr = {"fx": 40.0, "fy": 40.0, "cx": sane.cx, "cy": sane.cy, **change}
        msg = make_camera_info(sane)
        msg.k = [intr["fx"], 0.0, intr["cx"], 0.0, intr["fy"], intr["cy"], 0.0, 0.0, 1.0]
        msg.p = [0.0] * 12
        infos.publish(msg)
        assert wait_for(lambda: node.stats.snapshot().rejected.get("camera_info") == n), change
    assert node.camera(W, H) is None  # none of them was taken
    infos.publish(make_camera_info(sane))
    assert wait_for(lambda: node.camera(W, H) is not None)
    good = io.BytesIO()
    PILImage.new("RGB", (W, H)).save(good, format="PNG")
    pub.publish(CompressedImage(header=make_header(7), format="png", data=good.getvalue()))
    assert wait_for(lambda: out["points"] and out["points"][-1].header.stamp.sec == 7)
    cloud = np.frombuffer(bytes(out["points"][-1].data), np.float32)
    assert np.isfinite(cloud).all() and node.stats.snapshot().errors == 0
