"""KITTI drive -> rosbag2 -> read back; the offline accuracy tool on bags with recorded depth."""

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader, Writer

from space_clip_ros.cli.bag_accuracy import main as accuracy_main
from space_clip_ros.cli.kitti2bag import main as kitti2bag
from space_clip_ros.evaluation.lidar_gt import lidar_depth
from space_clip_ros.evaluation.transforms import lookup_static
from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.io.msg_arrays import pointcloud2_to_array
from space_clip_ros.kitti.calibration import load_calibration
from space_clip_ros.kitti.drive import KittiDrive
from space_clip_ros.kitti.generated_drive import write_synthetic_drive
from space_clip_ros.kitti.to_bag import (
    VELO_TOPIC,
    camera_info_topic,
    image_topic,
)

LEFT_IMAGE, LEFT_INFO = image_topic(2), camera_info_topic(2)
DEPTH, DEPTH_INFO = "/kitti/camera_color_left/depth", "/kitti/camera_color_left/depth/camera_info"


@pytest.fixture(scope="module")
def drive_dir(tmp_path_factory) -> Path:
    return write_synthetic_drive(tmp_path_factory.mktemp("kitti"), frames=4)


def read_bag(path: Path) -> dict[str, list]:
    """topic -> [(bag time, deserialized message)] and the connections' QoS."""
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, t, data in reader.messages():
            out.setdefault(conn.topic, []).append((t, msgs.deserialize(data, conn.msgtype)))
        out["_qos"] = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    return out


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_holds_the_drive(drive_dir: Path, tmp_path: Path, storage: str):
    out = tmp_path / "bag"
    assert (
        kitti2bag(
            [str(drive_dir), "-o", str(out), "--storage", storage, "--right", "--no-progress"]
        )
        == 0
    )
    bag = read_bag(out)
    drive = KittiDrive(drive_dir)
    calib = load_calibration(drive_dir.parent)

    for camera in (2, 3):
        images, infos = bag[image_topic(camera)], bag[camera_info_topic(camera)]
        assert len(images) == len(infos) == 4
        expected = drive.stamps(f"image_0{camera}")
        assert [stamp(m) for _, m in images] == expected == [t for t, _ in images]
        for index, ((_, img), (_, info)) in enumerate(zip(images, infos)):
            assert (img.encoding, img.width, img.height, img.step) == ("rgb8", 124, 38, 372)
            np.testing.assert_array_equal(img.data.reshape(38, 124, 3), drive.image(camera, index))
            k = calib.camera(camera).projection[:, :3]
            np.testing.assert_array_equal(
                info.p.reshape(3, 4), np.hstack([k, np.zeros((3, 1))])
            )  # Tx = Ty = Tz = 0
            np.testing.assert_array_equal(info.k.reshape(3, 3), k)
            np.testing.assert_array_equal(info.r.reshape(3, 3), np.eye(3))
            assert (info.width, info.height, stamp(info)) == (124, 38, stamp(img))
            assert (
                info.header.frame_id
                == img.header.frame_id
                == ("camera_color_left" if camera == 2 else "camera_color_right")
            )

    clouds = bag[VELO_TOPIC]
    assert [stamp(m) for _, m in clouds] == drive.stamps("velodyne_points")
    for index, (_, cloud) in enumerate(clouds):
        assert cloud.header.frame_id == "velo_link"
        np.testing.assert_array_equal(
            pointcloud2_to_array(cloud, ("x", "y", "z", "intensity")), drive.scan(index)
        )

    ((t, tf),) = bag["/tf_static"]
    assert t <= min(t for topic, items in bag.items() if topic != "_qos" for t, _ in items)
    (qos,) = bag["_qos"]["/tf_static"]
    assert qos.durability == QosDurability.TRANSIENT_LOCAL and qos.depth == 1
    for camera, frame in ((2, "camera_color_left"), (3, "camera_color_right")):
        np.testing.assert_allclose(
            lookup_static(tf.transforms, frame, "velo_link"),
            calib.camera_from_velodyne(camera),
            atol=1e-6,
        )


def test_bag_tf_and_full_camera_info_p_project_like_the_kitti_devkit(
    drive_dir: Path, tmp_path: Path
):
    """rviz2 and image_geometry project with all of P (Tx, Ty included) after tf: that must be
    the devkit's pixel."""
    out = tmp_path / "bag"
    assert (
        kitti2bag([str(drive_dir), "-o", str(out), "--right", "--no-velodyne", "--no-progress"])
        == 0
    )
    bag = read_bag(out)
    ((_, tf),) = bag["/tf_static"]
    calib = load_calibration(drive_dir.parent)
    velo = np.array(
        [[20.0, 1.5, 0.5, 1.0], [8.0, -3.0, -1.5, 1.0], [40.0, 0.0, 2.0, 1.0]]
    ).T  # homogeneous, metres
    rect = np.eye(4)
    rect[:3, :3] = calib.rect_00
    for camera, frame in ((2, "camera_color_left"), (3, "camera_color_right")):
        devkit = (
            calib.camera(camera).projection @ rect @ calib.velo_to_cam @ velo
        )  # P_rect_0i R_rect_00 Tr_velo_to_cam X
        (_, info), *_ = bag[camera_info_topic(camera)]
        ros = info.p.reshape(3, 4) @ lookup_static(tf.transforms, frame, "velo_link") @ velo
        np.testing.assert_allclose(ros[:2] / ros[2], devkit[:2] / devkit[2], atol=1e-6)


def test_frame_range_and_stream_selection(drive_dir: Path, tmp_path: Path):
    out = tmp_path / "bag"
    assert (
        kitti2bag(
            [
                str(drive_dir),
                "-o",
                str(out),
                "--start",
                "1",
                "--end",
                "3",
                "--no-velodyne",
                "--no-oxts",
                "--no-progress",
            ]
        )
        == 0
    )
    bag = read_bag(out)
    assert set(bag) - {"_qos"} == {"/tf_static", LEFT_IMAGE, LEFT_INFO}
    assert [stamp(m) for _, m in bag[LEFT_IMAGE]] == KittiDrive(drive_dir).stamps("image_02")[1:3]
    assert kitti2bag([str(drive_dir), "-o", str(tmp_path / "b2"), "--end", "9"]) == 2


def test_converter_reports_a_truncated_scan(tmp_path: Path, capsys):
    drive_dir = write_synthetic_drive(tmp_path, frames=2)
    scan = drive_dir / "velodyne_points" / "data" / "0000000001.bin"
    scan.write_bytes(scan.read_bytes()[:-3])
    assert kitti2bag([str(drive_dir), "-o", str(tmp_path / "bag"), "--no-progress"]) == 2
    assert "0000000001.bin" in capsys.readouterr().err


def write_recorded_bag(
    drive_dir: Path, out: Path, scale: float, depth_size: tuple[int, int] | None = None
) -> None:
    """The KITTI bag plus a 'recorded' depth stream: scale x the LiDAR truth, NaN elsewhere."""
    source = out.parent / f"{out.name}_kitti"
    kitti2bag([str(drive_dir), "-o", str(source), "--no-progress"])
    calib = load_calibration(drive_dir.parent)
    intr = calib.intrinsics(2)
    if depth_size is not None:
        intr = intr.scaled(*depth_size)
    drive = KittiDrive(drive_dir)
    with Reader(source) as reader, Writer(out, version=8) as writer:
        conns = {
            c.topic: writer.add_connection(
                c.topic,
                c.msgtype,
                typestore=msgs.TYPESTORE,
                offered_qos_profiles=c.ext.offered_qos_profiles,
            )
            for c in reader.connections
        }
        depth_conn = writer.add_connection(DEPTH, msgs.IMAGE, typestore=msgs.TYPESTORE)
        info_conn = writer.add_connection(DEPTH_INFO, msgs.CAMERA_INFO, typestore=msgs.TYPESTORE)
        frame = 0
        for conn, t, data in reader.messages():
            writer.write(conns[conn.topic], t, data)
            if conn.topic == LEFT_IMAGE:
                gt = lidar_depth(drive.scan(frame), calib.camera_from_velodyne(2), intr)
                depth = np.where(gt > 0, gt * scale, np.nan).astype(np.float32)
                p = np.hstack([intr.matrix, np.zeros((3, 1))])
                writer.write(
                    info_conn,
                    t,
                    msgs.serialize(
                        msgs.camera_info(p, intr.width, intr.height, t, "camera_color_left")
                    ),
                )
                writer.write(
                    depth_conn, t, msgs.serialize(msgs.image(depth, t, "camera_color_left"))
                )
                frame += 1


def run_accuracy(bag: Path, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "metrics.json"
    assert accuracy_main([str(bag), "--crop", "none", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_accuracy_of_depth_equal_to_the_lidar(drive_dir: Path, tmp_path: Path, capsys):
    bag = tmp_path / "recorded"
    write_recorded_bag(drive_dir, bag, scale=1.0)
    for extra in (
        (),
        ("--calib-dir", str(drive_dir.parent)),
    ):  # transform from /tf_static, then from the files
        report = run_accuracy(bag, tmp_path, "--per-frame", *extra)
        assert report["frames_paired"] == report["frames_with_ground_truth"] == 4
        assert report["mean"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
        assert report["mean"]["rmse"] == pytest.approx(0.0, abs=1e-5)
        assert report["mean"]["delta1"] == 1.0
    table = capsys.readouterr().out
    assert "abs_rel" in table and "mean (4)" in table


@pytest.mark.parametrize("scale", [1.1, 1.3])
def test_accuracy_with_a_known_scale_error(drive_dir: Path, tmp_path: Path, scale: float):
    bag = tmp_path / "recorded"
    write_recorded_bag(
        drive_dir, bag, scale=scale, depth_size=(62, 19)
    )  # depth at half the camera resolution
    # The street's LiDAR reaches 120 m: lift the 80 m cap so no scaled depth is clipped and the
    # metrics keep their closed form.
    report = run_accuracy(bag, tmp_path, "--max-depth", "200")
    calib = load_calibration(drive_dir.parent)
    intr = calib.intrinsics(2).scaled(62, 19)
    rmse = []
    for index in range(4):
        gt = lidar_depth(KittiDrive(drive_dir).scan(index), calib.camera_from_velodyne(2), intr)
        gt = gt[(gt > 0) & (gt < 200)]
        rmse.append((scale - 1) * np.sqrt(np.mean(gt**2)))  # |s g - g| = (s - 1) g
    mean = report["mean"]
    assert mean["abs_rel"] == pytest.approx(scale - 1, rel=1e-5)  # |s g - g| / g
    assert mean["rmse"] == pytest.approx(np.mean(rmse), rel=1e-5)
    assert mean["rmse_log"] == pytest.approx(np.log(scale), rel=1e-5)
    assert mean["delta1"] == (1.0 if scale < 1.25 else 0.0)
    assert mean["delta2"] == 1.0


def test_accuracy_tool_names_a_missing_topic(drive_dir: Path, tmp_path: Path, capsys):
    bag = tmp_path / "kitti"
    kitti2bag([str(drive_dir), "-o", str(bag), "--no-progress"])
    assert accuracy_main([str(bag)]) == 2
    assert "topic /kitti/camera_color_left/depth not in the bag" in capsys.readouterr().err


def test_accuracy_tool_refuses_a_table_of_nan(drive_dir: Path, tmp_path: Path, capsys):
    """Frames paired, but no LiDAR return within the range: an error, not NaN metrics."""
    bag = tmp_path / "recorded"
    write_recorded_bag(drive_dir, bag, scale=1.0)
    out = tmp_path / "report.json"
    assert accuracy_main([str(bag), "--max-depth", "0.5", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert "error: none of the 4 paired frames had a LiDAR return inside the evaluated region" in (
        captured.err
    )
    assert "abs_rel" not in captured.out and not out.exists()
