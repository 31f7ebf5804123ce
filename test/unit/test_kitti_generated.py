"""The generated KITTI drive: images, scans and calibration describe one street, so they agree."""

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from space_clip_ros.cli.kitti2bag import main as kitti2bag
from space_clip_ros.evaluation.transforms import lookup_static, matrix_from_transform
from space_clip_ros.geometry import project, transform_points
from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.kitti.drive import KittiDrive
from space_clip_ros.kitti.generated_drive import main as generate_drive
from space_clip_ros.kitti.generated_drive import street_rig, write_synthetic_drive

SMALL = ("--width", "124", "--height", "38")


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


# --- the command (issue 17, item 16): space-clip-generate-drive, with oxts/ so `world` exists


def test_the_command_writes_a_drive_whose_bag_moves_the_camera_as_the_street_does(tmp_path):
    """/tf (world -> base_link) and /tf_static carry camera 2 exactly along the street's path, so
    depth of every frame lands on one street in `world` (kitti_replay.rviz's fixed frame)."""
    frames = 4
    assert generate_drive([str(tmp_path / "gen"), "--frames", str(frames), *SMALL]) == 0
    drive_dir = tmp_path / "gen" / "2011_09_26" / "2011_09_26_drive_0001_sync"
    assert sorted(p.name for p in drive_dir.iterdir()) == [
        "image_02",
        "image_03",
        "oxts",
        "velodyne_points",
    ]
    assert [p.name for p in (tmp_path / "gen").iterdir()] == ["2011_09_26"]  # no staging left
    bag = tmp_path / "bag"
    assert kitti2bag([str(drive_dir), "-o", str(bag), "--no-progress"]) == 0
    with Reader(bag) as reader:
        messages = [
            (conn.topic, msgs.deserialize(data, conn.msgtype))
            for conn, _, data in reader.messages()
            if conn.topic in ("/tf", "/tf_static")
        ]
    static = next(m for topic, m in messages if topic == "/tf_static").transforms
    base_from_camera = lookup_static(static, "base_link", "camera_color_left")
    world_from_camera = [
        matrix_from_transform(m.transforms[0].transform) @ base_from_camera
        for topic, m in messages
        if topic == "/tf"
    ]
    assert len(world_from_camera) == frames
    street = street_rig(drive_dir.parent).street
    for index, pose in enumerate(world_from_camera):
        moved = np.linalg.inv(world_from_camera[0]) @ pose  # camera i in camera 0's frame
        np.testing.assert_allclose(moved[:3, :3], np.eye(3), atol=1e-9)
        # Straight along the optical axis (the IMU's forward axis is half a degree off it: 2.5 cm
        # sideways after 3 m); along it the street steps by index, the packets by stamp (2 ms
        # jitter: up to 2 cm).
        np.testing.assert_allclose(moved[:2, 3], [0.0, 0.0], atol=1e-3)
        assert moved[2, 3] == pytest.approx(street.pose(index)[2, 3], abs=0.025)
    assert np.linalg.norm(world_from_camera[-1][:3, 3] - world_from_camera[0][:3, 3]) > 3.0


def test_the_command_never_overwrites_and_checks_its_arguments(tmp_path, capsys):
    (tmp_path / "2011_09_26").mkdir()
    (tmp_path / "2011_09_26" / "calib_cam_to_cam.txt").write_text("real KITTI calibration")
    assert generate_drive([str(tmp_path), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / '2011_09_26'}: already exists. Fix: pass another root folder" in err
    assert (
        tmp_path / "2011_09_26" / "calib_cam_to_cam.txt"
    ).read_text() == "real KITTI calibration"
    assert generate_drive([str(tmp_path / "new"), "--frames", "0"]) == 2
    assert "--frames: 0 is outside 1..100000" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
