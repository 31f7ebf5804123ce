"""The generated KITTI drive: images, scans and calibration describe one street, so they agree."""

from pathlib import Path

import numpy as np
import pytest

from space_clip_ros.geometry import project, transform_points
from space_clip_ros.kitti.drive import KittiDrive
from space_clip_ros.kitti.generated_drive import street_rig, write_synthetic_drive


@pytest.fixture(scope="module")
def drive_dir(tmp_path_factory) -> Path:
    return write_synthetic_drive(tmp_path_factory.mktemp("kitti"), frames=2)


def _bracketed(z: np.ndarray, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Per point: does z lie between the depths of the 4 pixel centres around (u, v) (+-1 %)?

    On a plane 1/z is affine in (u, v), so the exact depth at a sub-pixel position lies between
    its neighbours' depths; only points at object edges may fall outside. Points next to sky
    (depth 0) or the image border are left out (returned False, counted in `usable`).
    """
    u0, v0 = np.floor(u), np.floor(v)
    height, width = depth.shape
    inside = np.isfinite(u) & (u0 >= 0) & (v0 >= 0) & (u0 < width - 1) & (v0 < height - 1)
    u0, v0, z = u0[inside].astype(int), v0[inside].astype(int), z[inside]
    corners = np.stack(
        [depth[v0, u0], depth[v0 + 1, u0], depth[v0, u0 + 1], depth[v0 + 1, u0 + 1]]
    )
    usable = (corners > 0).all(axis=0)
    ok = (z >= corners.min(axis=0) * 0.99) & (z <= corners.max(axis=0) * 1.01)
    return ok[usable]


@pytest.mark.parametrize("camera", [2, 3])
def test_scan_projected_with_the_calibration_lands_on_the_image_depth(drive_dir, camera):
    drive = KittiDrive(drive_dir)
    rig = street_rig(drive_dir.parent)
    calib = drive.calibration
    for index in range(len(drive)):
        rgb, depth = rig.render(camera, index)
        # The image on disk IS the street as this camera sees it.
        np.testing.assert_array_equal(drive.image(camera, index), rgb)
        points = transform_points(drive.scan(index)[:, :3], calib.camera_from_velodyne(camera))
        u, v, z = project(points, calib.intrinsics(camera))
        agree = _bracketed(z, u, v, depth)
        # Hundreds of returns on a 124x38 image, and all but edge points on the depth.
        assert len(agree) > 1000
        assert agree.mean() > 0.97, f"camera {camera} frame {index}: {agree.mean():.3f}"


def test_a_wrong_calibration_would_not_agree(drive_dir):
    """The agreement above is not automatic: mounting the LiDAR 10 cm off in height breaks it."""
    drive = KittiDrive(drive_dir)
    rig = street_rig(drive_dir.parent)
    calib = drive.calibration
    _, depth = rig.render(2, 0)
    wrong = calib.camera_from_velodyne(2).copy()
    wrong[1, 3] += 0.1  # camera y is down
    u, v, z = project(transform_points(drive.scan(0)[:, :3], wrong), calib.intrinsics(2))
    assert _bracketed(z, u, v, depth).mean() < 0.9


def test_scans_look_like_a_velodyne(drive_dir):
    drive = KittiDrive(drive_dir)
    scan = drive.scan(0)
    assert scan.dtype == np.float32 and scan.shape[1] == 4
    ranges = np.linalg.norm(scan[:, :3], axis=1)
    assert 1.0 < ranges.min() and ranges.max() <= 120.0
    # A full turn: returns ahead and behind; the road lies ~1.7 m below the sensor.
    assert (scan[:, 0] > 0).any() and (scan[:, 0] < 0).any()
    road = scan[(np.abs(scan[:, 1]) < 2.0) & (scan[:, 0] > 5.0) & (scan[:, 0] < 15.0)]
    assert len(road) and np.median(road[:, 2]) == pytest.approx(-1.73, abs=0.15)
    assert 0.0 <= scan[:, 3].min() and scan[:, 3].max() <= 1.0
    # Consecutive frames see the street from consecutive positions: not the same scan.
    assert not np.array_equal(scan, drive.scan(1))
