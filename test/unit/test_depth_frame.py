"""The node's frame path (space_clip_ros.depth_frame), checked without ROS or DDS: one frame in,
every output of that frame out, against the reference implementations of each rule."""

import numpy as np
import pytest
import torch

from space_clip_ros import depth_frame
from space_clip_ros.depth_frame import (
    DeviceKernels,
    FrameRenderer,
    HostKernels,
    PendingFrame,
    output_intrinsics,
    postprocess,
    rescaled_size,
)
from space_clip_ros.frame_plan import FramePlan, FrameSettings, Output
from space_clip_ros.geometry import Intrinsics, backproject
from space_clip_ros.io.colormap import colorize, preview_lut
from space_clip_ros.io.image_decoding import ColorImage
from space_clip_ros.io.msg_arrays import camera_matrix
from testing.estimators import KnownDepth, plane

INTR = Intrinsics(fx=100.0, fy=95.0, cx=79.5, cy=23.5, width=160, height=48)
ALL = frozenset(Output)


def noisy_depth(h: int, w: int) -> np.ndarray:
    """-5..100 m with NaN and inf: every branch of the range mask and the palette."""
    d = np.random.default_rng(h * w).uniform(-5, 100, (h, w)).astype(np.float32)
    d[0, 0], d[1, 1], d[2, 2] = np.nan, np.inf, -np.inf
    return d


def pixels(h: int = 48, w: int = 160) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


def masked(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    out = depth.copy()
    with np.errstate(invalid="ignore"):
        out[~((out >= lo) & (out <= hi) & (out > 0))] = np.nan
    return out


@pytest.mark.parametrize("kernels", [HostKernels, DeviceKernels])
@pytest.mark.parametrize(
    "bad", [[np.nan], [np.inf], [-np.inf], [np.inf, -np.inf], [np.nan] * 7680, []]
)
def test_the_finite_count_counts_every_nan_and_inf(kernels, bad):
    raw = np.full((48, 160), 3.0e38, np.float32)  # huge but finite: no false alarm
    raw.flat[: len(bad)] = bad
    raw_in = raw if kernels is HostKernels else torch.from_numpy(raw)
    assert int(kernels.finite_count(raw_in)) == raw.size - len(bad)


@pytest.mark.parametrize("kernels", [HostKernels, DeviceKernels])
@pytest.mark.parametrize("lo", [2.0, 0.0])
def test_range_mask_turns_everything_outside_the_range_into_nan_never_zero(kernels, lo):
    depth = np.array([[0.0, -1.0, 1.9, 2.0, 30.0], [60.0, 60.5, np.nan, np.inf, 5.0]], np.float32)
    arrays = (
        (depth, np.empty_like(depth))
        if kernels is HostKernels
        else (torch.from_numpy(depth), torch.empty(depth.shape))
    )
    kernels.mask(arrays[0], lo, 60.0, arrays[1])
    out = np.asarray(arrays[1])
    low = [np.nan, np.nan, 1.9] if lo == 0.0 else [np.nan] * 3
    expected = [[*low, 2.0, 30.0], [60.0, np.nan, np.nan, np.nan, 5.0]]
    np.testing.assert_array_equal(out, np.array(expected, np.float32))
    assert not (out == 0).any()  # 0 m is no measurement even when min_depth is 0


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_the_device_kernels_follow_the_host_kernels_rule_for_rule(order):
    """The GPU path's torch ops (run here on CPU tensors) against the CPU path's OpenCV passes,
    through the one post-processing function, with decimation, a BGR camera and a smaller
    depth image than the input (its colours resized)."""
    settings = FrameSettings(min_depth=0.5, max_depth=70.0, colorize_min=2.0, colorize_max=60.0,
                             point_decimation=2, output_scale=0.5)  # fmt: skip
    plan = FramePlan(ALL, settings, INTR)
    pending = PendingFrame(plan, 80, 24, INTR.scaled(80, 24), order)
    raw, rgb = noisy_depth(24, 80), pixels()
    host = {"depth": np.empty_like(raw), "points": np.empty((12, 40, 4), np.float32),
            "preview": np.empty((24, 80, 3), np.uint8)}  # fmt: skip
    device = {k: torch.from_numpy(np.empty_like(v)) for k, v in host.items()}
    lut = preview_lut("bgr")
    finite = [
        postprocess(HostKernels, pending, raw, rgb, host, lut, None),
        postprocess(DeviceKernels, pending, torch.from_numpy(raw), torch.from_numpy(rgb),
                    device, torch.from_numpy(lut), None),
    ]  # fmt: skip
    assert int(finite[0]) == int(finite[1]) == raw.size - 3
    np.testing.assert_array_equal(device["depth"].numpy(), host["depth"])
    np.testing.assert_array_equal(device["points"].numpy()[..., :3], host["points"][..., :3])
    colours = [c.view(np.uint32).astype(np.int64) for c in (device["points"].numpy()[..., 3],
               host["points"][..., 3])]  # fmt: skip
    channels = [np.stack([(c >> s) & 0xFF for s in (16, 8, 0)]) for c in colours]
    assert np.abs(channels[0] - channels[1]).max() <= 1  # the resized colours, within a level
    level = np.abs(device["preview"].numpy().astype(int) - host["preview"].astype(int))
    assert level.max() <= 16  # at most one palette level apart (float rounding at .5)


@pytest.mark.parametrize(
    "scale,size", [(1.0, (160, 48)), (2.0, (160, 48)), (0.5, (80, 24)), (0.001, (1, 1))]
)
def test_the_depth_image_shrinks_only_and_never_below_one_pixel(scale, size):
    assert rescaled_size(160, 48, scale) == size


def test_intrinsics_come_from_p_when_set_and_from_k_otherwise():
    class Info:
        k = [50.0, 0, 1, 0, 50.0, 1, 0, 0, 1]
        p = [100.0, 0, 79.5, -30.0, 0, 95.0, 23.5, 0, 0, 0, 1, 0]

    matrix, name = camera_matrix(Info)
    assert name == "P" and Intrinsics.from_matrix(matrix, 160, 48) == INTR
    Info.p = [0.0] * 12
    matrix, name = camera_matrix(Info)
    assert name == "K" and np.array_equal(matrix[:, :3], np.reshape(Info.k, (3, 3)))


def test_output_intrinsics_follow_the_rescale():
    assert output_intrinsics(INTR, 160, 48) is INTR
    half = output_intrinsics(INTR, *rescaled_size(160, 48, 0.5))
    assert half == INTR.scaled(80, 24)
    assert (half.fx, half.cx, half.width) == (50.0, 39.5, 80)  # pixel-area convention


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_every_output_matches_its_reference_rule(order):
    settings = FrameSettings(min_depth=0.5, max_depth=70.0, colorize_min=2.0, colorize_max=60.0)
    rgb = pixels()
    image = ColorImage(rgb if order == "rgb" else rgb[..., ::-1].copy(), order)
    estimator = KnownDepth(noisy_depth)
    products = FrameRenderer(estimator).render(image, FramePlan(ALL, settings, INTR))
    expected = masked(noisy_depth(48, 160), 0.5, 70.0)
    np.testing.assert_array_equal(products.depth.array, expected)
    assert products.finite_fraction == pytest.approx(1 - 3 / (48 * 160))
    cloud = products.points.array
    assert cloud.shape == (48, 160, 4) and products.points_have_rgb
    np.testing.assert_allclose(cloud[..., :3], backproject(expected, INTR), rtol=1e-6)
    word = cloud[..., 3].view(np.uint32)
    r, g, b = (rgb[..., c].astype(np.uint32) for c in range(3))
    np.testing.assert_array_equal(word, (r << 16) | (g << 8) | b)  # 0x00RRGGBB, true RGB
    np.testing.assert_array_equal(products.preview.array, colorize(expected, 2.0, 60.0, "bgr"))
    assert (products.width, products.height, products.intrinsics) == (160, 48, INTR)


def test_decimation_and_output_scale_shape_the_cloud_and_its_colours():
    settings = FrameSettings(output_scale=0.5, point_decimation=3)
    renderer = FrameRenderer(KnownDepth(plane(6.0)))
    image = ColorImage(np.full((48, 160, 3), (10, 20, 30), np.uint8), "rgb")
    products = renderer.render(image, FramePlan(frozenset({Output.POINTS}), settings, INTR))
    half = INTR.scaled(80, 24)
    assert (products.width, products.height, products.intrinsics) == (80, 24, half)
    assert products.depth is None and products.preview is None  # only what was planned
    cloud = products.points.array
    assert cloud.shape == (8, 27, 4)  # ceil(24 / 3) x ceil(80 / 3)
    np.testing.assert_allclose(cloud[..., :3], backproject(np.full((24, 80), 6.0), half, 3))
    assert (cloud[..., 3].view(np.uint32) == (10 << 16) | (20 << 8) | 30).all()


@pytest.mark.parametrize("band_points", [1, 160 * 5, 54 * 7])  # a row; bands that end short
@pytest.mark.parametrize("step", [1, 3])
def test_the_cpu_cloud_made_in_bands_is_the_cloud_made_whole(monkeypatch, band_points, step):
    depth = masked(noisy_depth(48, 160), 0.5, 70.0)
    bgr = pixels()[..., ::-1]  # a reversed view, as the node hands over BGR input
    rays = depth_frame._rays(INTR, step)
    shape = (-(-48 // step), -(-160 // step), 4)
    whole, banded = np.empty(shape, np.float32), np.empty(shape, np.float32)
    HostKernels.cloud(depth, rays, bgr, step, whole)
    monkeypatch.setattr(depth_frame, "CLOUD_BAND_POINTS", band_points)
    HostKernels.cloud(depth, rays, bgr, step, banded)
    np.testing.assert_array_equal(banded.view(np.uint32), whole.view(np.uint32))
    np.testing.assert_allclose(whole[..., :3], backproject(depth, INTR, step), rtol=1e-6)
    r, g, b = (bgr[::step, ::step, c].astype(np.uint32) for c in range(3))
    np.testing.assert_array_equal(whole[..., 3].view(np.uint32), (r << 16) | (g << 8) | b)


def test_the_cloud_without_colour_has_three_fields():
    renderer = FrameRenderer(KnownDepth(plane(6.0)))
    plan = FramePlan(frozenset({Output.POINTS}), FrameSettings(points_rgb=False), INTR)
    products = renderer.render(ColorImage(pixels(), "rgb"), plan)
    assert products.points.array.shape == (48, 160, 3) and not products.points_have_rgb


def test_a_model_that_outputs_nan_is_measured_not_hidden():
    renderer = FrameRenderer(KnownDepth(lambda h, w: np.full((h, w), np.nan, np.float32)))
    plan = FramePlan(frozenset({Output.DEPTH}), FrameSettings())
    products = renderer.render(ColorImage(pixels(), "rgb"), plan)
    assert products.finite_fraction == 0.0 and np.isnan(products.depth.array).all()


def test_camera_info_alone_runs_no_inference():
    estimator = KnownDepth(plane(3.0))
    plan = FramePlan(frozenset({Output.CAMERA_INFO}), FrameSettings(output_scale=0.5), INTR)
    products = FrameRenderer(estimator).render(ColorImage(pixels(), "rgb"), plan)
    assert estimator.calls == [] and np.isnan(products.finite_fraction)
    assert (products.width, products.height) == (80, 24) and products.depth is None


def test_outputs_that_need_a_camera_cannot_be_planned_without_one():
    with pytest.raises(ValueError, match="intrinsics"):
        FramePlan(frozenset({Output.POINTS}), FrameSettings())


def test_host_buffers_are_reused_until_the_frame_size_changes():
    renderer = FrameRenderer(KnownDepth(plane(3.0)))
    plan = FramePlan(frozenset({Output.DEPTH}), FrameSettings())
    first = renderer.render(ColorImage(pixels(), "rgb"), plan).depth.raw
    second = renderer.render(ColorImage(pixels(), "rgb"), plan).depth.raw
    assert second is first  # the same bytes: no allocation per frame
    small = renderer.render(ColorImage(pixels(24, 80), "rgb"), plan).depth
    assert small.raw is not first and small.array.shape == (24, 80)


def test_begin_and_complete_are_render_in_two_halves():
    plan = FramePlan(ALL, FrameSettings(point_decimation=2), INTR)
    image = ColorImage(pixels(), "rgb")
    whole = FrameRenderer(KnownDepth(noisy_depth)).render(image, plan)
    renderer = FrameRenderer(KnownDepth(noisy_depth))
    halves = renderer.complete(renderer.begin(image, plan))
    for name in ("depth", "points", "preview"):
        np.testing.assert_array_equal(getattr(halves, name).array, getattr(whole, name).array)
