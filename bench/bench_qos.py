"""How many large messages survive between two processes for each publisher/subscriber QoS pair.

    python bench/bench_qos.py            # 1242x375 32FC1 depth images (1.9 MB), 10 Hz, 5 s

The evidence behind the node's QoS defaults (space_clip_ros/ros/qos.py): the parent process
subscribes with each reliability in turn while a child process publishes; both use KEEP_LAST.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "88")

import rclpy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from space_clip_ros.ros.qos import BEST_AVAILABLE, make_qos  # noqa: E402

PUBLISHER = """
import sys, time, rclpy
from sensor_msgs.msg import Image
from space_clip_ros.ros.qos import make_qos
reliability = sys.argv[1]
count, rate, w, h = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rclpy.init()
node = rclpy.create_node("qos_bench_publisher")
pub = node.create_publisher(Image, "/qos_bench/depth", make_qos(reliability, 2))
while pub.get_subscription_count() == 0:
    time.sleep(0.05)
time.sleep(0.5)
data = bytes(w * h * 4)
for i in range(count):
    msg = Image(width=w, height=h, encoding="32FC1", step=4 * w, data=data)
    msg.header.stamp.sec = i
    pub.publish(msg)
    time.sleep(1.0 / rate)
time.sleep(1.0)
"""


def measure(
    pub_reliability: str, sub_reliability: str, count: int, rate: float, width: int, height: int
) -> int:
    rclpy.init()
    node = rclpy.create_node("qos_bench_subscriber")
    received: list[int] = []
    node.create_subscription(
        Image,
        "/qos_bench/depth",
        lambda m: received.append(m.header.stamp.sec),
        make_qos(sub_reliability, 10),
    )
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PUBLISHER,
            pub_reliability,
            str(count),
            str(rate),
            str(width),
            str(height),
        ],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + count / rate + 30
    while child.poll() is None and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    for _ in range(10):
        rclpy.spin_once(node, timeout_sec=0.05)
    child.kill()
    node.destroy_node()
    rclpy.shutdown()
    return len(set(received))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1242)
    parser.add_argument("--height", type=int, default=375)
    args = parser.parse_args()
    subs = ["reliable", "best_effort"] + (["best_available"] if BEST_AVAILABLE is not None else [])
    print(
        f"{args.count} messages of {args.width * args.height * 4 / 1e6:.1f} MB "
        f"at {args.rate:g} Hz, "
        "separate processes"
    )
    for pub in ("reliable", "best_effort"):
        for sub in subs:
            if pub == "best_effort" and sub == "reliable":
                print(f"publisher {pub:11s} -> subscriber {sub:14s}: incompatible (never matches)")
                continue
            got = measure(pub, sub, args.count, args.rate, args.width, args.height)
            print(f"publisher {pub:11s} -> subscriber {sub:14s}: {got}/{args.count} received")


if __name__ == "__main__":
    main()
