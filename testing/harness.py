"""The one ROS test harness: a client node over real DDS for every test that talks to a node.

`Harness` is the package's Loopback (its own rclpy context, a client node, an executor thread)
with what tests add to it: depth nodes started with test defaults (the tiny checkpoint, CPU),
subscriptions that collect into lists, publishers that wait for a subscriber, a camera that
publishes numbered frames, waits that end on a condition, lifecycle service calls, and a
cleanup that leaves the next test a clean graph. The DDS tests (test/ros) get it as the `ros`
fixture (test/ros/conftest.py); the launch tests (test/launch) open one as the client of the
processes launch started, and wait for outputs with launch_testing_ros.WaitForTopics
(`wait_for_topics`).

Every wait ends on its condition and only times out after DISCOVERY_TIMEOUT_S (60 s) or more:
a loaded 2-core CI machine can take many seconds to discover endpoints or load a model.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics
from space_clip_ros.ros.depth_node import DepthNode
from space_clip_ros.ros.loopback import DISCOVERY_TIMEOUT_S, OUTPUT_TYPES, Loopback, wait_for

__all__ = ["DISCOVERY_TIMEOUT_S", "Harness", "wait_for", "wait_for_topics"]

W, H = 160, 48  # the test camera's frame size
INTR = Intrinsics(fx=100.0, fy=95.0, cx=79.5, cy=23.5, width=W, height=H)
# Model start-up in another process (torch import, checkpoint load) under load: launch tests.
PROCESS_START_TIMEOUT_S = 120.0
# lifecycle_msgs/Transition id -> the state label a node that took it is in
LIFECYCLE_GOALS = {1: "inactive", 2: "unconfigured", 3: "active", 4: "inactive"}


def make_header(sec: int, frame_id: str = "camera_optical") -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, 5000
    return header


def make_image(
    sec: int, width: int = W, height: int = H, encoding: str = "rgb8", frame_id="camera_optical"
) -> Image:
    """Random pixels seeded by `sec`, stamped `sec` s + 5000 ns."""
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    pixels = np.random.default_rng(sec).integers(0, 256, (height, width, channels), dtype=np.uint8)
    msg = Image(
        header=make_header(sec, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        step=width * channels,
    )
    msg.data = pixels.tobytes()
    return msg


def make_camera_info(
    intr: Intrinsics = INTR, sec: int = 0, frame_id: str = "camera_optical"
) -> CameraInfo:
    return camera_info_from_intrinsics(intr, make_header(sec, frame_id))


class Harness(Loopback):
    """Loopback with the tests' defaults and helpers; a context manager like Loopback.

    checkpoint: what start() loads unless a test passes an estimator or its own checkpoint.
    Two executor threads: nodes under test must hold up when callbacks run concurrently (the
    demo, bench and main() use one). args: ROS arguments of the context, as a launched process
    gets them on its command line (--params-file, -r __ns:=...).
    """

    def __init__(
        self,
        name: str = "space_clip_test_client",
        checkpoint: Optional[Path] = None,
        args: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__(
            name,
            executor_factory=lambda context: MultiThreadedExecutor(num_threads=2, context=context),
            args=args,
        )
        self.checkpoint = checkpoint
        self._adopted: list[Node] = []
        self._service_clients: dict[str, Any] = {}
        self._frames = itertools.count(1)

    # --------------------------------------------------------------------- nodes under test

    def start(
        self, namespace: str, autostart: bool = True, estimator=None, **overrides
    ) -> DepthNode:
        """A depth node in `namespace` with `overrides` on the test defaults (the harness's
        checkpoint, CPU, no periodic log); `estimator` stands in for the model."""
        if self.checkpoint is not None:
            overrides.setdefault("checkpoint", str(self.checkpoint))
        overrides.setdefault("device", "cpu")
        overrides.setdefault("log_period", 0.0)
        factory = None if estimator is None else (lambda cfg: estimator)
        return self.start_node(namespace, overrides, factory, autostart=autostart)

    def adopt(self, node: Node) -> Node:
        """Spin a node the test built itself (in self.context); cleanup() destroys it (a depth
        node released first, as stop_node does)."""
        (self.nodes if isinstance(node, DepthNode) else self._adopted).append(node)
        self.executor.add_node(node)
        return node

    # -------------------------------------------------------------------------- client side

    def subscribe(self, topic: str, msg_type, qos=10, wait: bool = True) -> list:
        """A list every message on `topic` is appended to; waits for a publisher unless told
        not to (a node that is not up yet, an output that appears later)."""
        received: list = []
        self.add_subscription(topic, msg_type, received.append, qos)
        if wait:
            self.wait_for_publishers(topic)
        return received

    def subscribe_outputs(self, namespace: str, topics=tuple(OUTPUT_TYPES)) -> dict[str, list]:
        return {t: self.subscribe(f"{namespace}/{t}", OUTPUT_TYPES[t]) for t in topics}

    def publisher(self, topic: str, msg_type=Image, qos=10, wait: bool = True):
        """A publisher; waits until something subscribes (a message sent before is lost)."""
        pub = self.add_publisher(topic, msg_type, qos)
        if wait:
            self.wait_for_subscribers(pub)
        return pub

    def camera(
        self, image_topic: str, info_topic: str, width: int = W, height: int = H
    ) -> Callable[[], None]:
        """A function that publishes the next frame (width x height, stamped 1, 2, ... s) and
        its CameraInfo. Does not wait for subscribers: call it until outputs come back."""
        images = self.add_publisher(image_topic, Image)
        infos = self.add_publisher(info_topic, CameraInfo)
        intrinsics = INTR.scaled(width, height)

        def publish() -> None:
            sec = next(self._frames)
            infos.publish(make_camera_info(intrinsics, sec, "launch_test_optical"))
            images.publish(make_image(sec, width, height, frame_id="launch_test_optical"))

        return publish

    @contextlib.contextmanager
    def repeating(self, action: Callable[[], None], period_s: float = 0.5) -> Iterator[None]:
        """Call `action` every period_s on the executor while the block runs (a camera that
        keeps publishing until a process launched beside the test answers)."""
        timer = self.client.create_timer(period_s, action)
        try:
            yield
        finally:
            self.client.destroy_timer(timer)

    def wait_until(
        self,
        done: Callable[[], object],
        timeout: float = DISCOVERY_TIMEOUT_S,
        every: Optional[Callable[[], None]] = None,
    ) -> bool:
        """done() became true within `timeout` s; `every` (a camera) runs twice a second
        meanwhile."""
        if every is None:
            return wait_for(done, timeout)
        with self.repeating(every):
            return wait_for(done, timeout)

    # ------------------------------------------------------------------ lifecycle services

    def lifecycle_state(self, node: str, timeout: float = DISCOVERY_TIMEOUT_S) -> str:
        """The label of `node`'s lifecycle state ("unconfigured", "active", ...), asked through
        its get_state service as `ros2 lifecycle get` does.

        Asked again until it answers: Fast DDS drops a service's first responses while the
        server has not yet matched the client's response reader (a race a loaded machine
        loses), and get_state is safe to repeat.
        """
        from lifecycle_msgs.srv import GetState

        client = self._service_client(GetState, f"{node}/get_state", timeout)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            future = client.call_async(GetState.Request())
            if wait_for(future.done, min(5.0, max(end - time.monotonic(), 0.1))):
                return future.result().current_state.label
            future.cancel()
        raise TimeoutError(f"{node}/get_state never answered within {timeout} s")

    def change_state(self, node: str, transition: int, timeout: float = 120.0) -> bool:
        """Whether `node` took the lifecycle transition (lifecycle_msgs/Transition id), asked
        through its change_state service as `ros2 lifecycle set` does.

        A transition cannot be asked twice, so while no reply comes the state is asked instead
        (get_state may be repeated): a node in the transition's goal state took it and only the
        reply was lost (the race lifecycle_state() describes). Configure loads the model, hence
        the longer timeout.
        """
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        goal = LIFECYCLE_GOALS[transition]
        client = self._service_client(ChangeState, f"{node}/change_state", timeout)
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if wait_for(future.done, 5.0):
                return future.result().success
            if self.lifecycle_state(node) == goal:
                return True
        raise TimeoutError(f"{node}/change_state {transition}: no reply within {timeout} s")

    def _service_client(self, srv_type, name: str, timeout: float):
        """One client per service name, kept until cleanup(); waits for the service."""
        client = self._service_clients.get(name)
        if client is None:
            client = self._service_clients[name] = self.client.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"no service {name} within {timeout} s")
        return client

    # ---------------------------------------------------------------------------- cleanup

    def cleanup(self) -> None:
        """Drop every client endpoint and stop every node started or adopted here."""
        self.drop_endpoints()
        for client in self._service_clients.values():
            self.client.destroy_client(client)
        self._service_clients.clear()
        for node in self._adopted:
            self.executor.remove_node(node)
            node.destroy_node()
        self._adopted.clear()
        for node in list(self.nodes):
            self.stop_node(node)

    def close(self) -> None:
        self.cleanup()
        super().close()


def wait_for_topics(
    topics: Sequence[tuple[str, Any]], timeout: float = PROCESS_START_TIMEOUT_S
) -> dict[str, list]:
    """The first messages on every topic, waited for with launch_testing_ros.WaitForTopics (its
    own context, node and spin thread); AssertionError naming the topics that got none."""
    from launch_testing_ros import WaitForTopics

    waiter = WaitForTopics(list(topics), timeout=timeout)
    try:  # shut down even when the wait fails: its spin thread would keep the process alive
        if not waiter.wait():
            missing = sorted(waiter.topics_not_received())
            raise AssertionError(f"no message within {timeout} s on {missing}")
        return {name: waiter.received_messages(name) for name, _ in topics}
    finally:
        waiter.shutdown()
