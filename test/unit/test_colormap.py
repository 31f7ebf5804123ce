"""Turbo palette and fixed-range colourisation: a colour means the same distance in every frame."""

import numpy as np
import pytest

from space_clip_ros.io.colormap import TURBO_LUT, colorize, turbo_lut


def test_lut_is_a_smooth_turbo_ramp():
    assert TURBO_LUT.shape == (256, 3) and TURBO_LUT.dtype == np.uint8
    assert np.array_equal(turbo_lut(), TURBO_LUT)
    # Turbo runs blue -> cyan -> green -> yellow -> red.
    dominant = [int(np.argmax(TURBO_LUT[i])) for i in (40, 128, 230)]
    assert dominant == [2, 1, 0]
    assert (
        np.abs(np.diff(TURBO_LUT.astype(int), axis=0)).max() <= 16
    )  # no jumps between neighbours
    brightness = TURBO_LUT.astype(int).sum(axis=1)
    assert (
        brightness[0] < brightness[128] and brightness[255] < brightness[128]
    )  # dark ends, bright middle
    assert turbo_lut(16).shape == (16, 3)


def test_near_is_red_far_is_blue_and_range_ends_saturate():
    depth = np.array([[1.0, 80.0, 0.2, 500.0]], np.float32)
    out = colorize(depth, 1.0, 80.0)
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0, 0], TURBO_LUT[255]) and np.array_equal(out[0, 1], TURBO_LUT[0])
    assert np.array_equal(out[0, 2], out[0, 0]) and np.array_equal(out[0, 3], out[0, 1])


def test_colour_depends_on_metric_depth_not_on_the_frame():
    near_frame = np.array([[5.0, 10.0]], np.float32)
    far_frame = np.array([[5.0, 60.0]], np.float32)
    assert np.array_equal(
        colorize(near_frame, 0.5, 80.0)[0, 0], colorize(far_frame, 0.5, 80.0)[0, 0]
    )
    assert not np.array_equal(
        colorize(near_frame, 0.5, 80.0)[0, 1], colorize(far_frame, 0.5, 80.0)[0, 1]
    )


def test_invalid_depth_is_black():
    depth = np.array([[np.nan, 0.0, -3.0, np.inf, 10.0]], np.float32)
    out = colorize(depth, 1.0, 80.0)
    assert np.all(out[0, :4] == 0)
    assert out[0, 4].sum() > 0


def test_bgr_order_swaps_channels():
    depth = np.linspace(1, 80, 12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(
        colorize(depth, 1, 80, channel_order="bgr"), colorize(depth, 1, 80)[..., ::-1]
    )


@pytest.mark.parametrize(
    "depth, lo, hi, message",
    [
        (np.ones((2, 2)), 5.0, 5.0, "min_depth < max_depth"),
        (np.ones((2, 2)), -1.0, 5.0, "min_depth < max_depth"),
        (np.ones((2, 2)), 0.0, float("nan"), "min_depth < max_depth"),
        (np.ones((2, 2, 1)), 0.0, 5.0, "2-D"),
    ],
)
def test_bad_arguments_are_refused(depth, lo, hi, message):
    with pytest.raises(ValueError, match=message):
        colorize(depth, lo, hi)
    with pytest.raises(ValueError, match="channel_order"):
        colorize(np.ones((2, 2)), 0.0, 5.0, channel_order="hsv")
