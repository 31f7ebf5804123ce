"""A small drive in KITTI raw's exact on-disk layout, rendered from the procedural street.

Real KITTI data can not be downloaded on every machine; this writes the same files (calibration
text with the real field names and the 2011_09_26 values, scaled to a small image; timestamp
files; PNG images; float32 .bin scans) so the whole chain (reader -> bag -> replay -> node ->
accuracy) runs anywhere. Both colour cameras and the Velodyne see ONE scene
(space_clip_ros.scenes.street, ray-cast by scenes.lidar for the scans) from the poses the written
calibration gives them, so a scan projected with that calibration lands on the image's depth:
the accuracy tools measure against ground truth that agrees with the pixels. With oxts/ (the
default) the car's GPS/IMU packets follow the same motion, so a bag of it replays in `world`.

`space-clip-generate-drive ROOT` writes one (ROOT/2011_09_26/2011_09_26_drive_0001_sync and the
date's calibration) for trying the KITTI tools without KITTI: convert it with
space-clip-kitti2bag, replay it with kitti_replay.launch.py.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from space_clip_ros.errors import ConfigError, run_tool
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.atomic import atomic_dir
from space_clip_ros.kitti.calibration import (
    CAM_TO_CAM,
    VELO_TO_CAM,
    KittiCalibration,
    load_calibration,
    load_imu_to_velo,
)
from space_clip_ros.kitti.drive import VELODYNE, camera_folder
from space_clip_ros.kitti.generated_oxts import add_straight_drive, write_imu_to_velo
from space_clip_ros.kitti.oxts import rotation
from space_clip_ros.kitti.timestamps import format_timestamp, parse_timestamp
from space_clip_ros.scenes import lidar
from space_clip_ros.scenes.street import DriveConfig, SyntheticDrive, render

# 2011_09_26 calibration at full resolution; the projections are scaled to the requested size.
_FULL_SIZE = (1242, 375)
_R_RECT_00 = [
    9.999239e-01,
    9.837760e-03,
    -7.445048e-03,
    -9.869795e-03,
    9.999421e-01,
    -4.278459e-03,
    7.402527e-03,
    4.351614e-03,
    9.999631e-01,
]
_P_RECT = {
    0: [7.215377e02, 0, 6.095593e02, 0, 0, 7.215377e02, 1.728540e02, 0, 0, 0, 1, 0],
    1: [7.215377e02, 0, 6.095593e02, -3.875744e02, 0, 7.215377e02, 1.728540e02, 0, 0, 0, 1, 0],
    2: [
        7.215377e02,
        0,
        6.095593e02,
        4.485728e01,
        0,
        7.215377e02,
        1.728540e02,
        2.163791e-01,
        0,
        0,
        1,
        2.745884e-03,
    ],
    3: [
        7.215377e02,
        0,
        6.095593e02,
        -3.395242e02,
        0,
        7.215377e02,
        1.728540e02,
        2.199936e00,
        0,
        0,
        1,
        2.729905e-03,
    ],
}
_VELO_R = [
    7.533745e-03,
    -9.999714e-01,
    -6.166020e-04,
    1.480249e-02,
    7.280733e-04,
    -9.998902e-01,
    9.998621e-01,
    7.523790e-03,
    1.480755e-02,
]
_VELO_T = [-4.069766e-03, -7.631618e-02, -2.717806e-01]
FIRST_STAMP = "2011-09-26 13:02:25.964389445"
PERIOD_NS = 103_000_000  # KITTI's 10 Hz, with the few-ms jitter real drives show
OXTS_YAW = 0.3  # the car's heading in the generated OXTS packets (radians from east)
# The scans of a generated drive: the HDL-64E's 64 beams, one column per degree (~20k points a
# scan instead of ~120k: small files and fast tests, still denser than a small image's pixels).
GENERATED_LIDAR = lidar.LidarModel(azimuth_step_deg=1.0)
_DISTORTION = [-3.728755e-01, 2.037299e-01, 2.219027e-03, 1.383707e-03, -7.233722e-02]


def _numbers(values) -> str:
    return " ".join(f"{float(v):.6e}" for v in np.ravel(values))


def scaled_projection(camera: int, width: int, height: int) -> np.ndarray:
    """P_rect_0i of the real rig for an image resized from 1242x375 to width x height.

    Scaled with the pixel-area convention of geometry.Intrinsics.scaled, so K of the result is
    exactly KITTI_INTRINSICS.scaled(width, height) and P's 4th column (the camera's offset
    along the rig) is scaled with it.
    """
    p = np.array(_P_RECT[camera], dtype=np.float64).reshape(3, 4)
    sx, sy = width / _FULL_SIZE[0], height / _FULL_SIZE[1]
    resize = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return resize @ p


def write_calibration(calib_dir: Path, width: int, height: int) -> None:
    """calib_cam_to_cam.txt, calib_velo_to_cam.txt and calib_imu_to_velo.txt, as KITTI's."""
    calib_dir.mkdir(parents=True, exist_ok=True)
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for cam in range(4):
        k = scaled_projection(cam, width, height)[:, :3]
        lines += [
            f"S_0{cam}: {_numbers([1392, 512])}",
            f"K_0{cam}: {_numbers(k)}",
            f"D_0{cam}: {_numbers(_DISTORTION)}",
            f"R_0{cam}: {_numbers(np.eye(3))}",
            f"T_0{cam}: {_numbers([0.0 - 0.18 * cam, 0, 0])}",
            f"S_rect_0{cam}: {_numbers([width, height])}",
            f"R_rect_0{cam}: {_numbers(_R_RECT_00 if cam == 0 else np.eye(3))}",
            f"P_rect_0{cam}: {_numbers(scaled_projection(cam, width, height))}",
        ]
    (calib_dir / CAM_TO_CAM).write_text("\n".join(lines) + "\n")
    (calib_dir / VELO_TO_CAM).write_text(
        "calib_time: 15-Mar-2012 11:37:16\n"
        f"R: {_numbers(_VELO_R)}\nT: {_numbers(_VELO_T)}\n"
        f"delta_f: {_numbers([0, 0])}\ndelta_c: {_numbers([0, 0])}\n"
    )
    write_imu_to_velo(calib_dir)


@dataclass(frozen=True)
class StreetRig:
    """The KITTI rig driving down the procedural street: where each sensor is in frame i.

    The street's world frame is camera 2's optical frame at frame 0 (the street renders camera
    2); the Velodyne and camera 3 sit where the calibration puts them relative to camera 2.
    """

    street: SyntheticDrive
    calibration: KittiCalibration

    def velodyne_pose(self, index: int) -> np.ndarray:
        """T_world_velodyne of frame index."""
        return self.street.pose(index) @ self.calibration.camera_from_velodyne(2)

    def camera_pose(self, camera: int, index: int) -> np.ndarray:
        """T_world_camera of camera 2 or 3 in frame index."""
        velo_from_camera = np.linalg.inv(self.calibration.camera_from_velodyne(camera))
        return self.velodyne_pose(index) @ velo_from_camera

    def intrinsics(self, camera: int) -> Intrinsics:
        return self.calibration.intrinsics(camera)

    def render(self, camera: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8, exact z-depth float32, 0 = sky) of camera 2 or 3 in frame index."""
        scene = self.street.scene(index)
        return render(scene, self.intrinsics(camera), self.camera_pose(camera, index))

    def scan(self, index: int, model: lidar.LidarModel = GENERATED_LIDAR) -> np.ndarray:
        """(N, 4) float32 Velodyne returns of frame index, in the Velodyne frame."""
        scene = self.street.scene(index, behind=model.max_range)
        return lidar.scan(scene, self.velodyne_pose(index), model)


def street_rig(calib_dir: Path | str, seed: int = 0) -> StreetRig:
    """The rig of a generated drive, from the calibration written in calib_dir (the date folder).

    Reading the calibration back (rather than using the numbers that were written) makes the
    rendered pixels agree with exactly what a reader of the drive gets.
    """
    calibration = load_calibration(calib_dir)
    width, height = calibration.camera(2).width, calibration.camera(2).height
    street = SyntheticDrive(
        DriveConfig(width=width, height=height, seed=seed, rate_hz=1e9 / PERIOD_NS)
    )
    return StreetRig(street, calibration)


def write_synthetic_drive(
    root: Path | str,
    frames: int = 3,
    width: int = 124,
    height: int = 38,
    date: str = "2011_09_26",
    drive: int = 1,
    seed: int = 0,
    lidar_model: lidar.LidarModel = GENERATED_LIDAR,
    oxts: bool = True,
) -> Path:
    """Write <root>/<date>/<date>_drive_<nnnn>_sync and the date's calibration; return the drive.

    `seed` picks the street (and the timestamp jitter); rebuild the same rig with
    street_rig(<root>/<date>, seed) to get the exact depth behind each image. With `oxts`, the
    drive gets oxts/ packets of a car moving as the rig does (straight along camera 2's optical
    axis at the street's speed, level), so its bag has /tf world -> base_link under which every
    frame's depth lands on one street.
    """
    rng = np.random.default_rng(seed)
    calib_dir = Path(root) / date
    drive_dir = calib_dir / f"{date}_drive_{drive:04d}_sync"
    write_calibration(calib_dir, width, height)
    rig = street_rig(calib_dir, seed)

    start = parse_timestamp(FIRST_STAMP)
    jitter = rng.integers(0, 2_000_000, frames)
    camera_stamps = [start + i * PERIOD_NS + int(jitter[i]) for i in range(frames)]
    for cam in (2, 3):
        folder = drive_dir / camera_folder(cam)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "timestamps.txt").write_text(
            "".join(format_timestamp(s) + "\n" for s in camera_stamps)
        )
        for i in range(frames):
            rgb, _ = rig.render(cam, i)
            Image.fromarray(rgb).save(folder / "data" / f"{i:010d}.png")

    velo = drive_dir / VELODYNE
    (velo / "data").mkdir(parents=True, exist_ok=True)
    scan_stamps = [s - 4_000_000 for s in camera_stamps]  # mid-scan, ~4 ms before the shutter
    for name, offset in (
        ("timestamps.txt", 0),
        ("timestamps_start.txt", -50_000_000),
        ("timestamps_end.txt", 50_000_000),
    ):
        (velo / name).write_text("".join(format_timestamp(s + offset) + "\n" for s in scan_stamps))
    for i in range(frames):
        rig.scan(i, lidar_model).tofile(velo / "data" / f"{i:010d}.bin")
    if oxts:
        add_straight_drive(
            drive_dir,
            speed_mps=rig.street.config.speed_mps,
            yaw=OXTS_YAW,
            seed=seed,
            attitude_noise=0.0,
            direction_enu=camera_axis_enu(calib_dir, OXTS_YAW),
        )
    return drive_dir


def camera_axis_enu(calib_dir: Path, yaw: float) -> np.ndarray:
    """Camera 2's optical axis in east-north-up when the OXTS unit is level at heading `yaw`.

    The street moves the camera along its own optical axis; OXTS packets moving the car along
    this direction give /tf poses under which every frame's depth lands on the same street
    (the rig's calibration tilts the camera about 1 degree from the IMU's forward axis).
    """
    camera_from_imu = load_calibration(calib_dir).camera_from_velodyne(2) @ load_imu_to_velo(
        calib_dir
    )
    return rotation(0.0, 0.0, yaw) @ camera_from_imu[:3, :3].T @ np.array([0.0, 0.0, 1.0])


PROG = "space-clip-generate-drive"
DATE = "2011_09_26"  # the calibration written is that day's
MIN_SIZE = 8  # scenes.street's smallest image
MAX_SIZE = 4 * _FULL_SIZE[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a KITTI raw synced drive rendered from the procedural street (images "
        "of both colour cameras, Velodyne scans, OXTS packets, calibration, timestamps), for "
        "trying space-clip-kitti2bag and kitti_replay.launch.py without KITTI. Its depth is "
        "exact, so the LiDAR accuracy of a trained model is meaningful on it.",
        epilog=f"example: {PROG} ~/kitti_generated && space-clip-kitti2bag "
        f"~/kitti_generated/{DATE}/{DATE}_drive_0001_sync -o generated_bag",
    )
    parser.add_argument("root", type=Path, help=f"folder to write <root>/{DATE}/... into")
    parser.add_argument("--frames", type=int, default=20, help="frames at 10 Hz (default 20)")
    parser.add_argument("--width", type=int, default=_FULL_SIZE[0], help="image width (1242)")
    parser.add_argument("--height", type=int, default=_FULL_SIZE[1], help="image height (375)")
    parser.add_argument("--drive", type=int, default=1, help="drive number (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="which street (default 0)")
    parser.add_argument(
        "--no-oxts", action="store_true", help="no oxts/ folder (a bag without /tf world)"
    )
    return parser


def _check(args: argparse.Namespace) -> None:
    limits = {
        "--frames": (args.frames, 1, 100_000),
        "--width": (args.width, MIN_SIZE, MAX_SIZE),
        "--height": (args.height, MIN_SIZE, MAX_SIZE),
        "--drive": (args.drive, 0, 9999),
    }
    for name, (value, low, high) in limits.items():
        if not low <= value <= high:
            raise ConfigError(
                f"{value} is outside {low}..{high}", field=name, fix=f"pass {low}..{high}"
            )


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check(args)
    root = args.root.expanduser()
    # The date folder is written whole under a temporary name and renamed when complete, so an
    # existing one (real KITTI calibration, say) is never overwritten and an interrupted run
    # leaves nothing.
    with atomic_dir(root / DATE, exists_fix="pass another root folder") as date_dir:
        write_synthetic_drive(
            date_dir.parent,
            frames=args.frames,
            width=args.width,
            height=args.height,
            date=DATE,
            drive=args.drive,
            seed=args.seed,
            oxts=not args.no_oxts,
        )
    drive_dir = root / DATE / f"{DATE}_drive_{args.drive:04d}_sync"
    print(f"wrote {drive_dir} ({args.frames} frames, {args.width}x{args.height})")
    print(f"next: space-clip-kitti2bag {drive_dir} -o {drive_dir.name}_bag")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
