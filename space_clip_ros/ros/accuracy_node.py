"""`space_clip_accuracy`: live accuracy of a depth stream against a LiDAR, per frame and running.

Subscribes (relative names, remap as needed):
  depth               sensor_msgs/Image, 32FC1 metres (16UC1 mm also read): the node's output
  depth/camera_info   sensor_msgs/CameraInfo of the depth image (rescaled if its size differs)
  lidar_points        sensor_msgs/PointCloud2 with x, y, z (e.g. /kitti/velo/pointcloud)
  /tf_static          the LiDAR -> camera transform, unless `calib_dir` is set (and only where
                      tf2_msgs is installed: it is not a pip wheel)
  /diagnostics        the depth node's own status: whether its checkpoint is trained
Publishes:
  accuracy            diagnostic_msgs/DiagnosticArray, one message per paired frame with two
                      statuses, "space_clip_accuracy: frame" and "space_clip_accuracy: mean", whose
                      values are the metrics (abs_rel, sq_rel, rmse, rmse_log, log10, silog,
                      delta1..3), then the same near and away from LiDAR depth discontinuities
                      ('boundary_0.05/abs_rel', 'interior_0.05/...', with '.../pixels' counts:
                      space_clip_ros.evaluation.report.diagnostic_values, regions by
                      space_clip_ros.metrics.boundary_masks' sparse rule); a standard type
                      rqt_runtime_monitor and `ros2 topic echo` show.
At shutdown it prints the metrics table and writes `output_json` if set (same format as
space-clip-bag-accuracy --json, plus `model` and `duplicate_depth_frames`). A run in which no frame
got ground truth is an error, not a table of NaN: the log says why (no depth, no scan on the LiDAR
topic, no transform, stamps too far apart), the JSON carries it as `error`, and the node exits 1
so a launch that depends on it fails.

Parameters (AccuracyConfig: typed, range-checked; an unknown name is an error with a
did-you-mean, exit 2, as for the depth node) are read at start-up; a change later is refused.
Depth and scans are paired by header stamp within `max_dt` seconds
(space_clip_ros.evaluation.pairing; message_filters is not available as a pip wheel, and this
pairing is a few lines). Each depth stamp is scored once: a bag played again, or a second depth
node on the topic, gives duplicates that are counted and ignored.

Whether the model was trained (JSON `model.trained_checkpoint`: true when the depth node loaded a
checkpoint, false for its untrained decoder) is read from /diagnostics: the `trained_checkpoint`
value of the depth node that publishes our `depth` topic (found in the graph), with its device,
precision and backend. That node is the one place that knows what it loaded (a params file, an
override, no checkpoint at all); a launch argument could disagree with it. Without such a status
(recorded depth, another depth source), or if it changed during the run, the JSON says null.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from space_clip_ros.errors import EXIT_FAILURE, EXIT_OK, ConfigError, SpaceClipError, quote
from space_clip_ros.evaluation.lidar_gt import LIDAR_CROPS, AccuracySettings, frame_metrics
from space_clip_ros.evaluation.pairing import StampPairer
from space_clip_ros.evaluation.report import AccuracyReport, diagnostic_values
from space_clip_ros.evaluation.transforms import lookup_static
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.io.msg_arrays import depth_image_to_metres, pointcloud2_to_array, stamp_ns
from space_clip_ros.kitti.calibration import CAM_TO_CAM, VELO_TO_CAM, load_calibration
from space_clip_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info
from space_clip_ros.ros.node_cli import handle_help
from space_clip_ros.ros.node_main import run_node, spin
from space_clip_ros.ros.param_overrides import check_params_files_target
from space_clip_ros.ros.params import Parameters, param
from space_clip_ros.ros.qos import make_qos

try:
    from tf2_msgs.msg import TFMessage
except (
    ImportError
):  # pip-only machines: no tf2_msgs wheel; the calib_dir parameter is the way there
    TFMessage = None

NODE_NAME = "space_clip_accuracy"
TRAINED_KEY = "trained_checkpoint"  # the depth node's /diagnostics value
MODEL_KEYS = (TRAINED_KEY, "device", "precision", "backend")
STATIC_TF_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


@dataclass(frozen=True)
class AccuracyConfig(Parameters):
    """The accuracy node's parameters; the defaults are evaluation.lidar_gt.AccuracySettings'
    (KITTI's protocol) and launch/kitti_replay.launch.py passes calib_dir, output_json, max_dt."""

    LISTING: ClassVar[str] = f"{NODE_NAME} --help"

    calib_dir: str = param(
        "",
        "KITTI date folder holding calib_cam_to_cam.txt and calib_velo_to_cam.txt: the LiDAR -> "
        "camera transform (~ is expanded). Empty: read it from /tf_static.",
    )
    camera: int = param(
        2,
        "KITTI camera of the depth images, for calib_dir (2 left, 3 right colour).",
        limits=(0, 3),
    )
    max_dt: float = param(
        0.05,
        "Largest stamp difference (s) between a depth image and the scan it is scored against.",
        limits=(0.0, 10.0),
    )
    min_depth: float = param(
        AccuracySettings.min_depth,
        "Ground truth nearer than this (metres) is not scored.",
        limits=(0.0, 1000.0),
    )
    max_depth: float = param(
        AccuracySettings.max_depth,
        "Ground truth farther than this (metres) is not scored (80 m: KITTI's cap).",
        limits=(0.001, 1000.0),
    )
    crop: str = param(
        AccuracySettings.crop,
        "Evaluation crop (garg: the usual one for LiDAR truth).",
        choices=LIDAR_CROPS,
    )
    output_json: str = param(
        "",
        "Where the report goes at shutdown (space-clip-bag-accuracy --json's format, plus the "
        "model and duplicates). Empty: no file.",
    )

    def problems(self) -> list[str]:
        out = super().problems()
        if self.min_depth >= self.max_depth:
            out.append(
                f"min_depth ({self.min_depth}) must be below max_depth ({self.max_depth}); "
                "lower min_depth or raise max_depth"
            )
        return out


PARAMETERS_HELP = f"""Parameters (read at start-up):
{AccuracyConfig.help_text()}
E.g.
  ros2 run space_clip_ros {NODE_NAME} --ros-args -p calib_dir:=$HOME/kitti/2011_09_26 \\
      -r lidar_points:=/kitti/velo/pointcloud -r __ns:=/kitti/camera_color_left"""


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
    try:
        return load_calibration(folder).camera_from_velodyne(camera)
    except OSError as exc:  # a file that exists but cannot be read (permission denied)
        raise ConfigError(
            f"cannot read the calibration in {quote(str(folder))} ({exc})",
            source=NODE_NAME,
            field="parameter calib_dir",
            fix="make the calibration files readable to this node's user",
        ) from exc


class AccuracyNode(Node):
    """A ParameterError or ConfigError (bad parameters, a calib_dir without calibration) is
    raised from the constructor, the node already destroyed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self.config = AccuracyConfig.declare(self)
            # The KITTI calibration's transform, or None: look it up in /tf_static per frame.
            self.camera_from_lidar: Optional[np.ndarray] = (
                camera_from_lidar(self.config.calib_dir, self.config.camera)
                if self.config.calib_dir
                else None
            )
            if self.camera_from_lidar is None and TFMessage is None:
                raise ConfigError(
                    "tf2_msgs is not installed, so /tf_static can not be read",
                    source=NODE_NAME,
                    field="parameter calib_dir",
                    fix="set calib_dir to the KITTI date folder holding calib_velo_to_cam.txt",
                )
        except SpaceClipError:
            self.destroy_node()
            raise
        self.add_on_set_parameters_callback(self._refuse_changes)
        cfg = self.config
        self.settings = AccuracySettings(cfg.min_depth, cfg.max_depth, cfg.crop)
        self.output_json = cfg.output_json
        self.max_dt = cfg.max_dt
        self.static_transforms: dict[tuple[str, str], Any] = {}
        self.report = AccuracyReport(self.settings)
        self.pairer: StampPairer = StampPairer(slop_ns=int(self.max_dt * 1e9))
        # Each depth image is read with the depth/camera_info of its own stamp (the two topics
        # arrive in either order, as message_filters' ExactTime pairs them).
        self.depth_with_info: StampPairer = StampPairer(slop_ns=0)
        self.received = {"depth": 0, "scans": 0, "with_camera_info": 0}
        self.skipped: list[str] = []  # why paired frames were not scored (transform, image)
        self.model: dict[str, Any] = {}  # the depth node's MODEL_KEYS from /diagnostics
        self.trained_seen: set[bool] = set()
        # Resolved now: finish() runs when the context may already be shut down.
        self.topics = {
            name: self.resolve_topic_name(name)
            for name in ("depth", "depth/camera_info", "lidar_points")
        }

        qos = make_qos("best_available", 10)
        self.create_subscription(Image, "depth", self._on_depth, qos)
        self.create_subscription(CameraInfo, "depth/camera_info", self._on_camera_info, qos)
        self.create_subscription(PointCloud2, "lidar_points", self._on_points, qos)
        if self.camera_from_lidar is None:
            self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, STATIC_TF_QOS)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.publisher = self.create_publisher(DiagnosticArray, "accuracy", 10)

    def _refuse_changes(self, changes: list[Any]) -> SetParametersResult:
        """Every parameter shapes the whole run's report: a change half-way would score frames
        by two protocols under one number."""
        ours = sorted(p.name for p in changes if p.name in AccuracyConfig.defaults())
        if not ours:
            return SetParametersResult(successful=True)
        return SetParametersResult(
            successful=False,
            reason=f"{', '.join(ours)}: read at start-up; restart {NODE_NAME} with the new value",
        )

    def _depth_node_names(self) -> set[str]:
        """Fully qualified names of the nodes publishing our `depth` topic."""
        topic = self.topics["depth"]
        return {
            f"{info.node_namespace.rstrip('/')}/{info.node_name}"
            for info in self.get_publishers_info_by_topic(topic)
        }

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        statuses = [s for s in msg.status if any(kv.key == TRAINED_KEY for kv in s.values)]
        if not statuses:
            return
        publishers = self._depth_node_names()
        for status in statuses:
            node = status.name.split(":", 1)[0]
            if node not in publishers:
                continue
            values = {kv.key: kv.value for kv in status.values if kv.key in MODEL_KEYS}
            trained = values.pop(TRAINED_KEY) == "true"
            self.trained_seen.add(trained)
            self.model = {"depth_node": node, TRAINED_KEY: trained, **values}

    def _on_camera_info(self, msg: CameraInfo) -> None:
        # A driver that publishes an unset CameraInfo (zero P and K, or zero size) must not take
        # the node down: its depth image goes unscored, and the log says why.
        try:
            intrinsics = intrinsics_from_camera_info(msg)
        except CameraInfoError as err:
            self.get_logger().error(f"depth/camera_info ignored: {err}", throttle_duration_sec=5.0)
            return
        self._on_depth_with_info(self.depth_with_info.add_second(stamp_ns(msg), intrinsics))

    def _on_tf_static(self, msg: Any) -> None:
        for transform in msg.transforms:
            self.static_transforms[(transform.header.frame_id, transform.child_frame_id)] = (
                transform
            )

    def _on_depth(self, msg: Image) -> None:
        self.received["depth"] += 1
        try:
            depth = depth_image_to_metres(msg)
        except ValueError as err:
            self.get_logger().error(f"depth frame skipped: {err}", throttle_duration_sec=5.0)
            return
        duplicates = self.duplicates
        pair = self.depth_with_info.add_first(stamp_ns(msg), (depth, msg.header.frame_id))
        if self.duplicates > duplicates:
            self.get_logger().warning(
                f"depth stamp {stamp_ns(msg)} was scored already: ignored (is the bag playing "
                "again, or do two depth nodes publish on this topic?)",
                throttle_duration_sec=5.0,
            )
        self._on_depth_with_info(pair)

    @property
    def duplicates(self) -> int:
        """Depth images whose stamp was seen before (the first pairing stage drops them)."""
        return self.depth_with_info.duplicates

    def _on_depth_with_info(self, pair: Optional[tuple]) -> None:
        if pair is None:
            return
        stamp, (depth, camera_frame), intrinsics = pair
        self.received["with_camera_info"] += 1
        self._evaluate(self.pairer.add_first(stamp, (depth, intrinsics, camera_frame)))

    def _on_points(self, msg: PointCloud2) -> None:
        self.received["scans"] += 1
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
            self.skipped.append(str(err))
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

    def trained(self) -> Optional[bool]:
        """Whether the depth node ran a trained checkpoint; None when unknown or it changed."""
        return next(iter(self.trained_seen)) if len(self.trained_seen) == 1 else None

    def failure(self) -> Optional[str]:
        """Why no frame got ground truth (the first cause a user can act on); None if some did."""
        if self.report.running.count:
            return None
        depth, lidar = self.topics["depth"], self.topics["lidar_points"]
        if self.report.frames:
            return (
                f"none of the {len(self.report.frames)} paired frames had a LiDAR return inside "
                f"the evaluated region (crop {self.settings.crop}, {self.settings.min_depth:g}.."
                f"{self.settings.max_depth:g} m); check the LiDAR -> camera transform (calib_dir)"
            )
        if not self.received["depth"]:
            return (
                f"no depth image arrived on {depth}: is the depth node running, publishing "
                "there (its log says why not)?"
            )
        if not self.received["scans"]:
            return (
                f"no PointCloud2 arrived on {lidar}: point the node at the bag's LiDAR topic "
                "(kitti_replay.launch.py lidar_topic:=..., or -r lidar_points:=...)"
            )
        if not self.received["with_camera_info"]:
            return f"no valid CameraInfo arrived on {self.topics['depth/camera_info']}"
        if self.skipped:
            return f"{len(self.skipped)} paired frames could not be scored: {self.skipped[-1]}"
        return (
            f"{self.received['depth']} depth images and {self.received['scans']} scans arrived, "
            f"but no depth stamp was within max_dt {self.max_dt:g} s of a scan stamp: check "
            "both streams' stamps, or raise max_dt"
        )

    def result(self) -> dict[str, Any]:
        """The JSON report: the metrics (AccuracyReport), the model, duplicates, any error."""
        return {
            **self.report.as_dict(),
            "model": {**self.model, TRAINED_KEY: self.trained()},
            "duplicate_depth_frames": self.duplicates,
            "error": self.failure(),
        }

    def finish(self) -> int:
        """Print the table (or the reason there is none) and write the JSON; the exit code.

        Runs after spinning ends, when ROS may already be down: plain prints, not the ROS log.
        """
        failure = self.failure()
        trained = self.trained()
        if failure:
            print(f"{NODE_NAME}: error: no accuracy: {failure}", file=sys.stderr, flush=True)
        else:
            print(self.report.table(), flush=True)
            if trained is not True:
                print(
                    f"{NODE_NAME}: warning: "
                    + (
                        "the depth node ran an UNTRAINED model: these numbers are meaningless"
                        if trained is False
                        else "whether the depth model was trained is unknown (no /diagnostics "
                        "from the node publishing depth)"
                    ),
                    file=sys.stderr,
                    flush=True,
                )
        if self.duplicates:
            print(
                f"{NODE_NAME}: warning: {self.duplicates} depth frames repeated a stamp "
                "already scored and were ignored",
                file=sys.stderr,
                flush=True,
            )
        if self.output_json:
            with atomic_path(self.output_json) as tmp:
                tmp.write_text(json.dumps(self.result(), indent=2, allow_nan=False) + "\n")
            print(f"wrote {self.output_json}", flush=True)
        return EXIT_FAILURE if failure else EXIT_OK


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
    """Exit 2 on invalid or unknown parameters or an unusable calib_dir, 1 when no frame got
    ground truth (node_main.run_node decides for the errors)."""
    handle_help(NODE_NAME, __doc__, PARAMETERS_HELP, args)
    return run_node(NODE_NAME, args, serve)


def serve(argv: list[str]) -> int:
    """Score frames until stopped, then report (finish): its exit status."""
    node = AccuracyNode()
    try:
        check_params_files_target(argv, node.get_fully_qualified_name())
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spin(executor)
    except SpaceClipError:
        node.destroy_node()
        raise
    try:
        return node.finish()
    finally:
        node.destroy_node()


if __name__ == "__main__":
    sys.exit(main())
