"""`space_clip_depth`: camera images in; metric depth, its camera info, point cloud, preview out.

A managed lifecycle node (rclpy.lifecycle, present since Humble): configure loads and warms up
the model, activate subscribes, deactivate stops work, cleanup frees the model. With
`autostart` (the default) main() drives it to active so `ros2 run` just works; with
autostart false a lifecycle manager does.

Each frame is planned once (the parameters, the outputs that have subscribers and the camera,
read together: space_clip_ros.frame_plan), run through the ROS-free frame path
(space_clip_ros.depth_frame) and published all together or not at all, on the pipeline of
space_clip_ros.ros.frame_pipeline: receipt never waits on inference, the newest frame wins, and
inference of one frame overlaps publishing of the previous one.
Nothing raised while handling a frame escapes a thread: bad frames are counted, logged
(throttled per reason) and dropped, and the node serves the next one. Only a persistent
inference failure ends it: after `max_consecutive_failures` failed frames in a row (a CUDA
illegal address poisons the CUDA context for good) the node logs FATAL, shuts its context down
and main() exits 1, so `respawn=True` in a launch file (launch_ros Node(respawn=True,
respawn_delay=2.0)) restarts it with a fresh CUDA context.

This module imports neither torch nor the model: `--help` and parameter errors answer at the
speed of rclpy, and the model's modules load at configure.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Union

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from space_clip_ros.errors import EXIT_FAILURE, EXIT_OK, ConfigError, message
from space_clip_ros.frame_plan import NEEDS_CAMERA, FramePlan, FrameSettings, Output
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.ros import param_overrides, params
from space_clip_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info
from space_clip_ros.ros.diagnostics import FrameStats, ThrottledLog, diagnostic_status
from space_clip_ros.ros.frame_slot import Frame
from space_clip_ros.ros.large_messages import allocator_advice
from space_clip_ros.ros.node_cli import (
    DEPTH_NODE,
    DEPTH_NODE_EPILOG,
    DEPTH_NODE_HELP,
    handle_help,
)
from space_clip_ros.ros.node_main import run_node, spin
from space_clip_ros.ros.qos import BEST_AVAILABLE, fixed_qos_refusal, make_qos, qos_overrides

if TYPE_CHECKING:
    from space_clip_ros.depth_frame import FrameProducts
    from space_clip_ros.inference import DepthEstimator
    from space_clip_ros.ros.depth_outputs import DepthOutputs
    from space_clip_ros.ros.frame_pipeline import FrameOutcome, FramePipeline, PlannedFrame

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

NODE_NAME = DEPTH_NODE
# KITTI frame; the encoder input is fixed, so any size warms the same kernels
WARMUP_SHAPE = (375, 1242)
CAMERA_INFO_SIZES_KEPT = 4


@dataclass(frozen=True)
class Camera:
    """The latest valid CameraInfo of one image size, and its intrinsics."""

    info: CameraInfo
    intrinsics: Intrinsics


class CameraInfoStore:
    """The newest CameraInfo per image size (a few sizes: a driver may switch resolution);
    written by the executor thread, read by the inference worker."""

    def __init__(self, sizes_kept: int = CAMERA_INFO_SIZES_KEPT) -> None:
        self._cond = threading.Condition()
        self._cameras: dict[tuple[int, int], Camera] = {}
        self._waited: set[tuple[int, int]] = set()
        self._sizes_kept = sizes_kept

    def put(self, camera: Camera) -> None:
        key = (camera.intrinsics.width, camera.intrinsics.height)
        with self._cond:
            self._cameras.pop(key, None)
            self._cameras[key] = camera
            while len(self._cameras) > self._sizes_kept:
                self._cameras.pop(next(iter(self._cameras)))
            self._cond.notify_all()

    def get(
        self, width: int, height: int, wait_s: float = 0.0
    ) -> tuple[Optional[Camera], list[str]]:
        """The camera for an image of width x height (or None), and the sizes known.

        wait_s: when none is known yet, wait this long for one, once per size: a bag or driver
        that sends an image before its CameraInfo costs its first frame nothing, and a camera
        without CameraInfo costs one wait, not one per frame.
        """
        key = (width, height)
        with self._cond:
            if key not in self._cameras and wait_s > 0 and key not in self._waited:
                self._waited.add(key)
                self._cond.wait_for(lambda: key in self._cameras, timeout=wait_s)
            return self._cameras.get(key), [f"{w}x{h}" for w, h in self._cameras]

    def clear(self) -> None:
        with self._cond:
            self._cameras.clear()
            self._waited.clear()


@dataclass
class CameraStream:
    """One camera the node serves: its topics, its CameraInfo, its outputs and its counters.

    name "" is the single camera in the node's own namespace (image, camera_info, depth, ...);
    a camera `front` reads front/image, front/camera_info and publishes front/depth, ...
    """

    name: str
    stats: FrameStats = field(default_factory=FrameStats)
    cameras: CameraInfoStore = field(default_factory=CameraInfoStore)
    outputs: Optional["DepthOutputs"] = None
    inputs: list = field(default_factory=list)
    depth_camera: str = "none yet"  # the camera the last frame's depth was made metric for

    def topic(self, relative: str) -> str:
        return f"{self.name}/{relative}" if self.name else relative


def load_estimator(cfg: params.NodeConfig) -> "DepthEstimator":
    """The model the parameters name (built as every tool builds it: cli/model_options), warmed
    up so the first frame is not the slow one."""
    from space_clip_ros.cli.model_options import ModelOptions

    estimator = ModelOptions.from_settings(cfg).load()
    estimator.warmup(*WARMUP_SHAPE)
    return estimator


def frame_settings(cfg: params.NodeConfig) -> FrameSettings:
    return FrameSettings(
        min_depth=cfg.min_depth,
        max_depth=cfg.max_depth,
        output_scale=cfg.output_scale,
        point_decimation=cfg.point_decimation,
        points_rgb=cfg.points_rgb,
        colorize_min=cfg.colorize_min,
        colorize_max=cfg.colorize_max,
    )


def enabled_outputs(cfg: params.NodeConfig) -> frozenset[Output]:
    switches = {
        Output.DEPTH: cfg.publish_depth,
        Output.CAMERA_INFO: cfg.publish_camera_info,
        Output.POINTS: cfg.publish_points,
        Output.COLORIZED: cfg.publish_colorized,
    }
    return frozenset(o for o, on in switches.items() if on)


def _logged(transition: Callable[["DepthNode", State], TransitionCallbackReturn]):
    """rclpy turns an exception in a transition into a silent ERROR; log it first."""

    @functools.wraps(transition)
    def wrapper(self: "DepthNode", state: State) -> TransitionCallbackReturn:
        try:
            return transition(self, state)
        except Exception:
            self.get_logger().error(f"{transition.__name__} raised:\n{traceback.format_exc()}")
            raise

    return wrapper


class DepthNode(LifecycleNode):
    """estimator_factory replaces load_estimator: the seam tests and benchmarks use to run the
    node on a known or instant estimator (any space_clip_ros.inference.DepthEstimator)."""

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        estimator_factory: Callable[[params.NodeConfig], "DepthEstimator"] = load_estimator,
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self._estimator_factory = estimator_factory
        try:
            self.config = params.NodeConfig.declare(self)
        except params.ParameterError:
            self.destroy_node()
            raise
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._streams = {name: CameraStream(name) for name in self.config.camera_names}
        logger = self.get_logger()
        # rclpy fixes a call site's severity at its first call: one call site per severity
        self._warn = ThrottledLog(lambda text: logger.warning(text))
        self._error = ThrottledLog(lambda text: logger.error(text))
        self._estimator: Optional[DepthEstimator] = None
        self._diagnostics_pub = None
        self._status_timers: list = []
        self._pipeline: Optional[FramePipeline] = None
        self._failures_lock = threading.Lock()
        self._consecutive_failures = 0
        self.gave_up = False  # set when max_consecutive_failures ended the node: main() exits 1

    @property
    def estimator_trained(self) -> bool:
        """False while no model is loaded or when it runs without a trained checkpoint."""
        return self._estimator is not None and self._estimator.trained

    @property
    def streams(self) -> dict[str, CameraStream]:
        """The cameras this node serves, by name ("" for the single camera in its namespace)."""
        return self._streams

    @property
    def stats(self) -> FrameStats:
        """The frame counters of the node's (first) camera; streams[name].stats for others."""
        return next(iter(self._streams.values())).stats

    def camera(self, width: int, height: int, stream: str = "") -> Optional[Camera]:
        """The camera info the node holds for a camera's images of width x height (None: none
        yet); stream: the camera's name (default: the single camera)."""
        return self._stream(stream).cameras.get(width, height)[0]

    @property
    def estimator(self) -> Optional["DepthEstimator"]:
        """The loaded model (None before configure and after cleanup)."""
        return self._estimator

    @property
    def outputs(self) -> Optional["DepthOutputs"]:
        """The (first) camera's output stage (None before configure and after cleanup)."""
        return next(iter(self._streams.values())).outputs

    @property
    def pipeline(self) -> Optional["FramePipeline"]:
        """The running frame pipeline (None while inactive)."""
        return self._pipeline

    def wanted(self, stream: str = "") -> frozenset[Output]:
        """A camera's outputs that are enabled and have at least one subscriber, now."""
        return self._wanted(self.config, self._stream(stream))

    def _stream(self, name: str) -> CameraStream:
        if name not in self._streams and name == "" and len(self._streams) == 1:
            return next(iter(self._streams.values()))
        try:
            return self._streams[name]
        except KeyError:
            raise KeyError(f"no camera {name!r}; this node serves {list(self._streams)}") from None

    # ----------------------------------------------------------------- lifecycle

    def autostart(self) -> bool:
        """Configure and activate; False (with the reason logged) when either fails."""
        for name, trigger in (
            ("configure", self.trigger_configure),
            ("activate", self.trigger_activate),
        ):
            if trigger() != TransitionCallbackReturn.SUCCESS:
                self.get_logger().fatal(
                    f"{name} failed (reason logged above); the node cannot run"
                )
                return False
        return True

    @_logged
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.config = params.NodeConfig.read(self)
        except params.ParameterError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        cfg = self.config
        from space_clip_ros.inference import UNTRAINED_WARNING
        from space_clip_ros.ros.depth_outputs import DepthOutputs
        from space_clip_ros.runtime import resolve_device

        try:  # a missing cuda:N fails here, in words, before minutes of model loading
            resolve_device(cfg.device)
        except ConfigError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        try:
            estimator = self._estimator_factory(cfg)
        except Exception as exc:  # a failed load must leave the node unconfigured, never crash it
            self.get_logger().error(
                f"cannot load the model (checkpoint '{cfg.checkpoint}'): {exc}"
            )
            return TransitionCallbackReturn.FAILURE
        if not estimator.trained:
            self.get_logger().warning(UNTRAINED_WARNING)
        if cfg.verify_on_configure and not self._verified(estimator):
            return TransitionCallbackReturn.FAILURE
        self._estimator = estimator
        if list(self._streams) != list(cfg.camera_names):  # `cameras` changed since the last
            self._streams = {name: CameraStream(name) for name in cfg.camera_names}
        for stream in self._streams.values():
            stream.outputs = DepthOutputs(
                self,
                cfg.output_reliability,
                cfg.output_qos_depth,
                prefix=stream.topic(""),
                lifecycle=True,
                warn=self._warn,
            )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.get_logger().info(
            f"model ready on {estimator.device} ({estimator.precision}, {estimator.backend}); "
            f"checkpoint '{cfg.checkpoint or 'none'}'"
        )
        return TransitionCallbackReturn.SUCCESS

    def _verified(self, estimator: "DepthEstimator") -> bool:
        """verify_on_configure: the space-clip-verify check; past tolerance the node stays
        unconfigured (a TensorRT engine that drifts must not publish)."""
        from space_clip_ros.inference.verify import synthetic_images, verify_estimator

        cfg = self.config
        try:
            report = verify_estimator(estimator, synthetic_images(), cfg.verify_tolerance)
        except Exception as exc:
            self.get_logger().error(f"verify_on_configure could not run: {exc}")
            return False
        if report.passed:
            self.get_logger().info(f"verify_on_configure passed:\n{report.text()}")
            return True
        self.get_logger().error(
            message(
                f"FAILED, refusing to configure:\n{report.text()}",
                field="verify_on_configure",
                fix="use precision fp32 or another backend, rebuild the TensorRT engine (clear "
                "trt_cache_dir), or raise verify_tolerance",
            )
        )
        return False

    @_logged
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        from space_clip_ros.depth_frame import FrameRenderer
        from space_clip_ros.ros.frame_pipeline import FramePipeline

        cfg = self.config
        if cfg.input_reliability == "best_available" and BEST_AVAILABLE is None:
            self.get_logger().info(
                "this ROS distribution has no BEST_AVAILABLE QoS; subscribing RELIABLE (set "
                "input_reliability:=best_effort for a camera that publishes best-effort)"
            )
        # The pipeline exists before a subscription can deliver a frame (a multi-threaded
        # executor may run _on_image while this callback is still running): no frame lands nowhere.
        self._consecutive_failures = 0  # a re-activated node starts with a clean count
        self._pipeline = FramePipeline(
            FrameRenderer(
                self._estimator,
                camera_fix="publish camera_info for this image size, or set the "
                "default_focal_length parameter",
            ),
            self,
            self.context.ok,
            cameras=list(self._streams),
            batch_wait=lambda: self.config.batch_wait,
            name=NODE_NAME,
        )
        image_type = CompressedImage if cfg.use_compressed else Image
        for stream in self._streams.values():
            for msg_type, topic, callback in (
                (image_type, stream.topic(self._image_topic()), self.receive_image),
                (CameraInfo, stream.topic("camera_info"), self._on_camera_info),
            ):
                stream.inputs.append(
                    self.create_subscription(
                        msg_type,
                        topic,
                        functools.partial(callback, stream=stream.name),
                        make_qos(cfg.input_reliability, cfg.input_qos_depth),  # fresh each
                        qos_overriding_options=qos_overrides(),
                        event_callbacks=SubscriptionEventCallbacks(
                            incompatible_qos=lambda event, t=topic: self._warn(
                                f"qos:{t}",
                                f"a publisher on '{self._resolve(t)}' offers QoS this "
                                f"subscription cannot match ({event.last_policy_kind}); input "
                                f"is {cfg.input_reliability}: set "
                                "input_reliability:=best_effort for a best-effort camera",
                            )
                        ),
                    )
                )
            self.get_logger().info(
                f"listening on '{self._resolve(stream.topic(self._image_topic()))}' and "
                f"'{self._resolve(stream.topic('camera_info'))}'"
            )
        advice = allocator_advice(os.environ)
        if advice:
            self.get_logger().info(advice)
        self._restart_status_timers()
        return super().on_activate(state)

    @_logged
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_work()
        return super().on_deactivate(state)

    @_logged
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release_model()
        return super().on_cleanup(state)

    @_logged
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.release()
        return super().on_shutdown(state)

    @_logged
    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop the pipeline and free the model whatever the lifecycle state (process exit)."""
        self._stop_work()
        self._release_model()

    def _restart_status_timers(self) -> None:
        """(Re)create the diagnostics and log timers at the configured periods."""
        for timer in self._status_timers:
            self.destroy_timer(timer)
        cfg = self.config
        self._status_timers = [
            self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        ]
        if cfg.log_period > 0:
            self._status_timers.append(self.create_timer(cfg.log_period, self._log_status))

    def _stop_work(self) -> None:
        for stream in self._streams.values():
            for sub in stream.inputs:
                self.destroy_subscription(sub)
            stream.inputs.clear()
        for timer in self._status_timers:
            self.destroy_timer(timer)
        self._status_timers.clear()
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            busy = pipeline.stop()
            if busy:
                self.get_logger().warning(
                    f"{', '.join(busy)} still busy with a frame after stopping; not waiting "
                    "for it (it publishes nothing more)"
                )

    def _release_model(self) -> None:
        """Undo configure, and forget the camera infos heard while active: a cleaned-up node is a
        fresh one, and a recalibrated or swapped camera must not inherit the old intrinsics."""
        for stream in self._streams.values():
            stream.cameras.clear()
            if stream.outputs is not None:
                stream.outputs.destroy()
                stream.outputs = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
        self._diagnostics_pub = None
        estimator, self._estimator = self._estimator, None
        if estimator is not None and estimator.device.type == "cuda":
            del estimator
            import torch

            torch.cuda.empty_cache()

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Reject invalid values at once. Unconfigured, valid values wait for configure; once
        configured, the runtime ones (config/depth.yaml) apply at once and the others are refused
        with the way to apply them, since a success that changes nothing would mislead."""
        refusal = fixed_qos_refusal([p.name for p in changes], list(self._parameters))
        if refusal is not None:
            return SetParametersResult(successful=False, reason=refusal)
        try:
            proposed = params.NodeConfig.read(
                self, {p.name: p.value for p in changes if p.name in params.NodeConfig.defaults()}
            )
        except params.ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if self._estimator is None:
            return SetParametersResult(successful=True)
        fixed = params.needs_reconfigure(self.config, proposed)
        if fixed:
            reason = params.reconfigure_reason(fixed, self.get_fully_qualified_name())
            return SetParametersResult(successful=False, reason=reason)
        periods = (self.config.diagnostics_period, self.config.log_period)
        self.config = proposed  # read once per frame (its plan) and per tick: the next one uses it
        if self._status_timers and periods != (proposed.diagnostics_period, proposed.log_period):
            self._restart_status_timers()
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- callbacks (executor thread)

    def receive_image(self, msg: Union[Image, CompressedImage], stream: str = "") -> None:
        """An image subscription's callback (also the way to feed a frame without DDS)."""
        try:
            camera = self._stream(stream)
            camera.stats.received()
            pipeline, frame = self._pipeline, Frame(msg, time.monotonic())
            if pipeline is not None and pipeline.frames.put(camera.name, frame):
                camera.stats.dropped()
        except Exception as exc:  # never let a callback take the executor down
            self._warn("receive", f"failed to queue an image: {exc!r}")

    def _on_camera_info(self, msg: CameraInfo, stream: str = "") -> None:
        camera = self._stream(stream)
        try:
            camera.cameras.put(Camera(msg, intrinsics_from_camera_info(msg)))
        except CameraInfoError as exc:
            camera.stats.rejected("camera_info")
            topic = self._resolve(camera.topic("camera_info"))
            self._warn(f"camera_info:{topic}", f"ignoring camera_info on '{topic}': {exc}")
        except Exception as exc:
            self._warn("camera_info", f"ignoring camera_info: {exc!r}")

    def _publish_diagnostics(self) -> None:
        try:
            estimator, pub = self._estimator, self._diagnostics_pub
            if pub is None:
                return
            common = {
                "device": str(estimator.device) if estimator else "none",
                "precision": estimator.precision if estimator else "none",
                # pytorch, or onnxruntime with the providers the session really uses
                "backend": estimator.backend if estimator else "none",
                "trained_checkpoint": str(bool(estimator and estimator.trained)).lower(),
            }
            array = DiagnosticArray()
            array.header.stamp = self.get_clock().now().to_msg()
            cfg = self.config
            for stream in self._streams.values():
                extra = dict(common)
                counts = stream.outputs.subscription_counts() if stream.outputs else {}
                extra.update(
                    {f"subscribers_{o.value.replace('/', '_')}": str(n) for o, n in counts.items()}
                )
                extra["depth_camera"] = stream.depth_camera
                name = f"{self.get_fully_qualified_name()}: depth"
                if stream.name:
                    extra["camera"] = stream.name
                    name += f" {stream.name}"
                array.status.append(
                    diagnostic_status(
                        stream.stats.snapshot(),
                        name,
                        common["device"],
                        extra,
                        waiting_for_input=not self._wanted(cfg, stream),
                    )
                )
            pub.publish(array)
        except Exception as exc:
            self._warn("diagnostics", f"failed to publish diagnostics: {exc!r}")

    def _log_status(self) -> None:
        for stream in self._streams.values():
            label = f"depth {stream.name}" if stream.name else "depth"
            self.get_logger().info(f"{label}: {stream.stats.snapshot().summary()}")

    # ----------------------------------------------------------------- frames (pipeline threads)

    @staticmethod
    def _wanted(cfg: params.NodeConfig, stream: CameraStream) -> frozenset[Output]:
        """The camera's outputs that are enabled and have at least one subscriber."""
        outputs = stream.outputs
        return enabled_outputs(cfg) & outputs.subscribed() if outputs is not None else frozenset()

    def plan_frame(self, stream: str, frame: Frame) -> Optional["PlannedFrame"]:
        """Decode and plan one frame from one read of the parameters (FrameHandler)."""
        from space_clip_ros.ros.frame_pipeline import PlannedFrame
        from space_clip_ros.ros.image_codec import decode_image

        cfg = self.config
        camera_stream = self._stream(stream)
        outputs = self._wanted(cfg, camera_stream)
        if not outputs or self._estimator is None:
            return None  # nobody listens: not even decoded
        override = None if cfg.input_color_order == "auto" else cfg.input_color_order
        image = decode_image(frame.msg, cfg.max_image_pixels, override)
        # The CameraInfo of the image's size serves the depth's metric mapping as well as the
        # cloud and depth/camera_info: looked up for every frame (the first of a size may wait).
        height, width = image.pixels.shape[:2]
        camera, sizes = camera_stream.cameras.get(width, height, cfg.camera_info_wait)
        if camera is None and outputs & NEEDS_CAMERA:
            seen = f"only sizes {', '.join(sizes)} seen" if sizes else "none received yet"
            topic = self._resolve(camera_stream.topic("camera_info"))
            self._warn(
                f"no_camera_info:{topic}",
                f"no valid camera_info of size {width}x{height} on '{topic}' ({seen}): "
                "publishing depth only; points and depth/camera_info are off until one "
                "arrives",
            )
            outputs -= NEEDS_CAMERA
        if not outputs:
            return None
        assumed = None
        if camera is None and cfg.default_focal_length > 0:
            f = cfg.default_focal_length
            assumed = Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
        plan = FramePlan(
            outputs, frame_settings(cfg), camera.intrinsics if camera else None, assumed
        )
        info = camera.info if camera is not None and Output.CAMERA_INFO in outputs else None
        return PlannedFrame(image, plan, info)

    def publish_frame(
        self,
        stream: str,
        frame: Frame,
        products: "FrameProducts",
        camera_info: Optional[CameraInfo],
    ) -> None:
        """Every output of a completed frame, with the input's header (FrameHandler)."""
        outputs = self._stream(stream).outputs
        if outputs is None:
            raise RuntimeError("the outputs were destroyed under the frame (cleanup)")
        header: Header = frame.msg.header
        outputs.publish(products, header, camera_info)

    def frame_done(
        self,
        stream: str,
        frame: Frame,
        outcome: "FrameOutcome",
        error: Optional[BaseException],
        products: Optional["FrameProducts"],
    ) -> None:
        """Count, log and judge one frame's outcome (FrameHandler; either pipeline thread)."""
        from space_clip_ros.ros.frame_pipeline import FrameOutcome

        camera = self._stream(stream)
        stats = camera.stats
        if outcome is FrameOutcome.SKIPPED:
            stats.skipped()
        elif outcome is FrameOutcome.PUBLISHED:
            finite = products.finite_fraction if products is not None else float("nan")
            if products is not None and products.camera_source:
                camera.depth_camera = products.camera_source
            if products is not None and products.camera_warning:
                topic = self._resolve(camera.topic(self._image_topic()))
                self._warn(f"assumed_camera:{topic}", f"'{topic}': {products.camera_warning}")
            stats.processed(frame.received_at, finite)
            if finite < 1.0:
                self._error(
                    "nonfinite",
                    f"the model's depth is {100 * finite:.1f} % finite on this frame (NaN/inf "
                    "published as no depth): the checkpoint, its normalisation or the backbone "
                    "weights are broken; /diagnostics is ERROR",
                )
            with self._failures_lock:
                self._consecutive_failures = 0
        elif outcome is FrameOutcome.REJECTED:
            reason = getattr(error, "reason", "input")
            stats.rejected(reason)
            topic = self._resolve(camera.topic(self._image_topic()))
            self._warn(f"input:{reason}:{topic}", f"dropping a frame from '{topic}': {error}")
        elif outcome in (FrameOutcome.OUT_OF_MEMORY, FrameOutcome.FAILED):
            stats.error()
            if outcome is FrameOutcome.OUT_OF_MEMORY:
                self._warn(
                    "oom", f"out of GPU memory on a frame, dropped it and freed the cache: {error}"
                )
            else:
                self._warn(
                    f"error:{type(error).__name__}",
                    f"frame failed in inference, dropped: {error!r}",
                )
            with self._failures_lock:
                self._consecutive_failures += 1
                limit = self.config.max_consecutive_failures
                give_up = bool(limit) and self._consecutive_failures >= limit and not self.gave_up
                if give_up:
                    self.gave_up = True
            if give_up:
                self._give_up()

    def _give_up(self) -> None:
        """A failure that repeats is not a bad frame (e.g. a CUDA illegal address: every later
        CUDA call fails too). Exit so the launch file's respawn starts a fresh process."""
        self.get_logger().fatal(
            f"{self._consecutive_failures} frames in a row failed in inference "
            "(max_consecutive_failures); shutting down with exit status 1 so launch's "
            "respawn can restart the node"
        )
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.close()  # no more frames; we are on one of its threads: no join
        rclpy.try_shutdown(context=self.context)

    def _image_topic(self) -> str:
        return "image/compressed" if self.config.use_compressed else "image"

    def _resolve(self, topic: str) -> str:
        return self.resolve_topic_name(topic)


def main(
    args: Optional[list[str]] = None,
    *,
    estimator_factory: Callable[[params.NodeConfig], "DepthEstimator"] = load_estimator,
) -> int:
    """`ros2 run space_clip_ros space_clip_depth`.

    Exit 2 on invalid, unknown or unparsable parameters, 1 if the model fails to load or
    inference keeps failing (max_consecutive_failures); node_main.run_node decides.
    estimator_factory: as DepthNode's.
    """
    handle_help(NODE_NAME, DEPTH_NODE_HELP, DEPTH_NODE_EPILOG, args)
    return run_node(NODE_NAME, args, functools.partial(serve, estimator_factory=estimator_factory))


def serve(
    argv: list[str], estimator_factory: Callable[[params.NodeConfig], "DepthEstimator"]
) -> int:
    """Start the node (autostart: configure and activate) and serve until stopped."""
    node = DepthNode(estimator_factory=estimator_factory)
    try:
        param_overrides.check_params_files_target(argv, node.get_fully_qualified_name())
        if node.config.autostart and not node.autostart():
            return EXIT_FAILURE
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # torch, open_clip and timm leave ~400k long-lived objects: frozen, no full collection
        # walks them again, neither while serving frames nor at exit, where that took 10 s on a
        # busy 2-core machine and made `ros2 launch` escalate Ctrl-C to SIGTERM.
        gc.freeze()
        spin(executor)
    finally:
        node.release()
        node.destroy_node()
    return EXIT_FAILURE if node.gave_up else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
