"""Half precision is fast and still smooth: the head's last conv and the output resize run in fp32.

Measured on the default decoder architecture (tiny backbone so it builds in a second). Before
the fix, bf16 autocast gave 9 distinct depth values on this frame instead of ~43,000: the depth
came out of a bf16 conv, which can only take steps of 0.125 m at 16-32 m.
"""

import logging

import numpy as np
import pytest
import torch

from space_clip_ros import runtime
from space_clip_ros.errors import ConfigError
from space_clip_ros.inference import TorchEstimator
from space_clip_ros.inference.estimator import backbone_dtype_for
from space_clip_ros.model import build_model
from space_clip_ros.model.config import DecoderConfig
from space_clip_ros.runtime import has_native_bf16, resolve_device, resolve_precision
from testing.tiny import tiny_config

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA (no CUDA device here)")
MEDIAN_TOLERANCE = 0.002  # the bar: within 0.2 % median of fp32


def default_decoder_model() -> torch.nn.Module:
    cfg = tiny_config()
    cfg.decoder = DecoderConfig()  # the paper's decoder: 256..32 channels, 16-wide head
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # spread the depth over 29-31 m, where bf16's steps are 0.125 m
        model.decoder.head[1].weight.normal_(0.0, 2.0)
        model.decoder.head[1].bias.fill_(30.0)
    return model


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 400, 3), dtype=np.uint8)


def agreement(half: np.ndarray, fp32: np.ndarray) -> tuple[float, float]:
    """(median relative error, distinct values of half / distinct values of fp32)."""
    median = float(np.median(np.abs(half - fp32) / fp32))
    return median, len(np.unique(half)) / len(np.unique(fp32))


def half_vs_fp32(device: str, precision: str, frame: np.ndarray) -> tuple[float, float]:
    model = default_decoder_model()
    fp32 = TorchEstimator(model, device=device, precision="fp32").predict(frame)
    half = TorchEstimator(model, device=device, precision=precision).predict(frame)
    assert half.dtype == np.float32 and half.shape == fp32.shape
    return agreement(half, fp32)


def test_bf16_on_cpu_is_within_tolerance_and_smooth(frame):
    median, distinct = half_vs_fp32("cpu", "bf16", frame)
    assert median < MEDIAN_TOLERANCE
    assert distinct > 0.9  # terraced output had 9 values against ~43,000


def test_fp16_on_cpu_is_within_tolerance_and_smooth(frame):
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 1, 1))
    except RuntimeError as exc:
        pytest.skip(f"this torch has no fp16 CPU autocast ({exc})")
    median, distinct = half_vs_fp32("cpu", "fp16", frame)
    assert median < MEDIAN_TOLERANCE and distinct > 0.9


def test_head_output_is_fp32_under_autocast():
    model = default_decoder_model()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        depth = model(torch.rand(1, 3, 64, 64), output_size=(40, 90))
    assert depth.dtype == torch.float32 and depth.shape == (1, 1, 40, 90)


def test_auto_precision_and_backbone_dtype_on_cpu():
    estimator = TorchEstimator(build_model(tiny_config()), device="cpu", precision="auto")
    cpu = torch.device("cpu")
    assert estimator.precision == ("bf16" if has_native_bf16(cpu) else "fp32")
    assert estimator.backbone_dtype == torch.float32  # CPU autocast keeps fp32 weights
    assert estimator.backend == "pytorch"


def test_backbone_is_cast_once_only_for_half_on_cuda():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert backbone_dtype_for(cuda, torch.float16) == torch.float16
    assert backbone_dtype_for(cuda, torch.bfloat16) == torch.bfloat16
    assert backbone_dtype_for(cuda, torch.float32) == torch.float32
    assert backbone_dtype_for(cpu, torch.bfloat16) == torch.float32


@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_on_cuda_is_within_tolerance_and_smooth(precision, frame):
    if precision == "bf16" and not has_native_bf16(torch.device("cuda")):
        pytest.skip("this CUDA GPU has no native bf16 (compute capability < 8.0)")
    median, distinct = half_vs_fp32("cuda", precision, frame)
    assert median < MEDIAN_TOLERANCE and distinct > 0.9


@needs_cuda
def test_auto_on_cuda_is_fp16_with_the_backbone_cast_once(frame):
    model = default_decoder_model()
    estimator = TorchEstimator(model, device="cuda", precision="auto")
    assert estimator.precision == "fp16" and estimator.backbone_dtype == torch.float16
    assert next(model.decoder.parameters()).dtype == torch.float32  # the decoder stays fp32
    estimator.predict(frame)
    assert estimator.backbone_dtype == torch.float16  # not re-cast by running a frame


# ------------------------------------------------------------------- slow choices and no GPU


def test_an_emulated_explicit_precision_says_so_and_names_the_fast_one(caplog, monkeypatch):
    """fp16 on a CPU ran 50x slower than fp32 without a word (the README even suggested it)."""
    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="space_clip_ros.runtime"):
        assert resolve_precision("fp16", cpu, field="--precision") == torch.float16
    fast = "bf16" if has_native_bf16(cpu) else "fp32"
    assert "--precision: 'fp16' on cpu is emulated: CPUs have no fp16 arithmetic" in caplog.text
    assert f"Fix: use '{fast}' ('auto' picks it here)" in caplog.text
    caplog.clear()
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset({"avx2"}))  # no native bf16
    with caplog.at_level(logging.WARNING, logger="space_clip_ros.runtime"):
        resolve_precision("bf16", cpu)
    assert "'bf16' on cpu is emulated" in caplog.text and "no native bf16" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="space_clip_ros.runtime"):
        assert resolve_precision("auto", cpu) == torch.float32
        resolve_precision("fp32", cpu)
    assert caplog.text == ""  # the fast choices are silent


def test_no_gpu_tells_a_cpu_only_torch_from_a_gpu_torch_without_a_visible_gpu(monkeypatch):
    """space-clip-verify advised installing a CUDA build of torch to a CUDA build of torch."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ConfigError, match="CPU-only build") as info:
        resolve_device("cuda", field="--device")
    assert "install a CUDA build of torch" in str(info.value)

    def no_driver():
        raise RuntimeError("Found no NVIDIA driver on your system. Please check that you have")

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "init", no_driver)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda:0", field="--device")
    text = str(info.value)
    assert "built for CUDA 13.0 but sees no GPU (Found no NVIDIA driver on your system" in text
    assert "CUDA_VISIBLE_DEVICES=''" in text and "nvidia-smi" in text
    assert "install a CUDA build" not in text


def test_verify_with_cuda_on_a_machine_without_a_gpu_names_the_right_fix(monkeypatch, capsys):
    from space_clip_ros.cli.verify import main as verify

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    assert verify(["--device", "cuda", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "space-clip-verify: error: device: 'cuda' requested" in err
    assert "built for CUDA 12.6 but sees no GPU" in err and "nvidia-smi" in err


def test_the_tower_s_attention_reads_contiguous_sequence_first_input():
    """bf16 at batch 4 ran 13x slower per image than batch 1: open_clip's batch-first attention
    projected a transposed view, which CPU autocast multiplied against a broadcast copy of the
    weight. The cost is measured by bench/bench_precision.py; this checks the layout that
    avoids it, and that batching changes no result."""
    model = build_model(tiny_config())
    seen = []
    for block in model.backbone.visual.transformer.resblocks:
        block.attn.register_forward_pre_hook(
            lambda module, args: seen.append((args[0].is_contiguous(), tuple(args[0].shape)))
        )
    estimator = TorchEstimator(model, device="cpu", precision="bf16")
    frames = np.random.default_rng(0).integers(0, 256, (4, 40, 90, 3), dtype=np.uint8)
    batched = estimator.predict(frames)
    assert seen and all(contiguous and shape[1] == 4 for contiguous, shape in seen), seen[:2]
    singles = np.stack([estimator.predict(frame) for frame in frames])
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-5)
