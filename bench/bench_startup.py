"""How long `space_clip_depth` takes to answer --help and a parameter error, against the floor a
ROS 2 Python node cannot go below (`python -c "import rclpy"`), interleaved in one run.

    python bench/bench_startup.py            # 10 rounds
    python bench/bench_startup.py --rounds 20

The node module imports neither torch nor the model (they load at configure), so both answers
should cost a few times the import of rclpy, not the seconds torch and open_clip take; a
parameter error, which needs a node (a DDS participant), is compared with a bare rclpy
LifecycleNode that declares one parameter and exits.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Any rclpy lifecycle node that reads one parameter and exits: DDS participant and all.
BARE_LIFECYCLE_NODE = (
    "import rclpy; from rclpy.lifecycle import LifecycleNode; rclpy.init(); "
    "n = LifecycleNode('bare'); n.declare_parameter('max_depth', 80.0); n.destroy_node(); "
    "rclpy.try_shutdown(); raise SystemExit(2)"
)
COMMANDS = {
    "import rclpy (floor)": [sys.executable, "-c", "import rclpy"],
    "a bare lifecycle node, one parameter (peer)": [sys.executable, "-c", BARE_LIFECYCLE_NODE],
    # the console script `space_clip_depth` (ros2 run) calls this entry point
    "space_clip_depth --help": [
        sys.executable,
        "-c",
        "import sys; from space_clip_ros.ros.node_cli import space_clip_depth; "
        "sys.exit(space_clip_depth(sys.argv[1:]))",
        "--help",
    ],  # fmt: skip
    "space_clip_depth, bad parameter (exit 2)": [
        sys.executable,
        "-c",
        "import sys; from space_clip_ros.ros.node_cli import space_clip_depth; "
        "sys.exit(space_clip_depth(sys.argv[1:]))",
        "--ros-args",
        "-p",
        "max_depth:=-1.0",
    ],  # fmt: skip
    "import torch (for scale)": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():  # interleaved: the machine's load hits all alike
            start = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, timeout=300)
            times[name].append(time.perf_counter() - start)
            if "help" in name and result.returncode != 0:
                raise SystemExit(f"{name} failed: {result.stderr.decode()[-400:]}")
            if ("bad parameter" in name or "bare" in name) and result.returncode != 2:
                raise SystemExit(f"{name} exited {result.returncode}, expected 2")
    floor = float(np.median(times["import rclpy (floor)"]))
    load = os.getloadavg()[0]
    print(f"{args.rounds} interleaved rounds, load {load:.1f}, {os.cpu_count()} cores")
    print("| command | median s | min s | median / import rclpy |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        print(
            f"| {name} | {np.median(values):.2f} | {min(values):.2f} | "
            f"{np.median(values) / floor:.2f}x |"
        )


if __name__ == "__main__":
    main()
