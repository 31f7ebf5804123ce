"""`space_clip_accuracy`: live accuracy of a depth stream against a LiDAR, per frame and running.

Subscribes (relative names, remap as needed):
  depth               sensor_msgs/Image, 32FC1 metres (16UC1 mm also read): the node's output
  depth/camera_info   sensor_msgs/CameraInfo of the depth image (rescaled if its size differs)
  lidar_points        sensor_msgs/PointCloud2 with x, y, z (e.g. /kitti/velo/pointcloud)
  /tf_static          the LiDAR -> camera transform, unless `calib_dir` is set (and only where
                      tf2_msgs is installed: it is not a pip wheel)
Publishes:
  accuracy            diagnostic_msgs/DiagnosticArray, one message per paired frame with two
                      statuses, "space_clip_accuracy: frame" and "space_clip_accuracy: mean", whose
                      values are the metrics (abs_rel, sq_rel, rmse, rmse_log, log10, silog,
                      delta1..3), then the same near and away from LiDAR depth discontinuities
                      ('boundary_0.05/abs_rel', 'interior_0.05/...', with '.../pixels' counts;
                      space_clip_ros.metrics.boundary_masks, sparse rule); a standard type
                      rqt_runtime_monitor and `ros2 topic echo` show.
At shutdown it prints the metrics table and writes `output_json` if set (same format as
space-clip-bag-accuracy --json).

Depth and scans are paired by header stamp within `max_dt` seconds (kitti.pairing; message_filters
is not available as a pip wheel, and this pairing is a few lines).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from space_clip_ros.errors import ConfigError, quote
from space_clip_ros.evaluation.lidar_gt import AccuracySettings, frame_metrics
from space_clip_ros.evaluation.pairing import StampPairer
from space_clip_ros.evaluation.report import AccuracyReport, diagnostic_values
from space_clip_ros.evaluation.transforms import lookup_static
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.msg_arrays import depth_image_to_metres, pointcloud2_to_array, stamp_ns
from space_clip_ros.kitti.calibration import CAM_TO_CAM, VELO_TO_CAM, load_calibration
from space_clip_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info
from space_clip_ros.ros.node_cli import handle_help
from space_clip_ros.ros.qos import make_qos

try:
    from tf2_msgs.msg import TFMessage
except (
    ImportError
):  # pip-only machines: no tf2_msgs wheel; the calib_dir parameter is the way there
    TFMessage = None

NODE_NAME = "space_clip_accuracy"
PARAMETERS_HELP = """Parameters: calib_dir (KITTI date folder; empty: /tf_static), camera (2),
max_dt (0.05 s), min_depth, max_depth, crop (garg, eigen, none), output_json. E.g.
  ros2 run space_clip_ros space_clip_accuracy --ros-args -p calib_dir:=$HOME/kitti/2011_09_26 \\
      -r lidar_points:=/kitti/velo/pointcloud -r __ns:=/kitti/camera_color_left"""
STATIC_TF_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def camera_from_lidar(calib_dir: str, camera: int) -> np.ndarray:
    """The Velodyne -> camera transform from the `calib_dir` parameter.

    `~` is expanded here: a launch argument (calib_dir:=~/kitti/2011_09_26) reaches the node
    unexpanded, as no shell sees it. A folder without the calibration files is reported against
    the parameter, not against the command-line flag of the offline tools.
    """
    folder = Path(calib_dir).expanduser()
    missing = [name for name in (CAM_TO_CAM, VELO_TO_CAM) if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{quote(str(folder))} has no {' or '.join(missing)}",
            source=NODE_NAME,
            field="parameter calib_dir",
            fix="set calib_dir to the KITTI date folder holding both files "
            "(e.g. calib_dir:=~/kitti/2011_09_26), or leave it empty to use /tf_static",
        )
    return load_calibration(folder).camera_from_velodyne(camera)


class AccuracyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        calib_dir = self.declare_parameter("calib_dir", "").value
        camera = self.declare_parameter("camera", 2).value
        max_dt = self.declare_parameter("max_dt", 0.05).value
        self.settings = AccuracySettings(
            min_depth=self.declare_parameter("min_depth", 1e-3).value,
            max_depth=self.declare_parameter("max_depth", 80.0).value,
            crop=self.declare_parameter("crop", "garg").value,
        )
        self.output_json: str = self.declare_parameter("output_json", "").value
        if self.settings.crop not in ("garg", "eigen", "none"):
            raise ValueError(f"parameter crop={self.settings.crop!r}: use garg, eigen or none")

        # Fixed transform from the KITTI calibration, or None: look it up in /tf_static per frame.
        self.camera_from_lidar: Optional[np.ndarray] = (
            camera_from_lidar(calib_dir, camera) if calib_dir else None
        )
        if self.camera_from_lidar is None and TFMessage is None:
            raise ValueError(
                "tf2_msgs is not installed, so /tf_static can not be read: set the calib_dir "
                "parameter to the KITTI date folder holding calib_velo_to_cam.txt"
            )
        self.static_transforms: dict[tuple[str, str], Any] = {}
        self.report = AccuracyReport(self.settings)
        self.pairer: StampPairer = StampPairer(slop_ns=int(max_dt * 1e9))
        self.intrinsics: Optional[Intrinsics] = None

        qos = make_qos("best_available", 10)
        self.create_subscription(Image, "depth", self._on_depth, qos)
        self.create_subscription(CameraInfo, "depth/camera_info", self._on_camera_info, qos)
        self.create_subscription(PointCloud2, "lidar_points", self._on_points, qos)
        if self.camera_from_lidar is None:
            self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, STATIC_TF_QOS)
        self.publisher = self.create_publisher(DiagnosticArray, "accuracy", 10)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        # A driver that publishes an unset CameraInfo (zero P and K, or zero size) must not take
        # the node down: keep the last good intrinsics and say why this one was refused.
        try:
            self.intrinsics = intrinsics_from_camera_info(msg)
        except CameraInfoError as err:
            self.get_logger().error(f"depth/camera_info ignored: {err}", throttle_duration_sec=5.0)

    def _on_tf_static(self, msg: Any) -> None:
        for transform in msg.transforms:
            self.static_transforms[(transform.header.frame_id, transform.child_frame_id)] = (
                transform
            )

    def _on_depth(self, msg: Image) -> None:
        if self.intrinsics is None:
            self.get_logger().warning(
                "depth without depth/camera_info yet: frame skipped", throttle_duration_sec=5.0
            )
            return
        try:
            depth = depth_image_to_metres(msg)
        except ValueError as err:
            self.get_logger().error(f"depth frame skipped: {err}", throttle_duration_sec=5.0)
            return
        self._evaluate(
            self.pairer.add_first(stamp_ns(msg), (depth, self.intrinsics, msg.header.frame_id))
        )

    def _on_points(self, msg: PointCloud2) -> None:
        try:
            points = pointcloud2_to_array(msg)
        except ValueError as err:
            self.get_logger().error(f"point cloud skipped: {err}", throttle_duration_sec=5.0)
            return
        self._evaluate(self.pairer.add_second(stamp_ns(msg), (points, msg.header.frame_id)))

    def _evaluate(self, pair: Optional[tuple]) -> None:
        if pair is None:
            return
        stamp, (depth, intr, camera_frame), (points, lidar_frame) = pair
        transform = self.camera_from_lidar
        try:
            if transform is None:
                transform = lookup_static(
                    self.static_transforms.values(), camera_frame, lidar_frame
                )
            metrics = frame_metrics(depth, points, transform, intr, self.settings)
        except (
            LookupError,
            ValueError,
        ) as err:  # no tf path yet, a degenerate quaternion, an empty image
            self.get_logger().warning(f"frame skipped: {err}", throttle_duration_sec=5.0)
            return
        self.report.add(stamp, metrics)
        self._publish(msg_stamp=stamp, metrics=metrics)

    def _publish(self, msg_stamp: int, metrics: dict[str, float]) -> None:
        array = DiagnosticArray()
        array.header.stamp.sec, array.header.stamp.nanosec = divmod(msg_stamp, 1_000_000_000)
        frame_ok = bool(np.isfinite(metrics["abs_rel"]))
        array.status = [
            _status(
                "frame",
                metrics,
                frame_ok,
                "" if frame_ok else "no LiDAR return inside the evaluated region",
            ),
            _status(
                "mean",
                self.report.mean(),
                self.report.running.count > 0,
                f"{self.report.running.count} frames",
            ),
        ]
        self.publisher.publish(array)

    def finish(self) -> None:
        """Print the table and write the JSON: after spinning ends, ROS may already be down."""
        print(self.report.table(), flush=True)
        if self.output_json:
            self.report.write_json(self.output_json)
            print(f"wrote {self.output_json}", flush=True)


def _status(kind: str, metrics: dict[str, float], ok: bool, message: str) -> DiagnosticStatus:
    summary = (
        f"abs_rel {metrics['abs_rel']:.4f} rmse {metrics['rmse']:.3f} "
        f"delta1 {metrics['delta1']:.3f}"
    )
    return DiagnosticStatus(
        level=DiagnosticStatus.OK if ok else DiagnosticStatus.WARN,
        name=f"{NODE_NAME}: {kind}",
        message=f"{summary} {message}".strip(),
        hardware_id="",
        values=[KeyValue(key=key, value=value) for key, value in diagnostic_values(metrics)],
    )


def main(args: Optional[list[str]] = None) -> int:
    handle_help(NODE_NAME, __doc__, PARAMETERS_HELP, args)
    rclpy.init(args=args)
    try:
        node = AccuracyNode()
    except (ValueError, LookupError, OSError) as err:  # bad parameter, calibration or camera index
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.finish()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
