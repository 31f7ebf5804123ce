"""Depth to colour over a FIXED metric range, so a colour means the same distance in every frame.

Auto-ranging each frame (min..max of the frame) makes a preview flicker and hides scale errors,
the very thing a metric depth model must be judged on; hence the caller always names the range.
The palette is Turbo (Mikhailov, Google 2019), generated here from its published degree-5
polynomial approximation (Ruofei Du, Apache-2.0) instead of shipping a table of numbers.
Near is red, far is blue, invalid (NaN, inf, <= 0) is black.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# Coefficients of x^0..x^5 for R, G and B of the Turbo polynomial approximation.
_TURBO_COEFFS = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)


def turbo_lut(size: int = 256) -> np.ndarray:
    """(size, 3) uint8 Turbo palette, dark blue (index 0) to dark red (index size-1)."""
    x = np.linspace(0.0, 1.0, size)
    powers = x[:, None] ** np.arange(6)[None, :]
    rgb = np.clip(powers @ _TURBO_COEFFS.T, 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


TURBO_LUT = turbo_lut()


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
    if not (np.isfinite(min_depth) and np.isfinite(max_depth) and 0 <= min_depth < max_depth):
        raise ValueError(
            f"colour range must satisfy 0 <= min_depth < max_depth, got {min_depth}..{max_depth}; "
            "pass the metric range the preview should span, e.g. 0.5..80 m for driving"
        )
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be a 2-D HxW array, got shape {d.shape}")
    valid = np.isfinite(d) & (d > 0)
    # Near maps to the red end of the palette: the usual reading of a depth preview.
    nearness = (max_depth - np.where(valid, d, max_depth)) / (max_depth - min_depth)
    index = np.clip(np.rint(nearness * (len(TURBO_LUT) - 1)), 0, len(TURBO_LUT) - 1).astype(
        np.intp
    )
    lut = TURBO_LUT if channel_order == "rgb" else TURBO_LUT[:, ::-1]
    image = lut[index]
    image[~valid] = 0
    return image
