"""KITTI raw calibration (calib_cam_to_cam.txt, calib_velo_to_cam.txt) as numpy transforms.

KITTI chains three steps to take a Velodyne point into colour camera i's image:
  x = P_rect_0i @ R_rect_00 @ [R | T]_velo_to_cam @ X_velo
([R | T] lands in the unrectified reference camera 0, R_rect_00 rotates into the rectified
frame shared by all four cameras, and P_rect_0i = K_i [I | t_i] adds camera i's offset along the
rig). The synced images are already rectified, so the optical frame of camera i is the
rectified frame shifted by t_i; `camera_from_velodyne` returns exactly that rigid transform and
`intrinsics` returns K_i, so that geometry.project reproduces the devkit's projection exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.kitti.errors import KittiFormatError

CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"

# Fields that hold free text (a date) rather than numbers.
_TEXT_FIELDS = {"calib_time"}


def parse_calib_file(path: Path | str) -> dict[str, np.ndarray]:
    """Every 'key: v1 v2 ...' line as a float64 vector; calib_time is skipped (free text)."""
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            f"{path}: calibration file not found; KITTI keeps it in the date folder beside the "
            "drive (e.g. 2011_09_26/calib_cam_to_cam.txt), pass --calib-dir if it lives elsewhere"
        )
    fields: dict[str, np.ndarray] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise KittiFormatError(
                f"{path}:{number}: expected 'name: values', got {line.strip()!r}"
            )
        if key in _TEXT_FIELDS:
            continue
        try:
            fields[key] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            raise KittiFormatError(
                f"{path}:{number}: field {key!r} holds a non-number: {values.strip()!r}"
            ) from None
    return fields


def _field(
    fields: dict[str, np.ndarray], path: Path, key: str, shape: tuple[int, ...]
) -> np.ndarray:
    if key not in fields:
        raise KittiFormatError(
            f"{path}: field {key!r} is missing; is this the right calibration file?"
        )
    value = fields[key]
    if value.size != int(np.prod(shape)):
        raise KittiFormatError(
            f"{path}: field {key!r} has {value.size} values, expected {int(np.prod(shape))}"
        )
    return value.reshape(shape)


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

    velo_to_cam: (
        np.ndarray
    )  # 4x4, Velodyne -> unrectified camera 0 ([R | T] of calib_velo_to_cam.txt)
    rect_00: np.ndarray  # 3x3 R_rect_00
    cameras: dict[int, RectifiedCamera]

    def camera(self, index: int) -> RectifiedCamera:
        if index not in self.cameras:
            raise KeyError(f"camera {index} not in calibration (have {sorted(self.cameras)})")
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


def load_calibration(calib_dir: Path | str) -> KittiCalibration:
    """Read calib_cam_to_cam.txt and calib_velo_to_cam.txt from a KITTI date folder."""
    calib_dir = Path(calib_dir)
    cam_path = calib_dir / CAM_TO_CAM
    velo_path = calib_dir / VELO_TO_CAM
    cam = parse_calib_file(cam_path)
    velo = parse_calib_file(velo_path)

    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _field(velo, velo_path, "R", (3, 3))
    velo_to_cam[:3, 3] = _field(velo, velo_path, "T", (3,))

    cameras = {}
    for index in range(4):
        if f"P_rect_0{index}" not in cam:
            continue
        projection = _field(cam, cam_path, f"P_rect_0{index}", (3, 4))
        width, height = _field(cam, cam_path, f"S_rect_0{index}", (2,))
        if projection[0, 0] <= 0 or projection[1, 1] <= 0 or width <= 0 or height <= 0:
            raise KittiFormatError(
                f"{cam_path}: P_rect_0{index} / S_rect_0{index} give a non-positive focal length "
                "or image size"
            )
        cameras[index] = RectifiedCamera(projection, int(round(width)), int(round(height)))
    if not cameras:
        raise KittiFormatError(
            f"{cam_path}: no P_rect_0* field; is this a KITTI raw calib_cam_to_cam.txt?"
        )
    return KittiCalibration(velo_to_cam, _field(cam, cam_path, "R_rect_00", (3, 3)), cameras)
