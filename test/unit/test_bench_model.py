"""bench/bench_model.py runs every path on the tiny model; on CUDA the ONNX export works."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "bench/bench_model.py",
            "--tiny",
            "--batches",
            "1",
            "--iters",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.slow
def test_cpu_paths_and_an_unavailable_one_reported():
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements/dev.txt")
    result = bench(
        "--device", "cpu", "--paths", "eager-fp32", "eager-bf16", "onnxruntime-fp32",
        "onnxruntime-fp16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for row in ("| eager-fp32 | 1 |", "| eager-bf16 | 1 |", "| onnxruntime-fp32 | 1 |"):
        assert row in result.stdout
    assert "onnxruntime-fp16: unavailable (ConfigError" in result.stdout  # TensorRT only


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no CUDA device here)")
def test_cuda_onnx_path_exports_on_the_gpu():
    result = bench("--device", "cuda", "--paths", "eager-fp16", "onnxruntime-fp32")
    assert result.returncode == 0, result.stderr
    assert "| eager-fp16 | 1 |" in result.stdout and "peak GPU memory" in result.stdout
    try:
        import onnxruntime

        gpu_ort = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        gpu_ort = False
    if gpu_ort:
        assert "| onnxruntime-fp32 | 1 |" in result.stdout, result.stdout
    else:  # the export ran on the GPU; only the missing GPU provider stops the path
        assert "onnxruntime-fp32: unavailable (" in result.stdout, result.stdout
        assert "asks for a GPU but onnxruntime offers only" in result.stdout, result.stdout
