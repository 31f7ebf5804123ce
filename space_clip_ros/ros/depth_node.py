"""`space_clip_depth`: camera images in; metric depth, its camera info, point cloud, preview out.

A managed lifecycle node (rclpy.lifecycle, present since Humble): configure loads and warms up
the model, activate subscribes, deactivate stops work, cleanup frees the model. With
`autostart` (the default) main() drives it to active so `ros2 run` just works; with
autostart false a lifecycle manager does.

Threads: the executor thread only stores each incoming frame into a slot of depth one
(newest wins; a replaced frame is counted as dropped), so receipt never waits on inference.
A worker thread takes the newest frame, decodes it, runs the DepthEstimator and publishes only
the outputs that have subscribers. Every output carries the input header unchanged.
Nothing raised while handling a frame escapes a callback: bad frames are counted, logged
(throttled per reason) and dropped, and the node serves the next one. Only a persistent
inference failure ends it: after `max_consecutive_failures` failed frames in a row (a CUDA
illegal address poisons the CUDA context for good) the node logs FATAL, shuts its context down
and main() exits 1, so `respawn=True` in a launch file (launch_ros Node(respawn=True,
respawn_delay=2.0)) restarts it with a fresh CUDA context.
"""

from __future__ import annotations

import functools
import gc
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional, Union

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from space_clip_ros.depth_frame import mask_out_of_range, output_intrinsics, rescale_image
from space_clip_ros.errors import ConfigError
from space_clip_ros.geometry import Intrinsics, backproject
from space_clip_ros.inference import UNTRAINED_WARNING, DepthEstimator
from space_clip_ros.inference.verify import synthetic_images, verify_estimator
from space_clip_ros.io.colormap import colorize
from space_clip_ros.ros import param_overrides, params
from space_clip_ros.ros.camera_info import (
    CameraInfoError,
    intrinsics_from_camera_info,
    scale_camera_info,
)
from space_clip_ros.ros.diagnostics import FrameStats, ThrottledLog, diagnostic_array
from space_clip_ros.ros.image_codec import (
    ColorImage,
    ImageDecodeError,
    array_to_image,
    compressed_to_color,
    depth_to_image,
    image_to_color,
)
from space_clip_ros.ros.node_cli import handle_help
from space_clip_ros.ros.pointcloud import points_to_cloud
from space_clip_ros.ros.qos import (
    BEST_AVAILABLE,
    fixed_qos_refusal,
    make_qos,
    qos_overrides,
)
from space_clip_ros.runtime import resolve_device

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

NODE_NAME = "space_clip_depth"
WARMUP_SHAPE = (
    375,
    1242,
)  # KITTI frame; the encoder input is fixed, so any size warms the same kernels
CAMERA_INFO_SIZES_KEPT = 4
PARAMETERS_HELP = """Topics (relative: remap them): image (or image/compressed), camera_info in;
depth, depth/camera_info, points, depth/colorized, /diagnostics out.
Parameters: config/depth.yaml in the package share lists each with its default, e.g.
  ros2 run space_clip_ros space_clip_depth --ros-args -p checkpoint:=/path/to/checkpoint \\
      -p device:=cuda -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
or ros2 launch space_clip_ros depth.launch.py (ros2 launch ... --show-args lists its arguments)."""


@dataclass(frozen=True)
class Frame:
    msg: Union[Image, CompressedImage]
    received_at: float  # time.monotonic() at receipt


class LatestFrameSlot:
    """A queue of depth one: put() replaces an unprocessed frame, take() blocks for the next."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Optional[Frame] = None
        self._closed = False

    def put(self, frame: Frame) -> bool:
        """Store `frame`; True when it replaced a frame nobody had taken (a stale drop)."""
        with self._cond:
            replaced = self._frame is not None
            self._frame = frame
            self._cond.notify()
            return replaced

    def take(self) -> Optional[Frame]:
        """The newest frame, or None once closed."""
        with self._cond:
            while self._frame is None and not self._closed:
                self._cond.wait()
            frame, self._frame = self._frame, None
            return None if self._closed else frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


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


def load_estimator(cfg: params.NodeConfig) -> DepthEstimator:
    """The model the parameters name, warmed up so the first frame is not the slow one."""
    estimator = DepthEstimator.from_checkpoint(
        cfg.checkpoint or None,
        device=cfg.device,
        precision=cfg.precision,
        backbone_weights=cfg.backbone_weights or None,
        trt_cache_dir=cfg.trt_cache_dir,
    )
    estimator.warmup(*WARMUP_SHAPE)
    return estimator


class DepthNode(LifecycleNode):
    """estimator_factory replaces load_estimator, e.g. to feed a known depth in tests."""

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        estimator_factory: Callable[[params.NodeConfig], DepthEstimator] = load_estimator,
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self._estimator_factory = estimator_factory
        try:
            self.config = params.declare_and_read(self)
            param_overrides.check_declared(self, self.list_parameters([], 0).names)
        except params.ParameterError:
            self.destroy_node()
            raise
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = FrameStats()
        self._warn = ThrottledLog(self.get_logger().warning)
        self._estimator: Optional[DepthEstimator] = None
        self._outputs: dict[str, object] = {}
        self._diagnostics_pub = None
        self._inputs: list = []
        self._status_timers: list = []
        self._slot: Optional[LatestFrameSlot] = None
        self._worker: Optional[threading.Thread] = None
        self._camera_infos: dict[tuple[int, int], tuple[CameraInfo, Intrinsics]] = {}
        self._camera_lock = threading.Lock()
        self._consecutive_failures = 0
        self.gave_up = False  # set when max_consecutive_failures ended the node: main() exits 1

    @property
    def estimator_trained(self) -> bool:
        """False while no model is loaded or when it runs without a trained checkpoint."""
        return self._estimator is not None and self._estimator.trained

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
            self.config = params.read(self)
        except params.ParameterError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        cfg = self.config
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
        for topic, msg_type in (
            ("depth", Image),
            ("depth/camera_info", CameraInfo),
            ("points", PointCloud2),
            ("depth/colorized", Image),
        ):
            self._outputs[topic] = self.create_lifecycle_publisher(
                msg_type,
                topic,
                make_qos(cfg.output_reliability, cfg.output_qos_depth),  # fresh: ROS edits it
                qos_overriding_options=qos_overrides(),
                event_callbacks=PublisherEventCallbacks(
                    incompatible_qos=lambda event, t=topic: self._warn(
                        f"qos:{t}",
                        f"a subscriber to '{self._resolve(t)}' requests QoS this publisher does "
                        f"not offer ({event.last_policy_kind}); outputs are "
                        f"{cfg.output_reliability}: set "
                        "output_reliability:=reliable to serve every subscriber",
                    )
                ),
            )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.get_logger().info(
            f"model ready on {estimator.device} ({estimator.precision}, "
            f"{getattr(estimator, 'backend', 'custom')}); "
            f"checkpoint '{cfg.checkpoint or 'none'}'"
        )
        return TransitionCallbackReturn.SUCCESS

    def _verified(self, estimator: DepthEstimator) -> bool:
        """verify_on_configure: the space-clip-verify check; past tolerance the node stays
        unconfigured (a TensorRT engine that drifts must not publish)."""
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
            f"verify_on_configure FAILED, refusing to configure:\n{report.text()}\nFix: use "
            "precision fp32 or another backend, rebuild the TensorRT engine (clear "
            "trt_cache_dir), or raise verify_tolerance"
        )
        return False

    @_logged
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        cfg = self.config
        if cfg.input_reliability == "best_available" and BEST_AVAILABLE is None:
            self.get_logger().info(
                "this ROS distribution has no BEST_AVAILABLE QoS; subscribing RELIABLE (set "
                "input_reliability:=best_effort for a camera that publishes best-effort)"
            )
        # The slot and its worker exist before a subscription can deliver a frame (a multi-threaded
        # executor may run _on_image while this callback is still running): no frame lands nowhere.
        self._slot = LatestFrameSlot()
        self._worker = threading.Thread(
            target=self._work, args=(self._slot,), name="space_clip_inference", daemon=True
        )
        self._worker.start()
        image_type, image_topic = (
            CompressedImage if cfg.use_compressed else Image,
            self._image_topic(),
        )
        for msg_type, topic, callback in (
            (image_type, image_topic, self._on_image),
            (CameraInfo, "camera_info", self._on_camera_info),
        ):
            self._inputs.append(
                self.create_subscription(
                    msg_type,
                    topic,
                    callback,
                    make_qos(cfg.input_reliability, cfg.input_qos_depth),  # fresh, as above
                    qos_overriding_options=qos_overrides(),
                    event_callbacks=SubscriptionEventCallbacks(
                        incompatible_qos=lambda event, t=topic: self._warn(
                            f"qos:{t}",
                            f"a publisher on '{self._resolve(t)}' offers QoS this subscription "
                            f"cannot match ({event.last_policy_kind}); input is "
                            f"{cfg.input_reliability}: set "
                            "input_reliability:=best_effort for a best-effort camera",
                        )
                    ),
                )
            )
        self._restart_status_timers()
        self.get_logger().info(
            f"listening on '{self._resolve(image_topic)}' and '{self._resolve('camera_info')}'"
        )
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
        """Stop the worker and free the model whatever the lifecycle state (process exit)."""
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
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs.clear()
        for timer in self._status_timers:
            self.destroy_timer(timer)
        self._status_timers.clear()
        if self._slot is not None:
            self._slot.close()
        if self._worker is not None:
            self._worker.join()
        self._slot = self._worker = None

    def _release_model(self) -> None:
        """Undo configure, and forget the camera infos heard while active: a cleaned-up node is a
        fresh one, and a recalibrated or swapped camera must not inherit the old intrinsics."""
        with self._camera_lock:
            self._camera_infos.clear()
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
        self._outputs.clear()
        self._diagnostics_pub = None
        device = self._estimator.device if self._estimator is not None else None
        self._estimator = None
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Reject invalid values at once. Unconfigured, valid values wait for configure; once
        configured, the runtime ones (config/depth.yaml) apply at once and the others are refused
        with the way to apply them, since a success that changes nothing would mislead."""
        refusal = fixed_qos_refusal([p.name for p in changes], list(self._parameters))
        if refusal is not None:
            return SetParametersResult(successful=False, reason=refusal)
        try:
            proposed = params.read(
                self, {p.name: p.value for p in changes if p.name in params.defaults()}
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
        self.config = proposed  # read once per frame and per tick: the next one uses it
        if self._status_timers and periods != (proposed.diagnostics_period, proposed.log_period):
            self._restart_status_timers()
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- callbacks (executor thread)

    def _on_image(self, msg: Union[Image, CompressedImage]) -> None:
        try:
            self.stats.received()
            slot = self._slot
            if slot is not None and slot.put(Frame(msg, time.monotonic())):
                self.stats.dropped()
        except Exception as exc:  # never let a callback take the executor down
            self._warn("receive", f"failed to queue an image: {exc!r}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = intrinsics_from_camera_info(msg)
        except CameraInfoError as exc:
            self.stats.rejected("camera_info")
            self._warn(
                "camera_info", f"ignoring camera_info on '{self._resolve('camera_info')}': {exc}"
            )
            return
        except Exception as exc:
            self._warn("camera_info", f"ignoring camera_info: {exc!r}")
            return
        with self._camera_lock:
            key = (intrinsics.width, intrinsics.height)
            self._camera_infos.pop(key, None)
            self._camera_infos[key] = (msg, intrinsics)
            while len(self._camera_infos) > CAMERA_INFO_SIZES_KEPT:
                self._camera_infos.pop(next(iter(self._camera_infos)))

    def _publish_diagnostics(self) -> None:
        try:
            estimator, pub = self._estimator, self._diagnostics_pub
            if pub is None:
                return
            extra = {
                "device": str(estimator.device) if estimator else "none",
                "precision": estimator.precision if estimator else "none",
                # pytorch, or onnxruntime with the providers the session really uses
                "backend": getattr(estimator, "backend", "custom") if estimator else "none",
                "trained_checkpoint": str(bool(estimator and estimator.trained)).lower(),
            }
            extra.update(
                {
                    f"subscribers_{t.replace('/', '_')}": str(p.get_subscription_count())
                    for t, p in self._outputs.items()
                }
            )
            pub.publish(
                diagnostic_array(
                    self.stats.snapshot(),
                    f"{self.get_fully_qualified_name()}: depth",
                    extra["device"],
                    self.get_clock().now().to_msg(),
                    extra,
                    waiting_for_input=not self._wanted(),
                )
            )
        except Exception as exc:
            self._warn("diagnostics", f"failed to publish diagnostics: {exc!r}")

    def _log_status(self) -> None:
        self.get_logger().info(f"depth: {self.stats.snapshot().summary()}")

    # ----------------------------------------------------------------- inference (worker thread)

    def _work(self, slot: LatestFrameSlot) -> None:
        self._consecutive_failures = 0  # a re-activated node starts with a clean count
        while (frame := slot.take()) is not None:
            if not self._wanted() or self._estimator is None:
                continue  # nobody listens: not even decoded
            outcome = self._process_guarded(frame)
            del frame
            if outcome == "shutdown":
                return
            if outcome == "oom":
                # Only now: the failed frame's tensors died with _process_guarded's traceback,
                # so the cache really has their blocks to give back.
                torch.cuda.empty_cache()
            if outcome in ("oom", "error"):
                self._consecutive_failures += 1
                limit = self.config.max_consecutive_failures
                if limit and self._consecutive_failures >= limit:
                    self._give_up()
                    return
            elif outcome == "ok":
                self._consecutive_failures = 0

    def _process_guarded(self, frame: Frame) -> str:
        """'ok', 'rejected' (bad input), 'oom', 'error' or 'shutdown'.

        Returns no exception: a traceback would keep the failed frame's tensors (the locals of
        every frame in it) alive.
        """
        try:  # a bad frame is an input error with its own reason, never an inference failure
            color = self._decode(frame.msg)
        except ImageDecodeError as exc:
            self.stats.rejected(exc.reason)
            self._warn(
                f"input:{exc.reason}",
                f"dropping a frame from '{self._resolve(self._image_topic())}': {exc}",
            )
            return "rejected"
        try:
            self._process(frame, color)
        except torch.cuda.OutOfMemoryError as exc:
            self.stats.error()
            self._warn(
                "oom", f"out of GPU memory on a frame, dropped it and freed the cache: {exc}"
            )
            return "oom"
        except Exception as exc:
            if not self.context.ok():  # Ctrl-C shut ROS down under this frame: not a failure
                return "shutdown"
            self.stats.error()
            self._warn(
                f"error:{type(exc).__name__}", f"frame failed in inference, dropped: {exc!r}"
            )
            return "error"
        return "ok"

    def _give_up(self) -> None:
        """A failure that repeats is not a bad frame (e.g. a CUDA illegal address: every later
        CUDA call fails too). Exit so the launch file's respawn starts a fresh process."""
        self.gave_up = True
        self.get_logger().fatal(
            f"{self._consecutive_failures} frames in a row failed in inference "
            "(max_consecutive_failures); shutting down with exit status 1 so launch's "
            "respawn can restart the node"
        )
        rclpy.try_shutdown(context=self.context)

    def _wanted(self) -> set[str]:
        """The outputs that are enabled and have at least one subscriber."""
        cfg = self.config
        enabled = {
            "depth": cfg.publish_depth,
            "depth/camera_info": cfg.publish_camera_info,
            "points": cfg.publish_points,
            "depth/colorized": cfg.publish_colorized,
        }
        return {
            t
            for t, pub in list(self._outputs.items())
            if enabled[t] and pub.get_subscription_count() > 0
        }

    def _decode(self, msg: Union[Image, CompressedImage]) -> ColorImage:
        """The frame's colour image; raises only ImageDecodeError."""
        cfg = self.config
        if isinstance(msg, CompressedImage):
            return compressed_to_color(msg, cfg.max_image_pixels)
        override = None if cfg.input_color_order == "auto" else cfg.input_color_order
        return image_to_color(msg, cfg.max_image_pixels, override)

    def _process(self, frame: Frame, color: ColorImage) -> None:
        wanted = self._wanted()
        estimator = self._estimator
        if not wanted or estimator is None:
            return
        cfg = self.config
        header = frame.msg.header
        in_h, in_w = color.pixels.shape[:2]
        color = ColorImage(rescale_image(color.pixels, cfg.output_scale), color.order)
        out_h, out_w = color.pixels.shape[:2]

        camera = self._camera_for(
            in_w, in_h, needed=bool(wanted & {"points", "depth/camera_info"})
        )
        if camera is not None and "depth/camera_info" in wanted:
            self._outputs["depth/camera_info"].publish(
                scale_camera_info(camera[0], out_w, out_h, header)
            )
        if not wanted & {"depth", "points", "depth/colorized"}:
            self.stats.processed(frame.received_at)
            return

        depth = estimator.predict(color.pixels, color_order=color.order)
        mask_out_of_range(depth, cfg.min_depth, cfg.max_depth)  # NaN, never 0
        if "depth" in wanted:
            self._outputs["depth"].publish(depth_to_image(depth, header))
        if "points" in wanted and camera is not None:
            step = cfg.point_decimation
            points = backproject(depth, output_intrinsics(camera[1], out_w, out_h), step)
            rgb = color.rgb[::step, ::step] if cfg.points_rgb else None
            self._outputs["points"].publish(points_to_cloud(points, header, rgb))
        if "depth/colorized" in wanted:
            preview = colorize(depth, cfg.colorize_min, cfg.colorize_max, channel_order="bgr")
            self._outputs["depth/colorized"].publish(array_to_image(preview, "bgr8", header))
        self.stats.processed(frame.received_at)

    def _camera_for(
        self, width: int, height: int, needed: bool
    ) -> Optional[tuple[CameraInfo, Intrinsics]]:
        with self._camera_lock:
            camera = self._camera_infos.get((width, height))
            sizes = [f"{w}x{h}" for w, h in self._camera_infos]
        if camera is None and needed:
            seen = f"only sizes {', '.join(sizes)} seen" if sizes else "none received yet"
            self._warn(
                "no_camera_info",
                f"no valid camera_info of size {width}x{height} on "
                f"'{self._resolve('camera_info')}' ({seen}): publishing depth only; points and "
                "depth/camera_info are off until one arrives",
            )
        return camera

    def _image_topic(self) -> str:
        return "image/compressed" if self.config.use_compressed else "image"

    def _resolve(self, topic: str) -> str:
        return self.resolve_topic_name(topic)


def main(args: Optional[list[str]] = None) -> int:
    """`ros2 run space_clip_ros space_clip_depth`.

    Exit 2 on invalid, unknown or unparsable parameters, 1 if the model fails to load or
    inference keeps failing (max_consecutive_failures).
    """
    handle_help(NODE_NAME, __doc__, PARAMETERS_HELP, args)
    argv = sys.argv if args is None else args
    fatal = rclpy.logging.get_logger(NODE_NAME).fatal
    try:
        rclpy.init(args=args)
    except Exception as exc:  # rcl's RCLError: a params file or -p rule it cannot parse
        fatal(f"{param_overrides.explain_init_failure(exc, argv)}")
        return 2
    try:
        try:
            node = DepthNode()
        except params.ParameterError as exc:
            fatal(f"{exc}\nFix the parameter(s) above (see config/depth.yaml).")
            return 2
        try:
            param_overrides.check_params_files_target(argv, node.get_fully_qualified_name())
            if node.config.autostart and not node.autostart():
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            # torch, open_clip and timm leave ~400k long-lived objects: frozen, no full collection
            # walks them again, neither while serving frames nor at exit, where that took 10 s on a
            # busy 2-core machine and made `ros2 launch` escalate Ctrl-C to SIGTERM.
            gc.freeze()
            executor.spin()
        except params.ParameterError as exc:
            fatal(str(exc))
            return 2
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.release()
            node.destroy_node()
        if node.gave_up:
            return 1
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
