"""Pinhole camera geometry: intrinsics, resizing, back-projection to point arrays.

Pure numpy, no ROS. The ROS layer turns these arrays into PointCloud2; the KITTI tools use the
same code to project LiDAR into the camera, so a mistake here shows up in every test.
Conventions follow REP 103/104 optical frames: x right, y down, z forward, metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Focal length over the image side along the same axis. 0.01 is a field of view of 177.7
# degrees (a rectified pinhole image cannot reach 180), 1000 one of 0.06 degrees (a telescope).
# Outside this a CameraInfo is wrong, not exotic: fx = 1e-300 or 1e39 gave clouds of +-inf or
# of all-zero x, y in float32 while looking valid. Both bounds scale with the image, so an
# image resized by output_scale keeps valid intrinsics valid.
FOCAL_PER_SIDE = (0.01, 1000.0)
# The principal point lies within one image size of the image (usually near its centre).
PRINCIPAL_POINT_MARGIN = 1.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of a given size (pixel centres at integer coordinates).

    Construction refuses values no camera has (see FOCAL_PER_SIDE), so every Intrinsics
    back-projects to finite float32 rays.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        low, high = FOCAL_PER_SIDE
        for name, focal, side in (("fx", self.fx, self.width), ("fy", self.fy, self.height)):
            if not (np.isfinite(focal) and low * side <= focal <= high * side):
                raise ValueError(
                    f"focal length {name}={focal:.6g} is outside [{low:g}, {high:g}] x the "
                    f"image side ({side} px): a field of view no pinhole camera has"
                )
        margin = PRINCIPAL_POINT_MARGIN
        for name, centre, side in (("cx", self.cx, self.width), ("cy", self.cy, self.height)):
            if not (np.isfinite(centre) and -margin * side <= centre <= (1 + margin) * side):
                raise ValueError(
                    f"principal point {name}={centre:.6g} is more than {margin:g} image "
                    f"side(s) ({side} px) outside the image"
                )

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> "Intrinsics":
        """From a 3x3 K or a 3x4 P (only the left 3x3 block is read)."""
        m = np.asarray(k, dtype=np.float64)
        if m.shape == (9,):
            m = m.reshape(3, 3)
        elif m.shape == (12,):
            m = m.reshape(3, 4)
        if m.shape not in ((3, 3), (3, 4)):
            raise ValueError(f"expected a 3x3 or 3x4 camera matrix, got shape {m.shape}")
        return cls(
            float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), int(width), int(height)
        )

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """Intrinsics of the same camera after resizing the image to width x height.

        Uses the pixel-area convention (the image border, not the first pixel centre, maps to the
        border), which is what cv2.resize / torch interpolate(align_corners=False) implement.
        """
        sx = width / self.width
        sy = height / self.height
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
        )


@lru_cache(maxsize=16)
def _ray_grid(intr: Intrinsics, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (u - cx) / fx and (v - cy) / fy, cached: the camera rarely changes."""
    u = (np.arange(0, intr.width, step, dtype=np.float32) - np.float32(intr.cx)) / np.float32(
        intr.fx
    )
    v = (np.arange(0, intr.height, step, dtype=np.float32) - np.float32(intr.cy)) / np.float32(
        intr.fy
    )
    return u[None, :], v[:, None]


@lru_cache(maxsize=16)
def _max_depth(intr: Intrinsics, step: int) -> np.float32:
    """The largest z whose x = ray * z and y stay finite in float32: beyond it, NaN, not inf."""
    u, v = _ray_grid(intr, step)
    steepest = max(1.0, float(np.abs(u).max()), float(np.abs(v).max()))
    return np.float32(np.finfo(np.float32).max / np.float32(steepest))


def decimate(image: np.ndarray, step: int) -> np.ndarray:
    """Every step-th pixel in both directions (a view, no copy)."""
    if step < 1:
        raise ValueError(f"decimation step must be >= 1, got {step}")
    return image[::step, ::step]


def backproject(depth: np.ndarray, intr: Intrinsics, step: int = 1) -> np.ndarray:
    """Organized (H', W', 3) float32 points in the optical frame for a z-depth image.

    Invalid depth (NaN, inf, <= 0, or so large that x or y would overflow float32) gives NaN
    points, so the organized structure survives and consumers (rviz2, PCL) skip them: the one
    convention for invalid points throughout. No point is ever +-inf.
    """
    if depth.shape != (intr.height, intr.width):
        raise ValueError(
            f"depth is {depth.shape[1]}x{depth.shape[0]} but intrinsics are for "
            f"{intr.width}x{intr.height}"
        )
    z = decimate(depth, step).astype(np.float32, copy=False)
    u, v = _ray_grid(intr, step)
    points = np.empty(z.shape + (3,), dtype=np.float32)
    valid = np.isfinite(z) & (z > 0) & (z <= _max_depth(intr, step))
    z = np.where(valid, z, np.float32(np.nan))
    np.multiply(u, z, out=points[..., 0])
    np.multiply(v, z, out=points[..., 1])
    points[..., 2] = z
    return points


def project(points: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels (u, v) and depth z of (N, 3) optical-frame points; z <= 0 gives NaN u, v."""
    pts = np.asarray(points, dtype=np.float64)
    z = pts[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        front = z > 0
        u = np.where(front, intr.fx * pts[:, 0] / z + intr.cx, np.nan)
        v = np.where(front, intr.fy * pts[:, 1] / z + intr.cy, np.nan)
    return u, v, z


def sparse_depth_from_points(points: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Rasterise optical-frame points into z-depth (0 = no measurement); the nearest point wins.

    This is how LiDAR ground truth is built (KITTI's own devkit does the same: round to the
    pixel, keep the closest return where several land on one pixel).
    """
    u, v, z = project(points, intr)
    ui = np.round(u)
    vi = np.round(v)
    ok = np.isfinite(ui) & np.isfinite(vi) & (z > 0)
    ok &= (ui >= 0) & (ui < intr.width) & (vi >= 0) & (vi < intr.height)
    ui, vi, z = ui[ok].astype(np.int64), vi[ok].astype(np.int64), z[ok]
    depth = np.zeros((intr.height, intr.width), dtype=np.float32)
    order = np.argsort(-z)  # far first, so the nearest return is written last and wins
    depth[vi[order], ui[order]] = z[order]
    return depth


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply a 4x4 (or 3x4) rigid transform to (N, 3) points."""
    t = np.asarray(transform, dtype=np.float64)
    if t.shape not in ((4, 4), (3, 4)):
        raise ValueError(f"expected a 3x4 or 4x4 transform, got shape {t.shape}")
    pts = np.asarray(points, dtype=np.float64)
    return pts @ t[:3, :3].T + t[:3, 3]
