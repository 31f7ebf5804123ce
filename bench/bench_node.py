"""End-to-end cost of the ROS node against the bare DepthEstimator, in one run, on the same frames.

    python bench/bench_node.py                 # ViT-B/16 (random weights), 1242x375, CPU
    python bench/bench_node.py --device cuda --seconds 20

Three measurements share one model instance:
  bare       DepthEstimator.predict on each frame in a loop (the ceiling).
  node       frames published over DDS to space_clip_depth at a camera rate above the model's
             (open loop, newest frame wins), a subscriber on depth [+ points + colorized];
             throughput = outputs per second in steady state, latency = receipt -> publish
             from the node's own statistics.
  cloud      back-projection + PointCloud2 build of one 1242x375 frame (with rgb).
The camera client and the node are separate rclpy nodes in this process, on the shared
in-process loopback (space_clip_ros/ros/loopback.py); every message still crosses DDS (rclpy
has no intra-process shortcut).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "87")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from space_clip_ros.geometry import Intrinsics, backproject  # noqa: E402
from space_clip_ros.inference import DepthEstimator  # noqa: E402
from space_clip_ros.model import BackboneConfig, SpaceClipConfig, build_model  # noqa: E402
from space_clip_ros.ros.image_codec import array_to_image  # noqa: E402
from space_clip_ros.ros.loopback import OUTPUT_TYPES, Loopback  # noqa: E402
from space_clip_ros.ros.pointcloud import points_to_cloud  # noqa: E402

W, H = 1242, 375
KITTI = Intrinsics(fx=721.5377, fy=721.5377, cx=609.5593, cy=172.854, width=W, height=H)


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def bench_bare(estimator: DepthEstimator, images: list[np.ndarray], seconds: float) -> dict:
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(latencies) < 3:
        t = time.perf_counter()
        estimator.predict(images[len(latencies) % len(images)])
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return {
        "fps": len(latencies) / total,
        "latency_ms": 1e3 * float(np.median(latencies)),
        "frames": len(latencies),
    }


def bench_cloud(repeats: int = 50) -> dict:
    depth = np.random.default_rng(1).uniform(1, 80, (H, W)).astype(np.float32)
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    header = Header(frame_id="camera_color_left")
    backproject(depth, KITTI)  # fill the ray cache as the node's first frame does
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        points_to_cloud(backproject(depth, KITTI), header, rgb)
        times.append(time.perf_counter() - t)
    return {
        "median_ms": 1e3 * float(np.median(times)),
        "p95_ms": 1e3 * float(np.percentile(times, 95)),
    }


class TimedEstimator:
    """The node's estimator with each predict timed: the bare cost on the frames the node ran."""

    def __init__(self, estimator: DepthEstimator) -> None:
        self._estimator = estimator
        self.device, self.precision, self.trained = estimator.device, estimator.precision, True
        self.durations: list[float] = []

    def predict(self, image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        t = time.perf_counter()
        depth = self._estimator.predict(image, color_order=color_order)
        self.durations.append(time.perf_counter() - t)
        return depth


def bench_node(
    estimator: DepthEstimator,
    images: list[np.ndarray],
    seconds: float,
    topics: tuple[str, ...],
    rate_hz: float,
) -> dict:
    timed = TimedEstimator(estimator)
    with Loopback(client_name="bench_client") as loopback:
        node = loopback.start_node(
            "/bench", params={"log_period": 0.0}, estimator_factory=lambda cfg: timed
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
        info = CameraInfo(width=W, height=H)
        info.k = KITTI.matrix.ravel().tolist()
        messages = [
            array_to_image(img, "rgb8", Header(frame_id="camera_color_left")) for img in images
        ]
        loopback.wait_for_subscribers(images_pub)
        loopback.wait_for_publishers("/bench/depth")
        info_pub.publish(info)
        time.sleep(0.5)

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
        while len(received) < 2:  # skip start-up
            time.sleep(0.01)
        first, n0, k0 = received[-1], len(received), len(timed.durations)
        time.sleep(seconds)
        last, n1, k1 = received[-1], len(received), len(timed.durations)
        stop.set()
        publisher.join()
        stats = node.stats.snapshot()
    fps = (n1 - n0) / (last - first) if n1 > n0 else 0.0
    inside = timed.durations[k0:k1] or timed.durations
    return {
        "fps": fps,
        "same_frames_bare_fps": 1.0 / float(np.mean(inside)),
        "latency_ms": stats.latency_mean_ms,
        "latency_p95_ms": stats.latency_p95_ms,
        "frames": n1 - n0,
        "dropped": stats.dropped,
        "received": stats.received,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="auto: fp16 on CUDA, bf16 on a CPU with native bf16, fp32 otherwise",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each timed phase")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (KITTI: 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bare / node rounds")
    args = parser.parse_args()
    model = build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))
    estimator = DepthEstimator(model, device=args.device, precision=args.precision)
    estimator.warmup(H, W, iterations=3)
    images = frames(8)
    print(
        f"ViT-B/16 SPACE-CLIP (random weights), {W}x{H}, device {estimator.device}, "
        f"{estimator.precision}, "
        f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}"
    )
    cloud = bench_cloud()
    print(
        f"cloud build (backproject + PointCloud2 with rgb): median {cloud['median_ms']:.2f} ms, "
        f"p95 {cloud['p95_ms']:.2f} ms  (target < 10 ms)"
    )
    # Interleaved rounds: on a shared machine the load drifts, and a ratio is only fair between
    # phases measured close together.
    variants = (("depth",), ("depth", "points", "depth/colorized"))
    ratios: dict[tuple[str, ...], list[float]] = {v: [] for v in variants}
    same_frames: dict[tuple[str, ...], list[float]] = {v: [] for v in variants}
    for round_ in range(1, args.rounds + 1):
        bare = bench_bare(estimator, images, args.seconds)
        print(
            f"round {round_} (load {os.getloadavg()[0]:.1f}): "
            f"bare estimator {bare['fps']:.2f} fps, "
            f"median latency {bare['latency_ms']:.0f} ms ({bare['frames']} frames)"
        )
        for topics in variants:
            node = bench_node(estimator, images, args.seconds, topics, args.rate)
            ratios[topics].append(node["fps"] / bare["fps"])
            same_frames[topics].append(node["fps"] / node["same_frames_bare_fps"])
            print(
                f"  node, subscribed {'+'.join(topics)}: {node['fps']:.2f} fps = "
                f"{100 * ratios[topics][-1]:.0f} % of bare ({100 * same_frames[topics][-1]:.0f} % "
                "of predict() on the same frames), latency receipt->publish mean "
                f"{node['latency_ms']:.0f} ms (p95 "
                f"{node['latency_p95_ms']:.0f}), {node['frames']} outputs, {node['dropped']} of "
                f"{node['received']} received frames dropped as stale"
            )
    for topics, values in ratios.items():
        print(
            f"node/bare throughput, {'+'.join(topics)}: "
            f"median {100 * float(np.median(values)):.0f} % over "
            f"{len(values)} interleaved rounds; node / predict() on the same frames: median "
            f"{100 * float(np.median(same_frames[topics])):.0f} % (target >= 90 %)"
        )


if __name__ == "__main__":
    main()
