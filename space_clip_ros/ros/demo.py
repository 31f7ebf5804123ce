"""`space-clip-demo`: the whole product on a built-in synthetic drive; no camera, data or weights.

Renders a KITTI-like street with exact depth, publishes it as a camera over real DDS into the
space_clip_depth node (the same lifecycle node `ros2 launch` starts), receives depth, camera
info and point clouds back, and scores the depth against the ground truth. Without rclpy (or
with --no-ros) it runs the same frames through DepthEstimator directly. Everything lands in
--output-dir, named as `space-clip-predict --synthetic` names them: RGB, ground truth, predicted
depth (KITTI 16-bit PNG, .npy, colour preview) and summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from space_clip_ros.cli.model_options import ModelOptions
from space_clip_ros.errors import UsageError, run_tool
from space_clip_ros.inference import UNTRAINED_WARNING, DepthEstimator
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.io.outputs import FORMATS, write_synthetic_frame
from space_clip_ros.metrics import RunningMetrics, compute_metrics, format_table
from space_clip_ros.scenes.street import DriveConfig, SyntheticDrive, SyntheticFrame

PROG = "space-clip-demo"
log = logging.getLogger("space_clip_demo")

PREVIEW_RANGE_M = (1.0, 50.0)
OUTPUT_GRACE_S = 2.0


@dataclass
class FrameResult:
    depth: np.ndarray
    latency_ms: float
    points_valid: Optional[int] = None
    camera_info_matches: Optional[bool] = None


@dataclass
class DemoSummary:
    transport: str
    trained: bool
    frames: int
    metrics: dict[str, float]
    latency_ms_median: float
    per_frame: list[dict] = field(default_factory=list)


def run_direct(frames: list[SyntheticFrame], estimator: DepthEstimator) -> list[FrameResult]:
    results = []
    for frame in frames:
        start = time.perf_counter()
        depth = estimator.predict(frame.rgb, camera=frame.intrinsics)  # a known camera
        results.append(FrameResult(depth, (time.perf_counter() - start) * 1000))
    return results


def run_over_ros(
    frames: list[SyntheticFrame], node_params: dict, timeout_s: float
) -> tuple[list[FrameResult], bool]:
    """Publish frames as a camera into the depth node over DDS; one frame in flight at a time.

    Waiting for each answer (rather than streaming) makes every frame count: the node keeps only
    the newest frame by design and would drop the rest of a burst.
    """
    from std_msgs.msg import Header

    from space_clip_ros.io.msg_arrays import depth_image_to_metres
    from space_clip_ros.ros.loopback import CameraClient, Loopback
    from space_clip_ros.ros.pointcloud import cloud_to_points

    with Loopback(client_name="synthetic_camera") as loopback:
        trained = loopback.start_node(params=node_params).estimator_trained
        camera = CameraClient(loopback, timeout_s=timeout_s)
        results = []
        for frame in frames:
            header = Header(frame_id="camera_color_left")
            header.stamp.sec, header.stamp.nanosec = divmod(frame.stamp_ns, 1_000_000_000)
            out = camera.send(
                frame.rgb, frame.intrinsics, header, timeout_s, grace_s=OUTPUT_GRACE_S
            )
            results.append(
                FrameResult(
                    depth=depth_image_to_metres(out.depth),
                    latency_ms=out.latency_s * 1000,
                    points_valid=None
                    if out.points is None
                    else int(np.isfinite(cloud_to_points(out.points)[..., 2]).sum()),
                    camera_info_matches=None
                    if out.camera_info is None
                    else (out.camera_info.width, out.camera_info.height)
                    == (out.depth.width, out.depth.height),
                )
            )
        return results, trained


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  space-clip-demo\n"
        "  space-clip-demo --checkpoint ~/space_clip_kitti --frames 20\n"
        "  space-clip-demo --no-ros --width 621 --height 188",
    )
    parser.add_argument(
        "--frames", type=int, default=6, help="number of synthetic frames (default 6)"
    )
    parser.add_argument(
        "--width", type=int, default=1242, help="image width (default KITTI's 1242)"
    )
    parser.add_argument(
        "--height", type=int, default=375, help="image height (default KITTI's 375)"
    )
    parser.add_argument("--seed", type=int, default=0, help="street layout seed")
    ModelOptions.add_to(parser)
    parser.add_argument("--output-dir", type=Path, default=Path("demo_output"))
    parser.add_argument(
        "--no-ros", action="store_true", help="skip DDS: run the estimator directly"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for one frame's outputs"
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    return run_tool(PROG, run, argv, usage=build_parser().format_usage)


def run(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 1:
        raise UsageError(f"--frames must be >= 1, got {args.frames}")
    model = ModelOptions.from_settings(args)
    drive = SyntheticDrive(DriveConfig(width=args.width, height=args.height, seed=args.seed))
    log.info("rendering %d synthetic frames at %dx%d", args.frames, args.width, args.height)
    frames = list(drive.frames(args.frames))

    transport = "direct"
    if not args.no_ros:
        try:
            import rclpy  # noqa: F401

            transport = "ros"
        except ImportError:
            log.warning(
                "rclpy is not importable: running the estimator directly (install "
                "requirements/ros-wheels.txt or source a ROS 2 install to run the node)"
            )
    if transport == "ros":
        results, trained = run_over_ros(frames, model.node_parameters(), args.timeout)
    else:
        estimator = model.load()
        trained = estimator.trained
        results = run_direct(frames, estimator)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    running = RunningMetrics()
    per_frame = []
    for frame, result in zip(frames, results):
        write_synthetic_frame(args.output_dir, frame, result.depth, FORMATS, *PREVIEW_RANGE_M)
        # A pixel the node published as NaN (out of range) counts as a miss, not "not evaluated".
        m = compute_metrics(np.nan_to_num(result.depth, nan=0.0), frame.depth)
        running.update(m)
        per_frame.append(
            {
                "index": frame.index,
                "stamp_ns": frame.stamp_ns,
                "latency_ms": result.latency_ms,
                "points_valid": result.points_valid,
                "camera_info_matches": result.camera_info_matches,
                **m,
            }
        )
    summary = DemoSummary(
        transport,
        trained,
        len(frames),
        running.mean(),
        float(np.median([r.latency_ms for r in results])),
        per_frame,
    )
    with atomic_path(args.output_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary.__dict__, indent=2))

    through = "the space_clip_depth node over DDS" if transport == "ros" else "DepthEstimator"
    print(
        f"\n{len(frames)} frames through {through}; "
        f"median latency {summary.latency_ms_median:.0f} ms (image published -> depth received)"
    )
    print(format_table([("synthetic", summary.metrics)]))
    print(f"outputs: {args.output_dir.resolve()}")
    if not trained:
        print(f"\n*** {UNTRAINED_WARNING} ***")
    return 0


if __name__ == "__main__":
    sys.exit(main())
