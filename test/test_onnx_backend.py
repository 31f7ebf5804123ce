"""ONNX Runtime backend: an exported graph predicts what the PyTorch model predicts, same API."""

import numpy as np
import pytest
import torch

from space_clip_ros.inference import DepthEstimator
from space_clip_ros.inference.onnx_runtime import OnnxModelError, execution_providers
from space_clip_ros.model import build_model
from space_clip_ros.model.onnx_export import export_onnx
from space_clip_ros.model.tiny import tiny_config


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
    torch_est = DepthEstimator(model, device="cpu")
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


def test_provider_order():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers(cuda, available) == available
    assert execution_providers(cuda, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert execution_providers(cpu, available) == ["CPUExecutionProvider"]


def test_cli_runs_an_onnx_checkpoint(exported, tmp_path):
    from PIL import Image

    from space_clip_ros import predict as cli

    _, path = exported
    Image.fromarray(np.zeros((32, 80, 3), np.uint8)).save(tmp_path / "a.png")
    assert (
        cli.main(
            [
                str(tmp_path / "a.png"),
                "--checkpoint",
                str(path),
                "-o",
                str(tmp_path / "out"),
                "--npy",
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "out" / "a_depth.npy").shape == (32, 80)
