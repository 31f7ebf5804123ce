"""Message <-> array conversions: images, camera info and point clouds, without DDS traffic
(the node itself is exercised over DDS in test_ros_node.py)."""

from __future__ import annotations

import importlib
import io
import re
import sys

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from space_clip_ros.geometry import Intrinsics, backproject
from space_clip_ros.io.host_buffer import HostBuffer
from space_clip_ros.io.msg_arrays import depth_image_to_metres
from space_clip_ros.ros.camera_info import (
    CameraInfoError,
    intrinsics_from_camera_info,
    scale_camera_info,
)
from space_clip_ros.ros.image_codec import (
    ImageDecodeError,
    array_to_image,
    compressed_to_color,
    depth_to_image,
    image_message,
    image_to_color,
)
from space_clip_ros.ros.pointcloud import (
    cloud_message,
    cloud_rgb,
    cloud_to_points,
    points_to_cloud,
)

BIG = 1 << 30
RNG = np.random.default_rng(0)


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    """An Image as a driver would fill it, with `pad` bytes of row padding."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.zeros((h, rows.shape[1] + pad), np.uint8)
    padded[:, : rows.shape[1]] = rows
    return Image(height=h, width=w, encoding=encoding, step=padded.shape[1], data=padded.tobytes())


def header(sec: int = 7, frame: str = "cam") -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, 123
    return h


# ------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize(
    "encoding,channels,order",
    [
        ("rgb8", 3, "rgb"),
        ("bgr8", 3, "bgr"),
        ("rgba8", 4, "rgb"),
        ("bgra8", 4, "bgr"),
        ("mono8", 1, "rgb"),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
def test_image_decodes_every_encoding_with_row_padding(encoding, channels, order, pad):
    pixels = RNG.integers(0, 256, (6, 9, channels), dtype=np.uint8)
    msg = raw_image(pixels, encoding, pad)
    color = image_to_color(msg, BIG)
    assert color.order == order and color.pixels.shape == (6, 9, 3)
    expected_rgb = np.repeat(pixels, 3, axis=2) if channels == 1 else pixels[..., :3]
    if order == "bgr":
        expected_rgb = expected_rgb[..., ::-1]
    assert np.array_equal(color.rgb, expected_rgb)


def test_image_array_is_a_view_of_the_message_buffer():
    msg = raw_image(RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8), "rgb8", pad=3)
    view = image_to_color(msg, BIG).pixels
    assert not view.flags.owndata and np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_color_order_override_relabels_three_channel_input():
    msg = raw_image(RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8), "rgb8")
    assert image_to_color(msg, BIG, "bgr").order == "bgr"


@pytest.mark.parametrize(
    "mutate,reason,words",
    [
        (lambda m: setattr(m, "encoding", "yuv420"), "encoding", "unsupported encoding 'yuv420'"),
        (lambda m: setattr(m, "encoding", "16UC1"), "encoding", "unsupported encoding"),
        (
            lambda m: setattr(m, "step", 10),
            "step",
            "step 10 is smaller than the 15 bytes a row of 5 'rgb8' pixels needs",
        ),
        (lambda m: setattr(m, "data", bytes(m.data)[:-7]), "data_size", "truncated"),
        (lambda m: setattr(m, "data", bytes(m.data) + b"xx"), "data_size", "oversized"),
        (lambda m: setattr(m, "width", 0), "zero_size", "zero size"),
        (lambda m: setattr(m, "height", 0), "zero_size", "zero size"),
    ],
)
def test_bad_images_raise_a_reasoned_error(mutate, reason, words):
    msg = raw_image(np.zeros((4, 5, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=words) as info:
        image_to_color(msg, BIG)
    assert info.value.reason == reason


def test_images_above_the_pixel_limit_are_rejected_before_use():
    msg = raw_image(np.zeros((4, 5, 3), np.uint8), "rgb8")
    with pytest.raises(ImageDecodeError, match="max_image_pixels=19") as info:
        image_to_color(msg, 19)
    assert info.value.reason == "too_large"
    assert image_to_color(msg, 20).pixels.shape == (4, 5, 3)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode_with_opencv(fmt):
    pixels = np.zeros((16, 24, 3), np.uint8)
    pixels[:, :12] = (200, 30, 10)
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=fmt.upper())
    color = compressed_to_color(CompressedImage(format=fmt, data=buf.getvalue()), BIG)
    assert color.order == "bgr" and color.pixels.shape == (16, 24, 3)  # cv2.imdecode's order
    error = np.abs(color.rgb.astype(int) - pixels)
    if fmt == "png":
        assert error.max() == 0
    else:  # lossy: close away from the colour edge, where chroma subsampling rings
        assert error[:, :9].max() <= 12 and error[:, 14:].max() <= 12


def test_undecodable_and_oversized_compressed_images_are_rejected():
    with pytest.raises(ImageDecodeError, match="cannot decode compressed image") as info:
        compressed_to_color(
            CompressedImage(format="jpeg", data=b"\xff\xd8 not really a jpeg"), BIG
        )
    assert info.value.reason == "undecodable"
    buf = io.BytesIO()
    PILImage.new("RGB", (40, 30)).save(buf, format="PNG")
    with pytest.raises(ImageDecodeError) as info:
        compressed_to_color(CompressedImage(format="png", data=buf.getvalue()), 1199)
    assert info.value.reason == "too_large"


def test_depth_image_is_32fc1_metres_and_round_trips_nan():
    depth = RNG.uniform(0.5, 80, (5, 7)).astype(np.float32)
    depth[1, 2] = np.nan
    msg = depth_to_image(depth, header())
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("32FC1", 7, 5, 28)
    assert msg.is_bigendian == (sys.byteorder == "big")
    assert msg.header.stamp.sec == 7 and msg.header.frame_id == "cam"
    assert np.array_equal(depth_image_to_metres(msg), depth, equal_nan=True)


def test_bgr8_output_and_encoder_type_checks():
    pixels = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    msg = array_to_image(pixels, "bgr8", header())
    assert (msg.encoding, msg.step, bytes(msg.data)) == ("bgr8", 12, pixels.tobytes())
    with pytest.raises(ValueError, match="32FC1 needs a float32"):
        array_to_image(pixels, "32FC1", header())
    with pytest.raises(ValueError, match="cannot encode"):
        array_to_image(pixels, "mono16", header())


def test_frame_messages_hold_the_host_buffers_themselves():
    """The frame path's messages take its reused buffers as their data: rosidl_python from
    Jazzy on copies a uint8[] value into a new array unless the message checks its fields
    (33 MB and its page faults per 1080p cloud), so a copy here is a regression."""
    depth, cloud, preview = HostBuffer(), HostBuffer(), HostBuffer()
    depth.ensure((5, 7), np.float32)[:] = 2.5
    cloud.ensure((5, 7, 4), np.float32)[:] = 1.0
    preview.ensure((5, 7, 3), np.uint8)[:] = 9
    messages = [
        image_message(depth, "32FC1", header()),
        cloud_message(cloud, header()),
        image_message(preview, "bgr8", header()),
    ]
    for msg, buffer in zip(messages, (depth, cloud, preview)):
        assert msg.data is buffer.raw
        assert msg.header.frame_id == "cam" and (msg.height, msg.width) == (5, 7)
    assert np.array_equal(depth_image_to_metres(messages[0]), np.full((5, 7), 2.5, np.float32))
    assert messages[1].point_step == 16 and messages[1].row_step == 16 * 7


def test_depth_output_equivalence_with_cv_bridge():
    """Input conversions are compared with cv_bridge in test_image_decoding.py."""
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge not importable")
    pytest.importorskip(
        "cv_bridge.boost.cv_bridge_boost", reason="cv_bridge.boost (compiled) not importable"
    )
    try:  # the Python part imports without its compiled module (pip-built ROS underlays)
        importlib.import_module("cv_bridge.boost.cv_bridge_boost")
    except ModuleNotFoundError as exc:
        pytest.skip(f"cv_bridge's compiled module is not installed ({exc})")
    bridge = cv_bridge.CvBridge()
    depth = RNG.uniform(1, 9, (5, 6)).astype(np.float32)
    ours = depth_to_image(depth, header())
    theirs = bridge.cv2_to_imgmsg(depth, encoding="32FC1")
    assert (ours.step, ours.encoding, bytes(ours.data)) == (
        theirs.step,
        theirs.encoding,
        bytes(theirs.data),
    )
    assert np.array_equal(bridge.imgmsg_to_cv2(ours), depth)


# ------------------------------------------------------------------------------------- camera info


def camera_info(
    width=160, height=48, fx=100.0, fy=90.0, cx=79.5, cy=23.5, tx=-30.0, k_only=False
) -> CameraInfo:
    msg = CameraInfo(header=header(), width=width, height=height, distortion_model="plumb_bob")
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.p = [0.0] * 12 if k_only else [fx, 0.0, cx, tx, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.d = [0.1, -0.2, 0.0, 0.0, 0.0]
    return msg


def test_intrinsics_come_from_p_and_fall_back_to_k():
    msg = camera_info()
    msg.k = [50.0, 0, 1, 0, 50.0, 1, 0, 0, 1]  # P wins: it describes the rectified image
    assert intrinsics_from_camera_info(msg) == Intrinsics(100.0, 90.0, 79.5, 23.5, 160, 48)
    assert intrinsics_from_camera_info(camera_info(k_only=True)) == Intrinsics(
        100.0, 90.0, 79.5, 23.5, 160, 48
    )


@pytest.mark.parametrize(
    "msg,words",
    [
        (camera_info(fx=0.0), "focal length fx=0 is outside"),
        (camera_info(fx=0.0, fy=0.0, k_only=True), "camera_info K is unusable"),
        (camera_info(width=0), "zero size"),
        (camera_info(fx=1e-300), "fx=1e-300 is outside [0.01, 1000] x the image side (160 px)"),
        (camera_info(fy=1e39), "fy=1e+39 is outside"),
        (camera_info(cx=1e300), "principal point cx=1e+300 is more than 1 image side(s)"),
        (camera_info(cy=float("nan")), "principal point cy=nan"),
    ],
)
def test_unusable_camera_info_is_rejected(msg, words):
    with pytest.raises(CameraInfoError, match=re.escape(words)):
        intrinsics_from_camera_info(msg)


def test_scaled_camera_info_matches_intrinsics_scaled_and_the_depth_header():
    msg = camera_info(width=1242, height=375, fx=721.5, fy=721.5, cx=609.6, cy=172.9, tx=-387.6)
    out_header = header(sec=99, frame="optical")
    out = scale_camera_info(msg, 621, 188, out_header)
    expected = Intrinsics(721.5, 721.5, 609.6, 172.9, 1242, 375).scaled(621, 188)
    assert intrinsics_from_camera_info(out) == pytest.approx(expected)
    k = np.asarray(out.k).reshape(3, 3)
    assert k[0, 0] == pytest.approx(expected.fx) and k[1, 2] == pytest.approx(expected.cy)
    assert np.asarray(out.p).reshape(3, 4)[0, 3] == pytest.approx(
        -387.6 * 0.5
    )  # fx * baseline scales with fx
    assert (out.width, out.height, out.header.stamp.sec, out.header.frame_id) == (
        621,
        188,
        99,
        "optical",
    )
    assert list(out.d) == list(msg.d) and msg.width == 1242  # the input is not modified
    same = scale_camera_info(msg, 1242, 375, out_header)
    assert (
        list(same.k) == list(msg.k) and list(same.p) == list(msg.p) and same.header.stamp.sec == 99
    )


def test_scaled_camera_info_scales_skew_and_baselines_and_keeps_an_unset_p_unset():
    msg = camera_info(width=160, height=48, tx=-30.0)
    msg.k[1] = msg.p[1] = 2.0  # skew
    msg.p[7] = 12.0  # fy * Ty
    msg.binning_x, msg.roi.width = 2, 80
    out = scale_camera_info(msg, 80, 12, header())
    expected = intrinsics_from_camera_info(msg).scaled(80, 12)
    for field in ("k", "p"):
        m = np.asarray(getattr(out, field)).reshape(3, -1)
        assert (m[0, 0], m[1, 1], m[0, 2], m[1, 2]) == pytest.approx(
            (expected.fx, expected.fy, expected.cx, expected.cy)
        ), field
        original = np.asarray(getattr(msg, field)).reshape(3, -1)
        assert m[0, 1] == pytest.approx(original[0, 1] * 0.5) and list(m[2]) == list(original[2])
    p = np.asarray(out.p).reshape(3, 4)
    assert (p[0, 3], p[1, 3]) == pytest.approx((-30.0 * 0.5, 12.0 * 0.25))
    assert (out.binning_x, out.roi.width) == (0, 0)
    k_only = scale_camera_info(camera_info(k_only=True), 80, 24, header())
    assert not np.any(k_only.p) and intrinsics_from_camera_info(
        k_only
    ) == intrinsics_from_camera_info(camera_info(k_only=True)).scaled(80, 24)


# ------------------------------------------------------------------------------------- point cloud


def test_plane_back_projects_to_its_depth_and_pinhole_x():
    intr = Intrinsics(fx=100.0, fy=90.0, cx=79.5, cy=23.5, width=160, height=48)
    d = 7.0
    depth = np.full((48, 160), d, np.float32)
    depth[10, 20] = np.nan
    cloud = points_to_cloud(backproject(depth, intr), header())
    assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (48, 160, 12, False)
    assert [f.name for f in cloud.fields] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="no rgb field"):
        cloud_rgb(cloud)
    pts = cloud_to_points(cloud)
    u = np.arange(160, dtype=np.float32)
    v = np.arange(48, dtype=np.float32)
    ok = np.isfinite(pts[..., 2])
    assert ok.sum() == 48 * 160 - 1 and np.isnan(pts[10, 20]).all()
    assert np.allclose(pts[..., 2][ok], d)
    assert np.allclose(pts[5, :, 0], (u - 79.5) * d / 100.0, atol=1e-5)
    assert np.allclose(pts[:, 5, 1], (v - 23.5) * d / 90.0, atol=1e-5)


def test_decimated_coloured_cloud_packs_rgb_as_rviz_expects():
    intr = Intrinsics(50.0, 50.0, 19.5, 9.5, 40, 20)
    rgb = RNG.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    depth = np.full((20, 40), 3.0, np.float32)
    pts = backproject(depth, intr, step=4)
    cloud = points_to_cloud(pts, header(), rgb[::4, ::4])
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (5, 10, 16, 160)
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7),
        ("y", 4, 7),
        ("z", 8, 7),
        ("rgb", 12, 7),
    ]
    assert np.array_equal(cloud_rgb(cloud), rgb[::4, ::4])
    word = np.frombuffer(bytes(cloud.data), np.uint32).reshape(5, 10, 4)[0, 1, 3]
    r, g, b = (int(c) for c in rgb[0, 4])
    assert word == (r << 16) | (g << 8) | b
    assert np.allclose(cloud_to_points(cloud)[0, 1], pts[0, 1])


def test_equivalence_with_sensor_msgs_py():
    pc2 = pytest.importorskip(
        "sensor_msgs_py.point_cloud2",
        reason="sensor_msgs_py comes with a ROS install, not as a wheel",
    )
    intr = Intrinsics(50.0, 50.0, 19.5, 9.5, 40, 20)
    depth = RNG.uniform(1, 5, (20, 40)).astype(np.float32)
    depth[3, 3] = np.nan
    pts = backproject(depth, intr)
    ours = points_to_cloud(pts, header())
    theirs = pc2.create_cloud_xyz32(header(), pts.reshape(-1, 3).tolist())
    assert bytes(ours.data) == bytes(theirs.data)
    # read_points yields tuples (Humble) or rows of a structured array (Jazzy and newer)
    rows = pc2.read_points(ours, field_names=("x", "y", "z"), skip_nans=False)
    read = np.array([tuple(row) for row in rows], dtype=np.float32)
    assert np.array_equal(read.reshape(20, 40, 3), pts, equal_nan=True)


def test_seeded_fuzz_through_the_message_wrappers_the_node_calls():
    """The ROS-free fuzz (test_image_decoding.py) again, on messages as rclpy delivers them
    (`data` an array.array): the node's decode call sees an image or an ImageDecodeError."""
    import array

    from test_image_decoding import _corrupted, _mutations, encoded, smooth_rgb

    from space_clip_ros.io.image_decoding import INPUT_ENCODINGS
    from testing.image_encoding import encode_rgb

    rng = np.random.default_rng(7)
    base = smooth_rgb(12, 16)
    raw = [encode_rgb(base, encoding, pad=1) for encoding in INPUT_ENCODINGS]
    compressed = [encoded(base, "PNG"), encoded(base, "JPEG")]
    images = 0
    for n in range(400):
        try:
            if n % 4 == 3:
                data = _corrupted(rng, compressed[n % 2])
                msg = CompressedImage(format="png", data=array.array("B", data))
                color = compressed_to_color(msg, 4096)
            else:
                frame = _mutations(rng, raw[int(rng.integers(0, len(raw)))])
                msg = Image(
                    encoding=frame.encoding,
                    width=frame.width,
                    height=frame.height,
                    step=frame.step,
                    is_bigendian=frame.is_bigendian,
                    data=array.array("B", frame.data),
                )
                color = image_to_color(msg, 4096)
        except ImageDecodeError:
            continue
        assert color.pixels.dtype == np.uint8 and color.pixels.shape[2] == 3
        images += 1
    assert images > 20
