"""Depth maps on disk: KITTI 16-bit PNG, float32 .npy, and a colourised preview PNG.

The 16-bit PNG follows the KITTI depth benchmark convention so that outputs can be fed to the
KITTI devkit and to our own evaluation unchanged: value = round(metres * 256), 0 = no
measurement. That gives 1/256 m (3.9 mm) resolution and a ceiling of 65535 / 256 = 255.996 m;
farther depths are clipped to the ceiling, invalid ones (NaN, inf, 0) are written as 0.
Other datasets store 16-bit depth with another scale (NYU Depth v2 in the BTS/AdaBins format:
millimetres, ``scale=NYU_DEPTH_SCALE``); the PNG functions take it as ``scale``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from space_clip_ros.io.colormap import colorize

PathLike = Union[str, Path]

KITTI_DEPTH_SCALE = 256.0
KITTI_MAX_DEPTH = 65535 / KITTI_DEPTH_SCALE
NYU_DEPTH_SCALE = 1000.0  # BTS/AdaBins NYU Depth v2 sync_depth_*.png: millimetres


def _check_depth(depth: np.ndarray, what: str) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"{what}: depth must be a non-empty 2-D HxW array, got shape {d.shape}")
    if not np.issubdtype(d.dtype, np.floating):
        raise ValueError(f"{what}: depth must be floating-point metres, got dtype {d.dtype}")
    return d


def depth_to_kitti_uint16(depth: np.ndarray, scale: float = KITTI_DEPTH_SCALE) -> np.ndarray:
    """Metres -> KITTI uint16 (see module docstring); negative depth is an error, not 'invalid'.

    ``scale`` is the number of PNG units per metre (256 for KITTI, 1000 for NYU); the ceiling is
    65535 / scale.

    A negative depth means an upstream bug (wrong sign convention, bad scale), so it is refused
    rather than silently turned into 'no measurement'. Tiny positive depths that would round to
    0 are kept as 1 (the smallest valid value) so a measurement never becomes 'invalid'.
    """
    d = _check_depth(depth, "KITTI PNG encoding").astype(np.float64)
    negative = np.isfinite(d) & (d < 0)
    if negative.any():
        v, u = np.argwhere(negative)[0]
        raise ValueError(
            f"depth has {int(negative.sum())} negative value(s) (first {d[v, u]:.4g} m at row "
            f"{v}, column {u}); KITTI PNG depth cannot encode them: fix the sign/scale upstream "
            "or set them to NaN to mark them invalid"
        )
    valid = np.isfinite(d) & (d > 0)
    scaled = np.rint(np.clip(np.where(valid, d, 0.0), 0.0, 65535 / scale) * scale)
    scaled = np.where(valid, np.maximum(scaled, 1.0), 0.0)
    return scaled.astype(np.uint16)


def write_png16(path: PathLike, depth: np.ndarray, scale: float = KITTI_DEPTH_SCALE) -> None:
    """Write depth (metres) as a KITTI-convention 16-bit greyscale PNG (value = metres * scale)."""
    encoded = depth_to_kitti_uint16(depth, scale)
    # A uint16 array becomes PIL mode "I;16", which PNG stores as 16-bit greyscale.
    Image.fromarray(encoded).save(Path(path), format="PNG")


def read_png16(path: PathLike, scale: float = KITTI_DEPTH_SCALE) -> np.ndarray:
    """A KITTI-convention 16-bit PNG as float32 metres (value / scale; 0 = no measurement)."""
    path = Path(path)
    with Image.open(path) as img:
        if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(
                f"{path}: expected a 16-bit single-channel depth PNG (KITTI convention), got PIL "
                f"mode {img.mode!r}; 8-bit or colour PNGs (e.g. a preview) do not hold metric "
                "depth"
            )
        raw = np.array(img)
    if raw.min(initial=0) < 0 or raw.max(initial=0) > 65535:
        raise ValueError(f"{path}: values outside 0..65535, not a 16-bit depth PNG")
    return (raw.astype(np.float32) / np.float32(scale)).astype(np.float32)


def write_npy(path: PathLike, depth: np.ndarray) -> None:
    """Write depth as float32 metres, NaN/0 preserved as given (lossless, unlike the PNG)."""
    np.save(Path(path), _check_depth(depth, str(path)).astype(np.float32))


def read_npy(path: PathLike) -> np.ndarray:
    """A float32 depth .npy; never unpickles (allow_pickle=False): untrusted files are safe."""
    path = Path(path)
    depth = np.load(path, allow_pickle=False)
    return _check_depth(depth, str(path)).astype(np.float32, copy=False)


def write_preview(path: PathLike, depth: np.ndarray, min_depth: float, max_depth: float) -> None:
    """A Turbo-coloured RGB PNG of depth over a fixed metric range (see colormap.colorize)."""
    Image.fromarray(colorize(_check_depth(depth, str(path)), min_depth, max_depth)).save(
        Path(path), format="PNG"
    )
