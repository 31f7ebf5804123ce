"""A spinning multi-beam LiDAR (Velodyne HDL-64E-like) ray-cast into the procedural street.

The scan hits the very surfaces the camera renders (scenes.street.cast_rays is shared), so a
point projected into a camera of the same scene lands on that camera's exact depth: LiDAR ground
truth that agrees with the image, which is what the generated KITTI drive and the accuracy tools
need. Points come out in the LiDAR's own frame (REP 103 body axes: x forward, y left, z up) as
KITTI stores them: float32 (x, y, z, reflectance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from space_clip_ros.scenes.street import Scene, cast_rays


@dataclass(frozen=True)
class LidarModel:
    """Beam layout of a spinning LiDAR: `lines` beams evenly from elevation[0] down to
    elevation[1] (degrees), one column every azimuth_step_deg over the full turn, returns beyond
    max_range metres (along the ray) dropped.

    The defaults are KITTI's Velodyne HDL-64E (+2 to -24.8 degrees, ~0.08 degree steps).
    """

    lines: int = 64
    elevation_deg: tuple[float, float] = (2.0, -24.8)
    azimuth_step_deg: float = 0.08
    max_range: float = 120.0

    def __post_init__(self) -> None:
        if self.lines < 1 or not 0 < self.azimuth_step_deg <= 90 or self.max_range <= 0:
            raise ValueError(
                "LidarModel: lines must be >= 1, azimuth_step_deg in (0, 90] and max_range > 0; "
                f"got {self.lines}, {self.azimuth_step_deg}, {self.max_range}"
            )

    def azimuths(self) -> np.ndarray:
        """Column azimuths in radians, ascending from -pi (straight behind), 0 = straight ahead."""
        return np.arange(-np.pi, np.pi, np.deg2rad(self.azimuth_step_deg))

    def directions(self) -> np.ndarray:
        """(lines, columns, 3) unit beam directions in the LiDAR frame."""
        elevation = np.deg2rad(np.linspace(*self.elevation_deg, self.lines))[:, None]
        azimuth = self.azimuths()[None, :]
        return np.stack(
            np.broadcast_arrays(
                np.cos(elevation) * np.cos(azimuth),
                np.cos(elevation) * np.sin(azimuth),
                np.sin(elevation),
            ),
            axis=-1,
        )


HDL64 = LidarModel()


def scan(scene: Scene, pose: np.ndarray, model: LidarModel = HDL64) -> np.ndarray:
    """(N, 4) float32 (x, y, z, reflectance) returns in the LiDAR frame at pose (T_world_lidar).

    Reflectance is the hit surface's mean albedo (bright lane paint and pale walls return more
    than asphalt), in [0, 1] like KITTI's. Beams that hit nothing (sky) give no point.
    """
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"pose must be a 4x4 T_world_lidar matrix, got shape {pose.shape}")
    rotation, origin = pose[:3, :3], pose[:3, 3]
    directions = model.directions()
    rays = (directions @ rotation.T).astype(np.float32)
    azimuths = model.azimuths()

    def window(lo: np.ndarray, hi: np.ndarray) -> Optional[tuple[slice, slice]]:
        return _azimuth_window(lo, hi, rotation, azimuths, model.max_range)

    hit = cast_rays(scene, rays, origin, window)
    keep = np.isfinite(hit.t) & (hit.t <= model.max_range)
    xyz = directions[keep] * hit.t[keep, None]
    reflectance = np.clip(hit.albedo[keep].mean(axis=-1, keepdims=True), 0.0, 1.0)
    return np.hstack([xyz, reflectance]).astype("<f4")


def _azimuth_window(
    lo: np.ndarray,
    hi: np.ndarray,
    rotation: np.ndarray,
    azimuths: np.ndarray,
    max_range: float,
) -> Optional[tuple[slice, slice]]:
    """Columns whose azimuth can see the LiDAR-centred world box [lo, hi] (all beams).

    Seen from outside its footprint, a convex solid spans less than half a turn and its extreme
    azimuths are at corners; so the largest circular gap between corner azimuths is > pi and
    the columns between its ends bound the box. A sensor inside the footprint, or a box
    straddling the seam straight behind, gets every column (correct, just slower).
    """
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    local = corners @ rotation  # world -> LiDAR axes, row-vector form
    if (
        np.min(np.linalg.norm(local[:, :2], axis=1))
        > max_range + np.ptp(local[:, :2], axis=0).sum()
    ):
        return None  # every part of the box is beyond the range
    angles = np.sort(np.arctan2(local[:, 1], local[:, 0]))
    gaps = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    widest = int(np.argmax(gaps))
    everything = slice(None), slice(None)
    if gaps[widest] <= np.pi:
        return everything  # the sensor is inside the box's footprint
    first, last = angles[(widest + 1) % len(angles)], angles[widest]
    if first > last:
        return everything  # the box straddles the seam at +-pi
    step = azimuths[1] - azimuths[0] if len(azimuths) > 1 else 2 * np.pi
    c0 = max(int(np.floor((first - azimuths[0]) / step)) - 1, 0)
    c1 = min(int(np.ceil((last - azimuths[0]) / step)) + 2, len(azimuths))
    return slice(None), slice(c0, c1)
