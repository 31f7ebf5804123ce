"""Boundary / interior metrics (space_clip_ros.metrics) on synthetic step edges, exact counts."""

from __future__ import annotations

import numpy as np
import pytest

from space_clip_ros.metrics import (
    RunningRegions,
    boundary_masks,
    depth_edges,
    region_metrics,
)


def step(near: float = 2.0, far: float = 2.15, size: int = 20) -> np.ndarray:
    """size x size ground truth: columns 0..9 at `near` metres, 10.. at `far`."""
    gt = np.full((size, size), near)
    gt[:, size // 2 :] = far
    return gt


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_a_step_edge_gives_the_7x7_band_inside_the_eroded_valid_mask():
    gt = step()  # log(2.15 / 2) = 0.072: an edge at 0.03 and 0.05, none at 0.10
    valid = gt > 0
    edges = depth_edges(gt, valid, 0.05)
    assert edges.sum() == 40 and set(np.nonzero(edges)[1]) == {9, 10}  # both sides of the jump
    for threshold in (0.03, 0.05):
        boundary, interior = boundary_masks(gt, valid, threshold)
        # eroded valid: rows and columns 3..16 (14 x 14 = 196); band: columns 9-3..10+3
        assert box(boundary) == (3, 16, 6, 13) and boundary.sum() == 14 * 8 == 112
        assert interior.sum() == 196 - 112 == 84
        assert set(np.nonzero(interior)[1]) == {3, 4, 5, 14, 15, 16}
        assert not (boundary & interior).any()
    boundary, interior = boundary_masks(gt, valid, 0.10)
    assert boundary.sum() == 0 and interior.sum() == 196


def test_a_hole_removes_its_whole_7x7_neighbourhood_from_both_regions():
    gt = step()
    gt[10, 4] = 0.0  # no measurement: a jump next to it could go unseen
    boundary, interior = boundary_masks(gt, gt > 0, 0.05)
    # the hole's square covers rows 7..13, columns 1..7: columns 6, 7 of the band, 3..5 inside
    assert boundary.sum() == 112 - 7 * 2 == 98
    assert interior.sum() == 84 - 7 * 3 == 63
    assert not boundary[7:14, 1:8].any() and not interior[7:14, 1:8].any()


def test_region_metrics_score_each_region_with_its_own_pixels():
    gt = step()
    pred = gt.copy()
    pred[:, 9:11] *= 2.0  # a smeared edge: the two edge columns twice too far
    regions = region_metrics(pred, gt, gt > 0, "dense", 1e-3, 80.0, thresholds=(0.05, 0.10))
    assert list(regions) == ["boundary_0.05", "interior_0.05", "boundary_0.10", "interior_0.10"]
    # band: 8 columns of which 2 are wrong by 100 %
    assert regions["boundary_0.05"]["abs_rel"] == pytest.approx(2 / 8)
    assert regions["boundary_0.05"]["pixels"] == 112
    assert regions["interior_0.05"]["abs_rel"] == 0.0 and regions["interior_0.05"]["pixels"] == 84
    assert regions["boundary_0.10"]["pixels"] == 0 and np.isnan(
        regions["boundary_0.10"]["abs_rel"]
    )
    # at 0.10 the smeared columns count as interior: 14 rows x 2 of 196 pixels
    assert regions["interior_0.10"]["abs_rel"] == pytest.approx(28 / 196)


def test_sparse_rule_classifies_pixels_with_a_measured_neighbour_and_counts_them():
    gt = step()
    scan = np.zeros_like(gt)
    scan[::4] = gt[::4]  # LiDAR-like: every 4th row fully measured, nothing between
    scan[2, 2] = 2.0  # an isolated return: no neighbour, its continuity was never observed
    valid = scan > 0
    boundary, interior = boundary_masks(scan, valid, 0.05, rule="sparse")
    # rows 0, 4, 8, 12, 16; band columns 6..13 (8), the other 12 columns interior
    assert boundary.sum() == 5 * 8 == 40 and interior.sum() == 5 * 12 == 60
    assert not boundary[2, 2] and not interior[2, 2]
    dense_boundary, dense_interior = boundary_masks(scan, valid, 0.05, rule="dense")
    assert dense_boundary.sum() == dense_interior.sum() == 0  # no fully measured 7x7 square
    with pytest.raises(ValueError, match="unknown boundary rule"):
        boundary_masks(scan, valid, rule="lidar")


def test_sparse_regions_ignore_jumps_across_unmeasured_pixels():
    gt = step()
    scan = np.zeros_like(gt)
    scan[0, :9] = 2.0  # a scan line that stops short of the jump ...
    scan[0, 11:] = 2.15  # ... and resumes after it: the jump falls between unmeasured pixels
    boundary, interior = boundary_masks(scan, scan > 0, 0.05, rule="sparse")
    assert boundary.sum() == 0 and interior.sum() == 9 + 9


def test_running_regions_average_each_region_over_the_images_that_have_it():
    gt = step()
    flat = np.full_like(gt, 3.0)  # no discontinuity: no boundary pixels at all
    running = RunningRegions()
    running.update(region_metrics(gt * 1.1, gt, gt > 0, "dense", thresholds=(0.05,)))
    running.update(region_metrics(flat * 1.3, flat, flat > 0, "dense", thresholds=(0.05,)))
    mean = running.mean()
    assert mean["boundary_0.05"]["images"] == 1 and mean["boundary_0.05"]["pixels"] == 112
    assert mean["boundary_0.05"]["abs_rel"] == pytest.approx(0.1)  # not diluted by the flat one
    assert mean["interior_0.05"]["images"] == 2 and mean["interior_0.05"]["pixels"] == 84 + 196
    assert mean["interior_0.05"]["abs_rel"] == pytest.approx((0.1 + 0.3) / 2)


def test_lidar_frame_metrics_report_boundary_and_interior_with_pixel_counts():
    """The live node's and the bag tool's per-frame numbers: sparse rule on the projected scan."""
    from space_clip_ros.evaluation.lidar_gt import frame_metrics, lidar_depth
    from space_clip_ros.evaluation.report import AccuracyReport, diagnostic_values
    from space_clip_ros.geometry import Intrinsics

    intr = Intrinsics(fx=20.0, fy=20.0, cx=20.0, cy=10.0, width=40, height=20)
    # one scan line across a step: a wall at 4 m on the left, 8 m on the right (camera frame)
    u = np.arange(40.0)  # one return per pixel column, on row cy
    z = np.where(u < 20, 4.0, 8.0)
    points = np.stack([(u - 20.0) * z / 20.0, np.zeros(40), z], axis=1)
    gt = lidar_depth(points, np.eye(4), intr)
    assert (gt > 0).sum() == 40
    depth = np.where(np.arange(40) < 20, 4.0, 8.0)[None].repeat(20, 0).astype(np.float32)
    depth[:, 18:22] *= 1.5  # wrong near the jump only
    metrics = frame_metrics(depth, points, np.eye(4), intr, settings=_no_crop())
    boundary, interior = metrics["regions"]["boundary_0.05"], metrics["regions"]["interior_0.05"]
    assert metrics["lidar_pixels"] == 40
    assert boundary["pixels"] == 8 and interior["pixels"] == 32  # columns 16..23 are the band
    assert boundary["abs_rel"] == pytest.approx(0.5 * 4 / 8) and interior["abs_rel"] == 0.0
    report = AccuracyReport(_no_crop())
    report.add(1, metrics)
    mean = report.as_dict()["mean"]
    assert mean["regions"]["boundary_0.05"]["pixels"] == 8
    assert mean["regions"]["boundary_0.05"]["abs_rel"] == pytest.approx(0.25)
    keys = dict(diagnostic_values(metrics))
    assert keys["boundary_0.05/pixels"] == "8" and keys["interior_0.05/abs_rel"] == "0"
    assert "boundary_0.05 (1)" in report.table() and "sparse boundary rule" in report.table()


def _no_crop():
    from space_clip_ros.evaluation.lidar_gt import AccuracySettings

    return AccuracySettings(crop="none")
