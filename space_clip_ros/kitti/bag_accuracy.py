"""LiDAR accuracy of depth recorded in a rosbag2, offline (`space-clip-bag-accuracy`,
cli/bag_accuracy.py).

Record a replay with the depth node running (e.g. `ros2 bag record` of the depth, its
camera_info, the Velodyne cloud and /tf_static), then run this on the recording. Each depth
image is paired with the Velodyne scan nearest in stamp (within --max-dt), the scan is projected
into the depth image with the camera_info and the velo->camera transform (from the bag's
/tf_static, or from the KITTI calibration with --calib-dir), and the standard metrics (80 m cap)
are printed per frame / as a mean and optionally written as JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from space_clip_ros.evaluation.lidar_gt import AccuracySettings, frame_metrics
from space_clip_ros.evaluation.pairing import StampPairer
from space_clip_ros.evaluation.report import AccuracyReport
from space_clip_ros.evaluation.transforms import lookup_static
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.bag_messages import TYPESTORE
from space_clip_ros.io.msg_arrays import (
    camera_matrix,
    depth_image_to_metres,
    pointcloud2_to_array,
    stamp_ns,
)
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.to_bag import TF_STATIC_TOPIC, VELO_TOPIC

DEFAULT_DEPTH_TOPIC = "/kitti/camera_color_left/depth"


def evaluate_bag(
    bag: Path | str,
    depth_topic: str = DEFAULT_DEPTH_TOPIC,
    camera_info_topic: str | None = None,
    cloud_topic: str = VELO_TOPIC,
    camera_from_lidar: np.ndarray | None = None,
    max_dt: float = 0.05,
    settings: AccuracySettings = AccuracySettings(),
) -> AccuracyReport:
    """Metrics of every depth image in the bag that has a scan within max_dt seconds.

    camera_info_topic defaults to <depth_topic>/camera_info; camera_from_lidar defaults to the
    bag's /tf_static from the cloud's frame to the depth's frame.
    """
    camera_info_topic = camera_info_topic or f"{depth_topic}/camera_info"
    report = AccuracyReport(settings)
    pairer: StampPairer = StampPairer(slop_ns=int(max_dt * 1e9))
    intrinsics: dict[
        int, Intrinsics
    ] = {}  # by stamp; the depth node publishes one per depth image
    latest_intr: Intrinsics | None = None
    static: list = []
    with Reader(bag) as reader:
        topics = {c.topic for c in reader.connections}
        for needed in (depth_topic, camera_info_topic, cloud_topic):
            if needed not in topics:
                raise KittiFormatError(
                    f"topic {needed} not in the bag (it has {sorted(topics)})",
                    source=bag,
                    fix="record that topic, or name the topics the bag has",
                )
        wanted = [
            c
            for c in reader.connections
            if c.topic in (depth_topic, camera_info_topic, cloud_topic, TF_STATIC_TOPIC)
        ]
        for conn, _, data in reader.messages(connections=wanted):
            msg = TYPESTORE.deserialize_cdr(data, conn.msgtype)
            if conn.topic == TF_STATIC_TOPIC:
                static.extend(msg.transforms)
                continue
            if conn.topic == camera_info_topic:
                latest_intr = Intrinsics.from_matrix(camera_matrix(msg)[0], msg.width, msg.height)
                intrinsics[stamp_ns(msg)] = latest_intr
                continue
            if conn.topic == depth_topic:
                if latest_intr is None:
                    continue  # no camera_info yet: nothing to project with
                item = (
                    depth_image_to_metres(msg),
                    intrinsics.pop(stamp_ns(msg), latest_intr),
                    msg.header.frame_id,
                )
                pair = pairer.add_first(stamp_ns(msg), item)
            else:
                pair = pairer.add_second(
                    stamp_ns(msg), (pointcloud2_to_array(msg), msg.header.frame_id)
                )
            if pair is None:
                continue
            stamp, (depth, intr, depth_frame), (points, cloud_frame) = pair
            transform = (
                camera_from_lidar
                if camera_from_lidar is not None
                else lookup_static(static, depth_frame, cloud_frame)
            )
            report.add(stamp, frame_metrics(depth, points, transform, intr, settings))
    return report
