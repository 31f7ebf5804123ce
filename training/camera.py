"""The camera record a training run writes into its checkpoints (model.camera).

The decoder learns metres at the focal length its crops show the encoder; inference maps every
input camera onto that one (space_clip_ros/model/canonical_camera.py), so the record must say
exactly how the crops were cut: the dataset frames' intrinsics (data.intrinsics, or the
dataset's own calibration, scaled to the size of its frames) and the crop pipeline of
training/datasets.py (KITTI: the KB crop,
then random crops; NYU: the valid box, then random crops; random flips). The focal-scale
augmentation divides depth by its scale, so it trains the same camera and changes nothing here.
"""

from __future__ import annotations

import math
from typing import Optional

from PIL import Image

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.model.canonical_camera import KITTI_FRAME, NYU_FRAME, crop_camera
from space_clip_ros.model.config import CameraConfig, validate
from training.config import ConfigError, DataConfig, TrainConfig
from training.datasets import DepthDataset

DATASET_FRAMES = {"kitti": KITTI_FRAME, "nyu": NYU_FRAME}


def dataset_frame(data: DataConfig, frame_size: Optional[tuple[int, int]] = None) -> Intrinsics:
    """The camera of the dataset's frames: data.intrinsics, or the dataset's calibration scaled
    to frame_size (width, height), the size of its frames (mini datasets, other KITTI dates)."""
    if data.intrinsics is not None:
        fx, fy, cx, cy, width, height = data.intrinsics
        if frame_size is not None and tuple(frame_size) != (int(width), int(height)):
            raise ConfigError(
                f"is for {int(width)}x{int(height)} frames, the first training image is "
                f"{frame_size[0]}x{frame_size[1]}",
                field="data.intrinsics",
                fix="give the intrinsics of the frames at the size they are stored",
            )
        return Intrinsics(fx, fy, cx, cy, int(width), int(height))
    frame = DATASET_FRAMES[data.dataset]
    return frame.scaled(*frame_size) if frame_size is not None else frame


def training_camera(
    data: DataConfig, frame_size: Optional[tuple[int, int]] = None
) -> CameraConfig:
    """The record for the crops training/datasets.py cuts from the dataset's frames."""
    frame = dataset_frame(data, frame_size)
    crop_h, crop_w = data.crop_size
    if data.dataset == "kitti":  # KB crop: bottom rows, centred columns (kb_crop_box)
        kb_h, kb_w = data.kb_crop
        top, left = frame.height - kb_h, (frame.width - kb_w) // 2
        box_h, box_w = kb_h, kb_w
    else:  # NYU: the valid box
        top, bottom, left, right = data.nyu_valid_box
        box_h, box_w = bottom - top, right - left
    offset = (top + (box_h - crop_h) / 2.0, left + (box_w - crop_w) / 2.0)
    source = (
        f"{data.dataset} {crop_w}x{crop_h} training crops of {frame.width}x{frame.height} frames "
        f"(fx {frame.fx:g}, fy {frame.fy:g})"
    )
    return crop_camera(frame, (crop_h, crop_w), offset, data.hflip, source)


def principal_anchor(camera: CameraConfig) -> tuple[float, float]:
    """The principal point as (height, width) fractions of a training crop, pixel edges at 0
    and 1 (canonical_view's convention): where the focal-scale zoom keeps it."""
    (height, width), (cx, cy) = camera.crop_size, camera.principal_point
    return (cy + 0.5) / height, (cx + 0.5) / width


def first_frame_size(dataset: DepthDataset) -> tuple[int, int]:
    """(width, height) of the dataset's first listed image, read from its header."""
    with Image.open(dataset.samples[0].image) as image:
        return image.size


def record_camera(
    cfg: TrainConfig, source: str, frame_size: Optional[tuple[int, int]] = None
) -> None:
    """Set cfg.model.camera to the training camera; a camera already there must be the same
    (a train_config.yaml read back), anything else is a config error: the trainer writes it."""
    derived = training_camera(cfg.data, frame_size)
    given = cfg.model.camera
    if given is not None and not _same(given, derived):
        raise ConfigError(
            f"is {given}, not the camera of the data section, {derived}",
            source=source,
            field="model.camera",
            fix="remove model.camera (the trainer writes it from data.*); to describe other "
            "frames, set data.intrinsics",
        )
    cfg.model.camera = derived
    try:
        validate(cfg.model, source)
    except ConfigError as exc:
        raise ConfigError(
            f"gives crops whose camera is impossible ({exc})",
            source=source,
            field="data.intrinsics",
            fix="give the camera of the dataset's frames, [fx, fy, cx, cy, width, height]",
        ) from exc


def _same(a: CameraConfig, b: CameraConfig) -> bool:
    numbers = zip(
        (*a.crop_size, *a.focal, *a.principal_point), (*b.crop_size, *b.focal, *b.principal_point)
    )
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for x, y in numbers)
