"""A KITTI raw synced drive on disk: frame stamps, rectified colour images and Velodyne scans.

Layout (as unpacked from the KITTI raw downloads):
  <date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
  <date>/<date>_drive_<nnnn>_sync/image_02/{timestamps.txt, data/0000000000.png, ...}
                                 /image_03/...            (right colour camera)
                                 /velodyne_points/{timestamps.txt, data/0000000000.bin, ...}
                                 /oxts/{timestamps.txt, data/0000000000.txt, ...}  (GPS/IMU)
A .bin scan is a flat array of float32 (x, y, z, reflectance) in the Velodyne frame.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from space_clip_ros.kitti.calibration import (
    KittiCalibration,
    load_calibration,
    load_imu_to_velo,
)
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.oxts import OxtsPacket, load_packet
from space_clip_ros.kitti.timestamps import StampFile, read_timestamps

VELODYNE = "velodyne_points"
OXTS = "oxts"
POINT_FIELDS = 4  # x, y, z, reflectance


def camera_folder(camera: int) -> str:
    return f"image_{camera:02d}"


class KittiDrive:
    """Lazy access to one synced drive; nothing but timestamps is read until asked for."""

    def __init__(self, drive_dir: Path | str, calib_dir: Path | str | None = None) -> None:
        self.drive_dir = Path(drive_dir)
        if not self.drive_dir.is_dir():
            raise KittiFormatError(
                "drive folder not found (expected <date>/<date>_drive_NNNN_sync)",
                source=self.drive_dir,
            )
        self.calib_dir = Path(calib_dir) if calib_dir is not None else self.drive_dir.parent
        self._stamp_cache: dict[str, StampFile] = {}

    @property
    def name(self) -> str:
        return self.drive_dir.name

    @cached_property
    def calibration(self) -> KittiCalibration:
        return load_calibration(self.calib_dir)

    @cached_property
    def imu_to_velo(self) -> np.ndarray:
        """4x4 taking IMU (OXTS) points into the Velodyne frame; needed for the OXTS poses only."""
        return load_imu_to_velo(self.calib_dir)

    def has_stream(self, stream: str) -> bool:
        return (self.drive_dir / stream).is_dir()

    def data_files(self, stream: str) -> int:
        """How many frame files (NNNNNNNNNN.*) `stream`'s data/ folder holds, to check against
        its timestamps; other files (a desktop's .DS_Store) are not frames."""
        data = self.drive_dir / stream / "data"
        return sum(1 for p in data.iterdir() if p.stem.isdigit()) if data.is_dir() else 0

    def stamp_file(self, stream: str) -> StampFile:
        """`stream`'s timestamps.txt as read: stamps with their line numbers (for messages)."""
        if stream not in self._stamp_cache:
            self._stamp_cache[stream] = read_timestamps(self.drive_dir / stream / "timestamps.txt")
        return self._stamp_cache[stream]

    def stamps(self, stream: str) -> list[int]:
        """Nanosecond stamps of `stream` ('image_02', 'velodyne_points', ...), one per frame."""
        return self.stamp_file(stream).stamps

    def __len__(self) -> int:
        """Frames in the drive, counted by the left colour camera's timestamps."""
        return len(self.stamps(camera_folder(2)))

    def frame_path(self, stream: str, index: int, suffix: str) -> Path:
        return self.drive_dir / stream / "data" / f"{index:010d}{suffix}"

    def image(self, camera: int, index: int) -> np.ndarray:
        """H x W x 3 uint8 RGB image of camera 2 or 3 (rectified, as shipped)."""
        path = self.frame_path(camera_folder(camera), index, ".png")
        if not path.is_file():
            raise KittiFormatError(
                f"frame {index} is missing from the drive (timestamps list {len(self)} frames)",
                source=path,
            )
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as err:
            raise KittiFormatError(f"{path}: not a readable image ({err})") from None

    def oxts(self, index: int) -> OxtsPacket:
        """The GPS/IMU packet of frame `index` (oxts/data/NNNNNNNNNN.txt)."""
        return load_packet(self.frame_path(OXTS, index, ".txt"))

    def scan(self, index: int) -> np.ndarray:
        """N x 4 float32 (x, y, z, reflectance) Velodyne scan in the Velodyne frame."""
        path = self.frame_path(VELODYNE, index, ".bin")
        if not path.is_file():
            raise KittiFormatError(f"{path}: frame {index} is missing from the drive")
        raw = path.read_bytes()
        row_bytes = POINT_FIELDS * 4
        if len(raw) % row_bytes:
            raise KittiFormatError(
                f"{path}: {len(raw)} bytes is not a whole number of {row_bytes}-byte points (x, "
                "y, z, reflectance float32); the file is truncated, re-extract it"
            )
        return np.frombuffer(raw, dtype="<f4").reshape(-1, POINT_FIELDS)
