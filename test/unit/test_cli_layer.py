"""The command-line layer (space_clip_ros/cli): every tool ends through errors.run_tool, the model
flags and their one estimator construction are shared, and predict's preview-range flags carry
the node's names (the old ones are deprecated aliases for a release)."""

from __future__ import annotations

import argparse
import importlib

import numpy as np
import pytest
from PIL import Image

from space_clip_ros.cli.arguments import parse_size
from space_clip_ros.cli.model_options import ModelOptions
from space_clip_ros.errors import ConfigError, RuntimeFailure
from space_clip_ros.inference import DepthEstimator
from space_clip_ros.io.limits import DEFAULT_MAX_FILE_PIXELS, DEFAULT_MAX_FRAME_PIXELS
from space_clip_ros.ros.params import NodeConfig
from space_clip_ros.runtime import PRECISION_CHOICES


def _image(path, height=16, width=24, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# (module of the tool's main, argv, exit status, words of the message): each is an error a user
# makes, reported as '<prog>: error: ...' and an exit status, never an exception.
TOOL_ERRORS = [
    ("space_clip_ros.predict", [], 2, "space-clip-predict: error: nothing to do"),
    ("space_clip_ros.cli.verify", ["--tolerance", "0"], 2, "space-clip-verify: error: --tol"),
    ("space_clip_ros.cli.import_reference", ["{tmp}/no.pt", "{tmp}/out"], 2, "space-clip-import"),
    ("space_clip_ros.cli.kitti2bag", ["{tmp}/no_drive"], 2, "space-clip-kitti2bag: error:"),
    ("space_clip_ros.cli.bag_accuracy", ["{tmp}/no_bag"], 2, "space-clip-bag-accuracy: error:"),
    ("space_clip_ros.ros.demo", ["--frames", "0"], 2, "space-clip-demo: error: --frames"),
    ("space_clip_ros.ros.bag_replay", ["{tmp}/no_bag"], 2, "no_bag: does not exist"),
    ("training.train", ["--config", "{tmp}/no.yaml"], 2, "python -m training.train: error:"),
    (
        "training.evaluate",
        ["--checkpoint", "{tmp}", "--config", "{tmp}/no.yaml"],
        2,
        "python -m training.evaluate: error:",
    ),
    ("training.export", ["--checkpoint", "{tmp}"], 2, "training.export: error: nothing to do"),
    (
        "training.prepare_kitti",
        ["--root", "{tmp}/kitti", "--kitti-url", "http://mirror.example.org/kitti"],
        2,
        "python -m training.prepare_kitti: error: 'http://mirror.example.org/kitti' is not",
    ),
    ("training.seeds", ["--out", "{tmp}"], 2, "training.seeds: error: --config/--runs: give"),
    ("training.splits", ["kitti", "--root", "{tmp}"], 2, "python -m training.splits: error:"),
    (
        "training.mini_datasets",
        ["kitti", "{tmp}/mini", "--train", "0"],
        2,
        "python -m training.mini_datasets: error:",
    ),
]


@pytest.mark.parametrize("module, argv, code, words", TOOL_ERRORS, ids=[t[0] for t in TOOL_ERRORS])
def test_every_tool_turns_an_error_into_its_exit_status(
    module, argv, code, words, tmp_path, capsys
):
    main = importlib.import_module(module).main
    assert main([a.format(tmp=tmp_path) for a in argv]) == code
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_usage_error_shows_the_usage_line_first(capsys):
    from space_clip_ros.predict import main

    assert main([]) == 2
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith("usage: space-clip-predict") and rest[-1].startswith(
        "space-clip-predict: error: nothing to do"
    )


def test_predict_colours_with_the_node_s_names_and_the_old_flags_still_work(
    tmp_path, tiny_checkpoint, capsys
):
    from space_clip_ros.predict import main

    photo = _image(tmp_path / "photo.png")
    previews = {}
    for name, flags in (
        ("new", ["--colorize-min", "2", "--colorize-max", "5"]),
        ("old", ["--min-depth", "2", "--max-depth", "5"]),
        ("default", []),
    ):
        out = tmp_path / name
        argv = [str(photo), "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--preview"]
        assert main([*argv, "-o", str(out), *flags]) == 0
        previews[name] = (out / "photo_preview.png").read_bytes()
        err = capsys.readouterr().err
        for old, new in (("--min-depth", "--colorize-min"), ("--max-depth", "--colorize-max")):
            warning = f"{old} is deprecated and will be removed in the next release: use {new}"
            assert (warning in err) == (name == "old"), (name, err)
    assert previews["old"] == previews["new"] != previews["default"]


def test_the_deprecated_flags_are_checked_like_the_new_ones(tmp_path, capsys):
    from space_clip_ros.predict import main

    photo = _image(tmp_path / "photo.png")
    assert main([str(photo), "--min-depth", "50", "--max-depth", "10"]) == 2
    err = capsys.readouterr().err
    assert "need 0 <= --colorize-min < --colorize-max, got 50.0 and 10.0" in err


def test_an_empty_value_is_not_given_as_for_the_node_s_parameters():
    parser = argparse.ArgumentParser()
    ModelOptions.add_to(parser)
    args = parser.parse_args(["--checkpoint", "", "--backbone-weights", "", "--trt-cache-dir", ""])
    assert ModelOptions.from_settings(args) == ModelOptions()
    node = NodeConfig(checkpoint="", device="cpu", precision="fp32", trt_cache_dir="/tmp/trt")
    options = ModelOptions.from_settings(node)
    assert options == ModelOptions(None, None, "cpu", "fp32", "/tmp/trt")
    assert options.node_parameters() == {
        name: getattr(node, name) for name in options.node_parameters()
    }


@pytest.mark.parametrize("module", ["space_clip_ros.predict", "space_clip_ros.cli.verify",
                                    "space_clip_ros.ros.demo"])  # fmt: skip
def test_every_model_loading_tool_takes_the_same_model_flags(module, capsys):
    parser = importlib.import_module(module).build_parser()
    flags = ["--checkpoint", "ckpt", "--backbone-weights", "openai", "--device", "cpu"]
    flags += ["--precision", "bf16", "--trt-cache-dir", "trt"]
    inputs = ["photo.png"] if module != "space_clip_ros.ros.demo" else []
    options = ModelOptions.from_settings(parser.parse_args([*flags, *inputs]))
    assert options == ModelOptions("ckpt", "openai", "cpu", "bf16", "trt")
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])
    choices = ", ".join(repr(c) for c in PRECISION_CHOICES)
    assert f"choose from {choices}" in capsys.readouterr().err


def test_loading_is_the_one_construction_and_says_what_failed(tiny_checkpoint, monkeypatch):
    estimator = ModelOptions(str(tiny_checkpoint), device="cpu", precision="fp32").load()
    assert estimator.trained and estimator.precision == "fp32"
    with pytest.raises(ConfigError, match="checkpoint not found"):
        ModelOptions("no_such_checkpoint", device="cpu").load()

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(DepthEstimator, "from_checkpoint", broken)
    with pytest.raises(RuntimeFailure, match="loading the model failed: 'CUDA error"):
        ModelOptions(str(tiny_checkpoint)).load()


def test_a_weights_source_no_file_system_can_open_is_refused_before_loading():
    parser = argparse.ArgumentParser()
    ModelOptions.add_to(parser)
    with pytest.raises(ConfigError, match="--backbone-weights"):
        ModelOptions.from_settings(parser.parse_args(["--backbone-weights", "x" * 5000]))


def test_sizes_are_width_by_height_and_at_least_eight_pixels():
    assert parse_size("64X32") == (64, 32)
    for text, words in (("12", "expected WIDTHxHEIGHT"), ("4x40", "at least 8 pixels")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            parse_size(text)


def test_files_and_camera_frames_have_limits_of_their_own(tmp_path, tiny_checkpoint, capsys):
    from space_clip_ros.cli.verify import main as verify
    from space_clip_ros.predict import build_parser

    assert DEFAULT_MAX_FILE_PIXELS > DEFAULT_MAX_FRAME_PIXELS
    assert NodeConfig().max_image_pixels == DEFAULT_MAX_FRAME_PIXELS
    assert build_parser().parse_args(["x.png"]).max_pixels == DEFAULT_MAX_FILE_PIXELS
    photo = _image(tmp_path / "photo.png", 16, 24)  # 384 pixels
    argv = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", str(photo)]
    assert verify([*argv, "--max-pixels", "300"]) == 2
    assert "above --max-pixels=300" in capsys.readouterr().err  # the flag, not a node parameter
