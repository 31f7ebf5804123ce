"""One depth node, several cameras (the `cameras` parameter) over real DDS: each camera on its own
topics at its own size, their frames inferred together in one batch, a silent camera holding no
one back, per-camera counters and diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo

from space_clip_ros.io.msg_arrays import depth_image_to_metres
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics
from space_clip_ros.ros.depth_node import DepthNode
from space_clip_ros.ros.params import ParameterError
from testing.estimators import GatedDepth, KnownDepth, plane
from testing.harness import INTR, make_header, make_image, wait_for

SIZES = {"front": (160, 48), "left": (96, 64), "rear": (64, 40)}  # width, height


def camera_info(width: int, height: int, sec: int = 0) -> CameraInfo:
    return camera_info_from_intrinsics(INTR.scaled(width, height), make_header(sec))


def test_three_cameras_of_different_sizes_share_one_batch_and_keep_their_own_topics(ros):
    estimator = GatedDepth(lambda h, w: np.full((h, w), w / 10, np.float32))  # width / 10 m
    node = ros.start("/t_cams", estimator=estimator, cameras=",".join(SIZES), batch_wait=1.0)
    out = {c: ros.subscribe_outputs(f"/t_cams/{c}", ("depth", "points")) for c in SIZES}
    images = {c: ros.publisher(f"/t_cams/{c}/image") for c in SIZES}
    for camera, (w, h) in SIZES.items():
        ros.publisher(f"/t_cams/{camera}/camera_info", CameraInfo).publish(camera_info(w, h))
    assert wait_for(lambda: all(node.camera(w, h, c) for c, (w, h) in SIZES.items()))

    images["front"].publish(make_image(1, *SIZES["front"]))
    assert estimator.waiting.wait(timeout=60)  # front's first frame is in inference, alone
    for sec, (camera, (w, h)) in enumerate(SIZES.items(), start=2):
        images[camera].publish(make_image(sec, w, h))
    assert wait_for(lambda: all(node.streams[c].stats.snapshot().received for c in SIZES))
    estimator.gate.set()

    assert wait_for(lambda: all(out[c]["depth"] and out[c]["points"] for c in SIZES))
    assert estimator.batches[:2] == [1, 3]  # then front, left and rear together
    for camera, (w, h) in SIZES.items():
        depth = out[camera]["depth"][-1]
        assert (depth.width, depth.height) == (w, h)
        assert np.all(depth_image_to_metres(depth) == np.float32(w / 10))  # its own size
        assert (out[camera]["points"][-1].width, out[camera]["points"][-1].height) == (w, h)
    # A frame is counted just after its outputs are published, on the publisher thread.
    processed = {"front": 2, "left": 1, "rear": 1}
    assert wait_for(
        lambda: all(node.streams[c].stats.snapshot().processed == n for c, n in processed.items())
    ), {c: node.streams[c].stats.snapshot().processed for c in SIZES}


def test_a_silent_camera_holds_no_one_back_and_each_camera_has_its_diagnostics(ros):
    ros.start(
        "/t_silent",
        estimator=KnownDepth(plane(3.0)),
        cameras=["front", "left", "rear"],  # a string array works as well as one string
        batch_wait=0.05,
        diagnostics_period=0.2,
    )
    diagnostics = ros.subscribe("/diagnostics", DiagnosticArray)
    out = {c: ros.subscribe_outputs(f"/t_silent/{c}", ("depth",)) for c in ("front", "left")}
    images = {c: ros.publisher(f"/t_silent/{c}/image") for c in ("front", "left")}
    for sec in range(1, 4):  # rear never publishes
        for camera, publisher in images.items():
            publisher.publish(make_image(sec, *SIZES[camera]))
        assert wait_for(lambda: all(len(out[c]["depth"]) >= sec for c in out))

    def latest() -> dict[str, dict[str, str]]:
        """camera -> key/values of the newest /diagnostics array naming all three cameras."""
        for array in reversed(list(diagnostics)):
            found = {
                s.name.rsplit(" ", 1)[1]: {kv.key: kv.value for kv in s.values}
                for s in array.status
                if s.name.startswith("/t_silent/space_clip_depth: depth ")
            }
            if len(found) == 3:
                return found
        return {}

    assert wait_for(lambda: int(latest().get("front", {}).get("frames_processed", 0)) >= 3)
    values = latest()
    assert set(values) == set(SIZES)
    assert values["rear"]["frames_received"] == "0" and values["rear"]["camera"] == "rear"


@pytest.mark.parametrize(
    "cameras, problem",
    [
        ("front,front", "twice"),
        ("front,../x", "relative namespace"),
        (["front", "2nd"], "relative namespace"),
        ([1, 2], "not a list of names"),
    ],
)
def test_bad_camera_lists_are_refused_with_the_fix(ros, cameras, problem):
    with pytest.raises(ParameterError, match=problem):
        DepthNode(context=ros.context, parameter_overrides=[Parameter("cameras", value=cameras)])
