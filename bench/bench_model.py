"""Model latency and throughput: eager fp32 against the faster paths the device offers.

Prints a table (ms per batch, images/s, ratio to eager fp32) for batch 1 and 8, all measured in
this one run so the ratios are comparable on a shared machine. Absolute numbers mean something
only on a dedicated GPU; on CPU read the ratios.

    python bench/bench_model.py                     # default ViT-B/16 architecture, 224x224
    python bench/bench_model.py --paths eager-fp32 compile-fp32 --batches 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from space_clip_ros.inference.onnx_runtime import OnnxSpaceClip
from space_clip_ros.model import BackboneConfig, SpaceClipConfig, build_model
from space_clip_ros.model.onnx_export import export_onnx
from space_clip_ros.model.tiny import tiny_config
from space_clip_ros.runtime import PRECISIONS, resolve_device

CPU_PATHS = ["eager-fp32", "eager-bf16", "compile-fp32", "onnxruntime-fp32"]
CUDA_PATHS = [
    "eager-fp32",
    "eager-fp16",
    "eager-bf16",
    "compile-fp16",
    "cudagraphs-fp16",
    "onnxruntime-fp32",
]


@dataclass
class Result:
    path: str
    batch: int
    ms: float
    ms_spread: float

    @property
    def images_per_s(self) -> float:
        return 1000.0 * self.batch / self.ms


def make_runner(
    model: torch.nn.Module, path: str, device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    kind, precision = path.split("-")
    dtype = PRECISIONS[precision]
    module = model
    if kind == "onnxruntime":  # the exported whole-model graph; TensorRT/CUDA providers on a GPU
        onnx_path = export_onnx(
            model, Path(tempfile.mkdtemp(prefix="space_clip_bench_")) / "model.onnx"
        )
        module = OnnxSpaceClip(onnx_path, device)
    elif kind == "compile":
        module = torch.compile(model, dynamic=False)
    elif kind == "cudagraphs":
        module = torch.compile(model, mode="reduce-overhead", dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32"),
        ):
            return module(x)

    return run


def time_runner(
    run: Callable, x: torch.Tensor, device: torch.device, warmup: int, iters: int
) -> tuple[float, float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        run(x)
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run(x)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), (max(times) - min(times)) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--paths", nargs="+", help="subset of: " + ", ".join(sorted(set(CPU_PATHS + CUDA_PATHS)))
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument(
        "--iters", type=int, default=None, help="timed iterations (default 5 on CPU, 50 on CUDA)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny test model (smoke test of this script)"
    )
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    paths = args.paths or (CUDA_PATHS if device.type == "cuda" else CPU_PATHS)
    iters = args.iters or (50 if device.type == "cuda" else 5)
    config = (
        tiny_config() if args.tiny else SpaceClipConfig(backbone=BackboneConfig(pretrained=None))
    )
    model = build_model(config).to(device).eval()
    size = model.input_size
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"# {config.backbone.model_name} at {size[0]}x{size[1]}, device {name}, "
        f"torch {torch.__version__}"
    )

    results: list[Result] = []
    for path in paths:
        run = make_runner(model, path, device)
        for batch in args.batches:
            x = torch.rand(batch, 3, *size, device=device)
            try:
                ms, spread = time_runner(
                    run, x, device, warmup=2 if device.type == "cpu" else 10, iters=iters
                )
            except Exception as exc:  # a path the platform lacks (no inductor compiler, ...)
                reason = f"{type(exc).__name__}: {str(exc)[:120]}"  # is reported, not fatal
                print(f"{path:>16} batch {batch}: unavailable ({reason})")
                break
            results.append(Result(path, batch, ms, spread))
            print(
                f"{path:>16} batch {batch}: {ms:8.1f} ms  (+-{spread:.1f})  "
                f"{1000 * batch / ms:8.1f} img/s",
                flush=True,
            )

    print("\n| path | batch | ms / batch | images / s | speed vs eager-fp32 |")
    print("|---|---:|---:|---:|---:|")
    base = {r.batch: r.ms for r in results if r.path == "eager-fp32"}
    for r in results:
        ratio = f"{base[r.batch] / r.ms:.2f}x" if r.batch in base else "-"
        print(f"| {r.path} | {r.batch} | {r.ms:.1f} | {r.images_per_s:.1f} | {ratio} |")
    if device.type == "cuda":
        print(f"\npeak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
