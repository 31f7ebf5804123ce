"""space-clip-verify: bf16 passes against fp32; a backend whose scale drifts per frame fails."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from space_clip_ros.cli.verify import main
from space_clip_ros.inference import TorchEstimator
from space_clip_ros.inference.verify import compare, synthetic_images, verify_estimator
from space_clip_ros.model import build_model, save_checkpoint
from testing.tiny import tiny_config

REPO = Path(__file__).resolve().parents[2]
SIZE = (96, 48)


@pytest.fixture(scope="module")
def images():
    return synthetic_images(3, SIZE)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("verify") / "ck"
    save_checkpoint(build_model(tiny_config()), path)
    return path


def test_bf16_passes_against_fp32(images):
    candidate = TorchEstimator(build_model(tiny_config()), device="cpu", precision="bf16")
    report = verify_estimator(candidate, images, tolerance=0.01)
    assert report.passed, report.text()
    assert len(report.frames) == 3 and report.abs_rel < 0.01 and report.distinct_ratio > 0.5
    assert "pytorch on cpu, bf16" in report.text() and "PASS" in report.text()


class ScaledByFrame:
    """A broken backend: right shape, plausible depth, scale growing 5 % every frame."""

    def __init__(self, predict):
        self.predict, self.calls = predict, 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        depth = self.predict(rgb) * (1.0 + 0.05 * self.calls)
        self.calls += 1
        return depth


def test_scale_drifting_backend_fails_with_a_clear_report(images):
    reference = TorchEstimator(build_model(tiny_config()), device="cpu", precision="fp32")
    report = compare(ScaledByFrame(reference.predict), reference.predict, images, 0.01)
    assert not report.passed
    assert [round(f.scale, 3) for f in report.frames] == [1.0, 1.05, 1.1]
    text = report.text()
    assert "FAIL" in text and "scale jumps between frames" in text
    assert "1.0000..1.1000 (spread 0.1000 > tolerance 0.01)" in text
    assert "AbsRel vs fp32 0.0500 > tolerance 0.01" in text


def test_quantised_backend_fails(images):
    reference = TorchEstimator(build_model(tiny_config()), device="cpu", precision="fp32")
    report = compare(
        lambda rgb: np.round(reference.predict(rgb)), reference.predict, images, tolerance=0.5
    )
    assert not report.passed and "quantised depth" in report.text()


def test_cli_exit_codes_on_images_and_usage_errors(tmp_path, checkpoint, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (_, rgb) in enumerate(synthetic_images(2, SIZE)):
        Image.fromarray(rgb).save(folder / f"{i}.png")
    argv = ["--checkpoint", str(checkpoint), "--device", "cpu"]
    assert main([*argv, "--precision", "bf16", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "| 0.png |" in out and "| 1.png |" in out and "PASS" in out
    assert main([*argv, str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main([*argv, "--tolerance", "0"]) == 2


@pytest.mark.slow
def test_console_script_runs_synthetic_frames(checkpoint):
    result = subprocess.run(
        [sys.executable, "-m", "space_clip_ros.cli.verify", "--checkpoint", str(checkpoint),
         "--device", "cpu", "--precision", "fp32", "--frames", "2", "--size", "64x32"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "synthetic 1" in result.stdout and "PASS" in result.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no CUDA device here)")
def test_fp16_on_cuda_passes(images):
    candidate = TorchEstimator(build_model(tiny_config()), device="cuda", precision="fp16")
    report = verify_estimator(candidate, images, tolerance=0.01)
    assert report.passed, report.text()


def test_image_files_are_decoded_by_the_node_s_rule(tmp_path, checkpoint, capsys):
    """A 16-bit PNG reads as its 8-bit twin (Pillow's convert clipped it to white); a truncated
    JPEG is a usage error naming the reason, not a grey frame verified as if it were real."""
    from space_clip_ros.inference.verify import image_files

    values = np.random.default_rng(0).integers(0, 65536, (48, 96), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "sixteen.png")
    twin = np.round(values * (255.0 / 65535.0)).astype(np.uint8)
    [(name, rgb)] = image_files([tmp_path / "sixteen.png"])
    assert name == "sixteen.png" and np.array_equal(rgb, np.repeat(twin[..., None], 3, axis=2))
    jpeg = tmp_path / "cut.jpg"
    Image.fromarray(rgb).save(jpeg)
    jpeg.write_bytes(jpeg.read_bytes()[:600])
    assert main(["--checkpoint", str(checkpoint), "--device", "cpu", str(jpeg)]) == 2
    assert "cut.jpg: not a usable image (truncated:" in capsys.readouterr().err
