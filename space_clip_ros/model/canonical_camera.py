"""Show the encoder any camera as the camera the decoder was trained under (the canonical camera).

Why: the decoder reads metres from apparent size. An object of size S at depth Z covers
(E_w / w) * fx * S / Z encoder pixels across when a w-pixel-wide region of the input is resampled
to an E_w-wide encoder input (and likewise down). A decoder trained on crops whose intrinsics,
in the crop's pixels, are (f_cx, f_cy) over a (c_h, c_w) crop has learnt the normalised focal
lengths a_x = f_cx / c_w and a_y = f_cy / c_h; shown a region whose normalised focal lengths are
k * a_x and k * a_y, it sees every object k times bigger than in training, reads it as k times
nearer, and its depth times k is metric again. Anisotropy (a_x / a_y) and the place of the
optical axis in the frame cannot be fixed after the fact: the region's shape and position fix
them. The encoder size cancels out: the rule works in fractions of the region.

The rule (docs/ARCHITECTURE.md, "Camera geometry"): the smallest region of the input that
(1) contains every pixel of the image (the rest is padding, PAD_MODE), (2) has the canonical
normalised anisotropy, (3) puts the principal point where it sat, on average, in the training
crops; one encoder pass, then depth times k on the input's own pixel grid. Pure Python: the
torch side that applies a view is in space_clip.py (view_to_encoder, view_to_image).
The padding is added at the encoder's resolution (the image is resized to its footprint in the
encoder input, then padded to the canvas), so a view never allocates a padded full-resolution
frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from space_clip_ros.errors import message
from space_clip_ros.geometry import Intrinsics

from .config import CameraConfig

# The frames the recipes train on, at their native size. KITTI: raw 2011_09_26, rectified left
# colour camera (P_rect_02; other dates differ by up to 2 % in focal length). NYU Depth v2: the
# official Kinect RGB calibration (the lists' 518.8579).
KITTI_FRAME = Intrinsics(fx=721.5377, fy=721.5377, cx=609.5593, cy=172.854, width=1242, height=375)
NYU_FRAME = Intrinsics(fx=518.8579, fy=519.4696, cx=325.5824, cy=253.7362, width=640, height=480)

# How the canvas around an image is filled: its edge pixels repeated outwards (torch's
# "replicate", numpy's "edge"), here and in the training augmentation's zoom-out
# (training/datasets.py). Measured against a constant grey (bench/RESULTS.md, "Camera"): a
# decoder never trained on padding reads a grey band as content; repeated edges keep the
# scene's colours and the road's texture statistics.
PAD_MODE = "replicate"


@dataclass(frozen=True)
class CameraView:
    """Where an input image sits in the encoder's input, and how its depth is made metric.

    The image is resized to footprint's (height, width) and placed with its top-left corner at
    footprint's (top, left) in an encoder_size canvas, padded by PAD_MODE; a footprint that
    reaches past the canvas is cut there (those pixels get no depth, NaN). Padding at the
    encoder's resolution costs nothing however far the view reaches past the image.
    depth_scale: the decoder's depth times this is metres on the input camera.
    """

    image_size: tuple[int, int]  # (height, width) of the input image
    encoder_size: tuple[int, int]  # (height, width) of the encoder input
    footprint: tuple[int, int, int, int]  # (top, left, height, width), encoder pixels
    depth_scale: float

    def __post_init__(self) -> None:
        if min(*self.image_size, *self.encoder_size, *self.footprint[2:]) <= 0:
            raise ValueError(f"view of an empty image, canvas or footprint: {self}")
        if not (math.isfinite(self.depth_scale) and self.depth_scale > 0):
            raise ValueError(f"depth_scale must be finite and > 0, got {self.depth_scale}")

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) canvas pixels around the footprint; negative: cut off."""
        top, left, height, width = self.footprint
        canvas_h, canvas_w = self.encoder_size
        return (left, canvas_w - left - width, top, canvas_h - top - height)

    @property
    def covers_image(self) -> bool:
        """True when no input pixel is cut off (every pixel gets a depth)."""
        return min(self.padding) >= 0

    @property
    def region(self) -> tuple[float, float, float, float]:
        """The canvas in input pixels: (left, top, width, height), pixel (0, 0) = [0, 1)^2."""
        top, left, height, width = self.footprint
        sx, sy = width / self.image_size[1], height / self.image_size[0]
        canvas_h, canvas_w = self.encoder_size
        return (-left / sx, -top / sy, canvas_w / sx, canvas_h / sy)

    def encoder_intrinsics(self, intrinsics: Intrinsics) -> Intrinsics:
        """The input camera as the encoder sees it through this view."""
        top, left, height, width = self.footprint
        sx, sy = width / intrinsics.width, height / intrinsics.height
        return Intrinsics(
            fx=intrinsics.fx * sx,
            fy=intrinsics.fy * sy,
            cx=(intrinsics.cx + 0.5) * sx + left - 0.5,
            cy=(intrinsics.cy + 0.5) * sy + top - 0.5,
            width=self.encoder_size[1],
            height=self.encoder_size[0],
        )


def crop_intrinsics(camera: CameraConfig) -> Intrinsics:
    """The canonical camera as the intrinsics of one training crop."""
    (fx, fy), (cx, cy), (height, width) = camera.focal, camera.principal_point, camera.crop_size
    return Intrinsics(fx, fy, cx, cy, width, height)


def crop_camera(
    frame: Intrinsics,
    crop_size: tuple[int, int],
    offset: tuple[float, float],
    hflip: bool,
    source: str,
) -> CameraConfig:
    """The record for crop_size (height, width) crops cut from frames of camera `frame`.

    offset: the mean (top, left) of the crops in the frame. Random horizontal flips mirror the
    principal point, so on average it sits on the crop's vertical centre line.
    """
    height, width = crop_size
    cx = (width - 1) / 2.0 if hflip else frame.cx - offset[1]
    return CameraConfig(
        crop_size=(int(height), int(width)),
        focal=(frame.fx, frame.fy),
        principal_point=(cx, frame.cy - offset[0]),
        source=source,
    )


def release_camera(dataset: str, crop_size: tuple[int, int]) -> CameraConfig:
    """The training camera of the SPACE-CLIP release's checkpoints (its utils/dataloader.py):
    KITTI, random crop_size crops of the whole frame (no KB crop); NYU, random crops of the
    whole 640x480 frame (its nyu.yaml: the whole frame, no border crop); both flipped at random.
    """
    frame = {"kitti": KITTI_FRAME, "nyu": NYU_FRAME}[dataset]
    height, width = crop_size
    offset = ((frame.height - height) / 2.0, (frame.width - width) / 2.0)
    source = (
        f"SPACE-CLIP release, {dataset} {width}x{height} crops of {frame.width}x{frame.height}"
    )
    return crop_camera(frame, crop_size, offset, True, source)


def canonical_view(
    intrinsics: Intrinsics, camera: CameraConfig, encoder_size: tuple[int, int]
) -> CameraView:
    """The view of an input camera (intrinsics at the image's size) that the decoder reads as
    its training camera: the rule in the module docstring.

    The footprint is rounded to whole encoder pixels inside the canvas; the per-axis focal
    ratios then differ by at most half an encoder pixel's worth, and depth_scale is their
    geometric mean.
    """
    canon = crop_intrinsics(camera)
    a_x, a_y = canon.fx / canon.width, canon.fy / canon.height
    # the principal point as a fraction of the crop, pixel edges at 0 and 1
    p_x, p_y = (canon.cx + 0.5) / canon.width, (canon.cy + 0.5) / canon.height
    u_x, u_y = intrinsics.cx + 0.5, intrinsics.cy + 0.5
    # the smallest region (in input pixels) with the canonical shape and principal point that
    # holds the image: k is its focal length over the canonical one, per axis alike
    k = min(
        intrinsics.fx / (_least_span(u_x, intrinsics.width, p_x) * a_x),
        intrinsics.fy / (_least_span(u_y, intrinsics.height, p_y) * a_y),
    )
    canvas_h, canvas_w = encoder_size
    sx = canvas_w * k * a_x / intrinsics.fx  # encoder pixels per input pixel
    sy = canvas_h * k * a_y / intrinsics.fy
    width = min(max(round(intrinsics.width * sx), 1), canvas_w)
    height = min(max(round(intrinsics.height * sy), 1), canvas_h)
    # principal point at p_x, p_y of the canvas (each within half a pixel), image inside it
    left = min(max(round(p_x * canvas_w - u_x * width / intrinsics.width), 0), canvas_w - width)
    top = min(max(round(p_y * canvas_h - u_y * height / intrinsics.height), 0), canvas_h - height)
    k_x = intrinsics.fx * width / intrinsics.width / (a_x * canvas_w)
    k_y = intrinsics.fy * height / intrinsics.height / (a_y * canvas_h)
    return CameraView(
        (intrinsics.height, intrinsics.width),
        (canvas_h, canvas_w),
        (top, left, height, width),
        math.sqrt(k_x * k_y),
    )


def squashed_view(
    intrinsics: Intrinsics, camera: CameraConfig, encoder_size: tuple[int, int]
) -> CameraView:
    """The view of an input that was resized whole to the encoder input by someone else (a host
    encoder's own preprocessing, space_clip_ros.shared): its footprint is the whole canvas, so
    only the focal ratio can be corrected (depth_scale, the geometric mean of both axes'); the
    anisotropy and the principal point's place are the host's and stay as they are."""
    canon = crop_intrinsics(camera)
    k_x = (intrinsics.fx / intrinsics.width) / (canon.fx / canon.width)
    k_y = (intrinsics.fy / intrinsics.height) / (canon.fy / canon.height)
    canvas_h, canvas_w = encoder_size
    return CameraView(
        (intrinsics.height, intrinsics.width),
        (canvas_h, canvas_w),
        (0, 0, canvas_h, canvas_w),
        math.sqrt(k_x * k_y),
    )


def _least_span(point: float, size: int, fraction: float) -> float:
    """Smallest span with `point` at `fraction` of it that covers [0, size]."""
    return max(point / fraction, (size - point) / (1.0 - fraction), 1e-9)


def assumed_intrinsics(camera: CameraConfig, width: int, height: int) -> Intrinsics:
    """The camera a tool assumes for an image that came without intrinsics.

    The training camera's focal lengths in pixels with the principal point at the image centre:
    exactly right for the training camera's own frames at their native size (KITTI images
    with a KITTI checkpoint, NYU images with an NYU one) whatever crop they were trained on,
    and the tools say loudly that they assumed it (assumed_camera_message).
    """
    fx, fy = camera.focal
    return Intrinsics(fx, fy, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))


def assumed_camera_message(intrinsics: Intrinsics, camera: CameraConfig, fix: str) -> str:
    """The warning a tool prints when it runs on assumed_intrinsics; fix names its flag."""
    origin = f" ({camera.source})" if camera.source else ""
    return message(
        f"no camera intrinsics given for {intrinsics.width}x{intrinsics.height} images: "
        f"assuming fx = {intrinsics.fx:.2f} px, fy = {intrinsics.fy:.2f} px, the training "
        f"camera's{origin}, with the principal point at the image centre. Depth is metric only "
        f"if the images come from that camera at this size; otherwise it is off by the ratio of "
        f"the true focal length to this one",
        fix=fix,
    )


def no_record_message(source: object) -> str:
    """The warning for a checkpoint that records no training camera (made before the record)."""
    return message(
        "records no training camera (config 'camera'): depth is NOT mapped to the input "
        "camera, so it is metric only for images taken like the training crops "
        "(docs/ARCHITECTURE.md, 'Camera geometry')",
        source=source,
        fix="re-export the checkpoint with this version (training writes the record; "
        "space-clip-import --dataset kitti|nyu for the release's files)",
    )


@dataclass(frozen=True)
class ViewPlan:
    """What inference does for one camera: the view (None: the plain resize of a checkpoint
    without a record), the intrinsics it used, and a warning to show the user, if any."""

    view: Optional[CameraView]
    intrinsics: Optional[Intrinsics]
    warning: Optional[str]


def plan_view(
    camera: Optional[CameraConfig],
    intrinsics: Optional[Intrinsics],
    width: int,
    height: int,
    encoder_size: tuple[int, int],
    source: object = "checkpoint",
    fix: str = "pass the camera's intrinsics",
    squashed: bool = False,
) -> ViewPlan:
    """The one decision every inference path makes for a width x height input.

    camera: the checkpoint's record (config.camera); intrinsics: the input camera at this size,
    or None when the tool was given none (then assumed_intrinsics, with a warning naming `fix`);
    encoder_size: the model's input_size. squashed: the image reaches the encoder resized whole
    by someone else (squashed_view) instead of through canonical_view.
    """
    if intrinsics is not None and (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height} but the image is "
            f"{width}x{height}: scale them to the image first (Intrinsics.scaled)"
        )
    if camera is None:
        return ViewPlan(None, intrinsics, no_record_message(source))
    warning = None
    if intrinsics is None:
        intrinsics = assumed_intrinsics(camera, width, height)
        warning = assumed_camera_message(intrinsics, camera, fix)
    view_of = squashed_view if squashed else canonical_view
    return ViewPlan(view_of(intrinsics, camera, encoder_size), intrinsics, warning)
