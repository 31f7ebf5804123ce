"""`space-clip-kitti2bag`: the command line of kitti/to_bag.py (its docstring is the help)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Sequence

from rosbags.rosbag2.errors import WriterError

from space_clip_ros.errors import RuntimeFailure, run_tool
from space_clip_ros.kitti import to_bag
from space_clip_ros.kitti.drive import KittiDrive
from space_clip_ros.kitti.to_bag import ConversionOptions, convert

PROG = "space-clip-kitti2bag"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=to_bag.__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"example: {PROG} ~/kitti/2011_09_26/2011_09_26_drive_0002_sync -o drive_0002",
    )
    parser.add_argument(
        "drive", type=Path, help="synced drive folder, <date>/<date>_drive_<nnnn>_sync"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="bag folder to create (default: ./<drive name>); must not exist",
    )
    parser.add_argument(
        "--calib-dir",
        type=Path,
        help="folder with calib_cam_to_cam.txt, calib_velo_to_cam.txt and (for the OXTS topics) "
        "calib_imu_to_velo.txt (default: the drive's parent)",
    )
    parser.add_argument(
        "--storage",
        choices=("mcap", "sqlite3"),
        default="mcap",
        help="rosbag2 storage (default mcap)",
    )
    parser.add_argument("--start", type=int, default=0, help="first frame index (default 0)")
    parser.add_argument("--end", type=int, help="frame index to stop before (default: all frames)")
    parser.add_argument(
        "--no-velodyne", action="store_true", help="leave out the Velodyne point clouds"
    )
    parser.add_argument(
        "--right", action="store_true", help="also write the right colour camera (image_03)"
    )
    parser.add_argument(
        "--no-oxts",
        action="store_true",
        help="leave out the OXTS topics (Imu, NavSatFix, /tf world -> base_link and the "
        "base_link -> imu_link -> velo_link part of /tf_static)",
    )
    parser.add_argument(
        "--truncate",
        action="store_true",
        help="when streams (or a stream's timestamps and data files) disagree on the number of "
        "frames, convert the frames all have instead of stopping",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    drive_dir = args.drive.expanduser().resolve()
    output = args.output if args.output is not None else Path.cwd() / drive_dir.name
    options = ConversionOptions(
        start=args.start,
        end=args.end,
        velodyne=not args.no_velodyne,
        right=args.right,
        oxts=not args.no_oxts,
        truncate=args.truncate,
        storage=args.storage,
        progress=not args.no_progress,
    )
    try:
        result = convert(KittiDrive(drive_dir, args.calib_dir), output, options)
    except (WriterError, OSError) as err:
        raise RuntimeFailure(f"writing the bag failed ({err})", source=output) from err
    print(f"wrote {output} ({options.storage}):")
    for topic, count in result.messages.items():
        print(f"  {topic:<40} {count:>6} messages")
    if result.dropped_points:
        print(
            f"left out {sum(result.dropped_points.values())} non-finite Velodyne points from "
            f"{len(result.dropped_points)} scans (listed above)"
        )
    return 0


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, a container stopping) unwinds like Ctrl-C, so the staging folder goes."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format=f"{PROG}: %(levelname)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_tool(PROG, run, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
