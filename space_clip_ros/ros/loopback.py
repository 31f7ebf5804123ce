"""An in-process loopback: depth nodes and a client node over real DDS in one process.

The demo (space-clip-demo), bench/bench_node.py and the tests (testing/harness.py) need the same
scaffolding: an rclpy context of their own, the space_clip_depth node, a client node that
publishes camera images and subscribes to the outputs, an executor spinning in a background
thread, and a wait for discovery before the first frame (a frame published before the node
subscribes is lost). `Loopback` is that scaffolding; `CameraClient` adds "publish one frame and
collect its outputs by stamp". Every message still crosses DDS: rclpy has no intra-process
shortcut, so what this measures and tests is what a separate camera process would see.

The executor is single-threaded by default, as the node's own main() uses: a
MultiThreadedExecutor's Python threads contend for the GIL with the inference thread and slowed
predict() 2-3x on 2 cores (bench/RESULTS.md). Inference runs on the node's worker thread, so
one executor thread is enough to receive frames and deliver outputs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from space_clip_ros.errors import RuntimeFailure
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics
from space_clip_ros.ros.depth_node import DepthNode
from space_clip_ros.ros.depth_outputs import OUTPUT_TYPES as OUTPUT_MESSAGE_TYPES
from space_clip_ros.ros.image_codec import array_to_image
from space_clip_ros.ros.qos import make_qos

# topic name -> message type of every depth output
OUTPUT_TYPES = {output.value: msg_type for output, msg_type in OUTPUT_MESSAGE_TYPES.items()}
# Generous: a wait ends as soon as its condition holds, and a loaded 2-core CI machine can take
# many seconds to discover endpoints or run a first inference.
DISCOVERY_TIMEOUT_S = 60.0

QosLike = QoSProfile | int


def wait_for(
    predicate: Callable[[], object], timeout: float = DISCOVERY_TIMEOUT_S, interval: float = 0.02
) -> bool:
    """Poll `predicate` until it is truthy or `timeout` seconds pass; its last verdict."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stamp_ns(header: Header) -> int:
    """A header stamp as one integer, the key that pairs a frame with its outputs."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Loopback:
    """One rclpy context, a client node and an executor thread; depth nodes added on demand.

    Use as a context manager (or call close()): closing stops the executor, releases and
    destroys every node started here and shuts the context down.
    """

    def __init__(
        self,
        client_name: str = "space_clip_loopback_client",
        executor_factory: Callable[[rclpy.Context], Executor] = (
            lambda context: SingleThreadedExecutor(context=context)
        ),
        args: Optional[Sequence[str]] = None,
    ) -> None:
        """args: ROS arguments for the context (["--ros-args", "--params-file", ...]), as a
        process's command line gives them to every node it runs."""
        # Keep loopback DDS traffic on this machine unless the user chose otherwise; it must be
        # set before the context is initialised.
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=None if args is None else list(args))
        self.nodes: list[DepthNode] = []
        self._subscriptions: list = []
        self._publishers: list = []
        self.client = Node(client_name, context=self.context)
        self.executor = executor_factory(self.context)
        self.executor.add_node(self.client)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        """Spin until the executor or the context shuts down.

        rclpy's executor raises InvalidHandle when an entity is destroyed while it builds its
        wait set (a QoS event handler of a node that stop_node() destroys from another thread:
        rclpy skips destroyed subscriptions there, not waitables). The entity is gone from the
        next wait set, so spinning goes on; before, the thread ended and every later wait for a
        message timed out (seen on a loaded machine).
        """
        while True:
            try:
                self.executor.spin()
                return  # the executor was shut down (close())
            except ExternalShutdownException:  # a node shut the context down (max failures)
                return
            except InvalidHandle:
                continue

    def __enter__(self) -> "Loopback":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -------------------------------------------------------------------------- depth nodes

    def start_node(
        self,
        namespace: str = "",
        params: Optional[Mapping[str, Any]] = None,
        estimator_factory: Optional[Callable] = None,
        autostart: bool = True,
    ) -> DepthNode:
        """A DepthNode with `params` as overrides, spun by this executor (and configured and
        activated unless autostart is False). estimator_factory replaces the model loader."""
        kwargs = {} if estimator_factory is None else {"estimator_factory": estimator_factory}
        node = DepthNode(
            namespace=namespace,
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in (params or {}).items()],
            **kwargs,
        )
        self.nodes.append(node)
        self.executor.add_node(node)
        if autostart and not node.autostart():
            raise RuntimeFailure(
                "the depth node failed to configure or activate",
                source=node.get_fully_qualified_name(),
                fix="see the reason logged above (checkpoint, backbone_weights, device)",
            )
        return node

    def stop_node(self, node: DepthNode) -> None:
        """Take a node out of the executor, stop its worker, free its model and destroy it."""
        self.nodes.remove(node)
        self.executor.remove_node(node)
        node.release()
        node.destroy_node()

    # -------------------------------------------------------------------------- client side

    def add_subscription(
        self, topic: str, msg_type, callback: Callable[[Any], None], qos: QosLike = 10
    ):
        """A client subscription, destroyed by drop_endpoints() or close()."""
        sub = self.client.create_subscription(msg_type, topic, callback, qos)
        self._subscriptions.append(sub)
        return sub

    def add_publisher(self, topic: str, msg_type, qos: QosLike = 10):
        """A client publisher, destroyed by drop_endpoints() or close()."""
        pub = self.client.create_publisher(msg_type, topic, qos)
        self._publishers.append(pub)
        return pub

    def wait_for_subscribers(self, publisher, timeout: float = DISCOVERY_TIMEOUT_S) -> None:
        """Block until something subscribes to `publisher`: discovery takes a moment."""
        if not wait_for(lambda: publisher.get_subscription_count() > 0, timeout):
            raise TimeoutError(f"nobody subscribed to {publisher.topic_name} within {timeout} s")

    def wait_for_publishers(self, topic: str, timeout: float = DISCOVERY_TIMEOUT_S) -> None:
        """Block until something publishes `topic` (fully qualified)."""
        if not wait_for(lambda: self.client.count_publishers(topic) > 0, timeout):
            raise TimeoutError(f"nobody published {topic} within {timeout} s")

    def drop_endpoints(self) -> None:
        """Destroy every client subscription and publisher made so far."""
        for sub in self._subscriptions:
            self.client.destroy_subscription(sub)
        for pub in self._publishers:
            self.client.destroy_publisher(pub)
        self._subscriptions.clear()
        self._publishers.clear()

    def close(self) -> None:
        self.executor.shutdown()
        for node in self.nodes:
            node.release()
            node.destroy_node()
        self.nodes.clear()
        self.client.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spinner.join(timeout=5)


@dataclass
class FrameOutputs:
    """What the depth node published for one frame; camera info and points may be missing."""

    depth: Image
    latency_s: float  # image published -> depth received
    camera_info: Optional[CameraInfo] = None
    points: Optional[PointCloud2] = None


class CameraClient:
    """A camera on the loopback's client node: image + camera_info out, the outputs back by stamp.

    One frame in flight at a time (send() waits for its answer): the node keeps only the newest
    frame by design and would drop the rest of a burst.
    """

    def __init__(
        self,
        loopback: Loopback,
        namespace: str = "",
        outputs: Iterable[str] = ("depth", "depth/camera_info", "points"),
        qos: Optional[QosLike] = None,
        timeout_s: float = DISCOVERY_TIMEOUT_S,
    ) -> None:
        """Subscribes to `outputs` and waits (timeout_s) until the node subscribes to the images.
        The default QoS is RELIABLE, depth 2: a loopback must not lose a frame to fragmentation."""
        qos = make_qos("reliable", 2) if qos is None else qos
        prefix = namespace.rstrip("/")
        self._images = loopback.add_publisher(f"{prefix}/image" if prefix else "image", Image, qos)
        self._infos = loopback.add_publisher(
            f"{prefix}/camera_info" if prefix else "camera_info", CameraInfo, qos
        )
        self._received: dict[str, dict[int, tuple[Any, float]]] = {}
        self._arrived = threading.Condition()
        for topic in outputs:
            self._received[topic] = {}
            name = f"{prefix}/{topic}" if prefix else topic
            loopback.add_subscription(name, OUTPUT_TYPES[topic], self._keeper(topic), qos)
        loopback.wait_for_subscribers(self._images, timeout_s)

    def _keeper(self, topic: str) -> Callable[[Any], None]:
        def keep(msg) -> None:
            with self._arrived:
                self._received[topic][stamp_ns(msg.header)] = (msg, time.perf_counter())
                self._arrived.notify_all()

        return keep

    def send(
        self,
        rgb: np.ndarray,
        intrinsics: Optional[Intrinsics],
        header: Header,
        timeout_s: float,
        grace_s: float = 2.0,
    ) -> FrameOutputs:
        """Publish camera_info (when given) and the rgb8 image, then wait for the outputs.

        Raises TimeoutError when no depth comes back within timeout_s. Points and
        depth/camera_info get grace_s more: they need the CameraInfo, which travels on its own
        topic and can lose the race to the very first image; later frames always have it.
        """
        key = stamp_ns(header)
        if intrinsics is not None:
            self._infos.publish(camera_info_from_intrinsics(intrinsics, header))
        sent = time.perf_counter()
        self._images.publish(array_to_image(rgb, "rgb8", header))
        with self._arrived:
            if not self._arrived.wait_for(lambda: key in self._received["depth"], timeout_s):
                raise TimeoutError(f"no depth for the frame stamped {key} ns within {timeout_s} s")
            self._arrived.wait_for(
                lambda: all(key in r for r in self._received.values()), timeout=grace_s
            )
            depth, depth_at = self._received["depth"].pop(key)
            info = self._received.get("depth/camera_info", {}).pop(key, None)
            cloud = self._received.get("points", {}).pop(key, None)
        return FrameOutputs(
            depth=depth,
            latency_s=depth_at - sent,
            camera_info=None if info is None else info[0],
            points=None if cloud is None else cloud[0],
        )
