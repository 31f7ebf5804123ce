"""`space_clip_bag_replay`: play a rosbag2 with rclpy, for machines without `ros2 bag play`.

Reads the bag with rosbags (MCAP or sqlite3, no ROS needed) and publishes each message's CDR
bytes unchanged through an rclpy publisher of the recorded type, so what subscribers receive is
exactly what was recorded. Pacing:
  * default: the recorded rate, scaled by --rate;
  * --fast: as fast as possible;
  * --wait-for TOPIC: lockstep with a node: after each message on --sync-topic (default: the
    left camera image, or the bag's first Image topic) wait until TOPIC carries a message with that
    stamp (e.g. the depth node's `depth`), so every frame is processed however slow the node is.
Topics recorded with a transient-local offered QoS (/tf_static from space-clip-kitti2bag) are
re-offered latched. A topic whose message package is not installed (tf2_msgs is not a pip wheel)
is skipped with a warning. Remap with the usual --ros-args -r old:=new.

A camera's CameraInfo goes out before its image of the same stamp, whatever order the bag holds
them in (the PyPI converter kitti2mcap writes each image first): a node that takes the latest
CameraInfo for an image would otherwise have none for the first frame. An image waits for its
CameraInfo until the bag's clock passes it by INFO_WAIT_NS or the camera's next image comes.

Exit status: 0 when every message was played (and, with --wait-for, every frame answered); 1 when
the bag cannot be read, the node never appeared, or frames went unanswered; 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from space_clip_ros.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    ConfigError,
    RuntimeFailure,
    UsageError,
    run_tool,
)
from space_clip_ros.io.bag_messages import deserialize
from space_clip_ros.io.msg_arrays import stamp_ns as header_stamp_ns
from space_clip_ros.ros.node_main import run_node, spin

NODE_NAME = "space_clip_bag_replay"
PREFERRED_SYNC_TOPIC = "/kitti/camera_color_left/image_raw"
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
INFO_WAIT_NS = 50_000_000  # bag time an image waits for its CameraInfo (KITTI: 10 Hz)
SUBSCRIBER_GRACE_S = 0.5


@dataclass(frozen=True)
class ReplayOptions:
    rate: float = 1.0
    fast: bool = False
    topics: tuple[str, ...] = ()  # empty = all
    wait_for: str | None = None
    wait_timeout: float = 10.0
    sync_topic: str | None = None
    wait_subscribers: float = 0.0
    subscribed_topics: tuple[str, ...] = ()  # wait until each has a subscriber before playing


def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> sensor_msgs.msg.Image; ImportError if it is not installed."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def qos_for(connection: Any) -> QoSProfile:
    latched = any(
        q.durability == QosDurability.TRANSIENT_LOCAL for q in connection.ext.offered_qos_profiles
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1 if latched else 10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def stamp_ns(msg: Any) -> int | None:
    """The header stamp in nanoseconds; None for header-less types (any reply then counts)."""
    return None if getattr(msg, "header", None) is None else header_stamp_ns(msg)


def camera_topics(connections: Iterable[Any]) -> dict[str, str]:
    """Image topic -> the CameraInfo topic beside it (`<ns>/image_raw` -> `<ns>/camera_info`,
    image_transport's convention), for the cameras the bag has both of."""
    infos = {c.topic for c in connections if c.msgtype == CAMERA_INFO_TYPE}
    return {
        c.topic: f"{c.topic.rsplit('/', 1)[0]}/camera_info"
        for c in connections
        if c.msgtype == IMAGE_TYPE and f"{c.topic.rsplit('/', 1)[0]}/camera_info" in infos
    }


def camera_info_first(
    messages: Iterable[tuple[Any, int, bytes]], cameras: dict[str, str]
) -> Iterator[tuple[Any, int, bytes]]:
    """The bag's (connection, bag time, data) in order, except that each image of `cameras`
    is held back until the CameraInfo of its stamp has gone out (module docstring)."""
    held: dict[str, tuple[tuple[Any, int, bytes], int | None]] = {}  # image topic -> (msg, stamp)
    info_of = {info: image for image, info in cameras.items()}

    def header_stamp(conn: Any, data: bytes) -> int | None:
        return stamp_ns(deserialize(data, conn.msgtype))

    for message in messages:
        conn, bag_time, data = message
        for topic in [t for t, ((_, t0, _), _) in held.items() if bag_time - t0 > INFO_WAIT_NS]:
            yield held.pop(topic)[0]
        if conn.topic in cameras:
            if conn.topic in held:
                yield held.pop(conn.topic)[0]
            held[conn.topic] = (message, header_stamp(conn, data))
            continue
        yield message
        image = info_of.get(conn.topic)
        if image in held and held[image][1] == header_stamp(conn, data):
            yield held.pop(image)[0]
    for message, _ in held.values():
        yield message


class StampWaiter:
    """Remembers the stamps seen on the node's output so the player can wait for a given one."""

    def __init__(self) -> None:
        self._seen: set[int | None] = set()
        self._cond = threading.Condition()

    def on_message(self, msg: Any) -> None:
        with self._cond:
            self._seen.add(stamp_ns(msg))
            self._cond.notify_all()

    def wait(self, stamp: int, timeout: float) -> bool:
        """True once `stamp` (or, for header-less outputs, any message) was seen; consumes it."""
        with self._cond:
            done = self._cond.wait_for(lambda: stamp in self._seen or None in self._seen, timeout)
            self._seen.discard(stamp)
            self._seen.discard(None)
            return done


class BagPlayer:
    def __init__(
        self,
        node: Node,
        bag: Path,
        options: ReplayOptions,
        make_publisher: Optional[Callable[[type, str, QoSProfile], Any]] = None,
    ) -> None:
        """make_publisher(message class, topic, qos) gives what each topic's serialized
        messages are published through: node.create_publisher by default; a test records the
        order of publication with it."""
        self.node = node
        self.bag = bag
        self.options = options
        self.make_publisher = make_publisher or node.create_publisher
        self.log = node.get_logger()
        self.published: Counter[str] = Counter()
        self.timeouts = 0

    def _publishers(self, reader: Reader) -> dict[str, Any]:
        publishers = {}
        for conn in reader.connections:
            if self.options.topics and conn.topic not in self.options.topics:
                continue
            try:
                cls = message_class(conn.msgtype)
            except (ImportError, AttributeError, ValueError):
                self.log.warning(
                    f"skipping {conn.topic}: message type {conn.msgtype} is not installed"
                )
                continue
            publishers[conn.topic] = self.make_publisher(cls, conn.topic, qos_for(conn))
        return publishers

    def _sync_topic(self, reader: Reader) -> str | None:
        if self.options.sync_topic:
            return self.options.sync_topic
        images = [c.topic for c in reader.connections if c.msgtype == IMAGE_TYPE]
        return (
            PREFERRED_SYNC_TOPIC
            if PREFERRED_SYNC_TOPIC in images
            else (images[0] if images else None)
        )

    def _waiter(self) -> StampWaiter | None:
        """Subscribe to --wait-for with the type its publisher advertises (found in the graph)."""
        topic = self.options.wait_for
        if not topic:
            return None
        resolved = self.node.resolve_topic_name(topic)
        deadline = time.monotonic() + self.options.wait_timeout
        types: list[str] = []
        while time.monotonic() < deadline and not types:
            types = dict(self.node.get_topic_names_and_types()).get(resolved, [])
            time.sleep(0.05)
        if not types:
            raise RuntimeFailure(
                f"no publisher appeared within {self.options.wait_timeout} s",
                field=f"--wait-for {resolved}",
                fix="start the node and remap it to that topic, or raise --wait-timeout",
            )
        waiter = StampWaiter()
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
        )
        self.node.create_subscription(message_class(types[0]), topic, waiter.on_message, qos)
        return waiter

    def _await_subscribers(self, publisher: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if publisher.get_subscription_count() == 0:
            self.log.warning(
                f"no subscriber on {publisher.topic_name} after {seconds} s; playing anyway"
            )
            return
        # A node creates its subscriptions together; give the others (camera_info, the cloud) the
        # moment discovery needs to match them too, or their first messages are lost.
        time.sleep(SUBSCRIBER_GRACE_S)

    def play(self) -> None:
        try:
            with Reader(self.bag) as reader:
                self._play(reader)
        except ReaderError as err:
            raise RuntimeFailure(
                f"cannot read the bag ({err})", source=self.bag, fix="check it with ros2 bag info"
            ) from err

    def _play(self, reader: Reader) -> None:
        publishers = self._publishers(reader)
        sync = self._sync_topic(reader)
        waiter = self._waiter()
        if waiter is not None and sync not in publishers:
            raise RuntimeFailure(
                f"needs a sync topic with images; {sync!r} is not being played",
                field="--wait-for",
                fix="name an image topic the bag has with --sync-topic",
            )
        wait_subs = self.options.wait_subscribers or (self.options.wait_timeout if waiter else 0.0)
        if wait_subs and sync in publishers:
            self._await_subscribers(publishers[sync], wait_subs)
        for topic in self.options.subscribed_topics:  # e.g. the accuracy node's LiDAR input
            if topic not in publishers:
                raise RuntimeFailure(
                    "not a topic being played",
                    field=f"--wait-for-subscriber {topic}",
                    fix="name a topic of the bag (ros2 bag info lists them)",
                )
            self._await_subscribers(publishers[topic], wait_subs or self.options.wait_timeout)
        paced = waiter is None and not self.options.fast
        start_wall = time.monotonic()
        start_bag = reader.start_time
        wanted = [c for c in reader.connections if c.topic in publishers]
        ordered = camera_info_first(reader.messages(connections=wanted), camera_topics(wanted))
        for conn, bag_time, data in ordered:
            if not self.node.context.ok():  # its node's context (Ctrl-C), not the default
                break
            if paced:
                delay = (
                    start_wall
                    + (bag_time - start_bag) / 1e9 / self.options.rate
                    - time.monotonic()
                )
                if delay > 0:
                    time.sleep(delay)
            publishers[conn.topic].publish(bytes(data))
            self.published[conn.topic] += 1
            if waiter is not None and conn.topic == sync:
                stamp = stamp_ns(deserialize(data, conn.msgtype))
                if not waiter.wait(stamp, self.options.wait_timeout):
                    self.timeouts += 1
                    self.log.warning(
                        f"no {self.options.wait_for} for stamp {stamp} within "
                        f"{self.options.wait_timeout} s; going on"
                    )
        for publisher in publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=2.0))  # reliable delivery of the tail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="space_clip_bag_replay",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bag", type=Path, help="rosbag2 folder (MCAP or sqlite3)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="playback speed factor (default 1.0)"
    )
    parser.add_argument(
        "--fast", action="store_true", help="publish as fast as possible, ignoring stamps"
    )
    parser.add_argument(
        "--topics", nargs="+", default=(), help="play only these topics (default: all)"
    )
    parser.add_argument(
        "--wait-for",
        metavar="TOPIC",
        help="after each --sync-topic message wait for a message with its stamp on TOPIC",
    )
    parser.add_argument(
        "--sync-topic",
        help=f"the image topic --wait-for steps on (default {PREFERRED_SYNC_TOPIC} "
        "or the bag's first Image topic)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for each --wait-for reply / for the node to appear (default 10)",
    )
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before playing, wait up to SECONDS for a subscriber on the sync topic",
    )
    parser.add_argument(
        "--wait-for-subscriber",
        metavar="TOPIC",
        action="append",
        default=[],
        help="before playing, also wait for a subscriber on TOPIC (repeatable), e.g. the LiDAR "
        "topic of an accuracy node, whose first scans are lost otherwise",
    )
    return parser


def main(args: list[str] | None = None) -> int:
    """The command line (run_tool: exit 2 for a bad argument), then the player as a node
    (node_main.run_node: exit 1 for a bag that cannot be read or a node that never appeared)."""
    return run_tool(NODE_NAME, _main, args, usage=build_parser().format_usage)


def _main(args: list[str] | None) -> int:
    argv = sys.argv if args is None else [NODE_NAME, *args]
    parsed = build_parser().parse_args(remove_ros_args(argv)[1:])
    bag = parsed.bag.expanduser()  # launch arguments (bag:=~/...) reach us unexpanded
    if parsed.rate <= 0:
        raise UsageError("--rate must be > 0 (use --fast for no pacing)")
    if not bag.exists():
        raise ConfigError("does not exist", source=bag, fix="check the bag's path")
    options = ReplayOptions(
        parsed.rate,
        parsed.fast,
        tuple(parsed.topics),
        parsed.wait_for,
        parsed.wait_timeout,
        parsed.sync_topic,
        parsed.wait_for_subscribers,
        tuple(parsed.wait_for_subscriber),
    )
    return run_node(NODE_NAME, args, functools.partial(play, bag, options))


def play(bag: Path, options: ReplayOptions, argv: list[str]) -> int:
    node = Node(NODE_NAME)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    # serves the --wait-for subscription and graph queries while this thread plays
    spinner = threading.Thread(target=spin, args=(executor,), daemon=True)
    spinner.start()
    player = BagPlayer(node, bag, options)
    try:
        player.play()
        summary = ", ".join(f"{t}: {n}" for t, n in player.published.items())
        node.get_logger().info(f"played {bag} ({summary}); {player.timeouts} wait timeouts")
        if player.timeouts:
            node.get_logger().error(
                f"{player.timeouts} frames got no reply on {options.wait_for} within "
                f"{options.wait_timeout} s, so they were not processed: see the node's log, or "
                "raise --wait-timeout for a slow device"
            )
            return EXIT_FAILURE
        return EXIT_OK
    finally:
        # wakes the spinning executor so its thread can end before the node goes
        rclpy.try_shutdown()
        spinner.join(timeout=5.0)
        executor.shutdown()
        node.destroy_node()


if __name__ == "__main__":
    sys.exit(main())
