"""The node's per-frame arithmetic (space_clip_ros.depth_frame), checked without ROS or DDS."""

import numpy as np
import pytest

from space_clip_ros.depth_frame import (
    camera_matrix,
    mask_out_of_range,
    output_intrinsics,
    rescale_image,
    rescaled_size,
)
from space_clip_ros.geometry import Intrinsics

INTR = Intrinsics(fx=100.0, fy=95.0, cx=79.5, cy=23.5, width=160, height=48)


def test_range_mask_turns_everything_outside_the_range_into_nan_never_zero():
    depth = np.array([[0.0, -1.0, 1.9, 2.0, 30.0], [60.0, 60.5, np.nan, np.inf, 5.0]], np.float32)
    out = mask_out_of_range(depth, 2.0, 60.0)
    assert out is depth  # in place: no copy per frame
    expected = [[np.nan, np.nan, np.nan, 2.0, 30.0], [60.0, np.nan, np.nan, np.nan, 5.0]]
    np.testing.assert_array_equal(out, np.array(expected, np.float32))
    assert not (out == 0).any()


@pytest.mark.parametrize(
    "scale,size", [(1.0, (160, 48)), (2.0, (160, 48)), (0.5, (80, 24)), (0.001, (1, 1))]
)
def test_rescale_shrinks_only_and_never_below_one_pixel(scale, size):
    pixels = np.random.default_rng(0).integers(0, 256, (48, 160, 3), dtype=np.uint8)
    out = rescale_image(pixels, scale)
    assert rescaled_size(160, 48, scale) == size
    assert (out.shape, out.dtype) == ((size[1], size[0], 3), np.uint8)
    if scale >= 1.0:
        assert out is pixels  # no resize, no copy


def test_rescale_averages_like_an_area_filter():
    pixels = np.zeros((4, 16, 3), np.uint8)
    pixels[:, ::2] = 200  # alternating columns average to 100 at half width (away from the border)
    out = rescale_image(pixels, 0.5)
    assert out.shape == (2, 8, 3)
    np.testing.assert_array_equal(out[:, 1:-1], np.full((2, 6, 3), 100, np.uint8))


def test_intrinsics_come_from_p_when_set_and_from_k_otherwise():
    k = np.array([50.0, 0, 1, 0, 50.0, 1, 0, 0, 1])
    p = np.array([100.0, 0, 79.5, -30.0, 0, 95.0, 23.5, 0, 0, 0, 1, 0])
    matrix, name = camera_matrix(p, k)
    assert name == "P" and Intrinsics.from_matrix(matrix, 160, 48) == INTR
    matrix, name = camera_matrix(np.zeros(12), k)
    assert name == "K" and np.array_equal(matrix, k)


def test_output_intrinsics_follow_the_rescale():
    assert output_intrinsics(INTR, 160, 48) is INTR
    half = output_intrinsics(INTR, *rescaled_size(160, 48, 0.5))
    assert half == INTR.scaled(80, 24)
    assert (half.fx, half.cx, half.width) == (50.0, 39.5, 80)  # pixel-area convention
