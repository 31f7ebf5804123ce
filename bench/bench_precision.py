"""Per-image inference time of each precision and batch size on this machine: are the defaults
the fast choice?

Runs the real inference path (DepthEstimator.predict: upload, resize, normalise, SpaceClip,
resize back) on the default ViT-B/16 architecture (random weights: timing does not depend on
them) and KITTI-sized frames, for fp32, bf16 and fp16 at several batch sizes. Paths are timed
round-robin (one call each per round), and by default on one thread and in CPU time: on a
shared machine, wall time measures the neighbours (fp32 at batch 1 took anywhere from 0.3 to
10 s a frame here), CPU time measures the work. Read the ratios, not the milliseconds.
`bf16-batchfirst` is the attention layout the backbone used before it fed open_clip's attention
sequence-first (backbone._sequence_first): the cause of bf16's 13x slowdown at batch 4.

    python bench/bench_precision.py                          # CPU: fp32, bf16, fp16; batch 1, 4
    python bench/bench_precision.py --device cuda --paths fp32 fp16 bf16 --batches 1 4 8
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import time

import numpy as np
import torch

from space_clip_ros.cli.arguments import parse_size
from space_clip_ros.inference import DepthEstimator, TorchEstimator
from space_clip_ros.model import BackboneConfig, SpaceClipConfig, build_model
from space_clip_ros.runtime import cpu_model_name, resolve_device, resolve_precision

BATCH_FIRST = "bf16-batchfirst"


def estimator(base: torch.nn.Module, path: str, device: str) -> DepthEstimator:
    model = copy.deepcopy(base)
    if path == BATCH_FIRST:  # the layout before backbone._sequence_first
        model.backbone.visual.transformer.batch_first = True
        for block in model.backbone.visual.transformer.resblocks:
            block.attn.batch_first = True
    return TorchEstimator(model, device, path.split("-")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paths", nargs="+", default=["fp32", "bf16", "fp16", BATCH_FIRST])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slow-rounds", type=int, default=1, help="rounds for the emulated paths (fp16 on CPU)"
    )
    parser.add_argument(
        "--size", type=parse_size, default=(1242, 375), metavar="WxH", help="frame size"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: this process's CPU time (stable on a shared machine; with one thread); wall",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    logging.basicConfig(level=logging.ERROR)  # the untrained-weights banner is not the point
    device = resolve_device(args.device)
    width, height = args.size
    torch.manual_seed(0)
    base = build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))
    frames = np.random.default_rng(0).integers(0, 256, (max(args.batches), height, width, 3))
    frames = frames.astype(np.uint8)
    slow = {"fp16"} if device.type == "cpu" else set()
    runs = {p: estimator(base, p, str(device)) for p in args.paths}
    times: dict[tuple[str, int], list[float]] = {}
    for path, est in runs.items():  # warm-up: first-call allocations and kernel choices
        for batch in args.batches if path not in slow else args.batches[:1]:
            est.predict(frames[:batch])
    for round_index in range(args.rounds):
        for path, est in runs.items():
            if path in slow and round_index >= args.slow_rounds:
                continue
            for batch in args.batches if path not in slow else args.batches[:1]:
                start = clock()
                est.predict(frames[:batch])
                times.setdefault((path, batch), []).append(clock() - start)
    per_image = {key: 1000 * statistics.median(t) / key[1] for key, t in times.items()}
    reference = per_image.get(("fp32", 1))
    name = cpu_model_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(
        f"{device.type.upper()}: {name}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; ViT-B/16 at 224x224, {width}x{height} frames; "
        f"{args.clock} time, median of {args.rounds} rounds ({args.slow_rounds} for emulated "
        "paths); "
        f"'auto' resolves to {resolve_precision('auto', device)} here"
    )
    print(f"\n| precision | batch | {args.clock} ms / image | vs fp32 batch 1 |")
    print("|---|---:|---:|---:|")
    for (path, batch), ms in sorted(per_image.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ratio = (
            f"{reference / ms:.2f}x faster"
            if reference and ms <= reference
            else (f"{ms / reference:.1f}x slower" if reference else "n/a")
        )
        print(f"| {path} | {batch} | {ms:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
