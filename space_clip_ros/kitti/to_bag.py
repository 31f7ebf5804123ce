"""`space-clip-kitti2bag`: a KITTI raw synced drive -> rosbag2 (MCAP by default, or sqlite3).

Topics and frames (REP 103/105 names; camera frames are optical: x right, y down, z forward):

  /kitti/camera_color_left/image_raw     sensor_msgs/Image rgb8          frame camera_color_left
  /kitti/camera_color_left/camera_info   sensor_msgs/CameraInfo          frame camera_color_left
  /kitti/camera_color_right/image_raw    (with --right)                  frame camera_color_right
  /kitti/camera_color_right/camera_info  (with --right)                  frame camera_color_right
  /kitti/velo/pointcloud                 sensor_msgs/PointCloud2 x y z intensity (float32)  frame velo_link
  /tf_static                             tf2_msgs/TFMessage velo_link -> camera_color_left (/right), latched

Stamps (header and bag receive time) are the drive's timestamps.txt of each stream. CameraInfo
describes the rectified image as shipped: K = P_rect_0i[:, :3], P = [K | 0], R = I, D = 0.
R_rect_00, the Velodyne calibration and the camera's offset t_i along the rig (P_rect_0i's 4th
column) are folded into the /tf_static transform, so projecting a cloud point with tf and P (or
K) lands where KITTI's devkit puts it. P keeps no 4th column: each frame is its camera's own
optical centre, and consumers that apply P's Tx / Ty (rviz2's camera view, image_geometry) would
otherwise add the offset a second time (CameraInfo.msg: a monocular camera has Tx = Ty = 0).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from tqdm import tqdm

from space_clip_ros.evaluation.transforms import invert
from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.kitti.calibration import RectifiedCamera
from space_clip_ros.kitti.drive import VELODYNE, KittiDrive, camera_folder
from space_clip_ros.kitti.errors import KittiFormatError

LEFT, RIGHT = 2, 3
CAMERA_NAMES = {LEFT: "camera_color_left", RIGHT: "camera_color_right"}
VELO_FRAME = "velo_link"
VELO_TOPIC = "/kitti/velo/pointcloud"
TF_STATIC_TOPIC = "/tf_static"
VELO_FIELDS = ("x", "y", "z", "intensity")
BAG_VERSION = 8  # rosbag2 metadata version that Humble, Jazzy and Kilted all read


def image_topic(camera: int) -> str:
    return f"/kitti/{CAMERA_NAMES[camera]}/image_raw"


def camera_info_topic(camera: int) -> str:
    return f"/kitti/{CAMERA_NAMES[camera]}/camera_info"


def own_frame_projection(camera: RectifiedCamera) -> np.ndarray:
    """CameraInfo P = [K | 0] of a camera whose frame is its own optical centre (see the module docstring)."""
    return np.hstack([camera.projection[:, :3], np.zeros((3, 1))])


@dataclass(frozen=True)
class ConversionOptions:
    """Which frames ([start, end), end None = to the last) and streams go into the bag."""

    start: int = 0
    end: int | None = None
    velodyne: bool = True
    right: bool = False
    storage: Literal["mcap", "sqlite3"] = "mcap"
    progress: bool = True


def _frame_range(drive: KittiDrive, streams: list[str], options: ConversionOptions) -> range:
    for stream in streams:
        if not drive.has_stream(stream):
            raise KittiFormatError(
                f"{drive.drive_dir / stream}: stream folder not found (is the drive fully extracted?)"
            )
    available = min(len(drive.stamps(s)) for s in streams)
    end = available if options.end is None else options.end
    if not 0 <= options.start < end <= available:
        raise ValueError(
            f"frame range [{options.start}, {end}) is outside the drive's {available} frames"
        )
    return range(options.start, end)


def convert(
    drive: KittiDrive, output: Path | str, options: ConversionOptions = ConversionOptions()
) -> dict[str, int]:
    """Write the bag; returns messages written per topic."""
    cameras = [LEFT, RIGHT] if options.right else [LEFT]
    streams = [camera_folder(c) for c in cameras] + ([VELODYNE] if options.velodyne else [])
    frames = _frame_range(drive, streams, options)
    calib = drive.calibration
    for camera in cameras:
        calib.camera(camera)  # fail before writing anything if the calibration lacks the camera

    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output} already exists; remove it or pass another --output")
    storage = StoragePlugin.MCAP if options.storage == "mcap" else StoragePlugin.SQLITE3
    counts: dict[str, int] = {}
    with Writer(output, version=BAG_VERSION, storage_plugin=storage) as writer:

        def connection(topic: str, msgtype: str, **qos):
            counts[topic] = 0
            return writer.add_connection(topic, msgtype, typestore=msgs.TYPESTORE, **qos)

        def write(conn, msg, stamp: int) -> None:
            writer.write(conn, stamp, msgs.serialize(msg))
            counts[conn.topic] += 1

        tf_conn = connection(
            TF_STATIC_TOPIC, msgs.TF_MESSAGE, offered_qos_profiles=[msgs.LATCHED_QOS]
        )
        image_conns = {c: connection(image_topic(c), msgs.IMAGE) for c in cameras}
        info_conns = {c: connection(camera_info_topic(c), msgs.CAMERA_INFO) for c in cameras}
        velo_conn = connection(VELO_TOPIC, msgs.POINT_CLOUD2) if options.velodyne else None

        first_stamp = min(drive.stamps(s)[frames.start] for s in streams)
        poses = {
            (VELO_FRAME, CAMERA_NAMES[c]): invert(calib.camera_from_velodyne(c)) for c in cameras
        }
        write(tf_conn, msgs.static_transforms(poses, first_stamp), first_stamp)

        for index in tqdm(frames, desc=drive.name, unit="frame", disable=not options.progress):
            for camera in cameras:
                stamp = drive.stamps(camera_folder(camera))[index]
                frame_id = CAMERA_NAMES[camera]
                rect = calib.camera(camera)
                pixels = drive.image(camera, index)
                if pixels.shape[:2] != (rect.height, rect.width):
                    raise KittiFormatError(
                        f"{drive.frame_path(camera_folder(camera), index, '.png')}: image is "
                        f"{pixels.shape[1]}x{pixels.shape[0]} but S_rect_0{camera} says {rect.width}x{rect.height}; "
                        "is the calibration from this drive's date?"
                    )
                # camera_info first: a node that pairs an image with the latest info then has it.
                write(
                    info_conns[camera],
                    msgs.camera_info(
                        own_frame_projection(rect), rect.width, rect.height, stamp, frame_id
                    ),
                    stamp,
                )
                write(image_conns[camera], msgs.image(pixels, stamp, frame_id), stamp)
            if velo_conn is not None:
                stamp = drive.stamps(VELODYNE)[index]
                write(
                    velo_conn,
                    msgs.point_cloud(drive.scan(index), VELO_FIELDS, stamp, VELO_FRAME),
                    stamp,
                )
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="space-clip-kitti2bag",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: space-clip-kitti2bag ~/kitti/2011_09_26/2011_09_26_drive_0002_sync -o drive_0002",
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
        help="folder with calib_cam_to_cam.txt and calib_velo_to_cam.txt (default: the drive's parent)",
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    drive_dir = args.drive.expanduser().resolve()
    output = args.output if args.output is not None else Path.cwd() / drive_dir.name
    options = ConversionOptions(
        start=args.start,
        end=args.end,
        velodyne=not args.no_velodyne,
        right=args.right,
        storage=args.storage,
        progress=not args.no_progress,
    )
    try:
        counts = convert(KittiDrive(drive_dir, args.calib_dir), output, options)
    except (KittiFormatError, ValueError, FileExistsError, WriterError) as err:
        print(f"space-clip-kitti2bag: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({options.storage}):")
    for topic, count in counts.items():
        print(f"  {topic:<40} {count:>6} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
