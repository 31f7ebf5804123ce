"""Replay a KITTI bag over real DDS (separate processes), live LiDAR accuracy, the whole chain.

bag -> space_clip_bag_replay (process) -> space_clip_depth (process, tiny checkpoint) ->
space_clip_accuracy (process) -> JSON report.
"""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader, Writer
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from space_clip_ros.cli.kitti2bag import main as kitti2bag
from space_clip_ros.evaluation.lidar_gt import lidar_depth
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
from space_clip_ros.ros.accuracy_node import TRAINED_KEY as TRAINED
from space_clip_ros.ros.accuracy_node import AccuracyNode
from space_clip_ros.ros.bag_replay import BagPlayer, ReplayOptions
from space_clip_ros.ros.bag_replay import stamp_ns as header_stamp
from testing.harness import wait_for

FRAMES = 4
NS = "/kitti/camera_color_left"
RELIABLE = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    drive_dir = write_synthetic_drive(root, frames=FRAMES)
    bag = root / "bag"
    assert kitti2bag([str(drive_dir), "-o", str(bag), "--no-progress"]) == 0
    return drive_dir, bag


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def python_entry(module: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-X",
        "faulthandler",  # a process that has to be aborted dumps every thread's stack first
        "-c",
        f"import sys; from {module} import main; sys.exit(main())",
        *args,
    ]


def interrupt_all(processes: list[subprocess.Popen], timeout: float = 120) -> list[str]:
    """Ctrl-C each process, then their outputs once they have exited. One that has not exited
    within `timeout` is aborted (SIGABRT: faulthandler prints where each thread was) and the
    test fails with what it printed: the evidence, not a bare timeout."""
    for process in processes:
        process.send_signal(signal.SIGINT)
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            output = process.communicate()[0]
            raise AssertionError(
                f"{process.args[4]!r} still ran {timeout} s after Ctrl-C; its output "
                f"and stacks:\n{output[-6000:]}"
            ) from None
    return outputs


def test_replay_publishes_the_bag_at_the_recorded_rate(kitti, ros, tmp_path):
    drive_dir, bag = kitti
    received: dict[str, list] = {}
    arrival: list[float] = []

    def keep(topic):
        def callback(msg):
            received.setdefault(topic, []).append(msg)
            if topic == VELO_TOPIC:
                arrival.append(time.monotonic())

        return callback

    for topic, kind in (
        (image_topic(2), Image),
        (camera_info_topic(2), CameraInfo),
        (VELO_TOPIC, PointCloud2),
    ):
        ros.add_subscription(topic, kind, keep(topic), RELIABLE)
    rate = 0.5
    result = subprocess.run(
        python_entry(
            "space_clip_ros.ros.bag_replay",
            str(bag),
            "--rate",
            str(rate),
            "--wait-for-subscribers",
            "60",
        ),
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ,
    )
    assert result.returncode == 0, result.stderr
    assert wait_for(
        lambda: all(
            len(received.get(t, [])) == FRAMES
            for t in (image_topic(2), camera_info_topic(2), VELO_TOPIC)
        )
    ), {t: len(v) for t, v in received.items()}

    drive = KittiDrive(drive_dir)
    assert [stamp(m) for m in received[image_topic(2)]] == drive.stamps("image_02")
    assert [stamp(m) for m in received[VELO_TOPIC]] == drive.stamps("velodyne_points")
    last = received[image_topic(2)][-1]
    np.testing.assert_array_equal(
        np.frombuffer(last.data, np.uint8).reshape(38, 124, 3), drive.image(2, FRAMES - 1)
    )
    np.testing.assert_array_equal(
        pointcloud2_to_array(received[VELO_TOPIC][1], ("x", "y", "z", "intensity")), drive.scan(1)
    )
    np.testing.assert_array_equal(
        np.array(received[camera_info_topic(2)][0].k).reshape(3, 3),
        load_calibration(drive_dir.parent).camera(2).projection[:, :3],
    )
    recorded_span = (
        drive.stamps("velodyne_points")[-1] - drive.stamps("velodyne_points")[0]
    ) / 1e9
    assert arrival[-1] - arrival[0] > 0.8 * recorded_span / rate  # paced, not as fast as possible


def test_accuracy_node_reports_live_metrics(kitti, ros, tmp_path):
    """Depth = 1.1 x the LiDAR ground truth, stamped like the camera (4 ms off the scan).

    Expect abs_rel 0.1, delta1 1.
    """
    drive_dir, _ = kitti
    report = tmp_path / "live.json"
    accuracy = AccuracyNode(
        context=ros.context,
        namespace=NS,
        cli_args=["--ros-args", "-r", f"lidar_points:={VELO_TOPIC}"],
        parameter_overrides=[
            Parameter("calib_dir", value=str(drive_dir.parent)),
            Parameter("crop", value="none"),
            # The street's LiDAR reaches 120 m: no 1.1 x depth may be clipped at the 80 m cap.
            Parameter("max_depth", value=200.0),
            Parameter("output_json", value=str(report)),
        ],
    )
    source = Node("fake_depth_node", context=ros.context)
    # says trained, but does not publish the depth being scored
    other = Node("another_node", context=ros.context)
    depth_pub = source.create_publisher(Image, f"{NS}/depth", RELIABLE)
    info_pub = source.create_publisher(CameraInfo, f"{NS}/depth/camera_info", RELIABLE)
    cloud_pub = source.create_publisher(PointCloud2, VELO_TOPIC, RELIABLE)
    diagnostics: list[DiagnosticArray] = []
    source.create_subscription(DiagnosticArray, f"{NS}/accuracy", diagnostics.append, RELIABLE)
    status_pubs = [
        n.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE) for n in (source, other)
    ]
    for n in (accuracy, source, other):
        ros.adopt(n)
    assert wait_for(
        lambda: all(p.get_subscription_count() for p in (depth_pub, info_pub, cloud_pub))
    )
    assert wait_for(lambda: accuracy.publisher.get_subscription_count() > 0)
    assert wait_for(lambda: all(p.get_subscription_count() for p in status_pubs))
    # The depth node's /diagnostics as space_clip_depth publishes them: "<its name>: depth".
    for publisher, node, trained in zip(status_pubs, (source, other), ("false", "true")):
        publisher.publish(depth_node_status(node.get_fully_qualified_name(), trained))
    assert wait_for(lambda: accuracy.model)

    drive = KittiDrive(drive_dir)
    calib = load_calibration(drive_dir.parent)
    intr = calib.intrinsics(2)
    for index in range(FRAMES):
        t_cam, t_velo = drive.stamps("image_02")[index], drive.stamps("velodyne_points")[index]
        cloud = msgs.point_cloud(
            drive.scan(index), ("x", "y", "z", "intensity"), t_velo, "velo_link"
        )
        gt = lidar_depth(drive.scan(index), calib.camera_from_velodyne(2), intr)
        depth = msgs.image(
            np.where(gt > 0, 1.1 * gt, np.nan).astype(np.float32), t_cam, "camera_color_left"
        )
        info = msgs.camera_info(
            calib.camera(2).projection, intr.width, intr.height, t_cam, "camera_color_left"
        )
        cloud_pub.publish(to_rclpy(cloud, PointCloud2))  # paired by stamp, in any order
        info_pub.publish(to_rclpy(info, CameraInfo))
        depth_pub.publish(to_rclpy(depth, Image))
        if index == 0:
            first_depth, first_info, first_cloud = depth, info, cloud
    assert wait_for(lambda: len(diagnostics) == FRAMES), len(diagnostics)
    # The first frame again, as when the bag is played a second time: not scored twice.
    info_pub.publish(to_rclpy(first_info, CameraInfo))
    depth_pub.publish(to_rclpy(first_depth, Image))
    cloud_pub.publish(to_rclpy(first_cloud, PointCloud2))
    assert wait_for(lambda: accuracy.duplicates == 1)

    frame, mean = diagnostics[-1].status
    values = {kv.key: float(kv.value) for kv in mean.values}
    assert mean.name == "space_clip_accuracy: mean" and mean.message.endswith(f"{FRAMES} frames")
    assert values["abs_rel"] == pytest.approx(0.1, rel=1e-4)
    assert values["delta1"] == 1.0
    # boundary / interior (sparse rule) ride along, per frame, with their pixel counts
    per_frame = {kv.key: float(kv.value) for kv in frame.values}
    assert per_frame["boundary_0.05/pixels"] + per_frame["interior_0.05/pixels"] > 0
    assert values["interior_0.05/abs_rel"] == pytest.approx(0.1, rel=1e-4)
    assert stamp(diagnostics[0]) == drive.stamps("image_02")[0]
    assert accuracy.finish() == 0
    written = json.loads(report.read_text())
    assert written["frames_paired"] == written["frames_with_ground_truth"] == FRAMES
    assert len({f["stamp_ns"] for f in written["frames"]}) == FRAMES
    assert written["duplicate_depth_frames"] == 1 and written["error"] is None
    assert written["model"] == {
        "depth_node": "/fake_depth_node",
        "trained_checkpoint": False,
        "device": "cpu",
        "precision": "fp32",
        "backend": "pytorch",
    }
    assert written["mean"]["abs_rel"] == pytest.approx(0.1, rel=1e-4)


def depth_node_status(node_name: str, trained: str) -> DiagnosticArray:
    values = {TRAINED: trained, "device": "cpu", "precision": "fp32", "backend": "pytorch"}
    status = DiagnosticStatus(
        name=f"{node_name}: depth",
        message="running",
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
    return DiagnosticArray(status=[status])


def test_no_frame_with_ground_truth_is_an_error_that_says_why(kitti, ros, tmp_path, capsys):
    """Issue 17, item 2: 0 paired frames gave a table of NaN and exit 0. Now the node says why,
    writes the reason as the JSON's error, and finish() gives exit status 1."""
    drive_dir, _ = kitti
    report = tmp_path / "report.json"
    node = AccuracyNode(
        context=ros.context,
        namespace=NS,
        cli_args=["--ros-args", "-r", "lidar_points:=/kitti/velo/pointcloud"],
        parameter_overrides=[
            Parameter("calib_dir", value=str(drive_dir.parent)),
            Parameter("output_json", value=str(report)),
        ],
    )
    ros.adopt(node)
    assert node.finish() == 1
    assert json.loads(report.read_text())["error"] == (
        f"no depth image arrived on {NS}/depth: is the depth node running, publishing there "
        "(its log says why not)?"
    )
    # A depth frame with its camera info, as a depth node publishes them; no LiDAR at all.
    calib = load_calibration(drive_dir.parent)
    intr = calib.intrinsics(2)
    info = msgs.camera_info(calib.camera(2).projection, intr.width, intr.height, 5, "cam")
    depth = np.ones((intr.height, intr.width), np.float32)
    ros.publisher(f"{NS}/depth/camera_info", CameraInfo, RELIABLE).publish(
        to_rclpy(info, CameraInfo)
    )
    ros.publisher(f"{NS}/depth", Image, RELIABLE).publish(
        to_rclpy(msgs.image(depth, 5, "cam"), Image)
    )
    assert wait_for(lambda: node.received["with_camera_info"] == 1), node.received
    assert node.finish() == 1
    err = capsys.readouterr().err
    # The bag's LiDAR is elsewhere (kitti2mcap's /kitti/velodyne_points): say which topic
    # was listened to, and how to change it.
    assert (
        "space_clip_accuracy: error: no accuracy: no PointCloud2 arrived on "
        "/kitti/velo/pointcloud: point the node at the bag's LiDAR topic "
        "(kitti_replay.launch.py lidar_topic:=...," in err
    )
    assert "nan" not in err.lower() and "abs_rel" not in err
    written = json.loads(report.read_text())
    assert written["frames_paired"] == 0 and written["mean"]["abs_rel"] is None
    assert written["error"].startswith("no PointCloud2 arrived on /kitti/velo/pointcloud")
    assert written["model"] == {"trained_checkpoint": None}


def to_rclpy(message, cls):
    """A rosbags message as the rclpy message, through CDR (what the bag replay publishes)."""
    return deserialize_message(msgs.serialize(message), cls)


def wait_for_wiring(ros, timeout: float = 120.0) -> None:
    """Block until the depth node says (its /diagnostics: subscribers_depth, ...) that its depth
    and camera_info publishers have matched the accuracy node's subscriptions.

    The player waits only for its own matches; four lockstep frames take about a second, and on a
    loaded machine the accuracy node's depth subscription could still be unmatched then (0 frames
    paired). A publisher's matched count is the writer's side of the match: from then on the
    reliable writer delivers to that reader.
    """
    statuses = ros.subscribe("/diagnostics", DiagnosticArray, wait=False)

    def wired() -> bool:
        return any(
            status.name == f"{NS}/space_clip_depth: depth"
            and (values := {kv.key: kv.value for kv in status.values})
            and int(values.get("subscribers_depth", 0)) >= 1
            and int(values.get("subscribers_depth_camera_info", 0)) >= 1
            for array in list(statuses)
            for status in array.status
        )

    assert wait_for(wired, timeout), "the depth node never reported the accuracy node subscribed"


def scored_frames(accuracy_messages: list) -> int:
    """The frame count of the accuracy node's newest running mean ("... over N frames")."""
    for array in reversed(list(accuracy_messages)):
        for status in array.status:
            if status.name == "space_clip_accuracy: mean":
                return int(status.message.rsplit(" ", 2)[-2])
    return 0


def test_bag_drives_depth_node_into_accuracy_node(kitti, ros, tmp_path, tiny_checkpoint):
    """The full chain, each piece its own process as users run it, the player in lockstep with
    the node."""
    drive_dir, bag = kitti
    checkpoint = tiny_checkpoint
    report = tmp_path / "accuracy.json"
    scored = ros.subscribe(f"{NS}/accuracy", DiagnosticArray, wait=False)  # one per frame
    ns = ["-r", f"__ns:={NS}"]
    depth = subprocess.Popen(
        python_entry(
            "space_clip_ros.ros.depth_node",
            "--ros-args",
            *ns,
            "-r",
            "image:=image_raw",
            "-p",
            f"checkpoint:={checkpoint}",
            "-p",
            "device:=cpu",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    accuracy = subprocess.Popen(
        python_entry(
            "space_clip_ros.ros.accuracy_node",
            "--ros-args",
            *ns,
            "-r",
            f"lidar_points:={VELO_TOPIC}",
            "-p",
            f"calib_dir:={drive_dir.parent}",
            "-p",
            "crop:=none",
            "-p",
            f"output_json:={report}",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_wiring(ros)
        replay = subprocess.run(
            python_entry(
                "space_clip_ros.ros.bag_replay",
                str(bag),
                "--wait-for",
                f"{NS}/depth",
                "--wait-timeout",
                "60",
                "--wait-for-subscriber",  # the accuracy node: else its first scans can be lost
                VELO_TOPIC,
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert replay.returncode == 0, replay.stderr
        assert "0 wait timeouts" in replay.stderr, replay.stderr
        # The player saw the last depth frame; the accuracy node pairs it as it arrives there.
        assert wait_for(lambda: scored_frames(scored) == FRAMES), scored_frames(scored)
    finally:
        outputs = interrupt_all([accuracy, depth])
    assert accuracy.returncode == 0, outputs[0]
    written = json.loads(report.read_text())
    assert written["frames_paired"] == FRAMES, outputs
    assert written["frames_with_ground_truth"] == FRAMES
    assert [f["stamp_ns"] for f in written["frames"]] == KittiDrive(drive_dir).stamps("image_02")
    assert (
        0 <= written["mean"]["delta1"] <= 1 and written["mean"]["abs_rel"] > 0
    )  # an untrained model is wrong
    assert "mean (4)" in outputs[0]


def test_accuracy_node_callbacks_survive_bad_input(kitti, ros):
    """An unset CameraInfo, an unknown cloud field type, a degenerate tf: logged, not raised.

    The callbacks are called directly, on purpose: a raise must reach the test (over DDS it would
    end in the executor thread), and a tf2_msgs/TFMessage cannot be published here (no wheel).
    """
    drive_dir, _ = kitti
    node = AccuracyNode(
        context=ros.context,
        parameter_overrides=[Parameter("calib_dir", value=str(drive_dir.parent))],
    )
    try:
        node._on_camera_info(CameraInfo())  # all zero: no usable K or P, zero size: logged
        calib = load_calibration(drive_dir.parent)
        intr = calib.intrinsics(2)
        info = msgs.camera_info(calib.camera(2).projection, intr.width, intr.height, 5, "cam")
        node._on_camera_info(to_rclpy(info, CameraInfo))  # pairs with the depth of stamp 5
        node._on_camera_info(CameraInfo())

        cloud = to_rclpy(
            msgs.point_cloud(np.zeros((3, 3), np.float32), ("x", "y", "z"), 0, "velo_link"),
            PointCloud2,
        )
        cloud.fields[0].datatype = 0
        node._on_points(cloud)

        node.camera_from_lidar = None  # look the transform up in /tf_static, as without calib_dir
        node._on_tf_static(SimpleNamespace(transforms=[degenerate_transform("velo_link", "cam")]))
        node._on_depth(
            to_rclpy(msgs.image(np.ones((intr.height, intr.width), np.float32), 5, "cam"), Image)
        )
        scan = KittiDrive(drive_dir).scan(0)[:, :3]
        node._on_points(
            to_rclpy(msgs.point_cloud(scan, ("x", "y", "z"), 5, "velo_link"), PointCloud2)
        )
        assert (
            node.report.frames == []
        )  # skipped with a warning: quaternion (0, 0, 0, 0) is no rotation
    finally:
        node.destroy_node()


def degenerate_transform(parent: str, child: str) -> SimpleNamespace:
    """A duck-typed TransformStamped (tf2_msgs is not a pip wheel) with an all-zero quaternion."""
    zero = SimpleNamespace(x=0.0, y=0.0, z=0.0)
    return SimpleNamespace(
        header=SimpleNamespace(frame_id=parent),
        child_frame_id=child,
        transform=SimpleNamespace(
            translation=zero, rotation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=0.0)
        ),
    )


def image_first_bag(source, out) -> None:
    """The KITTI bag rewritten as the PyPI converter kitti2mcap orders it: each image before
    the CameraInfo of its stamp, at the same bag time."""
    with Reader(source) as reader, Writer(out, version=8) as writer:
        conns = {
            c.id: writer.add_connection(
                c.topic,
                c.msgtype,
                typestore=msgs.TYPESTORE,
                offered_qos_profiles=c.ext.offered_qos_profiles,
            )
            for c in reader.connections
        }
        held = None
        for conn, t, data in reader.messages():
            if conn.topic == camera_info_topic(2):
                held = (conns[conn.id], t, data)
                continue
            writer.write(conns[conn.id], t, data)
            if conn.topic == image_topic(2):
                writer.write(*held)


def test_camera_info_goes_out_before_the_image_of_its_stamp(kitti, ros, tmp_path):
    """Issue 17, item 16: played from an image-first bag, every CameraInfo still precedes its
    image, so a node taking the latest CameraInfo has one for the first frame too."""
    _, bag = kitti
    image_first = tmp_path / "image_first"
    image_first_bag(bag, image_first)
    with Reader(image_first) as reader:
        recorded = [c.topic for c, _, _ in reader.messages()]
    camera_topics = [t for t in recorded if t.startswith(NS)]
    assert camera_topics[:2] == [image_topic(2), camera_info_topic(2)]  # the bag is image-first

    published: list[tuple[str, int]] = []
    played: set[str] = set()  # topics whose message type is installed (not tf2_msgs on pip)

    class Recorder:
        def __init__(self, topic, cls):
            self.topic, self.cls = topic, cls
            played.add(topic)

        def publish(self, data: bytes) -> None:
            published.append((self.topic, header_stamp(deserialize_message(data, self.cls))))

        def wait_for_all_acked(self, timeout) -> bool:
            return True

    node = ros.adopt(Node("order_probe", context=ros.context))
    player = BagPlayer(
        node,
        image_first,
        ReplayOptions(fast=True),
        make_publisher=lambda cls, topic, qos: Recorder(topic, cls),
    )
    player.play()
    camera = [(t, s) for t, s in published if t in (image_topic(2), camera_info_topic(2))]
    expected = [
        (topic, s)
        for s in KittiDrive(kitti[0]).stamps("image_02")
        for topic in (camera_info_topic(2), image_topic(2))
    ]
    assert camera == expected
    assert {image_topic(2), camera_info_topic(2), VELO_TOPIC} <= played
    # nothing lost or repeated
    assert sorted(t for t, _ in published) == sorted(t for t in recorded if t in played)
