"""The per-frame arithmetic between a camera image and the depth the node publishes (no ROS).

Three decisions the depth node makes on every frame, kept here so plain pytest checks them
without DDS and so the node, the demo and any offline tool apply them identically:

- input rescale: with output_scale < 1 the image shrinks before inference, and the depth
  image comes out at that smaller size (the model resizes to its encoder input anyway);
- range mask: depth outside [min_depth, max_depth] (or not positive) becomes NaN, never 0,
  as REP 118 and depth_image_proc expect for "no measurement";
- intrinsics: P (the rectified camera) when the CameraInfo sets it, else K, then scaled to the
  output size with the pixel-area convention of geometry.Intrinsics.scaled.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from space_clip_ros.geometry import Intrinsics


def rescaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of an image after rescale_image with `scale`; at least 1x1."""
    if scale >= 1.0:
        return int(width), int(height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def rescale_image(pixels: np.ndarray, scale: float) -> np.ndarray:
    """HxWx3 uint8 pixels downscaled by `scale` (< 1); returned unchanged for scale >= 1.

    PIL's bilinear filter widens its support when shrinking (area-like), consistent with the
    pixel-area intrinsics convention that output_intrinsics applies to the same resize.
    """
    if scale >= 1.0:
        return pixels
    h, w = pixels.shape[:2]
    resized = PILImage.fromarray(np.ascontiguousarray(pixels)).resize(
        rescaled_size(w, h, scale), PILImage.BILINEAR
    )
    return np.asarray(resized)


def mask_out_of_range(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Depth outside [min_depth, max_depth], non-positive or NaN set to NaN, in place; returned."""
    depth[~((depth > 0) & (depth >= min_depth) & (depth <= max_depth))] = np.nan
    return depth


def camera_matrix(p: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, str]:
    """The camera matrix to read intrinsics from, and its name: P when set, else K.

    P describes the rectified image, which is what a depth image derived from image_rect refers
    to and what downstream consumers of depth/camera_info read (depth_image_proc does the same);
    K is the fallback for drivers that leave P all zero.
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any(p):
        return p, "P"
    return np.asarray(k, dtype=np.float64), "K"


def output_intrinsics(camera: Intrinsics, width: int, height: int) -> Intrinsics:
    """The camera's intrinsics for a depth image of width x height (itself at the same size)."""
    if (int(width), int(height)) == (camera.width, camera.height):
        return camera
    return camera.scaled(width, height)
