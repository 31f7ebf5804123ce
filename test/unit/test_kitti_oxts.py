"""KITTI OXTS: packet parsing, the devkit's Mercator poses, Imu / NavSatFix / /tf in the bag."""

import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from space_clip_ros.cli.kitti2bag import main as kitti2bag
from space_clip_ros.evaluation.transforms import (
    invert,
    lookup_static,
    matrix_from_quaternion,
    matrix_from_transform,
)
from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.kitti.calibration import IMU_TO_VELO, load_calibration, load_imu_to_velo
from space_clip_ros.kitti.drive import KittiDrive
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.generated_drive import write_synthetic_drive
from space_clip_ros.kitti.generated_oxts import (
    IMU_TO_VELO_R,
    IMU_TO_VELO_T,
    add_straight_drive,
    straight_drive,
)
from space_clip_ros.kitti.oxts import (
    EARTH_RADIUS_M,
    FIELDS,
    MercatorOrigin,
    OxtsPacket,
    load_packet,
    mercator_scale,
    parse_packet,
    rotation,
)
from space_clip_ros.kitti.to_bag import GPS_TOPIC, IMU_TOPIC, TF_TOPIC, oxts_messages

FRAMES = 5
SPEED, YAW = 12.5, 0.7
OXTS_TOPICS = {TF_TOPIC, IMU_TOPIC, GPS_TOPIC}
# A line laid out as KITTI's oxts files are (30 values, the last five integer codes).
REAL_LINE = (
    "49.015003823272 8.4342971002335 116.43032836914 0.035752 0.00903 -2.6087069803847 "
    "-7.2128071575933 -3.4809475864305 7.9169443769139 1.9241398122973 1.1553972847353 "
    "-0.83585299966552 0.10640662823122 9.8061306146194 -0.71733498553843 0.2627047839493 "
    "9.8315811853542 -0.0095326592624567 0.0074627165089829 -0.029233005735211 "
    "-0.0088698705624834 0.0061286802153349 -0.029571316981283 0.49812098175119 "
    "0.079999999999999 4 10 4 4 0"
)


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def read_bag(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, t, data in reader.messages():
            out.setdefault(conn.topic, []).append((t, msgs.deserialize(data, conn.msgtype)))
    return out


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a sphere of the devkit's radius: independent of Mercator."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def packet(lat: float, lon: float, alt: float = 100.0, **angles: float) -> OxtsPacket:
    values = dict.fromkeys(FIELDS, 0.0) | {"lat": lat, "lon": lon, "alt": alt} | angles
    return OxtsPacket(**values)


@pytest.fixture(scope="module")
def oxts_drive(tmp_path_factory) -> tuple[Path, list[OxtsPacket], list[int]]:
    drive_dir = write_synthetic_drive(tmp_path_factory.mktemp("kitti"), frames=FRAMES)
    packets, stamps = add_straight_drive(drive_dir, speed_mps=SPEED, yaw=YAW)
    return drive_dir, packets, stamps


def test_real_kitti_line_parses_field_by_field():
    p = parse_packet(REAL_LINE)
    assert len(FIELDS) == 30
    assert (p.lat, p.lon, p.alt) == (49.015003823272, 8.4342971002335, 116.43032836914)
    assert (p.yaw, p.au, p.wu) == (-2.6087069803847, 9.8315811853542, -0.029571316981283)
    assert (p.pos_accuracy, p.numsats, p.posmode, p.orimode) == (0.49812098175119, 10, 4, 0)
    assert parse_packet(p.format()) == p  # the generator's writer is the parser's inverse


@pytest.mark.parametrize(
    "line, message",
    [
        (REAL_LINE.rsplit(" ", 1)[0], r"29 values, expected 30"),
        (REAL_LINE.replace("116.43032836914", "nan"), r"field 'alt' holds NaN"),
        (REAL_LINE.replace("-2.6087069803847", "west"), r"field 'yaw' holds a non-number"),
        (REAL_LINE.replace("49.015003823272", "95"), r"field 'lat' is 95, outside -90\.\.90"),
        (REAL_LINE.replace("49.015003823272", "-90"), r"field 'lat' is -90, outside -90\.\.90"),
        (REAL_LINE.replace("8.4342971002335", "181"), r"field 'lon' is 181, outside -180"),
        (REAL_LINE.replace("0.49812098175119", "-1"), r"field 'pos_accuracy' is -1, outside 0"),
    ],
)
def test_bad_packet_names_file_and_field(tmp_path: Path, line: str, message: str):
    path = tmp_path / "0000000000.txt"
    path.write_text(line + "\n")
    with pytest.raises(KittiFormatError, match=rf"0000000000.txt: {message}"):
        load_packet(path)


def test_straight_drive_at_known_speed_gives_the_expected_translation():
    stamps = [i * 100_000_000 for i in range(11)]  # 10 Hz for 1 s
    packets = straight_drive(stamps, speed_mps=SPEED, yaw=YAW)
    origin = MercatorOrigin.from_packet(packets[0])
    for t, p in zip(stamps, packets):
        travelled = SPEED * t * 1e-9
        expected = [travelled * math.cos(YAW), travelled * math.sin(YAW), 0.0]
        np.testing.assert_allclose(origin.pose(p)[:3, 3], expected, atol=1e-6)
    # Independent of the Mercator formulas: the metric distance on the sphere after 1 s.
    last = packets[-1]
    sphere = haversine_m(packets[0].lat, packets[0].lon, last.lat, last.lon)
    assert sphere == pytest.approx(SPEED, rel=1e-5)
    assert np.linalg.norm(origin.pose(last)[:3, 3]) == pytest.approx(sphere, rel=1e-5)


@pytest.mark.parametrize("lat", [0.0, 49.011, 60.0])
def test_mercator_scale_comes_from_the_first_latitude(lat: float):
    origin = MercatorOrigin.from_packet(packet(lat, 8.0))
    assert origin.scale == pytest.approx(math.cos(math.radians(lat)))
    assert mercator_scale(60.0) == pytest.approx(0.5)
    east = origin.pose(packet(lat, 8.0 + 1e-3))[:3, 3]
    north = origin.pose(packet(lat + 1e-3, 8.0))[:3, 3]
    degree_m = EARTH_RADIUS_M * math.pi / 180  # 111.32 km: one degree of a great circle
    # A longitude step shrinks with cos(lat); a latitude step is true metres at the origin.
    assert east[0] == pytest.approx(1e-3 * degree_m * math.cos(math.radians(lat)), rel=1e-9)
    assert north[1] == pytest.approx(1e-3 * degree_m, rel=1e-4)
    assert east[0] == pytest.approx(haversine_m(lat, 8.0, lat, 8.001), rel=1e-6)
    assert east[1] == north[0] == 0.0
    up = origin.pose(packet(lat, 8.0, alt=103.5))[:3, 3]
    np.testing.assert_allclose(up, [0, 0, 3.5], atol=1e-9)


def devkit_convert_oxts_to_pose(packets: list[OxtsPacket]) -> list[np.ndarray]:
    """KITTI devkit's convertOxtsToPose.m, transcribed line by line (poses in the first pose)."""
    scale = np.cos(packets[0].lat * np.pi / 180.0)
    er = 6378137.0
    poses, tr_0_inv = [], None
    for p in packets:
        t = [
            scale * p.lon * np.pi * er / 180,
            scale * er * np.log(np.tan((90 + p.lat) * np.pi / 360)),
            p.alt,
        ]
        rx, ry, rz = p.roll, p.pitch, p.yaw
        Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
        Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
        Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = Rz @ Ry @ Rx, t
        if tr_0_inv is None:
            tr_0_inv = np.linalg.inv(pose)
        poses.append(tr_0_inv @ pose)
    return poses


def test_poses_are_the_devkits_expressed_in_east_north_up():
    """Ours keep world's axes east-north-up; the devkit's also rotate into the first pose."""
    packets = straight_drive([i * 100_000_000 for i in range(6)], speed_mps=SPEED, yaw=YAW)
    packets = [p._replace(yaw=YAW + 0.05 * i, alt=p.alt + 0.2 * i) for i, p in enumerate(packets)]
    origin = MercatorOrigin.from_packet(packets[0])
    first = origin.pose(packets[0])
    np.testing.assert_allclose(first[:3, 3], 0.0, atol=1e-9)
    for ours, devkit in zip(
        [origin.pose(p) for p in packets], devkit_convert_oxts_to_pose(packets)
    ):
        np.testing.assert_allclose(np.linalg.inv(first) @ ours, devkit, atol=1e-6)


def test_rotation_follows_the_oxts_sign_conventions():
    forward, left = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    np.testing.assert_allclose(rotation(0, 0, math.pi / 2) @ forward, [0, 1, 0], atol=1e-12)
    assert (rotation(0, 0.1, 0) @ forward)[2] < 0  # positive pitch: front down
    assert (rotation(0.1, 0, 0) @ left)[2] > 0  # positive roll: left side up
    r = rotation(0.1, -0.2, 2.5)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_imu_and_navsatfix_round_trip_through_the_bag(oxts_drive, tmp_path: Path):
    drive_dir, packets, stamps = oxts_drive
    out = tmp_path / "bag"
    assert kitti2bag([str(drive_dir), "-o", str(out), "--no-progress"]) == 0
    bag = read_bag(out)
    assert OXTS_TOPICS <= set(bag)
    assert KittiDrive(drive_dir).stamps("oxts") == stamps

    imus, fixes = bag[IMU_TOPIC], bag[GPS_TOPIC]
    assert len(imus) == len(fixes) == FRAMES
    for p, s, (t_imu, imu), (t_fix, fix) in zip(packets, stamps, imus, fixes):
        assert stamp(imu) == stamp(fix) == t_imu == t_fix == s
        assert imu.header.frame_id == fix.header.frame_id == "imu_link"
        q = imu.orientation
        np.testing.assert_allclose(
            matrix_from_quaternion(q.x, q.y, q.z, q.w), rotation(p.roll, p.pitch, p.yaw), atol=1e-9
        )
        av, la = imu.angular_velocity, imu.linear_acceleration
        assert (av.x, av.y, av.z) == (p.wf, p.wl, p.wu)
        assert (la.x, la.y, la.z) == (p.af, p.al, p.au)
        assert la.z == pytest.approx(9.81, abs=0.5)  # gravity included, as sensor_msgs/Imu wants
        assert (fix.latitude, fix.longitude, fix.altitude) == (p.lat, p.lon, p.alt)
        np.testing.assert_array_equal(
            fix.position_covariance.reshape(3, 3), np.eye(3) * p.pos_accuracy**2
        )
        assert fix.position_covariance_type == fix.COVARIANCE_TYPE_APPROXIMATED
        assert fix.status.status == fix.status.STATUS_FIX
        assert fix.status.service == fix.status.SERVICE_GPS


def test_tf_stamps_and_poses_follow_the_oxts(oxts_drive, tmp_path: Path):
    drive_dir, packets, stamps = oxts_drive
    out = tmp_path / "bag"
    assert kitti2bag([str(drive_dir), "-o", str(out), "--start", "2", "--no-progress"]) == 0
    bag = read_bag(out)
    tfs = bag[TF_TOPIC]
    assert [t for t, _ in tfs] == stamps[2:]
    for (t, message), s in zip(tfs, stamps[2:]):
        (edge,) = message.transforms
        assert (edge.header.frame_id, edge.child_frame_id, stamp(edge)) == (
            "world",
            "base_link",
            s,
        )
        # World stays anchored at the drive's first packet even when the bag starts later.
        travelled = SPEED * (s - stamps[0]) * 1e-9
        np.testing.assert_allclose(
            matrix_from_transform(edge.transform)[:3, 3],
            [travelled * math.cos(YAW), travelled * math.sin(YAW), 0.0],
            atol=1e-5,
        )

    ((t_static, static),) = bag["/tf_static"]
    assert t_static <= min(t for topic, items in bag.items() for t, _ in items)
    imu_to_velo = load_imu_to_velo(drive_dir.parent)
    expected = np.eye(4)
    expected[:3, :3] = np.reshape(IMU_TO_VELO_R, (3, 3))
    expected[:3, 3] = IMU_TO_VELO_T
    np.testing.assert_allclose(imu_to_velo, expected)
    np.testing.assert_allclose(
        lookup_static(static.transforms, "velo_link", "base_link"), imu_to_velo, atol=1e-6
    )
    camera_from_velo = load_calibration(drive_dir.parent).camera_from_velodyne(2)
    np.testing.assert_allclose(
        lookup_static(static.transforms, "camera_color_left", "imu_link"),
        camera_from_velo @ imu_to_velo,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        lookup_static(static.transforms, "imu_link", "velo_link"), invert(imu_to_velo), atol=1e-6
    )


def test_no_oxts_flag_leaves_the_oxts_topics_and_imu_chain_out(oxts_drive, tmp_path: Path):
    drive_dir, _, _ = oxts_drive
    out = tmp_path / "bag"
    assert kitti2bag([str(drive_dir), "-o", str(out), "--no-oxts", "--no-progress"]) == 0
    bag = read_bag(out)
    assert not OXTS_TOPICS & set(bag)
    ((_, static),) = bag["/tf_static"]
    assert {(e.header.frame_id, e.child_frame_id) for e in static.transforms} == {
        ("velo_link", "camera_color_left")
    }


def test_drive_without_oxts_converts_without_them(tmp_path: Path, caplog):
    drive_dir = write_synthetic_drive(tmp_path, frames=2, oxts=False)
    out = tmp_path / "bag"
    assert kitti2bag([str(drive_dir), "-o", str(out), "--no-progress"]) == 0
    assert not OXTS_TOPICS & set(read_bag(out))
    assert "no oxts/ folder" in caplog.text


def test_oxts_without_imu_calibration_names_the_file_and_no_oxts(
    oxts_drive, tmp_path: Path, capsys
):
    drive_dir, _, _ = oxts_drive
    calib = tmp_path / "calib"
    calib.mkdir()
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        (calib / name).write_text((drive_dir.parent / name).read_text())
    args = [str(drive_dir), "--calib-dir", str(calib), "--no-progress"]
    assert kitti2bag([*args, "-o", str(tmp_path / "bag")]) == 2
    err = capsys.readouterr().err
    assert IMU_TO_VELO in err and "--no-oxts" in err
    assert not (tmp_path / "bag").exists()
    assert kitti2bag([*args, "-o", str(tmp_path / "bag"), "--no-oxts"]) == 0


def test_missing_oxts_stamps_stop_the_conversion_naming_the_counts(tmp_path: Path, capsys):
    drive_dir = write_synthetic_drive(tmp_path, frames=3)
    add_straight_drive(drive_dir)
    stamps = drive_dir / "oxts" / "timestamps.txt"
    stamps.write_text("".join(stamps.read_text().splitlines(keepends=True)[:2]))
    assert kitti2bag([str(drive_dir), "-o", str(tmp_path / "bag"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "oxts/timestamps.txt: 2" in err and "image_02/timestamps.txt: 3" in err
    assert "oxts/data: 3" in err


def test_navsatfix_reports_no_fix_when_the_receiver_has_no_solution():
    p = parse_packet(REAL_LINE)
    origin = MercatorOrigin.from_packet(p)
    assert oxts_messages(p, origin, 0)[GPS_TOPIC].status.status == 0  # STATUS_FIX
    no_solution = oxts_messages(p._replace(posmode=0.0), origin, 0)[GPS_TOPIC]
    assert no_solution.status.status == no_solution.status.STATUS_NO_FIX
