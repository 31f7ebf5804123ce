"""A small synthetic drive in KITTI raw's exact on-disk layout, for tests and the offline demo.

Real KITTI data can not be downloaded on every machine; this writes the same files (calibration
text with the real field names and the 2011_09_26 values, scaled to a small image; timestamp
files; PNG images; float32 .bin scans) so the whole chain (reader -> bag -> replay -> node ->
accuracy) runs anywhere. The scene is a flat road and a wall 20 m ahead, seen by the Velodyne.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from space_clip_ros.kitti.calibration import CAM_TO_CAM, VELO_TO_CAM
from space_clip_ros.kitti.drive import VELODYNE, camera_folder
from space_clip_ros.kitti.timestamps import format_timestamp, parse_timestamp

# 2011_09_26 calibration (full-resolution values; the projections are scaled to the requested size).
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


def _numbers(values) -> str:
    return " ".join(f"{float(v):.6e}" for v in np.ravel(values))


def scaled_projection(camera: int, width: int, height: int) -> np.ndarray:
    """P_rect_0i of the real rig for an image resized from 1242x375 to width x height."""
    p = np.array(_P_RECT[camera], dtype=np.float64).reshape(3, 4)
    p[0] *= width / _FULL_SIZE[0]
    p[1] *= height / _FULL_SIZE[1]
    return p


def write_calibration(calib_dir: Path, width: int, height: int) -> None:
    """calib_cam_to_cam.txt, calib_velo_to_cam.txt and calib_imu_to_velo.txt, field for field as KITTI's."""
    calib_dir.mkdir(parents=True, exist_ok=True)
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for cam in range(4):
        k = scaled_projection(cam, width, height)[:, :3]
        lines += [
            f"S_0{cam}: {_numbers([1392, 512])}",
            f"K_0{cam}: {_numbers(k)}",
            f"D_0{cam}: {_numbers([-3.728755e-01, 2.037299e-01, 2.219027e-03, 1.383707e-03, -7.233722e-02])}",
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
    (calib_dir / "calib_imu_to_velo.txt").write_text(
        "calib_time: 25-May-2012 16:47:16\n"
        f"R: {_numbers([9.999976e-01, 7.553071e-04, -2.035826e-03, -7.854027e-04, 9.998898e-01, -1.482298e-02, 2.024406e-03, 1.482454e-02, 9.998881e-01])}\n"
        f"T: {_numbers([-8.086759e-01, 3.195559e-01, -7.997231e-01])}\n"
    )


def synthetic_scan(rng: np.random.Generator, points: int) -> np.ndarray:
    """N x 4 float32 Velodyne returns from a road 1.73 m below the sensor and a wall 20 m ahead."""
    road = np.stack(
        [
            rng.uniform(3, 40, points // 2),
            rng.uniform(-10, 10, points // 2),
            np.full(points // 2, -1.73),
        ],
        axis=1,
    )
    wall = np.stack(
        [
            np.full(points - points // 2, 20.0),
            rng.uniform(-10, 10, points - points // 2),
            rng.uniform(-1.73, 3.0, points - points // 2),
        ],
        axis=1,
    )
    xyz = np.concatenate([road, wall])
    reflectance = rng.uniform(0, 1, (len(xyz), 1))
    return np.hstack([xyz, reflectance]).astype("<f4")


def write_synthetic_drive(
    root: Path | str,
    frames: int = 3,
    width: int = 124,
    height: int = 38,
    points: int = 2000,
    date: str = "2011_09_26",
    drive: int = 1,
    seed: int = 0,
) -> Path:
    """Write <root>/<date>/<date>_drive_<nnnn>_sync and the date's calibration; return the drive folder."""
    rng = np.random.default_rng(seed)
    calib_dir = Path(root) / date
    drive_dir = calib_dir / f"{date}_drive_{drive:04d}_sync"
    write_calibration(calib_dir, width, height)

    start = parse_timestamp(FIRST_STAMP)
    period = 103_000_000  # KITTI's 10 Hz, with the few-ms jitter real drives show
    camera_stamps = [start + i * period + int(rng.integers(0, 2_000_000)) for i in range(frames)]
    for cam in (2, 3):
        folder = drive_dir / camera_folder(cam)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "timestamps.txt").write_text(
            "".join(format_timestamp(s) + "\n" for s in camera_stamps)
        )
        for i in range(frames):
            gradient = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
            noise = rng.integers(0, 40, (height, width, 3))
            pixels = np.clip(gradient * [1.0, 0.6, 0.3] + noise + 10 * cam, 0, 255).astype(
                np.uint8
            )
            Image.fromarray(pixels).save(folder / "data" / f"{i:010d}.png")

    velo = drive_dir / VELODYNE
    (velo / "data").mkdir(parents=True, exist_ok=True)
    scan_stamps = [
        s - 4_000_000 for s in camera_stamps
    ]  # the scan's mid time, ~4 ms before the shutter
    for name, offset in (
        ("timestamps.txt", 0),
        ("timestamps_start.txt", -50_000_000),
        ("timestamps_end.txt", 50_000_000),
    ):
        (velo / name).write_text("".join(format_timestamp(s + offset) + "\n" for s in scan_stamps))
    for i in range(frames):
        synthetic_scan(rng, points).tofile(velo / "data" / f"{i:010d}.bin")
    return drive_dir
