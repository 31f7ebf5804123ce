"""`space-clip-bag-accuracy`: the command line of kitti/bag_accuracy.py (its docstring is the
help). Exit 2 for a bag, topic or calibration that cannot be used; 1 when no frame could be
scored (a table of NaN would look like a result)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from rosbags.rosbag2.errors import ReaderError

from space_clip_ros.errors import InputError, RuntimeFailure, SpaceClipError, run_tool
from space_clip_ros.evaluation.lidar_gt import LIDAR_CROPS, AccuracySettings
from space_clip_ros.kitti import bag_accuracy
from space_clip_ros.kitti.bag_accuracy import DEFAULT_DEPTH_TOPIC, evaluate_bag
from space_clip_ros.kitti.calibration import load_calibration
from space_clip_ros.kitti.to_bag import LEFT, VELO_TOPIC

PROG = "space-clip-bag-accuracy"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=bag_accuracy.__doc__.split("\n\n", 1)[1],
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
        choices=LIDAR_CROPS,
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


def run(argv: Sequence[str] | None = None) -> int:
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
    except SpaceClipError:
        raise
    except (OSError, ReaderError, LookupError, ValueError) as err:
        raise InputError(str(err)) from err  # no bag, not a bag, no tf path, a bad message
    if not report.frames:
        raise RuntimeFailure(
            f"no depth image in {args.bag} paired with a scan within {args.max_dt} s",
            fix="check the topics and --max-dt",
        )
    if not report.running.count:
        raise RuntimeFailure(
            f"none of the {len(report.frames)} paired frames had a LiDAR return inside the "
            f"evaluated region (crop {args.crop}, up to {args.max_depth:g} m)",
            fix="check the LiDAR -> camera transform (--calib-dir)",
        )
    print(report.table(per_frame=args.per_frame))
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
