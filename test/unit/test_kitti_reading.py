"""KITTI raw reading: calibration, timestamps, frames, and the errors users see on bad data."""

from pathlib import Path

import numpy as np
import pytest

from space_clip_ros.evaluation.lidar_gt import lidar_depth
from space_clip_ros.geometry import project, transform_points
from space_clip_ros.kitti.calibration import (
    CAM_TO_CAM,
    VELO_TO_CAM,
    KittiCalibration,
    RectifiedCamera,
    load_calibration,
)
from space_clip_ros.kitti.drive import KittiDrive
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.generated_drive import write_synthetic_drive
from space_clip_ros.kitti.timestamps import format_timestamp, load_timestamps, parse_timestamp


@pytest.fixture()
def drive_dir(tmp_path: Path) -> Path:
    return write_synthetic_drive(tmp_path, frames=3)


def test_timestamp_keeps_nanoseconds():
    stamp = parse_timestamp("2011-09-26 13:02:25.964389445")
    assert stamp == 1317042145_964389445  # 2011-09-26 13:02:25 UTC
    assert format_timestamp(stamp) == "2011-09-26 13:02:25.964389445"
    assert parse_timestamp("2011-09-26 13:02:25.5") == 1317042145_500000000


def test_bad_timestamp_names_file_and_line(tmp_path: Path):
    path = tmp_path / "timestamps.txt"
    path.write_text("2011-09-26 13:02:25.964389445\n2011-09-26 13:02:26,064\n")
    with pytest.raises(KittiFormatError, match=r"timestamps.txt:2: .*2011-09-26 13:02:26,064"):
        load_timestamps(path)


def test_drive_reads_frames_stamps_and_scans(drive_dir: Path):
    drive = KittiDrive(drive_dir)
    assert len(drive) == 3
    stamps = drive.stamps("image_02")
    assert stamps == sorted(stamps) and stamps[0] // 10**9 == 1317042145
    image = drive.image(2, 1)
    assert image.shape == (38, 124, 3) and image.dtype == np.uint8
    scan = drive.scan(2)
    raw = np.fromfile(
        drive_dir / "velodyne_points" / "data" / "0000000002.bin", dtype=np.float32
    ).reshape(-1, 4)
    np.testing.assert_array_equal(scan, raw)
    assert drive.calibration.intrinsics(2).width == 124


def test_calibration_fields_match_the_files(drive_dir: Path):
    calib = load_calibration(drive_dir.parent)
    text = (drive_dir.parent / CAM_TO_CAM).read_text()
    p_rect_02 = next(line for line in text.splitlines() if line.startswith("P_rect_02:")).split(
        ":"
    )[1]
    np.testing.assert_array_equal(
        calib.camera(2).projection.ravel(), np.array(p_rect_02.split(), dtype=float)
    )
    assert (calib.camera(2).width, calib.camera(2).height) == (124, 38)
    assert sorted(calib.cameras) == [0, 1, 2, 3]


def test_projection_of_a_known_point_lands_on_the_expected_pixel():
    # Velodyne x forward, y left, z up; camera x right, y down, z forward.
    axes = np.eye(4)
    axes[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]
    projection = np.array([[100.0, 0, 50, 0], [0, 100, 20, 0], [0, 0, 1, 0]])
    calib = KittiCalibration(axes, np.eye(3), {2: RectifiedCamera(projection, 100, 40)})
    point = np.array([[10.0, -1.0, 0.5]])  # 10 m ahead, 1 m right, 0.5 m up
    depth = lidar_depth(point, calib.camera_from_velodyne(2), calib.intrinsics(2))
    # camera (1, -0.5, 10): u = 100 * 0.1 + 50 = 60, v = 100 * -0.05 + 20 = 15
    assert depth[15, 60] == pytest.approx(10.0)
    assert np.count_nonzero(depth) == 1


def test_transform_reproduces_the_devkit_projection(drive_dir: Path):
    """P_rect_02 @ R_rect_00 @ Tr_velo_to_cam @ X (KITTI devkit) == K (T_cam_velo X).

    P's 4th column (camera 2's offset along the rig) included.
    """
    calib = load_calibration(drive_dir.parent)
    points = np.array([[20.0, 1.0, 0.5], [8.0, -2.0, -1.5], [35.0, 4.0, 1.0]])
    homog = np.hstack([points, np.ones((3, 1))]).T
    rect = np.eye(4)
    rect[:3, :3] = calib.rect_00
    devkit = calib.camera(2).projection @ rect @ calib.velo_to_cam @ homog
    u, v, z = project(transform_points(points, calib.camera_from_velodyne(2)), calib.intrinsics(2))
    np.testing.assert_allclose(u, devkit[0] / devkit[2], atol=1e-9)
    np.testing.assert_allclose(v, devkit[1] / devkit[2], atol=1e-9)
    np.testing.assert_allclose(z, devkit[2], atol=1e-9)
    assert (
        abs(calib.camera(2).offset[0]) > 0.05
    )  # camera 2 sits ~6 cm from camera 0: the offset is used


def test_malformed_calibration_names_file_line_and_field(drive_dir: Path):
    path = drive_dir.parent / CAM_TO_CAM
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("P_rect_02:"))
    lines[row] = "P_rect_02: 7.2e+01 0.0 six 0.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        KittiFormatError,
        match=rf"calib_cam_to_cam.txt:{row + 1}: field 'P_rect_02' holds a non-number",
    ):
        load_calibration(drive_dir.parent)


def test_calibration_with_wrong_field_size_or_missing_field(drive_dir: Path):
    path = drive_dir.parent / VELO_TO_CAM
    path.write_text(path.read_text().replace("T: ", "T: 1.0 "))
    with pytest.raises(
        KittiFormatError, match=r"calib_velo_to_cam.txt: field 'T' has 4 values, expected 3"
    ):
        load_calibration(drive_dir.parent)
    path.write_text("calib_time: 15-Mar-2012 11:37:16\nno colon here\n")
    with pytest.raises(
        KittiFormatError, match=r"calib_velo_to_cam.txt:2: expected 'name: values'"
    ):
        load_calibration(drive_dir.parent)
    path.unlink()
    with pytest.raises(
        KittiFormatError, match=r"calib_velo_to_cam.txt: calibration file not found"
    ):
        load_calibration(drive_dir.parent)


def test_missing_frame_names_the_file(drive_dir: Path):
    missing = drive_dir / "image_02" / "data" / "0000000001.png"
    missing.unlink()
    with pytest.raises(KittiFormatError, match=r"0000000001.png: frame 1 is missing"):
        KittiDrive(drive_dir).image(2, 1)


def test_truncated_scan_names_the_file(drive_dir: Path):
    path = drive_dir / "velodyne_points" / "data" / "0000000001.bin"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(
        KittiFormatError,
        match=rf"0000000001.bin: {size - 6} bytes is not a whole number of 16-byte points",
    ):
        KittiDrive(drive_dir).scan(1)
