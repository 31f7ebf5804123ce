"""`space-clip-kitti2bag`: a KITTI raw synced drive -> rosbag2 (MCAP by default, or sqlite3).

Topics and frames (REP 103/105 names; camera frames are optical: x right, y down, z forward):

  /kitti/camera_color_left/image_raw    sensor_msgs/Image rgb8     frame camera_color_left
  /kitti/camera_color_left/camera_info  sensor_msgs/CameraInfo     frame camera_color_left
  /kitti/camera_color_right/...         the same with --right      frame camera_color_right
  /kitti/velo/pointcloud                sensor_msgs/PointCloud2    frame velo_link
                                        (x y z intensity float32)
  /kitti/oxts/imu                       sensor_msgs/Imu            frame imu_link
  /kitti/oxts/gps/fix                   sensor_msgs/NavSatFix      frame imu_link
  /tf                                   tf2_msgs/TFMessage         world -> base_link
  /tf_static                            tf2_msgs/TFMessage, latched:
        base_link -> imu_link (identity) -> velo_link -> camera_color_left (/right)

Stamps (header and bag receive time) are each stream's timestamps.txt: image_02 / image_03 for
the cameras, velodyne_points for the clouds, oxts for the IMU, GPS and /tf messages; /tf_static
carries the first stamp in the bag. CameraInfo describes the rectified image as shipped:
K = P_rect_0i[:, :3], P = [K | 0], R = I, D = 0. R_rect_00, the Velodyne calibration and the
camera's offset t_i along the rig (P_rect_0i's 4th column) are folded into /tf_static, so
projecting a cloud point with tf and P (or K) lands where KITTI's devkit puts it. P keeps no 4th
column: each frame is its camera's own optical centre, and consumers that apply P's Tx / Ty
(rviz2's camera view, image_geometry) would otherwise add the offset a second time.

With the drive's oxts/ folder (and calib_imu_to_velo.txt beside the other calibration files),
each OXTS packet becomes: /tf world -> base_link, the IMU's pose by the devkit's
convertOxtsToPose (Mercator with the scale of the drive's first latitude; `world` has east-north-up
axes and its origin at the drive's first packet, so frame ranges of one drive share it;
base_link is the OXTS unit); Imu (orientation from roll/pitch/yaw in that east-north-up frame,
angular velocity wf wl wu, linear acceleration af al au with gravity, covariances unknown = 0);
NavSatFix (lat, lon, alt; covariance approximated as pos_accuracy^2 for east, north and up;
status FIX unless posmode is 0 = no solution). --no-oxts leaves all of these out; a drive without
oxts/ gets none of them and a warning.

Every stream must list as many timestamps as it has data files, and all streams the same number
(KITTI's synced drives do); otherwise the converter stops naming the counts and files, unless
--truncate is given. The converted frames' stamps must increase at the stream's rate and agree
across streams (kitti/timestamps.py: a repeated, swapped or hour-off line, a leap second or a
year ROS time cannot hold stops the run naming the file and line). Velodyne points holding NaN or
infinity are left out, each scan file named with its count (KITTI's scans hold none).

The bag is written under a temporary name beside --output and renamed when complete: a failed or
interrupted (Ctrl-C: exit 130; SIGTERM) run leaves nothing behind and the retry can use the same
name. Only a killed process (kill -9) can leave a hidden .<output>.<pid>-*.partial folder; the
next run for that output removes it once its process is provably gone (io/atomic.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from space_clip_ros.errors import ConfigError
from space_clip_ros.evaluation.transforms import invert
from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.io.atomic import atomic_dir
from space_clip_ros.kitti.calibration import RectifiedCamera
from space_clip_ros.kitti.drive import OXTS, VELODYNE, KittiDrive, camera_folder
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.oxts import MercatorOrigin, OxtsPacket
from space_clip_ros.kitti.timestamps import check_stream, check_streams_agree

LEFT, RIGHT = 2, 3
CAMERA_NAMES = {LEFT: "camera_color_left", RIGHT: "camera_color_right"}
VELO_FRAME = "velo_link"
VELO_TOPIC = "/kitti/velo/pointcloud"
TF_STATIC_TOPIC = "/tf_static"
TF_TOPIC = "/tf"
IMU_TOPIC = "/kitti/oxts/imu"
GPS_TOPIC = "/kitti/oxts/gps/fix"
WORLD_FRAME = "world"
BASE_FRAME = "base_link"
IMU_FRAME = "imu_link"
VELO_FIELDS = ("x", "y", "z", "intensity")
BAG_VERSION = 8  # rosbag2 metadata version that Humble, Jazzy and Kilted all read
NO_GPS_SOLUTION = 0  # OXTS posmode 0: the receiver has no position solution

log = logging.getLogger(__name__)


def image_topic(camera: int) -> str:
    return f"/kitti/{CAMERA_NAMES[camera]}/image_raw"


def camera_info_topic(camera: int) -> str:
    return f"/kitti/{CAMERA_NAMES[camera]}/camera_info"


def own_frame_projection(camera: RectifiedCamera) -> np.ndarray:
    """CameraInfo P = [K | 0] of a camera whose frame is its own optical centre (module doc)."""
    return np.hstack([camera.projection[:, :3], np.zeros((3, 1))])


@dataclass(frozen=True)
class ConversionOptions:
    """Which frames ([start, end), end None = to the last) and streams go into the bag."""

    start: int = 0
    end: int | None = None
    velodyne: bool = True
    right: bool = False
    oxts: bool = True
    truncate: bool = False  # convert the frames all streams have instead of stopping
    storage: Literal["mcap", "sqlite3"] = "mcap"
    progress: bool = True


def available_frames(drive: KittiDrive, streams: list[str], truncate: bool) -> int:
    """Frames every stream has; a disagreement between timestamps and data files, or between
    streams, is an error (KITTI's synced drives agree everywhere) unless `truncate`."""
    counts: dict[str, int] = {}
    for stream in streams:
        if not drive.has_stream(stream):
            raise KittiFormatError(
                "stream folder not found",
                source=drive.drive_dir / stream,
                fix="is the drive fully extracted?",
            )
        counts[f"{stream}/timestamps.txt"] = len(drive.stamps(stream))
        counts[f"{stream}/data"] = drive.data_files(stream)
    available = min(counts.values())
    if available != max(counts.values()):
        listing = ", ".join(f"{name}: {count}" for name, count in counts.items())
        if not truncate:
            raise KittiFormatError(
                f"streams disagree on the number of frames ({listing})",
                source=drive.drive_dir,
                fix=f"re-extract the drive, or pass --truncate to convert the {available} "
                "frames every stream has",
            )
        log.warning("--truncate: converting %d frames (%s)", available, listing)
    return available


def frame_range(available: int, options: ConversionOptions) -> range:
    end = available if options.end is None else options.end
    if not 0 <= options.start < end <= available:
        raise ConfigError(
            f"frame range [{options.start}, {end}) is outside the drive's {available} frames",
            field="--start/--end",
            fix=f"choose 0 <= start < end <= {available}",
        )
    return range(options.start, end)


def static_poses(
    drive: KittiDrive, cameras: list[int], with_imu: bool
) -> dict[tuple[str, str], np.ndarray]:
    """/tf_static: (parent, child) -> pose of child in parent, from base_link down the rig."""
    calib = drive.calibration
    poses = {}
    if with_imu:
        poses[(BASE_FRAME, IMU_FRAME)] = np.eye(4)  # base_link is the OXTS unit (devkit pose)
        poses[(IMU_FRAME, VELO_FRAME)] = invert(drive.imu_to_velo)
    for camera in cameras:
        poses[(VELO_FRAME, CAMERA_NAMES[camera])] = invert(calib.camera_from_velodyne(camera))
    return poses


def oxts_messages(packet: OxtsPacket, origin: MercatorOrigin, stamp: int) -> dict[str, object]:
    """topic -> message for one OXTS packet (/tf, Imu, NavSatFix)."""
    pose = origin.pose(packet)
    return {
        TF_TOPIC: msgs.tf_message({(WORLD_FRAME, BASE_FRAME): pose}, stamp),
        IMU_TOPIC: msgs.imu(
            pose[:3, :3],
            np.array([packet.wf, packet.wl, packet.wu]),
            np.array([packet.af, packet.al, packet.au]),
            stamp,
            IMU_FRAME,
        ),
        GPS_TOPIC: msgs.nav_sat_fix(
            packet.lat,
            packet.lon,
            packet.alt,
            packet.pos_accuracy**2,
            int(packet.posmode) != NO_GPS_SOLUTION,
            stamp,
            IMU_FRAME,
        ),
    }


@dataclass
class Conversion:
    """What went into the bag: messages per topic, and the non-finite Velodyne points left out
    per scan file (KITTI's scans hold none; a NaN or inf point is a damaged file)."""

    messages: dict[str, int] = field(default_factory=dict)
    dropped_points: dict[Path, int] = field(default_factory=dict)


def finite_points(points: np.ndarray) -> np.ndarray:
    """The rows of a scan whose x, y, z and reflectance are all finite."""
    return points[np.isfinite(points).all(axis=1)]


def check_stamps(drive: KittiDrive, streams: list[str], frames: range) -> None:
    """Every stream's stamps of `frames` increase at a plausible rate and agree with the left
    camera's (kitti.timestamps): checked before the bag is started."""
    reference = drive.stamp_file(streams[0])
    for stream in streams:
        check_stream(drive.stamp_file(stream), frames)
        if stream != streams[0]:
            check_streams_agree(reference, drive.stamp_file(stream), frames)


def convert(
    drive: KittiDrive, output: Path | str, options: ConversionOptions = ConversionOptions()
) -> Conversion:
    """Write the bag. Everything that can be checked before writing (streams, counts, stamps,
    calibration, the first OXTS packet) is checked first."""
    cameras = [LEFT, RIGHT] if options.right else [LEFT]
    with_oxts = options.oxts and drive.has_stream(OXTS)
    if options.oxts and not with_oxts:
        log.warning("%s: no oxts/ folder; no IMU, GPS or /tf written", drive.drive_dir)
    streams = [camera_folder(c) for c in cameras]
    streams += [VELODYNE] if options.velodyne else []
    streams += [OXTS] if with_oxts else []
    frames = frame_range(available_frames(drive, streams, options.truncate), options)
    check_stamps(drive, streams, frames)
    calib = drive.calibration
    rig = static_poses(drive, cameras, with_oxts)  # fails early on a missing calibration
    origin = MercatorOrigin.from_packet(drive.oxts(0)) if with_oxts else None

    storage = StoragePlugin.MCAP if options.storage == "mcap" else StoragePlugin.SQLITE3
    result = Conversion()
    counts = result.messages
    with (
        atomic_dir(output, exists_fix="remove it or pass another --output") as staging,
        Writer(staging, version=BAG_VERSION, storage_plugin=storage) as writer,
    ):
        conns = {}

        def connection(topic: str, msgtype: str, **qos) -> None:
            counts[topic] = 0
            conns[topic] = writer.add_connection(topic, msgtype, typestore=msgs.TYPESTORE, **qos)

        def write(topic: str, msg, stamp: int) -> None:
            writer.write(conns[topic], stamp, msgs.serialize(msg))
            counts[topic] += 1

        connection(TF_STATIC_TOPIC, msgs.TF_MESSAGE, offered_qos_profiles=[msgs.LATCHED_QOS])
        for camera in cameras:
            connection(image_topic(camera), msgs.IMAGE)
            connection(camera_info_topic(camera), msgs.CAMERA_INFO)
        if options.velodyne:
            connection(VELO_TOPIC, msgs.POINT_CLOUD2)
        if with_oxts:
            connection(TF_TOPIC, msgs.TF_MESSAGE)
            connection(IMU_TOPIC, msgs.IMU)
            connection(GPS_TOPIC, msgs.NAV_SAT_FIX)

        first_stamp = min(drive.stamps(s)[frames.start] for s in streams)
        write(TF_STATIC_TOPIC, msgs.tf_message(rig, first_stamp), first_stamp)

        for index in tqdm(frames, desc=drive.name, unit="frame", disable=not options.progress):
            if origin is not None:
                stamp = drive.stamps(OXTS)[index]
                for topic, msg in oxts_messages(drive.oxts(index), origin, stamp).items():
                    write(topic, msg, stamp)
            for camera in cameras:
                stamp = drive.stamps(camera_folder(camera))[index]
                frame_id = CAMERA_NAMES[camera]
                rect = calib.camera(camera)
                pixels = drive.image(camera, index)
                if pixels.shape[:2] != (rect.height, rect.width):
                    raise KittiFormatError(
                        f"image is {pixels.shape[1]}x{pixels.shape[0]} but S_rect_0{camera} says "
                        f"{rect.width}x{rect.height}",
                        source=drive.frame_path(camera_folder(camera), index, ".png"),
                        fix="use the calibration of this drive's date",
                    )
                # camera_info first: a node that pairs an image with the latest info then has it.
                info = msgs.camera_info(
                    own_frame_projection(rect), rect.width, rect.height, stamp, frame_id
                )
                write(camera_info_topic(camera), info, stamp)
                write(image_topic(camera), msgs.image(pixels, stamp, frame_id), stamp)
            if options.velodyne:
                stamp = drive.stamps(VELODYNE)[index]
                scan = drive.scan(index)
                points = finite_points(scan)
                if len(points) < len(scan):
                    path = drive.frame_path(VELODYNE, index, ".bin")
                    result.dropped_points[path] = len(scan) - len(points)
                    log.warning(
                        "%s: left out %d of %d points holding NaN or infinity (a damaged scan; "
                        "re-extract the drive to get them back)",
                        path,
                        len(scan) - len(points),
                        len(scan),
                    )
                cloud = msgs.point_cloud(points, VELO_FIELDS, stamp, VELO_FRAME)
                write(VELO_TOPIC, cloud, stamp)
    return result
