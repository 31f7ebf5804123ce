"""What one frame of the depth node produces, decided once before any work (no torch, no ROS).

The node reads its parameters and its subscribers once per frame into a `FramePlan`; the frame
path (space_clip_ros.depth_frame) then follows the plan and nothing else, so a parameter change
or a new subscriber mid-frame applies from the next frame, never to half of this one. Kept free
of torch so the node answers `--help` and parameter errors without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from space_clip_ros.geometry import Intrinsics


class Output(str, Enum):
    """The node's outputs, by their (relative) topic names."""

    DEPTH = "depth"
    CAMERA_INFO = "depth/camera_info"
    POINTS = "points"
    COLORIZED = "depth/colorized"


NEEDS_DEPTH = frozenset({Output.DEPTH, Output.POINTS, Output.COLORIZED})
NEEDS_CAMERA = frozenset({Output.CAMERA_INFO, Output.POINTS})


@dataclass(frozen=True)
class FrameSettings:
    """The per-frame values the node's parameters set (config/depth.yaml describes each)."""

    min_depth: float = 0.1
    max_depth: float = 80.0
    output_scale: float = 1.0
    point_decimation: int = 1
    points_rgb: bool = True
    colorize_min: float = 1.0
    colorize_max: float = 50.0


@dataclass(frozen=True)
class FramePlan:
    """What one frame produces, decided once before any work: a parameter change or a new
    subscriber mid-frame applies from the next frame, never half of this one."""

    outputs: frozenset[Output]
    settings: FrameSettings
    camera: Optional[Intrinsics] = None  # at the input image's size; POINTS needs it
    # Without `camera`: the intrinsics to map depth with (at the input size) when the user gave
    # one (default_focal_length); None assumes the training camera's, with a warning.
    assumed_camera: Optional[Intrinsics] = None

    def __post_init__(self) -> None:
        if self.outputs & NEEDS_CAMERA and self.camera is None:
            raise ValueError(
                f"{sorted(o.value for o in self.outputs & NEEDS_CAMERA)} need the camera's "
                "intrinsics; drop them from the plan when no CameraInfo matches the image"
            )

    @property
    def needs_depth(self) -> bool:
        return bool(self.outputs & NEEDS_DEPTH)
