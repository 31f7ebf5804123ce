"""space-clip-predict end to end: real files in, real files out, with a tiny checkpoint."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from space_clip_ros.io.depth_files import KITTI_MAX_DEPTH, read_npy, read_png16
from space_clip_ros.predict import main
from space_clip_ros.scenes.street import DriveConfig, SyntheticDrive


def _image(path, height, width, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(
        np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ).save(path)


def _assert_outputs(stem, height, width):
    npy = read_npy(stem.with_name(stem.name + "_depth.npy"))
    png = read_png16(stem.with_name(stem.name + "_depth.png"))
    assert npy.shape == png.shape == (height, width)
    assert np.all(np.isfinite(npy)) and np.all(npy >= 0)
    inside = npy < KITTI_MAX_DEPTH
    assert inside.any()
    assert np.abs(png[inside] - npy[inside]).max() <= 1 / 256
    with Image.open(stem.with_name(stem.name + "_preview.png")) as preview:
        assert preview.mode == "RGB" and preview.size == (width, height)


def test_folder_with_a_corrupt_image(tmp_path, tiny_checkpoint, caplog):
    inputs = tmp_path / "cam"
    _image(inputs / "a.png", 40, 60, seed=1)
    _image(inputs / "b.jpg", 40, 60, seed=2)
    _image(inputs / "c.bmp", 40, 60, seed=3)
    _image(inputs / "nested" / "d.png", 33, 51, seed=4)  # another size: its own batch
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(
        inputs / "grey.png"
    )  # greyscale is converted, not refused
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (inputs / "notes.txt").write_text("not an image, not picked up from a folder")
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        rc = main(
            [
                str(inputs),
                "--recursive",
                "--checkpoint",
                str(tiny_checkpoint),
                "-o",
                str(out),
                "--batch-size",
                "2",
                "--device",
                "cpu",
            ]
        )
    assert rc == 1
    assert str(inputs / "broken.png") in caplog.text
    for name in ("a", "b", "c"):
        _assert_outputs(out / "cam" / name, 40, 60)
    _assert_outputs(out / "cam" / "nested" / "d", 33, 51)
    _assert_outputs(out / "cam" / "grey", 20, 20)
    assert not list(out.rglob("broken*")) and not list(out.rglob("notes*"))


def test_folder_without_recursion_skips_subfolders_and_one_format_only(tmp_path, tiny_checkpoint):
    _image(tmp_path / "cam" / "a.png", 24, 36)
    _image(tmp_path / "cam" / "deeper" / "b.png", 24, 36)
    out = tmp_path / "out"
    assert (
        main(
            [
                str(tmp_path / "cam"),
                "--checkpoint",
                str(tiny_checkpoint),
                "-o",
                str(out),
                "--png16",
            ]
        )
        == 0
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["cam/a_depth.png"]


def test_single_file_is_named_after_the_input(tmp_path, tiny_checkpoint):
    _image(tmp_path / "photo.jpg", 30, 45)
    out = tmp_path / "out"
    assert (
        main(
            [
                str(tmp_path / "photo.jpg"),
                "--checkpoint",
                str(tiny_checkpoint / "decoder.safetensors"),
                "-o",
                str(out),
                "--npy",
                "--preview",
                "--colorize-min",
                "0.5",
                "--colorize-max",
                "20",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["photo_depth.npy", "photo_preview.png"]
    assert read_npy(out / "photo_depth.npy").shape == (30, 45)


def test_synthetic_run_writes_ground_truth_and_metrics(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "--synthetic",
                "2",
                "--synthetic-size",
                "96x32",
                "--checkpoint",
                str(tiny_checkpoint),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    frames = list(SyntheticDrive(DriveConfig(width=96, height=32)).frames(2))
    for frame in frames:
        stem = out / "synthetic" / f"{frame.index:06d}"
        with Image.open(stem.with_name(stem.name + "_rgb.png")) as rgb:
            assert np.array_equal(np.asarray(rgb), frame.rgb)
        gt = read_png16(stem.with_name(stem.name + "_gt.png"))
        near = (frame.depth > 0) & (frame.depth < KITTI_MAX_DEPTH)
        assert np.abs(gt[near] - frame.depth[near]).max() <= 0.5 / 256 + 1e-6
        assert np.all(gt[frame.depth == 0] == 0)
        _assert_outputs(stem, 32, 96)
    summary = json.loads((out / "synthetic" / "metrics.json").read_text())
    assert summary["frames"] == 2 and np.isfinite(summary["mean"]["abs_rel"])
    printed = capsys.readouterr().out
    assert "abs_rel" in printed and "frame 1" in printed and "mean" in printed


def test_without_checkpoint_warns_loudly_and_still_runs(tmp_path, caplog):
    _image(tmp_path / "a.png", 24, 32)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        rc = main([str(tmp_path / "a.png"), "-o", str(out), "--device", "cpu"])
    assert rc == 0
    assert "UNTRAINED" in caplog.text and "MEANINGLESS" in caplog.text
    _assert_outputs(out / "a", 24, 32)


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    _image(tmp_path / "a.png", 24, 32)
    missing = tmp_path / "no_such_checkpoint"
    assert (
        main([str(tmp_path / "a.png"), "--checkpoint", str(missing), "-o", str(tmp_path / "out")])
        == 2
    )
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err
    assert not (tmp_path / "out").exists()


def test_unknown_device_is_a_clear_error(tmp_path, tiny_checkpoint, capsys):
    _image(tmp_path / "a.png", 16, 16)
    assert (
        main([str(tmp_path / "a.png"), "--checkpoint", str(tiny_checkpoint), "--device", "tpu"])
        == 2
    )
    assert "unknown device" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "nothing to do"),
        (["{tmp}/missing.png"], "no such file or folder"),
        (["{tmp}/empty"], "no images"),
        (["{tmp}/a.png", "--batch-size", "0"], "--batch-size"),
        (["{tmp}/a.png", "--colorize-min", "50", "--colorize-max", "10"], "--colorize-min"),
        (["{tmp}/a.png", "{tmp}/again/a.png"], "would both write"),
    ],
)
def test_usage_errors_exit_2_before_loading_a_model(tmp_path, capsys, argv, message):
    _image(tmp_path / "a.png", 16, 16)
    _image(tmp_path / "again" / "a.png", 16, 16)
    (tmp_path / "empty").mkdir()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_help_teaches_usage():
    result = subprocess.run(
        [sys.executable, "-m", "space_clip_ros.predict", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for text in (
        "examples:",
        "--checkpoint",
        "--synthetic",
        "--recursive",
        "--png16",
        "KITTI",
        "space-clip-predict photo.jpg",
    ):
        assert text in result.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "space_clip_ros.predict",
            "--synthetic",
            "2",
            "--synthetic-size",
            "12",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr


def test_golden_image_gives_the_committed_depth(tmp_path, golden):
    args = [str(golden.image_file), "--checkpoint", str(golden.checkpoint), "--npy"]
    args += ["--backbone-weights", str(golden.backbone), "--device", "cpu", "--no-progress"]
    args += ["--precision", "fp32"]  # the committed depth is fp32; auto may pick bf16
    assert main([*args, "-o", str(tmp_path)]) == 0
    golden.assert_matches(read_npy(tmp_path / f"{golden.image_file.stem}_depth.npy"))
