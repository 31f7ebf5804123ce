"""Large organized point clouds between two processes, per Fast DDS transport setting.

    python bench/bench_transport.py                # 35 clouds at 10 Hz, 1242x375 and 1920x1080
    python bench/bench_transport.py --with-images  # + depth and depth/colorized, as the node
    python bench/bench_transport.py --sizes 1242x375 --count 10 --rounds 1 --settings profile

Every block is a fresh publisher process and a fresh subscriber process, both started with the
setting's environment (Fast DDS reads it when the participant is created) and without any other
Fast DDS variable of the caller's. The publisher sends `--count` clouds at `--rate` Hz in the
node's layout and QoS: organized x y z + packed rgb, built by the node's back-projection and
`points_to_cloud` with `point_decimation` applied the node's way; reliable, KEEP_LAST, the node's
`output_qos_depth`. The subscriber is reliable with depth 5 (rviz2's default). Every message
carries its index and the CRC32 of its data in `frame_id`, so the subscriber checks every byte;
latency is publish() call -> subscriber callback (one host, one clock). Rounds interleave the
settings (the order rotates every round) so a noisy machine spreads over all of them.

Settings: `default` (no variable set), `profile` (config/fastdds_large_data.xml through
FASTDDS_DEFAULT_PROFILES_FILE, both processes), `profile_pub_only` (the publisher only: the
subscriber runs with Fast DDS's defaults, as an rviz2 started without the variable would),
`profile_<N>mb` (the file with an N MiB shared-memory segment), and Fast DDS's builtin presets
`shm`, `udp`, `large_data` (FASTDDS_BUILTIN_TRANSPORTS).
rmw_fastrtps replaces the builtin transports when ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, so
there the presets create exactly `default`'s transports (the `transports` column shows it).

Columns: delivered = intact clouds received / sent (a reliable KEEP_LAST writer still replaces a
cloud its reader has not acknowledged when newer ones fill the history: those are `lost`);
latency in ms over the delivered clouds; >2 s = delivered more than 2 s after publish();
MB/s = delivered cloud bytes / (last receipt - first publish); publish = longest publish() call;
SHM segment = the largest Fast DDS shared-memory segment of the publisher's own / of the
subscriber's own, read from /proc (Fast DDS writes a whole segment
when it creates it: that much RAM in /dev/shm for the process's lifetime); TCP = the publisher's
listening TCP sockets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from space_clip_ros.cli.arguments import parse_size

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "89")

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "fastdds_large_data.xml"
TOPICS = {"points": "/transport_bench/points", "depth": "/transport_bench/depth",
          "depth/colorized": "/transport_bench/depth/colorized"}  # fmt: skip
STALL_MS = 2000.0

# Variables that change Fast DDS's transports or QoS: every child starts without them and gets
# only its setting's, so `default` really is Fast DDS's default.
FASTDDS_ENV = (
    "FASTDDS_BUILTIN_TRANSPORTS",
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "RMW_FASTRTPS_USE_QOS_FROM_XML",
    "RMW_FASTRTPS_PUBLICATION_MODE",
    "SKIP_DEFAULT_XML",
)
PRESETS = {"shm": "SHM", "udp": "UDPv4", "large_data": "LARGE_DATA"}
_NS = {"dds": "http://www.eprosima.com"}


def derived_profile(segment_mib: int, directory: Path) -> Path:
    """The shipped profile with another shared-memory segment size (to measure the choice)."""
    ET.register_namespace("", _NS["dds"])
    tree = ET.parse(PROFILE)
    for node in tree.getroot().iterfind(".//dds:segment_size", _NS):
        node.text = str(segment_mib * 1024 * 1024)
    path = directory / f"fastdds_large_data_{segment_mib}mb.xml"
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return path


def setting_env(name: str, role: str, directory: Path) -> dict[str, str]:
    """The environment of the publisher or subscriber process of one transport setting."""
    env = {k: v for k, v in os.environ.items() if k not in FASTDDS_ENV}
    if name == "profile_pub_only":  # only the node gets the profile; rviz2 & co. run as they are
        name = "profile" if role == "pub" else "default"
    if name == "profile":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    elif name.startswith("profile_") and name.endswith("mb"):
        path = derived_profile(int(name[len("profile_") : -2]), directory)
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    elif name in PRESETS:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = PRESETS[name]
    elif name != "default":
        raise ValueError(f"unknown setting '{name}'")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def mapped_transports() -> dict:
    """The Fast DDS shared-memory segments this process maps, and its listening TCP sockets.

    Evidence of what a setting really created, from /proc: segment sizes with the bytes tmpfs
    holds for each, and TCP listeners (LARGE_DATA's transport). A process maps its own segment
    from the start and other participants' once it talks to them (a reader maps the writer's),
    so a process's own segments are those it maps before any peer exists.
    """
    segments = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        path = parts[5] if len(parts) >= 6 else ""
        if path.startswith("/dev/shm/fastdds_") and not path.endswith("_el"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            segments.append((path, st.st_size, st.st_blocks * 512))
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tcp_listen = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        tcp_listen += fields[3] == "0A" and fields[9] in inodes  # 0A = LISTEN
    return {"shm_segments": sorted(set(segments)), "tcp_listen": tcp_listen}


# ---------------------------------------------------------------------------------------------
# Child processes (the orchestrator runs this file again with --role pub|sub|probe).


def _frame_arrays(width: int, height: int, decimation: int):
    """Points, colours and depth of one frame, as the node computes them for its outputs."""
    import numpy as np

    from space_clip_ros.geometry import backproject
    from space_clip_ros.scenes.street import KITTI_INTRINSICS

    rng = np.random.default_rng(0)
    depth = rng.uniform(2.0, 80.0, (height, width)).astype(np.float32)
    depth[: height // 4] = np.nan  # sky: NaN points, as the node publishes them
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    points = backproject(depth, KITTI_INTRINSICS.scaled(width, height), decimation)
    return points, rgb, depth


def _label(msg, index: int) -> None:
    """Index, CRC32 of the data and the publish time, written into the header."""
    msg.header.frame_id = f"{index}:{zlib.crc32(msg.data):08x}"
    now = time.time_ns()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)


def run_publisher(args: argparse.Namespace) -> None:
    import rclpy
    from rclpy.duration import Duration
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import Header

    from space_clip_ros.ros.image_codec import array_to_image
    from space_clip_ros.ros.params import NodeConfig
    from space_clip_ros.ros.pointcloud import points_to_cloud
    from space_clip_ros.ros.qos import make_qos

    points, rgb, depth = _frame_arrays(args.width, args.height, args.decimation)
    cloud_rgb = rgb[:: args.decimation, :: args.decimation]
    rclpy.init()
    node = rclpy.create_node("transport_bench_publisher")
    qos = make_qos("reliable", args.pub_depth or NodeConfig().output_qos_depth)
    pubs = {"points": node.create_publisher(PointCloud2, TOPICS["points"], qos)}
    if args.with_images:
        for name in ("depth", "depth/colorized"):
            pubs[name] = node.create_publisher(Image, TOPICS[name], qos)
    deadline = time.monotonic() + args.match_timeout
    while time.monotonic() < deadline and any(
        p.get_subscription_count() == 0 for p in pubs.values()
    ):
        time.sleep(0.02)
    matched = all(p.get_subscription_count() > 0 for p in pubs.values())
    blocked: list[float] = []
    start = time.monotonic()
    for i in range(args.count if matched else 0):
        delay = start + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        points[0, 0, 0] = depth[0, 0] = float(i)  # every frame differs: a stale one is caught
        if args.with_images:  # published first, as the node does: the cloud waits behind them
            for name, msg in (
                ("depth", array_to_image(depth, "32FC1", Header())),
                ("depth/colorized", array_to_image(rgb, "bgr8", Header())),
            ):
                _label(msg, i)
                pubs[name].publish(msg)
        msg = points_to_cloud(points, Header(), cloud_rgb)
        _label(msg, i)
        t0 = time.monotonic()
        pubs["points"].publish(msg)
        blocked.append((time.monotonic() - t0) * 1e3)
    timeout = Duration(seconds=args.ack_timeout)
    acked = matched and all(p.wait_for_all_acked(timeout) for p in pubs.values())
    result = {"matched": matched, "publish_ms": blocked, "acked": acked, **mapped_transports()}
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def run_subscriber(args: argparse.Namespace) -> None:
    import rclpy
    from sensor_msgs.msg import Image, PointCloud2

    from space_clip_ros.ros.qos import make_qos

    stop = threading.Event()

    def watch_stdin() -> None:  # the orchestrator closes stdin once the publisher is done
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    rclpy.init()
    node = rclpy.create_node("transport_bench_subscriber")
    frames: dict[int, dict] = {}
    images = {"depth": set(), "depth/colorized": set()}
    corrupt: list[str] = []

    def intact(msg) -> Optional[int]:
        index, _, crc = msg.header.frame_id.partition(":")
        step = msg.row_step if isinstance(msg, PointCloud2) else msg.step
        data = memoryview(msg.data)
        if f"{zlib.crc32(data):08x}" != crc or len(data) != step * msg.height:
            corrupt.append(msg.header.frame_id)
            return None
        return int(index)

    def on_cloud(msg: PointCloud2) -> None:
        arrived = time.time_ns()
        sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        index = intact(msg)
        if index is not None:
            frames[index] = {"latency_ms": (arrived - sent) / 1e6, "sent_ns": sent,
                             "arrived_ns": arrived, "bytes": len(msg.data)}  # fmt: skip

    def on_image(name: str):
        def callback(msg: Image) -> None:
            index = intact(msg)
            if index is not None:
                images[name].add(index)

        return callback

    qos = make_qos("reliable", args.sub_depth)
    node.create_subscription(PointCloud2, TOPICS["points"], on_cloud, qos)
    if args.with_images:
        for name in images:
            node.create_subscription(Image, TOPICS[name], on_image(name), qos)
    own = mapped_transports()  # before the publisher exists: this process's own segments
    print(json.dumps({"ready": True}), flush=True)
    while len(frames) < args.count and not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.1)
    drain_until = time.monotonic() + args.drain
    while len(frames) < args.count and time.monotonic() < drain_until:
        rclpy.spin_once(node, timeout_sec=0.1)
    result = {"frames": frames, "images": {k: len(v) for k, v in images.items()},
              "corrupt": corrupt, **own}  # fmt: skip
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def run_probe(args: argparse.Namespace) -> None:
    """Start one participant with a writer, report its transports and leave."""
    import rclpy
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("transport_bench_probe")
    node.create_publisher(PointCloud2, TOPICS["points"], 1)
    print(json.dumps(mapped_transports()), flush=True)
    node.destroy_node()
    rclpy.shutdown()


# ---------------------------------------------------------------------------------------------
# Orchestrator.


@dataclass
class Block:
    """One publisher/subscriber pair for one setting, size and decimation."""

    setting: str
    width: int
    height: int
    decimation: int
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_sent_ns: int = 0
    last_arrived_ns: int = 0
    bytes: int = 0
    cloud_bytes: int = 0
    images: dict = field(default_factory=dict)
    corrupt: int = 0
    publish_ms: list[float] = field(default_factory=list)
    transports: dict = field(default_factory=dict)
    sub_transports: dict = field(default_factory=dict)
    error: str = ""


def _child(role: str, env: dict, args: argparse.Namespace, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--count",
           str(args.count), *(["--with-images"] if args.with_images else []), *extra]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _last_json(text: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def run_block(key: tuple, args: argparse.Namespace, directory: Path) -> Block:
    setting, width, height, decimation = key
    block = Block(setting, width, height, decimation, sent=args.count)
    sub = _child(
        "sub",
        setting_env(setting, "sub", directory),
        args,
        "--drain",
        str(args.drain),
        "--sub-depth",
        str(args.sub_depth),
    )
    if not sub.stdout.readline().startswith("{"):  # subscribed before the publisher starts
        sub.kill()
        block.error = f"subscriber did not start: {sub.communicate()[1][-400:]}"
        return block
    pub = _child(
        "pub", setting_env(setting, "pub", directory), args, "--rate", str(args.rate),
        "--width", str(width), "--height", str(height), "--decimation", str(decimation),
        "--pub-depth", str(args.pub_depth),
    )  # fmt: skip
    try:
        pub_out, pub_err = pub.communicate(timeout=args.count / args.rate + 180)
    except subprocess.TimeoutExpired:
        pub.kill()
        pub_out, pub_err = pub.communicate()
    try:
        sub_out, sub_err = sub.communicate(input="", timeout=args.drain + 60)
    except subprocess.TimeoutExpired:
        sub.kill()
        sub_out, sub_err = sub.communicate()
    published, received = _last_json(pub_out), _last_json(sub_out)
    if not published.get("matched"):
        block.error = f"publisher never matched: {pub_err[-400:]}"
        return block
    if "frames" not in received:
        block.error = f"subscriber gave no result: {sub_err[-400:]}"
        return block
    block.publish_ms = published["publish_ms"]
    # The subscriber's own segments (it reported them before the publisher existed), and the
    # publisher's: all it maps but the subscriber's (no other participant is in the domain).
    block.sub_transports = {k: received[k] for k in ("shm_segments", "tcp_listen")}
    theirs = {path for path, _, _ in received["shm_segments"]}
    block.transports = {
        "shm_segments": [s for s in published["shm_segments"] if s[0] not in theirs],
        "tcp_listen": published["tcp_listen"],
    }
    frames = list(received["frames"].values())
    block.images = received["images"]
    block.corrupt = len(received["corrupt"])
    block.latencies_ms = [f["latency_ms"] for f in frames]
    if frames:
        block.first_sent_ns = min(f["sent_ns"] for f in frames)
        block.last_arrived_ns = max(f["arrived_ns"] for f in frames)
        block.bytes = sum(f["bytes"] for f in frames)
        block.cloud_bytes = frames[0]["bytes"]
    return block


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize(blocks: list[Block]) -> dict:
    """Pooled figures of one (setting, size, decimation) over its rounds."""
    lat = [x for b in blocks for x in b.latencies_ms]
    sent = sum(b.sent for b in blocks)
    seconds = sum((b.last_arrived_ns - b.first_sent_ns) / 1e9 for b in blocks if b.bytes)

    def largest_segment(side: str) -> float:  # MB
        sizes = [s[1] for b in blocks for s in getattr(b, side).get("shm_segments", [])]
        return round(max(sizes, default=0) / 2**20, 1)

    return {
        "delivered": len(lat),
        "sent": sent,
        "lost": sent - len(lat),
        "images": {
            k: sum(b.images.get(k, 0) for b in blocks) for k in ("depth", "depth/colorized")
        },
        "corrupt": sum(b.corrupt for b in blocks),
        "min": min(lat, default=float("nan")),
        "median": _percentile(lat, 0.5),
        "p95": _percentile(lat, 0.95),
        "max": max(lat, default=float("nan")),
        "late": sum(x > STALL_MS for x in lat),
        "mb_s": sum(b.bytes for b in blocks) / 1e6 / seconds if seconds else 0.0,
        "publish_max": max((x for b in blocks for x in b.publish_ms), default=float("nan")),
        "cloud_mb": max(b.cloud_bytes for b in blocks) / 1e6,
        "pub_shm_mb": largest_segment("transports"),
        "sub_shm_mb": largest_segment("sub_transports"),
        "tcp_listen": max((b.transports.get("tcp_listen", 0) for b in blocks), default=0),
        "errors": [b.error for b in blocks if b.error],
    }


def _row(key: tuple, s: dict, with_images: bool) -> str:
    setting, w, h, d = key
    cloud = f"{w}x{h}" + (f" /{d}" if d > 1 else "")
    delivered = f"{s['delivered']}/{s['sent']}" + (
        f" ({s['corrupt']} corrupt)" if s["corrupt"] else ""
    )
    images = f" {s['images']['depth']} / {s['images']['depth/colorized']} |" if with_images else ""

    transports = f"{s['pub_shm_mb']:g} / {s['sub_shm_mb']:g}" + (
        f", TCP x{s['tcp_listen']}" if s["tcp_listen"] else ""
    )
    return (
        f"| {setting} | {cloud} | {s['cloud_mb']:.2f} | {delivered} | {s['lost']} |{images} "
        f"{s['min']:.0f} / {s['median']:.0f} / {s['p95']:.0f} / {s['max']:.0f} | {s['late']} "
        f"| {s['mb_s']:.0f} | {s['publish_max']:.0f} | {transports} |"
        + (f" {'; '.join(s['errors'])}" if s["errors"] else "")
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=("pub", "sub", "probe"), help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=1242, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=375, help=argparse.SUPPRESS)
    parser.add_argument("--decimation", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=35, help="clouds per block (35)")
    parser.add_argument("--rate", type=float, default=10.0, help="publish rate, Hz (10)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, default=[(1242, 375), (1920, 1080)], metavar="WxH"
    )
    parser.add_argument(
        "--settings", nargs="+", default=["default", "profile"],
        help="default, profile, profile_<N>mb, shm, udp, large_data (default: default profile)",
    )  # fmt: skip
    parser.add_argument(
        "--decimations", nargs="*", type=int, default=[2, 4],
        help="point_decimation values also run at the first size (2 4)",
    )  # fmt: skip
    parser.add_argument("--decimation-settings", nargs="+", default=["default", "profile"])
    parser.add_argument("--with-images", action="store_true", help="also depth, depth/colorized")
    parser.add_argument(
        "--pub-depth", type=int, default=0,
        help="publisher KEEP_LAST depth (default 0: the node's output_qos_depth)",
    )  # fmt: skip
    parser.add_argument("--sub-depth", type=int, default=5, help="subscriber depth (5)")
    parser.add_argument("--drain", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--match-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--ack-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the pooled figures here")
    args = parser.parse_args(argv)
    roles = {"pub": run_publisher, "sub": run_subscriber, "probe": run_probe}
    if args.role:
        roles[args.role](args)
        return 0

    sizes = args.sizes
    plan = [(s, w, h, 1) for (w, h) in sizes for s in args.settings]
    plan += [
        (s, *sizes[0], d) for d in args.decimations for s in args.decimation_settings
        if s in args.settings
    ]  # fmt: skip
    print(
        f"{args.count} clouds per block at {args.rate:g} Hz, {args.rounds} interleaved rounds, "
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']}, "
        f"{os.cpu_count()} CPUs"
        + (", with depth and depth/colorized" if args.with_images else ""),
        flush=True,
    )
    results: dict[tuple, list[Block]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_transport_") as tmp:
        for r in range(args.rounds):
            shift = r % len(plan)
            for key in plan[shift:] + plan[:shift]:
                block = run_block(key, args, Path(tmp))
                results.setdefault(key, []).append(block)
                print(
                    f"  round {r + 1} {key[0]:>14s} {key[1]}x{key[2]} /{key[3]}: "
                    f"{len(block.latencies_ms)}/{block.sent}, median "
                    f"{_percentile(block.latencies_ms, 0.5):.0f} ms {block.error}",
                    flush=True,
                )
    images = " depth / colorized |" if args.with_images else ""
    print(
        f"\n| setting | cloud | MB/cloud | delivered | lost |{images} latency min / median / p95 "
        "/ max ms | >2 s | MB/s | publish max ms | SHM segment MB pub / sub |"
    )
    print(
        "|---|---|---:|---:|---:|"
        + ("---:|" if args.with_images else "")
        + "---|---:|---:|---:|---|"
    )
    pooled = {}
    for key in plan:
        s = summarize(results[key])
        pooled[f"{key[0]} {key[1]}x{key[2]}/{key[3]}"] = s
        print(_row(key, s, args.with_images))
    if args.json:
        args.json.write_text(json.dumps(pooled, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
