"""OXTS files in KITTI's raw format for a generated drive: a straight drive at constant speed.

Adds what a real synced drive has for its GPS/IMU to a drive folder (written by
generated_drive or by hand): oxts/timestamps.txt, oxts/data/NNNNNNNNNN.txt (30 values a line) and
the date's calib_imu_to_velo.txt (the real 2011_09_26 values). The positions are produced by
inverting the devkit's Mercator projection, so a reader that follows the devkit recovers the
trajectory; tests check that against distances on the sphere, which do not depend on it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from space_clip_ros.kitti.calibration import IMU_TO_VELO
from space_clip_ros.kitti.drive import OXTS, camera_folder
from space_clip_ros.kitti.oxts import (
    EARTH_RADIUS_M,
    OxtsPacket,
    mercator,
    mercator_scale,
    rotation,
)
from space_clip_ros.kitti.timestamps import format_timestamp, load_timestamps

# Where 2011_09_26 drives start (Karlsruhe), and the rig's real IMU -> Velodyne calibration.
KARLSRUHE = (49.011, 8.4235, 112.0)
IMU_TO_VELO_R = [
    9.999976e-01, 7.553071e-04, -2.035826e-03,
    -7.854027e-04, 9.998898e-01, -1.482298e-02,
    2.024406e-03, 1.482454e-02, 9.998881e-01,
]  # fmt: skip
IMU_TO_VELO_T = [-8.086759e-01, 3.195559e-01, -7.997231e-01]
GRAVITY = 9.81
OXTS_LAG_NS = 1_000_000  # real drives stamp OXTS a few ms away from the images


def inverse_mercator(east: float, north: float, scale: float) -> tuple[float, float]:
    """(lat, lon) in degrees of Mercator metres at `scale` (the inverse of oxts.mercator)."""
    lon = math.degrees(east / (scale * EARTH_RADIUS_M))
    lat = math.degrees(2.0 * math.atan(math.exp(north / (scale * EARTH_RADIUS_M)))) - 90.0
    return lat, lon


def straight_drive(
    stamps_ns: list[int],
    speed_mps: float = 10.0,
    yaw: float = 0.3,
    start: tuple[float, float, float] = KARLSRUHE,
    seed: int = 0,
    attitude_noise: float = 0.01,
    direction_enu: Sequence[float] | None = None,
) -> list[OxtsPacket]:
    """Packets of a car heading `yaw` (0 = east) and moving straight at constant speed, along
    `direction_enu` (a unit vector; default: level, along the heading).

    Roll and pitch get seeded noise of `attitude_noise` radians, rates and accelerations small
    noise too (a level, straight drive would leave half the fields zero and hide swapped fields);
    the path itself is exactly straight. A drive that must agree with rendered frames passes
    attitude_noise=0 and the direction its camera moves in.
    """
    rng = np.random.default_rng(seed)
    lat0, lon0, alt0 = start
    scale = mercator_scale(lat0)
    east0, north0 = mercator(lat0, lon0, scale)
    direction = np.array(
        direction_enu if direction_enu is not None else (math.cos(yaw), math.sin(yaw), 0.0)
    )
    packets = []
    for stamp in stamps_ns:
        travelled = speed_mps * (stamp - stamps_ns[0]) * 1e-9
        east, north, up = travelled * direction
        lat, lon = inverse_mercator(east0 + east, north0 + north, scale)
        roll, pitch = rng.normal(0, attitude_noise, 2)
        forward, left, upward = rotation(roll, pitch, yaw).T @ (speed_mps * direction)
        wf, wl, wu = rng.normal(0, 0.02, 3)
        af, al, au = rng.normal(0, 0.1, 3) + [0.0, 0.0, GRAVITY]
        packets.append(
            OxtsPacket(
                lat=lat,
                lon=lon,
                alt=alt0 + up,
                roll=roll,
                pitch=pitch,
                yaw=yaw,
                vn=speed_mps * direction[1],
                ve=speed_mps * direction[0],
                vf=forward,
                vl=left,
                vu=upward,
                ax=af,
                ay=al,
                az=au,
                af=af,
                al=al,
                au=au,
                wx=wf,
                wy=wl,
                wz=wu,
                wf=wf,
                wl=wl,
                wu=wu,
                pos_accuracy=float(rng.uniform(0.02, 0.5)),
                vel_accuracy=0.02,
                navstat=4.0,
                numsats=float(rng.integers(5, 12)),
                posmode=4.0,
                velmode=4.0,
                orimode=6.0,
            )  # fmt: skip
        )
    return packets


def write_imu_to_velo(calib_dir: Path) -> None:
    numbers = " ".join(f"{v:.6e}" for v in IMU_TO_VELO_R)
    offsets = " ".join(f"{v:.6e}" for v in IMU_TO_VELO_T)
    (calib_dir / IMU_TO_VELO).write_text(
        f"calib_time: 25-May-2012 16:47:16\nR: {numbers}\nT: {offsets}\n"
    )


def write_oxts(drive_dir: Path, packets: list[OxtsPacket], stamps_ns: list[int]) -> None:
    """oxts/timestamps.txt and one oxts/data/NNNNNNNNNN.txt per packet."""
    data = drive_dir / OXTS / "data"
    data.mkdir(parents=True, exist_ok=True)
    (drive_dir / OXTS / "timestamps.txt").write_text(
        "".join(format_timestamp(s) + "\n" for s in stamps_ns)
    )
    for index, packet in enumerate(packets):
        (data / f"{index:010d}.txt").write_text(packet.format() + "\n")


def add_straight_drive(
    drive_dir: Path | str,
    speed_mps: float = 10.0,
    yaw: float = 0.3,
    seed: int = 0,
    attitude_noise: float = 0.01,
    direction_enu: Sequence[float] | None = None,
) -> tuple[list[OxtsPacket], list[int]]:
    """Give a drive folder OXTS files (one packet per left-camera frame) and the date's
    calib_imu_to_velo.txt; returns the packets and their stamps (see straight_drive)."""
    drive_dir = Path(drive_dir)
    camera_stamps = load_timestamps(drive_dir / camera_folder(2) / "timestamps.txt")
    stamps = [s - OXTS_LAG_NS for s in camera_stamps]
    packets = straight_drive(
        stamps,
        speed_mps,
        yaw,
        seed=seed,
        attitude_noise=attitude_noise,
        direction_enu=direction_enu,
    )
    write_oxts(drive_dir, packets, stamps)
    write_imu_to_velo(drive_dir.parent)
    return packets, stamps
