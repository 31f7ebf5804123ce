"""Does the deployed backend/precision still predict what fp32 PyTorch does?

Why: a TensorRT engine, an fp16 path or a new ONNX Runtime build can change the depth without
any error: the scale jumping from frame to frame is what users of other depth nodes on Jetson
report most, and none of those nodes checks it. This tool runs the configured checkpoint,
backend and precision against an fp32 PyTorch reference of the same model on the built-in
synthetic street (space_clip_ros.scenes.street) or the user's images, and reports:

- AbsRel against fp32 (mean |d - d_ref| / d_ref over pixels the reference calls valid),
- the largest absolute difference in metres,
- distinct depth values against fp32's (a ratio far below 1 means terraced, quantised depth),
- per-frame scale (median of d / d_ref per frame) and its spread across frames.

It passes when AbsRel and the scale spread are within the tolerance and the distinct-value ratio
is above MIN_DISTINCT_RATIO. `space-clip-verify` (cli/verify.py) runs it from a command line
(exit 0 pass, 1 fail, 2 usage); the depth node runs the same check at configure with
`verify_on_configure` (space_clip_ros.ros.depth_node). No ROS here.

The reference is fp32 PyTorch of the very same weights: a copy of the candidate's model for a
checkpoint directory; for an .onnx graph, the PyTorch checkpoint it was exported from
(--reference) or, without one, the same graph on ONNX Runtime's CPU provider in fp32.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from space_clip_ros.errors import ConfigError, InputError
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.inference.estimator import DepthEstimator, OnnxEstimator, TorchEstimator
from space_clip_ros.io.image_decoding import (
    IMAGE_FILE_SUFFIXES,
    ImageDecodeError,
    read_image_file,
)
from space_clip_ros.io.limits import DEFAULT_MAX_FILE_PIXELS
from space_clip_ros.scenes.street import KITTI_INTRINSICS, DriveConfig, SyntheticDrive

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.01
MIN_DISTINCT_RATIO = 0.5  # bf16 depth out of a bf16 conv had 0.02 % of fp32's distinct values
DEFAULT_FRAMES = 6
DEFAULT_SIZE = (621, 188)  # half a KITTI frame: the encoder sees the same 224x224 either way

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FrameAgreement:
    name: str
    abs_rel: float
    max_abs_m: float
    distinct_ratio: float
    scale: float  # median of candidate / reference over valid pixels


@dataclass(frozen=True)
class VerifyReport:
    frames: list[FrameAgreement]
    tolerance: float
    candidate: str
    reference: str

    @property
    def abs_rel(self) -> float:
        return float(np.mean([f.abs_rel for f in self.frames]))

    @property
    def max_abs_m(self) -> float:
        return max(f.max_abs_m for f in self.frames)

    @property
    def distinct_ratio(self) -> float:
        return min(f.distinct_ratio for f in self.frames)

    @property
    def scale_spread(self) -> float:
        scales = [f.scale for f in self.frames]
        return max(scales) - min(scales)

    @property
    def problems(self) -> list[str]:
        """Why it fails, one line per criterion; empty when it passes."""
        out = []
        if not self.abs_rel <= self.tolerance:
            out.append(f"AbsRel vs fp32 {self.abs_rel:.4f} > tolerance {self.tolerance:g}")
        if not self.scale_spread <= self.tolerance:
            scales = [f.scale for f in self.frames]
            out.append(
                "scale jumps between frames: per-frame scale "
                f"{min(scales):.4f}..{max(scales):.4f} "
                f"(spread {self.scale_spread:.4f} > tolerance {self.tolerance:g})"
            )
        if not self.distinct_ratio >= MIN_DISTINCT_RATIO:
            out.append(
                f"quantised depth: {self.distinct_ratio:.1%} of fp32's distinct values "
                f"(< {MIN_DISTINCT_RATIO:.0%}); run the head in fp32 or use precision fp32"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [
            f"candidate: {self.candidate}",
            f"reference: {self.reference}",
            "| frame | AbsRel vs fp32 | max abs error (m) | distinct values vs fp32 | scale |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {f.name} | {f.abs_rel:.5f} | {f.max_abs_m:.4f} | {f.distinct_ratio:.3f} | "
            f"{f.scale:.5f} |"
            for f in self.frames
        ]
        lines.append(
            f"| all {len(self.frames)} | {self.abs_rel:.5f} | {self.max_abs_m:.4f} | "
            f"{self.distinct_ratio:.3f} (min) | spread {self.scale_spread:.5f} |"
        )
        verdict = (
            f"PASS (tolerance {self.tolerance:g})"
            if self.passed
            else "FAIL: " + "; ".join(self.problems)
        )
        return "\n".join(lines + [verdict])


def frame_agreement(name: str, depth: np.ndarray, reference: np.ndarray) -> FrameAgreement:
    valid = np.isfinite(reference) & (reference > 0) & np.isfinite(depth)
    if not valid.any():
        raise InputError(f"{name}: the fp32 reference has no valid depth to compare against")
    got, ref = depth[valid].astype(np.float64), reference[valid].astype(np.float64)
    return FrameAgreement(
        name=name,
        abs_rel=float(np.mean(np.abs(got - ref) / ref)),
        max_abs_m=float(np.max(np.abs(got - ref))),
        distinct_ratio=len(np.unique(depth[valid])) / len(np.unique(reference[valid])),
        scale=float(np.median(got / ref)),
    )


def compare(
    candidate: Predict,
    reference: Predict,
    images: Sequence[tuple[str, np.ndarray]],
    tolerance: float = DEFAULT_TOLERANCE,
    candidate_name: str = "candidate",
    reference_name: str = "fp32 PyTorch",
) -> VerifyReport:
    """Run both on every (name, HxWx3 uint8 RGB) image, in order, and compare."""
    if not images:
        raise InputError("no images to verify on", fix="give image files or synthetic frames")
    frames = [frame_agreement(name, candidate(rgb), reference(rgb)) for name, rgb in images]
    return VerifyReport(frames, tolerance, candidate_name, reference_name)


def street_camera(width: int, height: int) -> Intrinsics:
    """The camera the built-in street is rendered through, at width x height."""
    return KITTI_INTRINSICS.scaled(width, height)


def synthetic_images(
    count: int = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE
) -> list[tuple[str, np.ndarray]]:
    """Frames of the built-in street: every machine renders the same pixels."""
    drive = SyntheticDrive(DriveConfig(width=size[0], height=size[1]))
    return [(f"synthetic {f.index}", f.rgb) for f in drive.frames(count)]


def image_files(
    paths: Sequence[Path], max_pixels: int = DEFAULT_MAX_FILE_PIXELS
) -> list[tuple[str, np.ndarray]]:
    """Image files, and the images directly inside folders, in name order.

    Decoded as the node decodes frames and space-clip-predict files (io/image_decoding): a
    16-bit or truncated file means here what it means there; the files' pixel limit
    (io/limits) is predict's.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_FILE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError("no such file or folder", source=path, fix="check the path")
    if not files:
        raise ConfigError(
            f"no images ({', '.join(IMAGE_FILE_SUFFIXES)}) found in {', '.join(map(str, paths))}",
            fix="name image files or a folder that holds them",
        )
    out = []
    for file in files:
        try:
            out.append((file.name, read_image_file(file, max_pixels)))
        except ImageDecodeError as exc:
            raise InputError(f"not a usable image ({exc.reason}: {exc})", source=file) from exc
    return out


def describe(estimator: DepthEstimator) -> str:
    return f"{estimator.backend} on {estimator.device}, {estimator.precision}"


def reference_for(
    candidate: DepthEstimator, reference_checkpoint: Optional[str] = None
) -> DepthEstimator:
    """fp32 PyTorch of the candidate's weights (see the module docstring for .onnx graphs)."""
    device = str(candidate.device)
    if reference_checkpoint:
        return DepthEstimator.from_checkpoint(reference_checkpoint, device, "fp32")
    if isinstance(candidate, TorchEstimator):
        model = copy.deepcopy(candidate.model).float()
        return TorchEstimator(model, device, "fp32", trained=candidate.trained)
    if isinstance(candidate, OnnxEstimator):
        return OnnxEstimator(candidate.path, "cpu", "fp32")
    raise TypeError(
        f"no fp32 reference for a {type(candidate).__name__}: pass a reference checkpoint"
    )


def verify_estimator(
    candidate: DepthEstimator,
    images: Sequence[tuple[str, np.ndarray]],
    tolerance: float = DEFAULT_TOLERANCE,
    reference_checkpoint: Optional[str] = None,
    camera: Callable[[int, int], Optional[Intrinsics]] = street_camera,
    camera_fix: str = "give the images' camera",
) -> VerifyReport:
    """The check the CLI and the node's verify_on_configure share. camera(width, height): the
    images' intrinsics, so both models map depth to the camera as they will when deployed
    (default: the built-in street's, which synthetic_images renders through)."""
    reference = reference_for(candidate, reference_checkpoint)

    def mapped(estimator: DepthEstimator) -> Predict:
        def predict(rgb: np.ndarray) -> np.ndarray:
            intrinsics = camera(rgb.shape[1], rgb.shape[0])
            return estimator.predict(rgb, camera=intrinsics, camera_fix=camera_fix)

        return predict

    try:
        return compare(
            mapped(candidate),
            mapped(reference),
            images,
            tolerance,
            describe(candidate),
            describe(reference),
        )
    finally:
        del reference
        if candidate.device.type == "cuda":
            torch.cuda.empty_cache()
