"""The synthetic drive's ground truth is exact: checked against closed-form intersections."""

import numpy as np
import pytest

from space_clip_ros.geometry import Intrinsics, sparse_depth_from_points
from space_clip_ros.scenes import lidar
from space_clip_ros.scenes.street import (
    KITTI_CAMERA_HEIGHT,
    KITTI_INTRINSICS,
    Box,
    Cylinder,
    DriveConfig,
    Scene,
    SyntheticDrive,
    render,
)

SMALL = DriveConfig(width=160, height=48)


def _yaw_pose(angle_rad: float) -> np.ndarray:
    """T_world_camera turned about the (downward) y axis; angle pi/2 looks along world +x."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return pose


def _road_depth(intr: Intrinsics, rows: np.ndarray) -> np.ndarray:
    return KITTI_CAMERA_HEIGHT * intr.fy / (rows - intr.cy)


@pytest.mark.parametrize("size", [(1242, 375), (160, 48)])
def test_road_depth_is_the_analytic_plane_intersection(size):
    drive = SyntheticDrive(DriveConfig(width=size[0], height=size[1], lead_vehicle_gap=None))
    frame = drive.frame(3)
    intr = frame.intrinsics
    # The lower third of the image, within the camera's own lane: only road there.
    rows = np.arange(int(intr.height * 2 / 3), intr.height)
    cols = np.arange(int(intr.cx - intr.width * 0.05), int(intr.cx + intr.width * 0.05))
    expected = np.broadcast_to(_road_depth(intr, rows)[:, None], (len(rows), len(cols)))
    np.testing.assert_allclose(frame.depth[np.ix_(rows, cols)], expected, rtol=1e-5)


def test_a_turned_camera_still_sees_the_road_at_the_plane_depth():
    # Yaw leaves each ray's downward slope unchanged, so the road depth per row must not change.
    intr = KITTI_INTRINSICS.scaled(320, 96)
    _, depth = render(Scene(), intr, _yaw_pose(0.7))
    rows = np.arange(60, 96)
    np.testing.assert_allclose(
        depth[rows, :], np.broadcast_to(_road_depth(intr, rows)[:, None], (36, 320)), rtol=1e-5
    )


def test_box_face_has_its_known_distance():
    h = KITTI_CAMERA_HEIGHT
    scene = Scene(boxes=(Box((-1.0, h - 1.5, 10.0), (1.0, h, 12.0), (0.8, 0.1, 0.1)),))
    intr = KITTI_INTRINSICS
    rgb, depth = render(scene, intr, np.eye(4))
    # The face z = 10 spans y in [0.15, 1.65] m and x in [-1, 1] m: these pixels see it.
    v = np.arange(int(intr.cy + intr.fy * 0.02), int(intr.cy + intr.fy * 0.16))
    u = np.arange(int(intr.cx - intr.fx * 0.09), int(intr.cx + intr.fx * 0.09))
    np.testing.assert_allclose(depth[np.ix_(v, u)], 10.0, rtol=1e-6)
    # The face is red, and just beside the box there is road at its plane depth, not the box.
    assert rgb[v[len(v) // 2], int(intr.cx), 0] > 2 * rgb[v[len(v) // 2], int(intr.cx), 2]
    side_u, bottom_v = int(intr.cx + intr.fx * 0.2), intr.height - 1
    assert depth[bottom_v, side_u] == pytest.approx(
        _road_depth(intr, np.array([bottom_v]))[0], rel=1e-5
    )


def test_box_seen_by_a_turned_camera():
    # The camera looks along world +x; a box whose near face is the plane x = 10 fills the centre.
    scene = Scene(boxes=(Box((10.0, -3.0, -2.0), (11.0, 1.0, 2.0), (0.5, 0.5, 0.5)),))
    intr = KITTI_INTRINSICS.scaled(320, 96)
    _, depth = render(scene, intr, _yaw_pose(np.pi / 2))
    cy, cx = int(round(intr.cy)), int(round(intr.cx))
    np.testing.assert_allclose(depth[cy - 5 : cy + 5, cx - 20 : cx + 20], 10.0, rtol=1e-5)


def test_pole_depth_is_the_analytic_cylinder_intersection():
    scene = Scene(
        cylinders=(Cylinder(x=0.3, z=20.0, radius=0.5, top=-6.0, color=(0.4, 0.4, 0.4)),)
    )
    intr = KITTI_INTRINSICS
    _, depth = render(scene, intr, np.eye(4))
    v = int(intr.cy) - 20  # above the horizon: only the pole or sky
    for u in range(int(intr.cx), int(intr.cx) + 30, 3):
        s = (
            u - intr.cx
        ) / intr.fx  # x = s * z along this pixel's ray (y does not matter: vertical axis)
        a, b, c = s * s + 1, -2 * (0.3 * s + 20.0), 0.3**2 + 20.0**2 - 0.5**2
        assert depth[v, u] == pytest.approx((-b - np.sqrt(b * b - 4 * a * c)) / (2 * a), rel=1e-5)
    assert depth[v, int(intr.cx) + 200] == 0.0  # beside the pole: sky


def test_lead_vehicle_rear_is_at_the_configured_gap_in_every_frame():
    drive = SyntheticDrive(DriveConfig(width=320, height=96, lead_vehicle_gap=15.0))
    intr = drive.intrinsics
    v = int(round(intr.cy + intr.fy * 1.0 / 15.0))  # 1 m below the camera, on the car's body
    for frame in drive.frames(3, start=7):
        assert frame.depth[v, int(round(intr.cx))] == pytest.approx(15.0, rel=1e-6)


def test_sky_is_invalid_depth_and_sky_coloured():
    frame = SyntheticDrive(SMALL).frame(0)
    top = frame.depth[0, 70:90]
    assert np.all(top == 0.0)
    rgb = frame.rgb[0, 70:90].astype(int)
    assert np.all(rgb[:, 2] > rgb[:, 0])  # blue sky
    # Everywhere else the depth is a finite positive measurement.
    hit = frame.depth != 0
    assert hit.mean() > 0.5
    assert np.all(np.isfinite(frame.depth)) and np.all(frame.depth[hit] > 0)


def test_frame_sizes_types_intrinsics_stamps_and_poses():
    drive = SyntheticDrive(SMALL)
    frames = list(drive.frames(3))
    assert drive.intrinsics == KITTI_INTRINSICS.scaled(160, 48)
    for i, f in enumerate(frames):
        assert f.index == i
        assert f.rgb.shape == (48, 160, 3) and f.rgb.dtype == np.uint8
        assert f.depth.shape == (48, 160) and f.depth.dtype == np.float32
        assert f.intrinsics == drive.intrinsics
        np.testing.assert_allclose(f.pose[:3, 3], [0.0, 0.0, i * 1.0])  # 10 m/s at 10 Hz
    assert [f.stamp_ns - frames[0].stamp_ns for f in frames] == [0, 100_000_000, 200_000_000]
    assert frames[0].stamp_ns > 0
    assert not np.array_equal(frames[0].rgb, frames[2].rgb)  # the camera moves


def test_deterministic_from_the_seed_and_random_access():
    a = SyntheticDrive(DriveConfig(width=160, height=48, seed=4))
    b = SyntheticDrive(DriveConfig(width=160, height=48, seed=4))
    c = SyntheticDrive(DriveConfig(width=160, height=48, seed=5))
    fa = a.frame(40)
    a.frame(3)  # requesting other frames first must not change frame 40
    fb = b.frame(40)
    assert np.array_equal(fa.rgb, fb.rgb) and np.array_equal(fa.depth, fb.depth)
    assert np.array_equal(a.frame(40).depth, fa.depth)
    assert not np.array_equal(c.frame(40).depth, fa.depth)


def test_invalid_configuration_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="lead_vehicle_gap"):
        DriveConfig(lead_vehicle_gap=0.5)
    with pytest.raises(ValueError, match="at least 8x8"):
        DriveConfig(width=4)
    with pytest.raises(ValueError, match="index"):
        SyntheticDrive(SMALL).frame(-1)


# A LiDAR at the camera's optical centre: x forward (camera z), y left (-x), z up (-y).
CAMERA_FROM_LIDAR = np.array(
    [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def test_lidar_scan_hits_the_surfaces_the_camera_sees():
    drive = SyntheticDrive(DriveConfig(width=621, height=188))
    frame = drive.frame(2)
    model = lidar.LidarModel(azimuth_step_deg=0.5)
    points = lidar.scan(
        drive.scene(2, behind=model.max_range), frame.pose @ CAMERA_FROM_LIDAR, model
    )
    assert points.dtype == np.float32 and points.shape[1] == 4
    assert np.all(np.linalg.norm(points[:, :3], axis=1) <= model.max_range)
    assert np.all((points[:, 3] >= 0) & (points[:, 3] <= 1))
    # A full turn: returns behind the sensor too (the road and the street behind).
    assert np.count_nonzero(points[:, 0] < 0) > 0.2 * len(points)
    in_camera = points[:, :3] @ CAMERA_FROM_LIDAR[:3, :3].T
    sparse = sparse_depth_from_points(in_camera, frame.intrinsics)
    measured = sparse > 0
    # Sparse like KITTI's LiDAR: a few percent of the pixels, no sky.
    assert 0.005 < measured.mean() < 0.5
    assert np.all(frame.depth[measured] > 0)
    # Rasterising snaps a point to its nearest pixel centre; on this image that moves the road's
    # depth by well under 5 % except at a few object edges.
    rel = np.abs(sparse[measured] - frame.depth[measured]) / frame.depth[measured]
    assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.9
    # The top beam points 2 deg up: nothing above that cone (highest at the image's side edges).
    intr = frame.intrinsics
    rise = np.tan(np.deg2rad(2.1)) * np.hypot(1.0, intr.cx / intr.fx)
    assert np.nonzero(measured)[0].min() >= intr.cy - intr.fy * rise


def test_lidar_model_is_validated():
    with pytest.raises(ValueError, match="azimuth_step_deg"):
        lidar.LidarModel(azimuth_step_deg=0.0)
