"""`space-clip-bag-accuracy`: LiDAR accuracy of depth recorded in a rosbag2, offline.

Record a replay with the depth node running (e.g. `ros2 bag record` of the depth, its
camera_info, the Velodyne cloud and /tf_static), then run this on the recording. Each depth
image is paired with the Velodyne scan nearest in stamp (within --max-dt), the scan is projected
into the depth image with the camera_info and the velo->camera transform (from the bag's
/tf_static, or from the KITTI calibration with --calib-dir), and the standard metrics (80 m cap)
are printed per frame / as a mean and optionally written as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from space_clip_ros.errors import EXIT_FAILURE, EXIT_USAGE
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
from space_clip_ros.kitti.calibration import load_calibration
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.to_bag import LEFT, TF_STATIC_TOPIC, VELO_TOPIC

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
                    f"{bag}: topic {needed} not in the bag (it has {sorted(topics)})"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="space-clip-bag-accuracy",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bag", type=Path, help="rosbag2 folder (MCAP or sqlite3)")
    parser.add_argument(
        "--depth-topic",
        default=DEFAULT_DEPTH_TOPIC,
        help=f"32FC1 depth images (default {DEFAULT_DEPTH_TOPIC})",
    )
    parser.add_argument(
        "--camera-info-topic",
        help="CameraInfo of the depth images (default <depth topic>/camera_info)",
    )
    parser.add_argument(
        "--cloud-topic", default=VELO_TOPIC, help=f"Velodyne PointCloud2 (default {VELO_TOPIC})"
    )
    parser.add_argument(
        "--calib-dir",
        type=Path,
        help="KITTI date folder with calib_*.txt; default: use the bag's /tf_static",
    )
    parser.add_argument(
        "--camera", type=int, default=LEFT, help="KITTI camera index for --calib-dir (default 2)"
    )
    parser.add_argument(
        "--max-dt",
        type=float,
        default=0.05,
        help="max stamp difference depth<->scan, s (default 0.05)",
    )
    parser.add_argument(
        "--max-depth", type=float, default=80.0, help="depth cap in metres (default 80)"
    )
    parser.add_argument(
        "--crop",
        choices=("garg", "eigen", "none"),
        default="garg",
        help="evaluation crop (default garg)",
    )
    parser.add_argument(
        "--per-frame", action="store_true", help="print one row per frame, not only the mean"
    )
    parser.add_argument(
        "--json", type=Path, help="also write per-frame metrics and the mean to this JSON file"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = AccuracySettings(max_depth=args.max_depth, crop=args.crop)
    try:
        transform = (
            load_calibration(args.calib_dir).camera_from_velodyne(args.camera)
            if args.calib_dir
            else None
        )
        report = evaluate_bag(
            args.bag,
            args.depth_topic,
            args.camera_info_topic,
            args.cloud_topic,
            transform,
            args.max_dt,
            settings,
        )
    except (
        KittiFormatError,
        ReaderError,
        LookupError,
        ValueError,
    ) as err:  # KeyError is a LookupError
        print(f"space-clip-bag-accuracy: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not report.frames:
        print(
            f"space-clip-bag-accuracy: error: no depth image in {args.bag} paired with a scan "
            f"within {args.max_dt} s; check the topics and --max-dt",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if not report.running.count:  # a table of NaN would look like a result
        print(
            f"space-clip-bag-accuracy: error: none of the {len(report.frames)} paired frames had "
            f"a LiDAR return inside the evaluated region (crop {args.crop}, up to "
            f"{args.max_depth:g} m); check the LiDAR -> camera transform (--calib-dir)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(report.table(per_frame=args.per_frame))
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
