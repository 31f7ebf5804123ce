"""KITTI OXTS (GPS/IMU) packets: parsing and the devkit's metric poses. Pure numpy, no ROS.

A synced drive's oxts/data/NNNNNNNNNN.txt holds one packet per frame: 30 space-separated values
(`FIELDS`, in the order of KITTI's raw-data readme). Angles are radians: roll positive = left side
up, pitch positive = front down, yaw 0 = east and positive counter-clockwise. Body rates and
accelerations are given along the vehicle's forward / left / up axes (wf wl wu, af al au), which
is the OXTS unit's (imu_link's) x / y / z; the accelerations include gravity (au is about +9.81
at rest), as sensor_msgs/Imu expects.

Poses follow the devkit's convertOxtsToPose: latitude / longitude go through a Mercator
projection whose scale is cos(latitude of the drive's first packet), giving metres east (x) and
north (y); altitude is z; the rotation is Rz(yaw) Ry(pitch) Rx(roll). The result is the pose of
the IMU in an east-north-up frame. The devkit then also rotates every pose into the first pose's
axes; we only subtract the first position (as pykitti does), so `world` keeps gravity along -z
and east along x: a level grid in rviz2, and identical for every frame range of one drive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from space_clip_ros.errors import quote
from space_clip_ros.kitti.errors import KittiFormatError

FIELDS = (
    "lat", "lon", "alt", "roll", "pitch", "yaw",
    "vn", "ve", "vf", "vl", "vu",
    "ax", "ay", "az", "af", "al", "au",
    "wx", "wy", "wz", "wf", "wl", "wu",
    "pos_accuracy", "vel_accuracy",
    "navstat", "numsats", "posmode", "velmode", "orimode",
)  # fmt: skip
INTEGER_FIELDS = frozenset(FIELDS[-5:])  # status codes and counts, written without decimals
EARTH_RADIUS_M = 6378137.0  # WGS84 equatorial radius, the devkit's `er`
# Values a packet can physically hold. The devkit's Mercator projection diverges at the poles
# (log(tan(0)) at -90 degrees), so they are excluded by a hair; accuracies and the satellite
# count cannot be negative (NavSatFix's covariance is pos_accuracy squared).
POLE_MARGIN_DEG = 1e-9
RANGES = {
    "lat": (-90.0 + POLE_MARGIN_DEG, 90.0 - POLE_MARGIN_DEG),
    "lon": (-180.0, 180.0),
    "pos_accuracy": (0.0, math.inf),
    "vel_accuracy": (0.0, math.inf),
    "numsats": (0.0, math.inf),
}


class OxtsPacket(NamedTuple):
    """One OXTS line; every value as a float (the last five are integer codes in the file)."""

    lat: float
    lon: float
    alt: float
    roll: float
    pitch: float
    yaw: float
    vn: float
    ve: float
    vf: float
    vl: float
    vu: float
    ax: float
    ay: float
    az: float
    af: float
    al: float
    au: float
    wx: float
    wy: float
    wz: float
    wf: float
    wl: float
    wu: float
    pos_accuracy: float
    vel_accuracy: float
    navstat: float
    numsats: float
    posmode: float
    velmode: float
    orimode: float

    def format(self) -> str:
        """The packet as a KITTI oxts line (the inverse of `parse_packet`); codes as integers."""
        return " ".join(
            str(int(v)) if name in INTEGER_FIELDS else repr(float(v))
            for name, v in zip(FIELDS, self)
        )


def parse_packet(text: str, source: Path | str = "<oxts>") -> OxtsPacket:
    """An OXTS line -> OxtsPacket; KittiFormatError naming the file and field otherwise."""
    values = text.split()
    if len(values) != len(FIELDS):
        raise KittiFormatError(
            f"{len(values)} values, expected {len(FIELDS)} ({' '.join(FIELDS)})",
            source=source,
            fix="re-extract the drive's oxts folder",
        )
    numbers = []
    for name, value in zip(FIELDS, values):
        try:
            number = float(value)
        except ValueError:
            raise KittiFormatError(
                f"field {name!r} holds a non-number: {quote(value)}", source=source
            ) from None
        if not math.isfinite(number):
            raise KittiFormatError(f"field {name!r} holds NaN or infinity", source=source)
        low, high = RANGES.get(name, (-math.inf, math.inf))
        if not low <= number <= high:
            raise KittiFormatError(
                f"field {name!r} is {number:g}, outside {low:g}..{high:g}",
                source=source,
                fix="correct the value or re-extract the drive's oxts folder",
            )
        numbers.append(number)
    return OxtsPacket(*numbers)


def load_packet(path: Path | str) -> OxtsPacket:
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError("OXTS packet not found", source=path, fix="re-extract the drive")
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise KittiFormatError(
            "not a text file", source=path, fix="re-extract the drive's oxts folder"
        ) from None
    return parse_packet(text, path)


def mercator_scale(lat_deg: float) -> float:
    """The devkit's latToScale: the Mercator scale that makes metres true at this latitude."""
    return math.cos(math.radians(lat_deg))


def mercator(lat_deg: float, lon_deg: float, scale: float) -> tuple[float, float]:
    """The devkit's latlonToMercator: (east, north) metres at `scale`."""
    east = scale * math.radians(lon_deg) * EARTH_RADIUS_M
    north = scale * EARTH_RADIUS_M * math.log(math.tan(math.pi * (90.0 + lat_deg) / 360.0))
    return east, north


def rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll): the IMU's axes in east-north-up."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class MercatorOrigin:
    """The first packet's projection scale and position: `world`'s origin."""

    scale: float
    east: float
    north: float
    alt: float

    @classmethod
    def from_packet(cls, first: OxtsPacket) -> MercatorOrigin:
        scale = mercator_scale(first.lat)
        east, north = mercator(first.lat, first.lon, scale)
        return cls(scale, east, north, first.alt)

    def pose(self, packet: OxtsPacket) -> np.ndarray:
        """4x4 pose of the IMU in `world` (east-north-up axes, origin at the first packet)."""
        east, north = mercator(packet.lat, packet.lon, self.scale)
        pose = np.eye(4)
        pose[:3, :3] = rotation(packet.roll, packet.pitch, packet.yaw)
        pose[:3, 3] = [east - self.east, north - self.north, packet.alt - self.alt]
        return pose
