"""Depth files: KITTI 16-bit PNG (metres * 256, 0 = invalid), float32 .npy, colour preview."""

import numpy as np
import pytest
from PIL import Image

from space_clip_ros.io.depth_files import (
    KITTI_MAX_DEPTH,
    depth_to_kitti_uint16,
    read_npy,
    read_png16,
    write_npy,
    write_png16,
    write_preview,
)


def test_png16_round_trip_is_within_half_a_kitti_step(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 120.0, size=(37, 53)).astype(np.float32)
    path = tmp_path / "d.png"
    write_png16(path, depth)
    back = read_png16(path)
    assert back.shape == depth.shape and back.dtype == np.float32
    assert np.abs(back - depth).max() <= 0.5 / 256 + 1e-6


def test_png16_is_a_real_16_bit_kitti_file(tmp_path):
    depth = np.array([[1.0, 2.5], [100.0, 0.0]], np.float32)
    path = tmp_path / "d.png"
    write_png16(path, depth)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode.startswith("I;16")
        raw = np.array(img)
    assert raw.tolist() == [[256, 640], [25600, 0]]


def test_invalid_far_and_tiny_depths_encode_by_the_kitti_rules():
    depth = np.array([[np.nan, np.inf, 0.0, 300.0, 1e-4, 255.9]], np.float32)
    assert depth_to_kitti_uint16(depth).tolist() == [[0, 0, 0, 65535, 1, round(255.9 * 256)]]
    assert KITTI_MAX_DEPTH == pytest.approx(255.996, abs=1e-3)


def test_negative_depth_is_an_error_naming_the_pixel(tmp_path):
    depth = np.ones((3, 4), np.float32)
    depth[2, 1] = -0.5
    with pytest.raises(ValueError, match=r"negative.*row 2, column 1"):
        write_png16(tmp_path / "d.png", depth)
    assert not (tmp_path / "d.png").exists()


def test_wrong_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        depth_to_kitti_uint16(np.ones((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="floating-point"):
        depth_to_kitti_uint16(np.ones((2, 2), np.uint16))
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match=r"rgb\.png.*16-bit"):
        read_png16(rgb)


def test_npy_round_trip_is_exact_and_never_unpickles(tmp_path):
    depth = np.array([[1.25, np.nan], [0.0, 1234.5678]], np.float32)
    write_npy(tmp_path / "d.npy", depth)
    back = read_npy(tmp_path / "d.npy")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        read_npy(tmp_path / "evil.npy")


def test_preview_is_an_rgb_png_of_the_same_size(tmp_path):
    depth = np.linspace(1, 80, 6 * 10, dtype=np.float32).reshape(6, 10)
    write_preview(tmp_path / "p.png", depth, 1.0, 80.0)
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "RGB" and img.size == (10, 6)
