"""KITTI raw calibration (calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt).

KITTI chains three steps to take a Velodyne point into colour camera i's image:
  x = P_rect_0i @ R_rect_00 @ [R | T]_velo_to_cam @ X_velo
([R | T] lands in the unrectified reference camera 0, R_rect_00 rotates into the rectified
frame shared by all four cameras, and P_rect_0i = K_i [I | t_i] adds camera i's offset along the
rig). The synced images are already rectified, so the optical frame of camera i is the
rectified frame shifted by t_i; `camera_from_velodyne` returns exactly that rigid transform and
`intrinsics` returns K_i, so that geometry.project reproduces the devkit's projection exactly.
calib_imu_to_velo.txt holds the same [R | T] shape, taking OXTS (IMU) points into the Velodyne
frame; only the OXTS conversion needs it, so it is read on its own (`load_imu_to_velo`).

Every problem is reported as a KittiFormatError naming the file and the field: a calibration
that loads is finite, its rotations are rotations and its projections can be inverted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from space_clip_ros.errors import quote
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.kitti.errors import KittiFormatError

CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"
IMU_TO_VELO = "calib_imu_to_velo.txt"

# Fields that hold free text (a date) rather than numbers.
_TEXT_FIELDS = {"calib_time"}
# KITTI's rotations are orthonormal to ~1e-6; anything further off is a damaged file.
_ROTATION_TOLERANCE = 1e-3
_REDOWNLOAD = "re-extract the date's calibration from KITTI's raw-data calib zip"


def parse_calib_file(path: Path | str) -> dict[str, np.ndarray]:
    """Every 'key: v1 v2 ...' line as a float64 vector; calib_time is skipped (free text)."""
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            "calibration file not found; KITTI keeps it in the date folder beside the drive "
            "(e.g. 2011_09_26/calib_cam_to_cam.txt)",
            source=path,
            fix="pass --calib-dir if it lives elsewhere",
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise KittiFormatError(
            f"not a text file (byte {err.start} is not UTF-8)", source=path, fix=_REDOWNLOAD
        ) from None
    fields: dict[str, np.ndarray] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise KittiFormatError(f"{path}:{number}: expected 'name: values', got {quote(line)}")
        if key in _TEXT_FIELDS:
            continue
        try:
            vector = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            raise KittiFormatError(
                f"{path}:{number}: field {key!r} holds a non-number: {quote(values.strip())}"
            ) from None
        if not np.isfinite(vector).all():
            raise KittiFormatError(
                f"{path}:{number}: field {key!r} holds NaN or infinity", fix=_REDOWNLOAD
            )
        fields[key] = vector
    return fields


def _field(
    fields: dict[str, np.ndarray], path: Path, key: str, shape: tuple[int, ...]
) -> np.ndarray:
    if key not in fields:
        raise KittiFormatError(
            f"field {key!r} is missing", source=path, fix="is this the right calibration file?"
        )
    value = fields[key]
    if value.size != math.prod(shape):
        raise KittiFormatError(
            f"field {key!r} has {value.size} values, expected {math.prod(shape)}", source=path
        )
    return value.reshape(shape)


def _rotation(fields: dict[str, np.ndarray], path: Path, key: str) -> np.ndarray:
    """A 3x3 field that must be a proper rotation (orthonormal, determinant +1)."""
    r = _field(fields, path, key, (3, 3))
    if (
        np.abs(r @ r.T - np.eye(3)).max() > _ROTATION_TOLERANCE
        or abs(np.linalg.det(r) - 1) > _ROTATION_TOLERANCE
    ):
        raise KittiFormatError(
            f"field {key!r} is not a rotation matrix (singular, scaled or a reflection; "
            f"determinant {np.linalg.det(r):.6g})",
            source=path,
            fix=_REDOWNLOAD,
        )
    return r


def _rigid_transform(path: Path) -> np.ndarray:
    """4x4 [R | T] of a calib_*_to_*.txt file (fields R and T)."""
    fields = parse_calib_file(path)
    transform = np.eye(4)
    transform[:3, :3] = _rotation(fields, path, "R")
    transform[:3, 3] = _field(fields, path, "T", (3,))
    return transform


@dataclass(frozen=True)
class RectifiedCamera:
    """One camera after rectification: its 3x4 projection matrix and image size (S_rect)."""

    projection: np.ndarray  # P_rect_0i, 3x4
    width: int
    height: int

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics.from_matrix(self.projection, self.width, self.height)

    @property
    def offset(self) -> np.ndarray:
        """t_i with P = K [I | t]: the camera's offset in the rectified reference frame."""
        return np.linalg.solve(self.projection[:, :3], self.projection[:, 3])


@dataclass(frozen=True)
class KittiCalibration:
    """What the converter and the LiDAR projection need from one date's calibration folder."""

    velo_to_cam: np.ndarray  # 4x4, Velodyne -> unrectified camera 0 ([R | T] of velo_to_cam)
    rect_00: np.ndarray  # 3x3 R_rect_00
    cameras: dict[int, RectifiedCamera]
    cam_to_cam_path: Path = Path(CAM_TO_CAM)  # named in errors about a camera the file lacks

    def camera(self, index: int) -> RectifiedCamera:
        if index not in self.cameras:
            raise KittiFormatError(
                f"field 'P_rect_{index:02d}' is missing, so camera {index} has no calibration "
                f"(the file calibrates cameras {sorted(self.cameras)})",
                source=self.cam_to_cam_path,
                fix="use the calib_cam_to_cam.txt of this drive's date",
            )
        return self.cameras[index]

    def intrinsics(self, index: int) -> Intrinsics:
        return self.camera(index).intrinsics

    def camera_from_velodyne(self, index: int) -> np.ndarray:
        """4x4 transform taking Velodyne points into camera `index`'s (rectified) optical frame."""
        rect = np.eye(4)
        rect[:3, :3] = self.rect_00
        shift = np.eye(4)
        shift[:3, 3] = self.camera(index).offset
        return shift @ rect @ self.velo_to_cam


def _rectified_camera(fields: dict[str, np.ndarray], path: Path, index: int) -> RectifiedCamera:
    p_key, s_key = f"P_rect_{index:02d}", f"S_rect_{index:02d}"
    projection = _field(fields, path, p_key, (3, 4))
    width, height = _field(fields, path, s_key, (2,))
    if projection[0, 0] <= 0 or projection[1, 1] <= 0:
        raise KittiFormatError(
            f"field {p_key!r} has a non-positive focal length", source=path, fix=_REDOWNLOAD
        )
    if abs(np.linalg.det(projection[:, :3])) < 1e-12:
        raise KittiFormatError(
            f"field {p_key!r} is singular (its left 3x3 block has no inverse)",
            source=path,
            fix=_REDOWNLOAD,
        )
    if width < 1 or height < 1:
        raise KittiFormatError(
            f"field {s_key!r} gives a non-positive image size", source=path, fix=_REDOWNLOAD
        )
    return RectifiedCamera(projection, int(round(width)), int(round(height)))


def load_calibration(calib_dir: Path | str) -> KittiCalibration:
    """Read calib_cam_to_cam.txt and calib_velo_to_cam.txt from a KITTI date folder."""
    calib_dir = Path(calib_dir)
    cam_path = calib_dir / CAM_TO_CAM
    cam = parse_calib_file(cam_path)
    velo_to_cam = _rigid_transform(calib_dir / VELO_TO_CAM)
    cameras = {
        index: _rectified_camera(cam, cam_path, index)
        for index in range(4)
        if f"P_rect_{index:02d}" in cam
    }
    if not cameras:
        raise KittiFormatError(
            "no P_rect_0* field",
            source=cam_path,
            fix="is this a KITTI raw calib_cam_to_cam.txt?",
        )
    return KittiCalibration(velo_to_cam, _rotation(cam, cam_path, "R_rect_00"), cameras, cam_path)


def load_imu_to_velo(calib_dir: Path | str) -> np.ndarray:
    """4x4 taking OXTS/IMU points into the Velodyne frame (calib_imu_to_velo.txt's [R | T])."""
    path = Path(calib_dir) / IMU_TO_VELO
    if not path.is_file():
        raise KittiFormatError(
            "calibration file not found; the OXTS topics need it",
            source=path,
            fix="copy it from the date's calib download (or pass --calib-dir), "
            "or leave the OXTS topics out with --no-oxts",
        )
    return _rigid_transform(path)
