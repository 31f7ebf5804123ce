"""Depth to colour over a FIXED metric range, so a colour means the same distance in every frame.

Auto-ranging each frame (min..max of the frame) makes a preview flicker and hides scale errors,
the very thing a metric depth model must be judged on; hence the caller always names the range.
The palette is Turbo (Mikhailov, Google 2019), generated here from its published degree-5
polynomial approximation (Ruofei Du, Apache-2.0) instead of shipping a table of numbers.
Near is red, far is blue, invalid (NaN, inf, <= 0) is black.

One rule serves files (space-clip-predict, the demo) and the node's `depth/colorized`: depth
becomes a uint8 palette index (`PALETTE_LEVELS` Turbo levels, far to near, and `INVALID_INDEX`
for no depth), and a 256-entry lookup table (`PREVIEW_LUT`, black at `INVALID_INDEX`) turns the
index into colour. A lookup per pixel instead of float colour math: the node computes the index
where the depth is (the GPU) and applies the table there or with OpenCV (depth_frame.py).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

# Coefficients of x^0..x^5 for R, G and B of the Turbo polynomial approximation.
_TURBO_COEFFS = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)
PALETTE_LEVELS = 255  # Turbo levels: index 0 is max_depth (blue) .. 254 is min_depth (red)
INVALID_INDEX = PALETTE_LEVELS  # the 256th entry of PREVIEW_LUT: black


def turbo_lut(size: int = 256) -> np.ndarray:
    """(size, 3) uint8 Turbo palette, dark blue (index 0) to dark red (index size-1)."""
    x = np.linspace(0.0, 1.0, size)
    powers = x[:, None] ** np.arange(6)[None, :]
    rgb = np.clip(powers @ _TURBO_COEFFS.T, 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


TURBO_LUT = turbo_lut()
PREVIEW_LUT = np.vstack([turbo_lut(PALETTE_LEVELS), np.zeros((1, 3), np.uint8)])  # RGB


def preview_lut(channel_order: Literal["rgb", "bgr"] = "rgb") -> np.ndarray:
    """PREVIEW_LUT in the given channel order, contiguous."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return np.ascontiguousarray(PREVIEW_LUT if channel_order == "rgb" else PREVIEW_LUT[:, ::-1])


def check_range(min_depth: float, max_depth: float) -> None:
    if not (np.isfinite(min_depth) and np.isfinite(max_depth) and 0 <= min_depth < max_depth):
        raise ValueError(
            f"colour range must satisfy 0 <= min_depth < max_depth, got {min_depth}..{max_depth}; "
            "pass the metric range the preview should span, e.g. 0.5..80 m for driving"
        )


def index_scale(min_depth: float, max_depth: float) -> float:
    """Palette steps per metre: index = (max_depth - depth) * index_scale, clamped."""
    return (PALETTE_LEVELS - 1) / (max_depth - min_depth)


# The smallest positive float32: a lower bound that excludes 0 in OpenCV's inclusive inRange.
SMALLEST_POSITIVE = float(np.nextafter(np.float32(0), np.float32(1)))
LARGEST_FLOAT32 = float(np.finfo(np.float32).max)


def positive_finite(depth: np.ndarray) -> np.ndarray:
    """uint8 mask, 255 where depth is finite and > 0 (OpenCV: one pass, NaN compares false)."""
    return cv2.inRange(depth, SMALLEST_POSITIVE, LARGEST_FLOAT32)


def palette_index(
    depth: np.ndarray,
    min_depth: float,
    max_depth: float,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """HxW float32 metres -> HxW uint8 index into PREVIEW_LUT: round((max_depth - depth) *
    index_scale) clamped to the palette, INVALID_INDEX where `valid` (uint8, 255 = valid;
    default: finite and > 0) is 0. OpenCV's saturating conversions, a few passes over uint8."""
    check_range(min_depth, max_depth)
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be a 2-D HxW array, got shape {d.shape}")
    scale = index_scale(min_depth, max_depth)
    # -scale * d + max_depth * scale, rounded half to even and saturated to 0..255 (NaN: 255)
    level = cv2.addWeighted(d, -scale, d, 0.0, max_depth * scale, dtype=cv2.CV_8U)
    cv2.min(level, PALETTE_LEVELS - 1, dst=level)
    invalid = cv2.bitwise_not(positive_finite(d) if valid is None else valid)
    return cv2.max(level, invalid, dst=level)  # INVALID_INDEX (255) where invalid


def apply_palette(index: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """HxW uint8 index -> HxWx3 uint8 colours through a (256, 3) table, with OpenCV's lookup
    (one pass, about 10x numpy fancy indexing)."""
    return cv2.applyColorMap(np.ascontiguousarray(index), lut.reshape(256, 1, 3), dst=out)


def colorize(
    depth: np.ndarray,
    min_depth: float,
    max_depth: float,
    channel_order: Literal["rgb", "bgr"] = "rgb",
) -> np.ndarray:
    """HxW metres -> HxWx3 uint8: min_depth and nearer is red, max_depth and farther is blue.

    Depths outside the range saturate at the end colours (they are still measurements);
    NaN, inf and non-positive values are black. channel_order "bgr" serves ROS bgr8 topics.
    """
    lut = preview_lut(channel_order)
    return apply_palette(palette_index(depth, min_depth, max_depth), lut)
