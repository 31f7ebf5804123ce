"""The depth node's own cost: against a relay floor with inference made free, and against the bare
model with real inference. Ratios come from one run, interleaved frame by frame or round by round.

    python bench/bench_node.py overhead              # CPU: instant model vs the relay, 4 sizes
    python bench/bench_node.py overhead --sizes 1242x375 --frames 40
    python bench/bench_node.py model                 # ViT-B/16 (random weights), CPU
    python bench/bench_node.py model --device cuda --precision auto --rate 400 --seconds 20
    python bench/bench_node.py cameras               # 1, 2, 4, 6 cameras: one node vs N nodes
    python bench/bench_node.py cameras --device cuda --precision auto --rate 30

overhead: the node runs an instant estimator (a constant depth of the right size: inference is
    free), so what remains is the node's own work. The floor is a minimal rclpy relay in the same
    process that answers each image with the same messages (same types, sizes, header), their
    contents prepared once and copied into each message once: receipt, message building and
    DDS, nothing else. A camera client sends one frame at a time, alternating relay and
    node, and waits for every subscribed output of that frame:
      round trip   image published -> last output received (client side);
      node time    receipt -> last output published (the node's statistics; the relay's own
                   callback time for the floor).
    For depth / depth + points / all outputs at 640x480, 1242x375, 1920x1080 and 3840x2160:
    min and median of each, node / relay ratios, and node time per megapixel. Then the frame
    function alone (FrameRenderer.render_depth, no ROS) per size: the node's own computation
    per megapixel, without the transport that node and relay both pay.
--allocator (every mode): tuned (default) runs this process, and the nodes cameras mode starts,
    with the GLIBC_TUNABLES depth.launch.py gives the depth node (re-executing itself with them
    when they are not in the environment: glibc reads them at start only;
    space_clip_ros/ros/large_messages.py); pinned fixes only glibc's mmap and trim thresholds
    from inside the process (mallopt); default leaves the allocator as the environment has it.
model: the real model; bare = DepthEstimator.predict in a loop on the same frames (the ceiling),
    node = frames published open loop at --rate (above the model's rate, so a fresh frame always
    waits) into space_clip_depth with depth (+ points, + all outputs) subscribed; throughput in
    steady state and the node's receipt -> publish latency; bare and node rounds interleaved.
cameras: N cameras (1, 2, 4, 6) publishing at --rate into ONE multi-camera node (cameras:=c0,..)
    and, in turn, into N single-camera nodes, each node its own process (`python -m
    space_clip_ros.ros.depth_node`, the untrained ViT-B/16: speed does not depend on the weights):
    depth images per second summed over the cameras, per-camera latency (image published ->
    depth received, client side) and the nodes' resident memory (VmRSS), ratios in one run.
The camera client, the relay and the node are separate rclpy nodes in this process on the shared
loopback (space_clip_ros/ros/loopback.py); every message still crosses DDS (cameras mode: the
nodes are separate processes).
"""

from __future__ import annotations

import argparse
import array
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "87")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from space_clip_ros.cli.arguments import parse_size  # noqa: E402
from space_clip_ros.depth_frame import FrameRenderer  # noqa: E402
from space_clip_ros.frame_plan import FramePlan, FrameSettings, Output  # noqa: E402
from space_clip_ros.geometry import Intrinsics  # noqa: E402
from space_clip_ros.inference import DepthEstimator, TorchEstimator  # noqa: E402
from space_clip_ros.io.image_decoding import ColorImage  # noqa: E402
from space_clip_ros.model import BackboneConfig, SpaceClipConfig, build_model  # noqa: E402
from space_clip_ros.ros.camera_info import camera_info_from_intrinsics  # noqa: E402
from space_clip_ros.ros.image_codec import array_to_image, new_message  # noqa: E402
from space_clip_ros.ros.large_messages import (  # noqa: E402
    VARIABLE,
    allocator_tuned,
    large_message_env,
)
from space_clip_ros.ros.loopback import OUTPUT_TYPES, Loopback, stamp_ns  # noqa: E402
from space_clip_ros.ros.pointcloud import points_to_cloud  # noqa: E402
from space_clip_ros.runtime import PRECISION_CHOICES, resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing/ is not installed

from testing.estimators import StandIn  # noqa: E402

SIZES = ((640, 480), (1242, 375), (1920, 1080), (3840, 2160))
VARIANTS = {
    "depth": ("depth",),
    "depth+points": ("depth", "points", "depth/camera_info"),
    "all": ("depth", "points", "depth/camera_info", "depth/colorized"),
}


def kitti_like(width: int, height: int) -> Intrinsics:
    """KITTI's focal length scaled with the width, principal point at the centre."""
    f = 721.5377 * width / 1242
    return Intrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height)


def frames(width: int, height: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


class InstantEstimator(StandIn):
    """Inference made free: a fixed depth (0.05..100 m, so the range mask and the palette do
    their work) of the requested size, made once per size on the device."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(resolve_device(device), "fp32", "instant")
        self._depth: dict[tuple[int, int], torch.Tensor] = {}

    def infer(self, pixels, color_order="rgb", output_size=None) -> torch.Tensor:
        return self._at(tuple(output_size or pixels.shape[1:3]))[None]

    def infer_frames(self, frames) -> list[torch.Tensor]:
        return [self._at(tuple(size)) for _, _, size, _ in frames]

    def _at(self, size: tuple[int, int]) -> torch.Tensor:
        if size not in self._depth:
            gen = torch.Generator().manual_seed(0)
            depth = torch.rand(size, generator=gen) * 100.0 + 0.05
            self._depth[size] = depth.to(self.device)
        return self._depth[size]

    def forward(self, images, output_size, view=None):  # infer() never gets here
        raise NotImplementedError


class Relay:
    """The floor: answers each image with the same messages, contents prepared once."""

    def __init__(self, loopback: Loopback, prefix: str, outputs: tuple[str, ...]) -> None:
        self._outputs = outputs
        self._publishers = {
            t: loopback.client.create_publisher(OUTPUT_TYPES[t], f"{prefix}/{t}", 2)
            for t in outputs
        }
        self._contents: dict[tuple[int, int], dict[str, object]] = {}
        self.durations: list[float] = []
        loopback.add_subscription(f"{prefix}/image", Image, self._on_image)

    def prepare(self, width: int, height: int) -> None:
        rng = np.random.default_rng(1)
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        points = rng.uniform(-10, 80, (height, width, 3)).astype(np.float32)
        self._contents[(width, height)] = {
            "depth": rng.uniform(0.1, 80, (height, width)).astype(np.float32),
            "cloud": points_to_cloud(points, Header(), rgb),  # its layout, made once
            "rgb": rgb,
            "intrinsics": kitti_like(width, height),
        }

    def _on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        c = self._contents[(msg.width, msg.height)]
        header = msg.header
        built = {}
        for topic in self._outputs:
            if topic == "depth":
                built[topic] = array_to_image(c["depth"], "32FC1", header)
            elif topic == "depth/camera_info":
                built[topic] = camera_info_from_intrinsics(c["intrinsics"], header)
            elif topic == "points":
                cloud, msg_out = c["cloud"], new_message(PointCloud2)
                for field in ("height", "width", "fields", "is_bigendian", "point_step"):
                    setattr(msg_out, field, getattr(cloud, field))
                msg_out.header, msg_out.row_step = header, cloud.row_step
                msg_out.data = array.array("B", cloud.data)  # the one copy per message
                built[topic] = msg_out
            else:
                built[topic] = array_to_image(c["rgb"], "bgr8", header)
        for topic, out in built.items():
            self._publishers[topic].publish(out)
        self.durations.append(time.perf_counter() - start)


class RoundTrips:
    """Publishes one frame at a time to `prefix`/image and waits for all its outputs."""

    def __init__(self, loopback: Loopback, prefix: str, outputs: tuple[str, ...]) -> None:
        self._images = loopback.add_publisher(f"{prefix}/image", Image, 2)
        self._infos = loopback.add_publisher(f"{prefix}/camera_info", CameraInfo, 2)
        self._arrived: dict[str, dict[int, float]] = {t: {} for t in outputs}
        self._cond = threading.Condition()
        for topic in outputs:
            loopback.add_subscription(
                f"{prefix}/{topic}", OUTPUT_TYPES[topic], self._keeper(topic), 2
            )
        loopback.wait_for_subscribers(self._images)
        for topic in outputs:
            loopback.wait_for_publishers(f"{prefix}/{topic}")

    def _keeper(self, topic: str):
        def keep(msg) -> None:
            with self._cond:
                self._arrived[topic][stamp_ns(msg.header)] = time.perf_counter()
                self._cond.notify_all()

        return keep

    def camera(self, intrinsics: Intrinsics) -> None:
        self._infos.publish(camera_info_from_intrinsics(intrinsics, Header()))

    def send(self, msg: Image, timeout_s: float = 60.0) -> float:
        key = stamp_ns(msg.header)
        start = time.perf_counter()
        self._images.publish(msg)
        with self._cond:
            if not self._cond.wait_for(
                lambda: all(key in a for a in self._arrived.values()), timeout_s
            ):
                raise TimeoutError(f"no complete answer to frame {key} within {timeout_s} s")
            return max(a.pop(key) for a in self._arrived.values()) - start


@dataclass
class Pair:
    node_rt: list[float]
    relay_rt: list[float]
    node_time: list[float]
    relay_time: list[float]


def measure_overhead(
    loopback: Loopback, width: int, height: int, variant: str, frames_n: int, device: str
) -> Pair:
    outputs = VARIANTS[variant]
    tag = f"{variant.replace('+', '_')}_{width}x{height}"
    relay = Relay(loopback, f"/relay_{tag}", outputs)
    relay.prepare(width, height)
    node = loopback.start_node(
        f"/node_{tag}",
        {"log_period": 0.0, "max_image_pixels": 3840 * 2160},
        lambda cfg: InstantEstimator(device),
    )
    to_node = RoundTrips(loopback, f"/node_{tag}", outputs)
    to_relay = RoundTrips(loopback, f"/relay_{tag}", outputs)
    intr = kitti_like(width, height)
    to_node.camera(intr)
    while node.camera(width, height) is None:
        time.sleep(0.01)
    messages = [array_to_image(img, "rgb8", Header()) for img in frames(width, height, 4)]
    pair = Pair([], [], [], [])
    for i in range(frames_n + 3):  # 3 warm-up frames
        msg = messages[i % len(messages)]
        msg.header.stamp.sec = i + 1
        processed = node.stats.snapshot().processed
        node_rt = to_node.send(msg)
        relay_rt = to_relay.send(msg)
        if i < 3:
            continue
        pair.node_rt.append(node_rt)
        pair.relay_rt.append(relay_rt)
        # the node counts a frame just after publishing it: give the count a moment to land
        deadline = time.monotonic() + 5.0
        while (stats := node.stats.snapshot()).processed <= processed:
            if time.monotonic() > deadline:
                raise TimeoutError("the node published a frame it never counted")
            time.sleep(0.0005)
        pair.node_time.append(stats.latency_last_ms / 1e3)
        pair.relay_time.append(relay.durations[-1])
    loopback.stop_node(node)
    loopback.drop_endpoints()
    return pair


def frame_function_ms(width: int, height: int, variant: str, frames_n: int, device: str) -> float:
    """Median ms of the frame function alone (FrameRenderer.render_depth: range mask, cloud,
    preview into the reused host buffers; no ROS), the depth already on the device."""
    renderer = FrameRenderer(device=resolve_device(device))
    plan = FramePlan(
        frozenset(Output(topic) for topic in VARIANTS[variant]),
        FrameSettings(),
        kitti_like(width, height),
    )
    image = ColorImage(frames(width, height, 1)[0], "rgb")
    depth = InstantEstimator(device).infer_frames([(None, None, (height, width), None)])[0]
    times = []
    for i in range(frames_n + 2):  # 2 warm-up frames: buffers and scratch allocated
        start = time.perf_counter()
        renderer.render_depth(depth, image, plan)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def print_frame_function(args: argparse.Namespace) -> None:
    """The node's own computation per megapixel, without the transport both sides pay."""
    print(
        "\nframe function alone (no ROS), median ms and ms per MP:\n"
        "| outputs | " + " | ".join(f"{w}x{h}" for w, h in args.sizes) + " |\n"
        "|---|" + "---:|" * len(args.sizes)
    )
    per_mp_by_variant = {}
    for variant in args.variants:
        per_mp = {}
        cells = []
        for width, height in args.sizes:
            ms = frame_function_ms(width, height, variant, args.frames, args.device)
            per_mp[(width, height)] = ms / (width * height / 1e6)
            cells.append(f"{ms:.2f} ({per_mp[(width, height)]:.1f}/MP)")
        print(f"| {variant} | " + " | ".join(cells) + " |", flush=True)
        per_mp_by_variant[variant] = per_mp
    for variant, per_mp in per_mp_by_variant.items():
        print_growth(f"{variant}: frame function", per_mp)


def print_growth(label: str, per_mp: dict[tuple[int, int], float], note: str = "") -> None:
    """Cost per megapixel at 4K over that at KITTI's size (issue 16's flatness), when both
    sizes were run."""
    if (3840, 2160) in per_mp and (1242, 375) in per_mp:
        ratio = per_mp[(3840, 2160)] / per_mp[(1242, 375)]
        print(f"{label} per MP at 3840x2160 / at 1242x375 = {ratio:.2f}x{note}")


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def set_allocator(choice: str) -> str:
    """The allocator of this run (--allocator), in words; `tuned` re-executes this process with
    the large-message tunables when its environment lacks them (it does not return then)."""
    if choice == "tuned" and not allocator_tuned(os.environ):
        env = {**os.environ, **large_message_env(os.environ)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    tunables = os.environ.get(VARIABLE)
    state = f"{VARIABLE}={tunables}" if tunables else f"no {VARIABLE}"
    if choice == "pinned":
        state += "; " + pin_allocator()
    return f"allocator {choice}: {state}"


def pin_allocator() -> str:
    """Fix glibc's malloc thresholds for this process; what was done, in words.

    By default glibc moves its mmap and trim thresholds as a process frees large blocks, so
    whether each fresh multi-megabyte buffer of a publish or a receipt (rclpy's C copy of a
    message, its serialized form) comes from memory already mapped or from new pages depends on
    what the process happened to free before. Measured here: the same 1242x375 row read a
    round trip of 21 ms (node) and 19 ms (relay) in one regime and 9 / 7 ms in the other, from
    one run to the next. Pinned (blocks up to 32 MiB from the heap, which keeps 256 MiB before
    it is trimmed), node and relay are always measured in the faster regime.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "allocator as it is (no glibc mallopt)"
    if mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 256 << 20):
        return "glibc malloc pinned: mmap threshold 32 MiB, trim threshold 256 MiB"
    return "allocator as it is (mallopt refused the thresholds)"


def overhead(args: argparse.Namespace) -> None:
    sizes = args.sizes
    print(
        f"node (instant model) vs relay floor, {args.frames} frames each, interleaved; "
        f"device {args.device}, torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.1f}; {args.allocator_state}"
    )
    print(
        "| size | outputs | round trip node / relay (min, median) | node / relay round trip | "
        "node time ms (min, median) | relay time ms | node / relay time | node ms / MP |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|")
    per_mp: dict[str, dict[tuple[int, int], float]] = {}
    with Loopback("bench_overhead_client") as loopback:
        for variant in args.variants:
            for width, height in sizes:
                p = measure_overhead(loopback, width, height, variant, args.frames, args.device)
                ms = {k: 1e3 * np.asarray(v) for k, v in vars(p).items()}
                mp = width * height / 1e6
                per_mp.setdefault(variant, {})[(width, height)] = np.median(ms["node_time"]) / mp
                print(
                    f"| {width}x{height} | {variant} | "
                    f"{ms['node_rt'].min():.1f}, {np.median(ms['node_rt']):.1f} / "
                    f"{ms['relay_rt'].min():.1f}, {np.median(ms['relay_rt']):.1f} | "
                    f"{np.median(ms['node_rt']) / np.median(ms['relay_rt']):.2f}x | "
                    f"{ms['node_time'].min():.1f}, {np.median(ms['node_time']):.1f} | "
                    f"{np.median(ms['relay_time']):.1f} | "
                    f"{np.median(ms['node_time']) / np.median(ms['relay_time']):.2f}x | "
                    f"{per_mp[variant][(width, height)]:.1f} |",
                    flush=True,
                )
    for variant, costs in per_mp.items():
        print_growth(f"{variant}: node time", costs, " (target <= 1.2x)")
    print_frame_function(args)


# ------------------------------------------------------------------------------ model mode


class TimedEstimator(TorchEstimator):
    """The model with each inference timed (synchronised on CUDA): the cost inside the node."""

    def infer_frames(self, frames) -> list[torch.Tensor]:
        start = time.perf_counter()
        depth = super().infer_frames(frames)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.durations.append(time.perf_counter() - start)
        return depth


def bench_bare(estimator: DepthEstimator, images: list[np.ndarray], seconds: float) -> dict:
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(latencies) < 3:
        t = time.perf_counter()
        estimator.predict(images[len(latencies) % len(images)])
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return {"fps": len(latencies) / total, "latency_ms": 1e3 * float(np.median(latencies))}


def bench_node(
    estimator: TimedEstimator,
    images: list[np.ndarray],
    seconds: float,
    topics: tuple[str, ...],
    rate_hz: float,
) -> dict:
    estimator.durations = []
    height, width = images[0].shape[:2]
    with Loopback(client_name="bench_client") as loopback:
        node = loopback.start_node(
            "/bench", params={"log_period": 0.0}, estimator_factory=lambda cfg: estimator
        )
        received: list[float] = []
        for topic in topics:
            callback = (
                (lambda m: received.append(time.perf_counter()))
                if topic == "depth"
                else (lambda m: None)
            )
            loopback.add_subscription(f"/bench/{topic}", OUTPUT_TYPES[topic], callback)
        images_pub = loopback.add_publisher("/bench/image", Image)
        info_pub = loopback.add_publisher("/bench/camera_info", CameraInfo)
        messages = [
            array_to_image(img, "rgb8", Header(frame_id="camera_color_left")) for img in images
        ]
        loopback.wait_for_subscribers(images_pub)
        loopback.wait_for_publishers("/bench/depth")
        info_pub.publish(camera_info_from_intrinsics(kitti_like(width, height), Header()))
        while node.camera(width, height) is None:
            time.sleep(0.01)

        stop = threading.Event()

        def publish() -> None:
            """A camera at rate_hz: faster than the model, so a fresh frame is always waiting."""
            i = 0
            while not stop.is_set():
                msg = messages[i % len(messages)]
                msg.header.stamp = loopback.client.get_clock().now().to_msg()
                images_pub.publish(msg)
                i += 1
                time.sleep(1.0 / rate_hz)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        while len(received) < 3:  # skip start-up
            time.sleep(0.01)
        first, n0, k0 = received[-1], len(received), len(estimator.durations)
        time.sleep(seconds)
        last, n1, k1 = received[-1], len(received), len(estimator.durations)
        stop.set()
        publisher.join()
        stats = node.stats.snapshot()
    inside = estimator.durations[k0:k1] or estimator.durations
    return {
        "fps": (n1 - n0) / (last - first) if n1 > n0 else 0.0,
        "inference_fps": 1.0 / float(np.mean(inside)),
        "latency_ms": stats.latency_mean_ms,
        "latency_p95_ms": stats.latency_p95_ms,
        "frames": n1 - n0,
        "dropped": stats.dropped,
        "received": stats.received,
    }


def model(args: argparse.Namespace) -> None:
    width, height = args.size
    net = build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))
    estimator = TimedEstimator(net, device=args.device, precision=args.precision)
    estimator.durations = []
    estimator.warmup(height, width, iterations=3)
    images = frames(width, height, 8)
    device = (
        torch.cuda.get_device_name(estimator.device)
        if estimator.device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
    )
    print(
        f"ViT-B/16 SPACE-CLIP (random weights), {width}x{height}, {device}, "
        f"{estimator.precision}, camera {args.rate:g} Hz; {args.allocator_state}"
    )
    variants = [VARIANTS[v] for v in args.variants]
    ratios: dict[tuple[str, ...], list[float]] = {v: [] for v in variants}
    for round_ in range(1, args.rounds + 1):
        bare = bench_bare(estimator, images, args.seconds)
        print(
            f"round {round_} (load {os.getloadavg()[0]:.1f}): bare {bare['fps']:.2f} fps, "
            f"median latency {bare['latency_ms']:.1f} ms"
        )
        for topics in variants:
            node = bench_node(estimator, images, args.seconds, topics, args.rate)
            ratios[topics].append(node["fps"] / bare["fps"])
            print(
                f"  node, {'+'.join(topics)}: {node['fps']:.2f} fps = "
                f"{100 * ratios[topics][-1]:.0f} % of bare (inference inside the node "
                f"{node['inference_fps']:.2f} fps), latency receipt->publish mean "
                f"{node['latency_ms']:.1f} ms (p95 {node['latency_p95_ms']:.1f}), "
                f"{node['frames']} outputs, {node['dropped']} of {node['received']} dropped stale"
            )
    for topics, values in ratios.items():
        print(
            f"node/bare throughput, {'+'.join(topics)}: median "
            f"{100 * float(np.median(values)):.0f} % over {len(values)} interleaved rounds "
            "(target >= 90 % on CUDA with depth + points)"
        )


# ------------------------------------------------------------------------------ cameras mode


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_nodes(namespace: str, cameras: list[str], multi: bool, args) -> list:
    """The node processes: one serving every camera, or one per camera."""
    common = ["-p", f"device:={args.device}", "-p", f"precision:={args.precision}",
              "-p", "log_period:=0.0", "-p", "max_image_pixels:=8294400"]  # fmt: skip
    if multi:
        runs = [["-r", f"__ns:={namespace}", "-p", f"cameras:={','.join(cameras)}"]]
    else:
        runs = [["-r", f"__ns:={namespace}/{camera}"] for camera in cameras]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "space_clip_ros.ros.depth_node", "--ros-args", *run, *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )  # fmt: skip
        for run in runs
    ]


def measure_cameras(loopback: Loopback, count: int, multi: bool, args) -> dict:
    width, height = args.size
    namespace = f"/bench_cameras_{os.getpid()}_{count}_{'one' if multi else 'many'}"
    cameras = [f"c{i}" for i in range(count)]
    processes = start_nodes(namespace, cameras, multi, args)
    sent: dict[int, float] = {}
    latencies: dict[str, list[float]] = {c: [] for c in cameras}
    counts = dict.fromkeys(cameras, 0)
    lock = threading.Lock()

    def keep(camera: str):
        def on_depth(msg) -> None:
            with lock:
                counts[camera] += 1
                start = sent.get(stamp_ns(msg.header))
                if start is not None:
                    latencies[camera].append(time.perf_counter() - start)

        return on_depth

    try:
        images, infos = {}, {}
        for camera in cameras:
            topic = f"{namespace}/{camera}"
            loopback.add_subscription(f"{topic}/depth", Image, keep(camera), 5)
            images[camera] = loopback.add_publisher(f"{topic}/image", Image, 2)
            infos[camera] = loopback.add_publisher(f"{topic}/camera_info", CameraInfo, 2)
        for camera in cameras:  # the model loads in each process first
            loopback.wait_for_subscribers(images[camera], timeout=600)
        messages = [array_to_image(img, "rgb8", Header()) for img in frames(width, height, 4)]
        info = camera_info_from_intrinsics(kitti_like(width, height), Header())
        stop = threading.Event()

        def publish() -> None:
            i = 0
            while not stop.is_set():
                for j, camera in enumerate(cameras):
                    msg = messages[(i + j) % len(messages)]
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i * 1000 + j, 10**9)
                    with lock:
                        sent[stamp_ns(msg.header)] = time.perf_counter()
                    infos[camera].publish(info)
                    images[camera].publish(msg)
                i += 1
                time.sleep(1.0 / args.rate)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        deadline = time.monotonic() + 600
        while min(counts.values()) < 2 and time.monotonic() < deadline:  # all warmed up
            time.sleep(0.05)
        with lock:
            before = dict(counts)
            for values in latencies.values():
                values.clear()
        start = time.perf_counter()
        time.sleep(args.seconds)
        with lock:
            done = {c: counts[c] - before[c] for c in cameras}
            lat = {c: list(v) for c, v in latencies.items()}
        elapsed = time.perf_counter() - start
        rss = sum(rss_mb(p.pid) for p in processes)
        stop.set()
        publisher.join()
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        loopback.drop_endpoints()
    all_latencies = [v for values in lat.values() for v in values]
    return {
        "fps": sum(done.values()) / elapsed,
        "per_camera_fps": {c: n / elapsed for c, n in done.items()},
        "latency_ms": 1e3 * float(np.median(all_latencies)) if all_latencies else float("nan"),
        "latency_p95_ms": 1e3 * float(np.percentile(all_latencies, 95))
        if all_latencies
        else float("nan"),
        "rss_mb": rss,
    }


def cameras_mode(args: argparse.Namespace) -> None:
    print(
        f"ViT-B/16 SPACE-CLIP (untrained), {args.size[0]}x{args.size[1]}, cameras at "
        f"{args.rate:g} Hz each, device {args.device}, precision {args.precision}, cores "
        f"{os.cpu_count()}, load {os.getloadavg()[0]:.1f}; {args.allocator_state}"
    )
    print(
        "| cameras | one node: depth/s (sum) | N nodes: depth/s (sum) | one / N | latency one "
        "node, median / p95 ms | latency N nodes | RSS one node MB | RSS N nodes MB | one / N |"
    )
    print("|---:|---:|---:|---:|---|---|---:|---:|---:|")
    with Loopback("bench_cameras_client") as loopback:
        for count in args.counts:
            one = measure_cameras(loopback, count, True, args)
            many = measure_cameras(loopback, count, False, args)
            print(
                f"| {count} | {one['fps']:.2f} | {many['fps']:.2f} | "
                f"{one['fps'] / many['fps']:.2f}x | {one['latency_ms']:.0f} / "
                f"{one['latency_p95_ms']:.0f} | {many['latency_ms']:.0f} / "
                f"{many['latency_p95_ms']:.0f} | {one['rss_mb']:.0f} | {many['rss_mb']:.0f} | "
                f"{one['rss_mb'] / many['rss_mb']:.2f}x |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--allocator",
        default="tuned",
        choices=["tuned", "pinned", "default"],
        help="tuned: the GLIBC_TUNABLES depth.launch.py starts the node with; pinned: only "
        "glibc's malloc thresholds fixed (mallopt); default: as the environment has it",
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    over = modes.add_parser("overhead", parents=[common], help="instant model vs the relay floor")
    over.add_argument("--sizes", nargs="+", type=parse_size, default=list(SIZES), metavar="WxH")
    over.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    over.add_argument("--frames", type=int, default=30, help="frames per size and variant")
    over.add_argument("--device", default="cpu")
    real = modes.add_parser("model", parents=[common], help="the real model: node vs bare")
    real.add_argument("--device", default="cpu")
    real.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISION_CHOICES,
        help="auto: fp16 on CUDA, bf16 on a CPU with native bf16, fp32 otherwise",
    )
    real.add_argument("--size", type=parse_size, default=(1242, 375), metavar="WxH")
    real.add_argument("--seconds", type=float, default=15.0, help="each timed phase")
    real.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (KITTI: 10)")
    real.add_argument("--rounds", type=int, default=3, help="interleaved bare / node rounds")
    real.add_argument(
        "--variants", nargs="+", default=["depth", "depth+points"], choices=list(VARIANTS)
    )
    many = modes.add_parser(
        "cameras", parents=[common], help="one multi-camera node vs one node per camera"
    )
    many.add_argument("--counts", nargs="+", type=int, default=[1, 2, 4, 6])
    many.add_argument("--device", default="cpu")
    many.add_argument("--precision", default="auto", choices=PRECISION_CHOICES)
    many.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH")
    many.add_argument("--rate", type=float, default=10.0, help="each camera's rate in Hz")
    many.add_argument("--seconds", type=float, default=20.0, help="each timed phase")
    args = parser.parse_args()
    args.allocator_state = set_allocator(args.allocator)
    {"overhead": overhead, "model": model, "cameras": cameras_mode}[args.mode](args)


if __name__ == "__main__":
    main()
