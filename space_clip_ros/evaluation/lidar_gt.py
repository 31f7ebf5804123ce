"""Velodyne points as sparse depth ground truth in a camera, and the metrics against it.

Shared by the offline bag tool and the live accuracy node so both report the same number for
the same frame. The projection is geometry.transform_points + sparse_depth_from_points: the
nearest return wins where several land on one pixel, as in the KITTI devkit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from space_clip_ros.geometry import Intrinsics, sparse_depth_from_points, transform_points
from space_clip_ros.metrics import Crop, compute_metrics, region_metrics, valid_mask

# A projected scan is sparse: boundary and interior pixels follow metrics.boundary_masks' sparse
# rule (pixels with a measured 4-neighbour; the dense rule's fully measured 7x7 squares almost
# never occur in a scan).
LIDAR_BOUNDARY_RULE = "sparse"
# The crops a KITTI-sized image with LiDAR truth is evaluated under (NYU's is for 480x640).
LIDAR_CROPS = ("garg", "eigen", "none")


@dataclass(frozen=True)
class AccuracySettings:
    """The evaluation protocol: KITTI's 80 m cap; Garg's crop, the usual one for LiDAR truth."""

    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: Crop = "garg"


def lidar_depth(points: np.ndarray, camera_from_lidar: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """H x W float32 z-depth (0 = no return) of LiDAR points (N x >=3, LiDAR frame) in a camera."""
    xyz = np.asarray(points)[:, :3]
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    return sparse_depth_from_points(transform_points(xyz, camera_from_lidar), intr)


def frame_metrics(
    depth: np.ndarray,
    points: np.ndarray,
    camera_from_lidar: np.ndarray,
    intr: Intrinsics,
    settings: AccuracySettings = AccuracySettings(),
) -> dict:
    """Metrics of one predicted depth image against the LiDAR scan taken with it.

    The whole-image metrics (metrics.METRIC_NAMES), then 'regions': boundary and interior metrics
    with their pixel counts (metrics.region_metrics, sparse rule), and 'lidar_pixels': the scan's
    pixels scored in the whole image, which the region counts are a part of.

    `intr` may describe the camera at another resolution (e.g. the camera_info of the raw image
    while the depth is decimated); it is rescaled to the depth image so the LiDAR is rasterised at
    the prediction's own pixels.
    """
    height, width = depth.shape
    if (intr.width, intr.height) != (width, height):
        intr = intr.scaled(width, height)
    gt = lidar_depth(points, camera_from_lidar, intr)
    truth = valid_mask(gt, settings.min_depth, settings.max_depth, settings.crop)
    # A published depth image marks "no depth" with NaN (REP 118; the node blanks values outside
    # its range): not scored, where compute_metrics would score a NaN prediction as min_depth.
    scored = np.isfinite(depth)
    mask = truth & scored
    bounds = (settings.min_depth, settings.max_depth)
    return {
        **compute_metrics(depth, gt, mask, *bounds),
        "lidar_pixels": int(mask.sum()),
        "regions": region_metrics(depth, gt, truth, LIDAR_BOUNDARY_RULE, *bounds, scored=scored),
    }
