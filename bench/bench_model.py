"""Model latency and throughput: eager fp32 against the faster paths the device offers.

Prints a table (ms per batch, images/s, ratio to eager fp32) for batch 1 and 8, all measured in
this one run so the ratios are comparable on a shared machine. Absolute numbers mean something
only on a dedicated GPU; on CPU read the ratios.

    python bench/bench_model.py                     # default ViT-B/16 architecture, 224x224
    python bench/bench_model.py --paths eager-fp32 compile-fp32 --batches 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from space_clip_ros.inference.estimator import backbone_dtype_for
from space_clip_ros.inference.onnx_runtime import OnnxSpaceClip
from space_clip_ros.model import BackboneConfig, SpaceClipConfig, build_model
from space_clip_ros.model.onnx_export import export_onnx
from space_clip_ros.runtime import PRECISIONS, resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing/ is not installed

from testing.tiny import tiny_config  # noqa: E402

# onnxruntime-fp32 is the node's session (threads sleep between parallel regions);
# onnxruntime+spin-fp32 the same graph with ONNX Runtime's default spin-waiting, for comparison.
CPU_PATHS = [
    "eager-fp32",
    "eager-bf16",
    "compile-fp32",
    "onnxruntime-fp32",
    "onnxruntime+spin-fp32",
]
CUDA_PATHS = [
    "eager-fp32",
    "eager-fp16",
    "eager-bf16",
    "compile-fp16",
    "cudagraphs-fp16",
    "onnxruntime-fp32",
    "onnxruntime-fp16",  # TensorRT's fp16 engine (needs onnxruntime-gpu with TensorRT)
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
    if not kind.startswith("onnxruntime") and backbone_dtype_for(device, dtype) != torch.float32:
        module = copy.deepcopy(model)  # as DepthEstimator runs it: the frozen backbone cast once
        module.backbone.visual.to(backbone_dtype_for(device, dtype))
    if kind.startswith("onnxruntime"):  # the exported whole model; TensorRT/CUDA on a GPU
        onnx_path = export_onnx(
            model, Path(tempfile.mkdtemp(prefix="space_clip_bench_")) / "model.onnx"
        )
        spin = kind.endswith("+spin")
        module = OnnxSpaceClip(onnx_path, device, precision, onnx_path.parent, spin=spin)
    elif kind == "compile":
        module = torch.compile(module, dynamic=False)
    elif kind == "cudagraphs":
        module = torch.compile(module, mode="reduce-overhead", dynamic=False)

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
        try:
            run = make_runner(model, path, device)
        except Exception as exc:  # e.g. onnxruntime-fp16 without TensorRT: reported, not fatal
            print(f"{path:>16}: unavailable ({type(exc).__name__}: {str(exc)[:160]})")
            continue
        for batch in args.batches:
            x = torch.rand(batch, 3, *size, device=device)
            try:
                ms, spread = time_runner(
                    run, x, device, warmup=2 if device.type == "cpu" else 10, iters=iters
                )
            # A path the platform lacks (e.g. no compiler for inductor) is reported, not fatal.
            except Exception as exc:
                print(
                    f"{path:>16} batch {batch}: unavailable "
                    f"({type(exc).__name__}: {str(exc)[:120]})"
                )
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
