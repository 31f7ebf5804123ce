"""Which camera took the images: the flags of every tool that runs the model on image files.

The depth is metric only through the camera geometry the decoder was trained on, so inference
maps every image onto that camera (model/canonical_camera.py) and needs the images' intrinsics.
Camera topics bring them (CameraInfo); image files do not, so the tools take them here:
`--camera-info FILE` (a camera_calibration YAML, as ROS camera drivers and
`ros2 run camera_calibration cameracalibrator` write it) or `--focal-length PX` (principal
point at the image centre). Without either the estimator assumes the training camera's focal
length and says so, naming these flags (FIX).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from space_clip_ros.errors import ConfigError
from space_clip_ros.geometry import Intrinsics

FIX = (
    "pass the images' camera: --camera-info FILE (a camera_calibration YAML) or --focal-length "
    "PX (principal point at the image centre)"
)


@dataclass(frozen=True)
class CameraOptions:
    camera: Optional[Intrinsics] = None  # from --camera-info, at its own image size
    focal_length: Optional[float] = None  # --focal-length, pixels at each image's size

    @staticmethod
    def add_to(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("camera (depth is metric for this camera)")
        given = group.add_mutually_exclusive_group()
        given.add_argument(
            "--camera-info",
            type=Path,
            metavar="FILE",
            help="the images' calibration: a camera_calibration YAML (image_width, "
            "image_height, camera_matrix, projection_matrix); P is read, K where P is unset",
        )
        given.add_argument(
            "--focal-length",
            type=float,
            metavar="PX",
            help="the images' focal length in pixels (at their size), principal point at the "
            "centre: for a camera known only by its field of view",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "CameraOptions":
        focal = args.focal_length
        if focal is not None and not 0 < focal < 1e6:
            raise ConfigError(f"is {focal}", field="--focal-length", fix="give pixels, > 0")
        camera = read_camera_info(args.camera_info) if args.camera_info else None
        return cls(camera, focal)

    def intrinsics_for(self, width: int, height: int) -> Optional[Intrinsics]:
        """The intrinsics of a width x height image, or None (the estimator then assumes the
        training camera and warns, naming FIX)."""
        if self.camera is not None:
            if (self.camera.width, self.camera.height) != (width, height):
                raise ConfigError(
                    f"calibrates {self.camera.width}x{self.camera.height} images, this image is "
                    f"{width}x{height}",
                    field="--camera-info",
                    fix="pass the calibration of the camera and size these images come from",
                )
            return self.camera
        if self.focal_length is not None:
            f = self.focal_length
            return Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
        return None


def read_camera_info(path: Path) -> Intrinsics:
    """The intrinsics in a camera_calibration YAML file (the format camera_info_manager reads)."""
    from space_clip_ros.io.msg_arrays import camera_matrix
    from space_clip_ros.model.config import read_yaml_file

    data: Any = read_yaml_file(path, "a camera_calibration YAML (camera_info_manager's format)")

    def matrix(name: str, size: int) -> list[float]:
        value = data.get(name, {}) if isinstance(data, dict) else {}
        entries = value.get("data") if isinstance(value, dict) else None
        if entries is None and name == "projection_matrix":
            return [0.0] * size  # optional: K is read instead
        if not (isinstance(entries, list) and len(entries) == size):
            raise ConfigError(
                f"has no {size} numbers in {name}.data", source=path, field=name,
                fix="use the YAML camera_calibration writes",
            )  # fmt: skip
        return [float(v) for v in entries]

    k, p = matrix("camera_matrix", 9), matrix("projection_matrix", 12)
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
        matrix_used, _ = camera_matrix(argparse.Namespace(k=k, p=p))
        return Intrinsics.from_matrix(matrix_used, width, height)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"is not a usable calibration ({exc})", source=path,
            fix="give image_width, image_height and a camera_matrix with positive focal lengths",
        ) from exc  # fmt: skip
