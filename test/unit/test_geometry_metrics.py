"""Pure geometry and metrics, checked against hand-computed values."""

import re

import numpy as np
import pytest

from space_clip_ros.geometry import (
    Intrinsics,
    backproject,
    project,
    sparse_depth_from_points,
    transform_points,
)
from space_clip_ros.metrics import (
    RunningMetrics,
    compute_metrics,
    crop_mask,
    format_table,
    valid_mask,
)

KITTI = Intrinsics(fx=721.5377, fy=721.5377, cx=609.5593, cy=172.854, width=1242, height=375)


def test_plane_backprojects_to_its_depth():
    depth = np.full((375, 1242), 7.5, np.float32)
    pts = backproject(depth, KITTI)
    assert pts.shape == (375, 1242, 3) and pts.dtype == np.float32
    np.testing.assert_allclose(pts[..., 2], 7.5)
    u, v = 1000, 300
    np.testing.assert_allclose(pts[v, u, 0], (u - KITTI.cx) * 7.5 / KITTI.fx, rtol=1e-6)
    np.testing.assert_allclose(pts[v, u, 1], (v - KITTI.cy) * 7.5 / KITTI.fy, rtol=1e-6)


def test_invalid_depth_gives_nan_points_and_decimation_keeps_grid():
    depth = np.full((4, 6), 2.0, np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, 0.0, -1.0
    intr = Intrinsics(10, 10, 3, 2, 6, 4)
    pts = backproject(depth, intr)
    assert np.isnan(pts[0, 0]).all() and np.isnan(pts[1, 1]).all() and np.isnan(pts[2, 2]).all()
    assert np.isfinite(pts[3, 3]).all()
    dec = backproject(depth, intr, step=2)
    assert dec.shape == (2, 3, 3)
    np.testing.assert_allclose(dec[1, 2], pts[2, 4])


def test_backproject_rejects_mismatched_intrinsics():
    with pytest.raises(ValueError, match="intrinsics are for 1242x375"):
        backproject(np.ones((10, 10), np.float32), KITTI)


def test_project_inverts_backproject():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-5, 5, 50), rng.uniform(-2, 2, 50), rng.uniform(1, 60, 50)])
    u, v, z = project(pts, KITTI)
    np.testing.assert_allclose(u, KITTI.fx * pts[:, 0] / pts[:, 2] + KITTI.cx)
    np.testing.assert_allclose(z, pts[:, 2])
    behind = project(np.array([[0.0, 0.0, -1.0]]), KITTI)
    assert np.isnan(behind[0]).all()


def test_sparse_depth_keeps_nearest_point_per_pixel():
    intr = Intrinsics(100, 100, 50, 50, 101, 101)
    pts = np.array(
        [[0.0, 0.0, 10.0], [0.0, 0.0, 5.0], [1.0, 0.0, 10.0], [0.0, 0.0, -3.0], [100.0, 0.0, 1.0]]
    )
    depth = sparse_depth_from_points(pts, intr)
    assert depth[50, 50] == 5.0  # nearest of the two on the optical axis
    assert depth[50, 60] == 10.0  # x=1 m at 10 m lands 10 px right
    assert (depth > 0).sum() == 2  # behind-camera and off-image points dropped


def test_scaled_intrinsics_map_pixel_areas():
    half = KITTI.scaled(621, 187)
    assert half.fx == pytest.approx(KITTI.fx * 0.5)
    assert half.fy == pytest.approx(KITTI.fy * 187 / 375)
    # the image border maps to the border: -0.5 stays -0.5
    assert (0 - 0.5 - KITTI.cx) / KITTI.fx == pytest.approx((0 - 0.5 - half.cx) / half.fx)


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"fx": 1e-300}, "fx=1e-300 is outside [0.01, 1000]"),
        ({"fx": 1e39}, "fx=1e+39 is outside"),
        ({"fy": 0.009 * 375}, "fy=3.375 is outside"),
        ({"cx": 1e300}, "cx=1e+300 is more than 1 image side(s)"),
        ({"cy": -376.0}, "cy=-376 is more than"),
        ({"fx": float("inf")}, "fx=inf"),
    ],
)
def test_intrinsics_no_camera_has_are_refused(fields, words):
    """fx = 1e-300, cx = 1e300 or fx = 1e39 gave float32 clouds of +-inf or all-zero x, y."""
    values = {"fx": 721.5, "fy": 721.5, "cx": 609.6, "cy": 172.9, "width": 1242, "height": 375}
    with pytest.raises(ValueError, match=re.escape(words)):
        Intrinsics(**{**values, **fields})


def test_the_bounds_scale_with_the_image_so_valid_intrinsics_stay_valid_when_resized():
    wide = Intrinsics(
        fx=0.011 * 1242, fy=999.0 * 375, cx=-1200.0, cy=700.0, width=1242, height=375
    )
    for width, height in [(621, 188), (31, 10), (4000, 1200)]:
        wide.scaled(width, height)  # no ValueError


def test_back_projection_never_emits_inf():
    intr = Intrinsics(fx=0.011 * 40, fy=0.011 * 20, cx=-39.0, cy=39.0, width=40, height=20)
    depth = np.full((20, 40), 3.0e38, np.float32)  # finite, but ray * z overflows float32
    depth[0, 0] = 2.0
    points = backproject(depth, intr)
    assert not np.isinf(points).any()
    assert np.isfinite(points[0, 0]).all() and np.isnan(points[5, 5]).all()


def test_intrinsics_validation_and_matrix_forms():
    with pytest.raises(ValueError, match="focal"):
        Intrinsics(0.0, 1.0, 0, 0, 10, 10)
    with pytest.raises(ValueError, match="size"):
        Intrinsics(1.0, 1.0, 0, 0, 0, 10)
    p = np.array([[700.0, 0, 600, 45.0], [0, 710.0, 170, 0], [0, 0, 1, 0]])
    intr = Intrinsics.from_matrix(p.ravel(), 1242, 375)
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (700.0, 710.0, 600.0, 170.0)
    np.testing.assert_array_equal(
        Intrinsics.from_matrix(intr.matrix, 1242, 375).matrix, intr.matrix
    )


def test_transform_points():
    t = np.eye(4)
    t[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    t[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(transform_points(np.array([[1.0, 0, 0]]), t), [[1, 3, 3]])


def test_metrics_match_hand_computation():
    gt = np.array([[2.0, 4.0], [8.0, 0.0]])
    pred = np.array([[2.0, 5.0], [4.0, 9.0]])
    m = compute_metrics(pred, gt)
    p, g = np.array([2.0, 5.0, 4.0]), np.array([2.0, 4.0, 8.0])
    assert m["abs_rel"] == pytest.approx(np.mean([0, 0.25, 0.5]))
    assert m["sq_rel"] == pytest.approx(np.mean([0, 1 / 4, 16 / 8]))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean([0, 1, 16])))
    d = np.log(p) - np.log(g)
    assert m["rmse_log"] == pytest.approx(np.sqrt(np.mean(d**2)))
    assert m["silog"] == pytest.approx(100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2))
    assert m["log10"] == pytest.approx(np.mean(np.abs(np.log10(p) - np.log10(g))))
    # ratios max(p/g, g/p) are 1, 1.25 and 2
    assert m["delta1"] == pytest.approx(1 / 3)  # 1.25 is not < 1.25
    assert m["delta2"] == pytest.approx(2 / 3)
    assert m["delta3"] == pytest.approx(2 / 3)  # 2 > 1.25**3 = 1.953


def test_metrics_perfect_and_median_scaling():
    gt = np.linspace(1, 70, 100).reshape(10, 10)
    perfect = compute_metrics(gt.copy(), gt)
    assert perfect["abs_rel"] == 0 and perfect["delta1"] == 1
    scaled = compute_metrics(gt * 0.5, gt, median_scaling=True)
    assert scaled["abs_rel"] == pytest.approx(0, abs=1e-12)


def test_metrics_without_valid_pixels_are_nan_and_skipped_by_running_mean():
    empty = compute_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    assert all(np.isnan(v) for v in empty.values())
    running = RunningMetrics()
    running.update(empty)
    running.update(compute_metrics(np.full((2, 2), 2.0), np.full((2, 2), 4.0)))
    running.update(compute_metrics(np.full((2, 2), 4.0), np.full((2, 2), 4.0)))
    assert running.count == 2
    assert running.mean()["abs_rel"] == pytest.approx(0.25)
    assert "abs_rel" in format_table([("seq", running.mean())])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="resize the prediction"):
        compute_metrics(np.ones((2, 3)), np.ones((3, 2)))


def test_crops_and_range():
    garg = crop_mask(375, 1242, "garg")
    eigen = crop_mask(375, 1242, "eigen")
    assert garg[int(0.5 * 375), 600] and not garg[0, 600] and not garg[200, 10]
    assert eigen[130, 600] and not garg[130, 600]  # Eigen starts higher in the image
    gt = np.full((375, 1242), 90.0)
    gt[200, 600] = 10.0
    assert valid_mask(gt, crop="garg").sum() == 1  # 90 m is beyond the 80 m cap
    with pytest.raises(ValueError, match="unknown crop"):
        crop_mask(10, 10, "kb")


def test_nyu_crop_is_the_eigen_nyu_box():
    nyu = crop_mask(480, 640, "nyu")
    rows, cols = np.nonzero(nyu)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (45, 471, 41, 601)
    assert nyu.sum() == (471 - 45) * (601 - 41)
    gt = np.full((480, 640), 5.0)
    gt[100, 100] = 12.0  # beyond NYU's 10 m cap
    gt[10, 300] = 5.0  # outside the crop (blank registration border)
    assert valid_mask(gt, 1e-3, 10.0, "nyu").sum() == nyu.sum() - 1
    small = crop_mask(240, 320, "nyu")  # proportional at other sizes
    assert small[22:235, 20:300].all() and not small[21, 100] and not small[100, 19]


def test_non_finite_predictions_are_clamped_and_scored_not_dropped():
    """As the standard evaluation: +inf scores as max_depth, NaN as min_depth (never a 0)."""
    gt = np.full((4, 4), 10.0)
    pred = gt.copy()
    pred[:2] = np.inf
    m = compute_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx(0.5 * (80.0 - 10.0) / 10.0)
    assert m["delta1"] == pytest.approx(0.5)
    pred[:2] = np.nan
    assert compute_metrics(pred, gt)["abs_rel"] == pytest.approx(0.5 * (10.0 - 1e-3) / 10.0)


def test_lidar_accuracy_leaves_nan_pixels_of_a_published_depth_image_unscored():
    """REP 118: NaN in a depth image means no depth (the node blanks out-of-range values)."""
    from space_clip_ros.evaluation.lidar_gt import frame_metrics, lidar_depth
    from space_clip_ros.geometry import Intrinsics

    intr = Intrinsics(fx=50.0, fy=50.0, cx=20.0, cy=10.0, width=40, height=20)
    points = np.array([[0.0, 0.0, 10.0], [1.0, 0.5, 10.0]])  # camera = LiDAR frame here
    hits = np.argwhere(lidar_depth(points, np.eye(4), intr) > 0)
    assert len(hits) == 2
    depth = np.full((20, 40), 10.0, dtype=np.float32)
    full = frame_metrics(depth, points, np.eye(4), intr)
    depth[tuple(hits[0])] = np.nan  # blanked by the node (out of its range)
    blanked = frame_metrics(depth, points, np.eye(4), intr)
    assert full["abs_rel"] == pytest.approx(0.0, abs=1e-6) and full["delta1"] == 1.0
    assert blanked["abs_rel"] == pytest.approx(0.0, abs=1e-6)  # not scored as min_depth
