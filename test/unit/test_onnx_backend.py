"""ONNX Runtime backend: an exported graph predicts what PyTorch predicts, through the same API."""

from pathlib import Path

import numpy as np
import pytest
import torch

from space_clip_ros.errors import ConfigError
from space_clip_ros.inference import DepthEstimator, TorchEstimator
from space_clip_ros.inference.onnx_runtime import (
    CPU,
    CUDA,
    TENSORRT,
    OnnxModelError,
    onnxruntime_distributions,
    provider_config,
    resolve_onnx_precision,
)
from space_clip_ros.inference.verify import compare, synthetic_images
from space_clip_ros.model import build_model, load_checkpoint
from space_clip_ros.model.onnx_export import export_onnx
from testing.tiny import tiny_config


@pytest.fixture(autouse=True, scope="module")
def _onnxruntime():
    """Skips test by test, not at import: a module-level skip raised while the launch_testing
    pytest plugin inspects the file aborts collection of the whole test folder."""
    pytest.importorskip(
        "onnxruntime", reason="onnxruntime is in requirements/training.txt and dev.txt"
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(3)
    model = build_model(tiny_config()).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return model, path


def test_onnx_estimator_matches_pytorch_at_any_image_size(exported):
    model, path = exported
    torch_est = TorchEstimator(model, device="cpu")
    onnx_est = DepthEstimator.from_checkpoint(path, device="cpu")
    assert onnx_est.input_size == (64, 64) and onnx_est.trained
    rng = np.random.default_rng(0)
    for shape in [(48, 160, 3), (2, 70, 90, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        expected, got = torch_est.predict(image), onnx_est.predict(image)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    bgr = rng.integers(0, 256, (48, 160, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        onnx_est.predict(bgr, "bgr"), torch_est.predict(bgr, "bgr"), rtol=1e-4, atol=1e-4
    )


def test_onnx_options_and_bad_files(exported, tmp_path):
    _, path = exported
    with pytest.raises(ValueError, match="precision fp32"):
        DepthEstimator.from_checkpoint(path, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="inside the ONNX graph"):
        DepthEstimator.from_checkpoint(path, device="cpu", backbone_weights="x.safetensors")
    with pytest.raises(OnnxModelError, match="not found"):
        DepthEstimator.from_checkpoint(tmp_path / "missing.onnx", device="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(OnnxModelError, match="junk.onnx: not a loadable ONNX model"):
        DepthEstimator.from_checkpoint(tmp_path / "junk.onnx", device="cpu")


def test_provider_config_cpu_and_gpu_options(tmp_path):
    cpu, cuda1 = torch.device("cpu"), torch.device("cuda", 1)
    everything = [TENSORRT, CUDA, CPU]
    assert provider_config(cpu, "fp32", everything) == [(CPU, {})]
    providers = provider_config(cuda1, "fp16", everything, tmp_path / "trt", (224, 320), 4)
    assert [name for name, _ in providers] == everything
    trt, cuda = providers[0][1], providers[1][1]
    assert trt["device_id"] == 1 and cuda == {"device_id": 1}
    assert trt["trt_fp16_enable"] is True
    assert trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path / "trt")
    assert trt["trt_profile_min_shapes"] == "image:1x3x224x320"
    assert trt["trt_profile_max_shapes"] == "image:4x3x224x320"
    fp32 = dict(provider_config(torch.device("cuda"), "fp32", everything))
    assert fp32[TENSORRT]["trt_fp16_enable"] is False and fp32[TENSORRT]["device_id"] == 0
    assert "trt_profile_min_shapes" not in fp32[TENSORRT]  # input size unknown: no profile
    default_cache = str(Path("~/.cache/space_clip_ros/trt").expanduser())  # trt_cache_dir ''
    assert fp32[TENSORRT]["trt_engine_cache_path"] == default_cache
    assert [n for n, _ in provider_config(cuda1, "fp32", [CUDA, CPU])] == [CUDA, CPU]


def test_gpu_request_without_gpu_provider_is_a_loud_error():
    with pytest.raises(ConfigError, match="offers only CPUExecutionProvider") as info:
        provider_config(torch.device("cuda"), "fp32", [CPU], installed=["onnxruntime"])
    assert "pip install onnxruntime-gpu" in str(info.value) and "device" in str(info.value)
    with pytest.raises(ConfigError, match="onnxruntime and onnxruntime-gpu are installed"):
        provider_config(
            torch.device("cuda"), "fp32", [CPU], installed=["onnxruntime", "onnxruntime-gpu"]
        )
    assert "onnxruntime" in onnxruntime_distributions()  # this environment's CPU wheel


def test_onnx_precision_fp16_only_through_tensorrt():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_onnx_precision("auto", cuda, [TENSORRT, CUDA, CPU]) == "fp16"
    assert resolve_onnx_precision("auto", cuda, [CUDA, CPU]) == "fp32"
    assert resolve_onnx_precision("auto", cpu, [TENSORRT, CPU]) == "fp32"
    assert resolve_onnx_precision("fp16", cuda, [TENSORRT, CPU]) == "fp16"
    for name, device, available in (("fp16", cuda, [CUDA, CPU]), ("bf16", cuda, [TENSORRT])):
        with pytest.raises(ConfigError, match="only ONNX Runtime's TensorRT provider"):
            resolve_onnx_precision(name, device, available)


def test_estimator_reports_the_providers_actually_used(exported):
    _, path = exported
    estimator = DepthEstimator.from_checkpoint(path, device="cpu", precision="auto")
    assert estimator.precision == "fp32" and not hasattr(estimator, "backbone_dtype")
    assert estimator.backend == "onnxruntime (CPUExecutionProvider)"


def gpu_providers_or_skip(*needed: str) -> None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if not torch.cuda.is_available() or not all(p in available for p in needed):
        pytest.skip(f"needs CUDA and onnxruntime's {' and '.join(needed)} (found {available})")


def test_onnx_on_cuda_matches_pytorch(exported, tmp_path):
    gpu_providers_or_skip(CUDA)
    model, path = exported
    onnx_est = DepthEstimator.from_checkpoint(path, "cuda", "fp32", trt_cache_dir=tmp_path)
    assert onnx_est.model.providers[0] in (TENSORRT, CUDA)  # no silent CPU fallback
    report = compare(
        onnx_est.predict,
        TorchEstimator(model, device="cpu").predict,
        synthetic_images(3, (96, 48)),
        tolerance=0.005,  # TF32 convolutions on the GPU
    )
    assert report.passed, report.text()


def test_tensorrt_fp16_is_within_tolerance_and_caches_its_engine(exported, tmp_path):
    gpu_providers_or_skip(TENSORRT)
    model, path = exported
    onnx_est = DepthEstimator.from_checkpoint(path, "cuda", "auto", trt_cache_dir=tmp_path)
    assert onnx_est.precision == "fp16" and onnx_est.model.providers[0] == TENSORRT
    report = compare(
        onnx_est.predict,
        TorchEstimator(model, device="cpu").predict,
        synthetic_images(3, (96, 48)),
        tolerance=0.01,
    )
    assert report.passed, report.text()
    assert any(tmp_path.iterdir())  # engine and timing caches: the next start skips the build


def test_golden_checkpoint_exported_to_onnx_reproduces_the_committed_depth(golden, tmp_path):
    model = load_checkpoint(golden.checkpoint, backbone_weights=str(golden.backbone))
    path = export_onnx(model, tmp_path / "golden.onnx")
    depth = DepthEstimator.from_checkpoint(path, device="cpu").predict(golden.image)
    # ONNX Runtime's kernels differ from PyTorch's: the tolerance the other ONNX tests use.
    golden.assert_matches(depth, atol=1e-4, rtol=1e-4)


def test_onnx_backend_resizes_as_the_checkpoint_records(tmp_path):
    """backbone.input_resize travels in the graph's metadata: the release's resize stays exact."""
    torch.manual_seed(4)
    cfg = tiny_config()
    cfg.backbone.input_resize = "pil_bicubic_uint8"
    model = build_model(cfg).eval()
    path = export_onnx(model, tmp_path / "bicubic.onnx")
    onnx_est = DepthEstimator.from_checkpoint(path, device="cpu")
    assert onnx_est.model.input_resize == "pil_bicubic_uint8"
    image = np.random.default_rng(1).integers(0, 256, (50, 170, 3), dtype=np.uint8)
    expected = TorchEstimator(model, device="cpu").predict(image)
    np.testing.assert_allclose(onnx_est.predict(image), expected, rtol=1e-4, atol=1e-4)
