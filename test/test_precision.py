"""Half precision is fast and still smooth: the head's last conv and the output resize run in fp32.

Measured on the default decoder architecture (tiny backbone so it builds in a second). Before
the fix, bf16 autocast gave 9 distinct depth values on this frame instead of ~43,000: the depth
came out of a bf16 conv, which can only take steps of 0.125 m at 16-32 m.
"""

import numpy as np
import pytest
import torch

from space_clip_ros.inference import TorchEstimator
from space_clip_ros.inference.estimator import backbone_dtype_for
from space_clip_ros.model import build_model
from space_clip_ros.model.config import DecoderConfig
from space_clip_ros.model.tiny import tiny_config
from space_clip_ros.runtime import has_native_bf16

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
