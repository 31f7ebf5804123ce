"""The canonical-camera mapping: the rule's numbers, its geometry round trips, the torch side,
both backends, and the record in checkpoints (model/canonical_camera.py, model/config.py)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from space_clip_ros.errors import ConfigError
from space_clip_ros.geometry import Intrinsics, backproject
from space_clip_ros.model import build_model, load_checkpoint, save_checkpoint
from space_clip_ros.model.canonical_camera import (
    KITTI_FRAME,
    NYU_FRAME,
    CameraView,
    assumed_intrinsics,
    canonical_view,
    crop_intrinsics,
    plan_view,
    release_camera,
)
from space_clip_ros.model.checkpoint import CheckpointError
from space_clip_ros.model.config import CameraConfig, SpaceClipConfig
from space_clip_ros.model.space_clip import resize_bilinear, view_to_encoder, view_to_image
from testing.tiny import tiny_config

# 200x100 crops at focal 100: a_x = 0.5, a_y = 1.0 (anisotropy 2, like KITTI's 704x352 crops)
CAMERA = CameraConfig(crop_size=(100, 200), focal=(100.0, 100.0), principal_point=(99.5, 49.5))
KITTI = CameraConfig((352, 704), (721.5377, 721.5377), (351.5, 149.854), "KITTI recipe")


def test_canonical_view_exact_numbers():
    # a 400x100 image at the same focal: twice the canonical field of view across, the same
    # down. The region must be 2:1 and hold the image: 400x200, so k = 0.5 on both axes.
    wide = Intrinsics(100.0, 100.0, 199.5, 49.5, 400, 100)
    view = canonical_view(wide, CAMERA, (64, 64))
    assert view.footprint == (16, 0, 32, 64)  # (top, left, height, width) in encoder pixels
    assert view.depth_scale == 0.5
    assert view.region == (0.0, -50.0, 400.0, 200.0)
    assert view.padding == (0, 0, 16, 16) and view.covers_image
    # the training camera itself: the whole canvas, depth unchanged
    same = canonical_view(crop_intrinsics(CAMERA), CAMERA, (64, 64))
    assert same.footprint == (0, 0, 64, 64) and same.depth_scale == 1.0
    # the same camera at twice the focal length: objects twice as big, depth x 2
    zoomed = replace(crop_intrinsics(CAMERA), fx=200.0, fy=200.0)
    assert canonical_view(zoomed, CAMERA, (64, 64)).depth_scale == 2.0
    # KITTI's whole frame under the KITTI recipe's record (224x224 encoder)
    kitti = canonical_view(KITTI_FRAME, KITTI, (224, 224))
    assert kitti.footprint == (34, 4, 133, 220)
    assert kitti.depth_scale == pytest.approx(0.5570, abs=1e-4)


@pytest.mark.parametrize(
    "intr",
    [
        KITTI_FRAME,
        NYU_FRAME,
        Intrinsics(600.0, 600.0, 639.5, 359.5, 1280, 720),
        Intrinsics(1000.0, 1010.0, 900.0, 600.0, 1920, 1080),  # off-centre, non-square pixels
        Intrinsics(300.0, 300.0, 239.5, 319.5, 480, 640),  # portrait
        Intrinsics(2000.0, 2000.0, 100.0, 60.0, 200, 120),  # narrow field of view
    ],
)
@pytest.mark.parametrize("encoder", [(224, 224), (64, 64), (224, 672)])
def test_the_encoder_sees_the_training_camera_up_to_the_depth_scale(intr, encoder):
    """Round trip of camera geometry: through the view, the input camera IS the training
    camera with every focal length times depth_scale, the principal point in place, and the
    whole image on the canvas (no pixel lost)."""
    view = canonical_view(intr, KITTI, encoder)
    seen = view.encoder_intrinsics(intr)
    canon = crop_intrinsics(KITTI).scaled(encoder[1], encoder[0])
    assert view.covers_image
    half_pixel = 0.5 / min(view.footprint[2:])  # rounding the footprint to whole pixels
    assert seen.fx / canon.fx == pytest.approx(view.depth_scale, rel=half_pixel)
    assert seen.fy / canon.fy == pytest.approx(view.depth_scale, rel=half_pixel)
    assert abs(seen.cx - canon.cx) <= 1.0 and abs(seen.cy - canon.cy) <= 1.0
    # and the smallest such canvas: the image touches it on at least one side
    assert min(view.padding) <= 1


def test_encoder_intrinsics_agree_with_the_pixels_view_to_encoder_moves():
    """A bright dot at input pixel (u, v) lands on the encoder pixel that encoder_intrinsics
    projects the same ray to."""
    intr = Intrinsics(500.0, 500.0, 300.0, 200.0, 640, 480)
    view = canonical_view(intr, KITTI, (224, 224))
    seen = view.encoder_intrinsics(intr)
    image = torch.zeros(1, 3, 480, 640)
    u, v = 500, 100
    image[..., v - 4 : v + 5, u - 4 : u + 5] = 1.0
    encoded = view_to_encoder(image, view, (224, 224), "bilinear_antialias")[0, 0]
    row, col = np.unravel_index(int(encoded.argmax()), encoded.shape)
    ray = ((u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy)
    assert abs(seen.fx * ray[0] + seen.cx - col) <= 1.0
    assert abs(seen.fy * ray[1] + seen.cy - row) <= 1.0
    # the canvas around the footprint repeats the image's edge pixels
    top, left, height, width = view.footprint
    assert left > 0 and top > 0
    assert torch.equal(encoded[:, :left], encoded[:, left : left + 1].expand(-1, left))
    assert torch.equal(encoded[:top], encoded[top].expand(top, -1))


def test_a_perfect_decoder_gives_the_input_cameras_metres_and_its_cloud():
    """Round trip of depth and cloud geometry: a decoder that reads the road exactly as the
    training camera would see it, mapped back by view_to_image, gives the input camera's own
    road depth, and back-projecting that with the input intrinsics puts the road 1.65 m below
    the camera (the depth image and the cloud stay in the input camera's frame)."""
    height_m = 1.65
    intr = Intrinsics(600.0, 600.0, 639.5, 359.5, 1280, 720)
    encoder = (224, 224)
    view = canonical_view(intr, KITTI, encoder)
    canon = crop_intrinsics(KITTI).scaled(encoder[1], encoder[0])
    rows = torch.arange(encoder[0], dtype=torch.float32)[:, None].expand(*encoder)
    below = (rows - canon.cy).clamp_min(1.0)
    decoder_depth = (height_m * canon.fy / below)[None, None]  # what the decoder learnt
    depth = view_to_image(decoder_depth, view, (intr.height, intr.width))[0, 0].numpy()
    v = np.arange(intr.height, dtype=np.float64)
    truth = height_m * intr.fy / np.maximum(v - intr.cy, 1.0)
    lower = v > intr.cy + 60  # away from the horizon, where 1/(v - cy) bends too fast
    np.testing.assert_allclose(depth[lower, 640], truth[lower], rtol=0.02)
    points = backproject(depth, intr)
    np.testing.assert_allclose(points[lower, :, 1], height_m, rtol=0.02)


def test_view_to_image_of_the_whole_canvas_is_the_plain_resize():
    depth = torch.rand(2, 1, 64, 64) * 20.0
    whole = CameraView((375, 1242), (64, 64), (0, 0, 64, 64), 1.0)
    out = view_to_image(depth, whole, (375, 1242))
    torch.testing.assert_close(out, resize_bilinear(depth, (375, 1242)), atol=1e-3, rtol=1e-4)
    assert torch.equal(
        view_to_image(depth, replace(whole, depth_scale=2.5), (375, 1242)), out * 2.5
    )


def test_a_view_that_cuts_the_image_gives_nan_there_and_checks_sizes():
    images = torch.rand(1, 3, 40, 80)
    # the footprint reaches 16 pixels past the canvas's right edge: the image's right fifth
    cut = CameraView((40, 80), (32, 64), (0, 0, 32, 80), 1.0)
    assert not cut.covers_image and cut.padding == (0, -16, 0, 0)
    assert view_to_encoder(images, cut, (32, 64), "bilinear_antialias").shape == (1, 3, 32, 64)
    depth = view_to_image(torch.ones(1, 1, 32, 64), cut, (40, 80))[0, 0]
    assert torch.isnan(depth[:, 64:]).all() and torch.isfinite(depth[:, :64]).all()
    with pytest.raises(ValueError, match="made for 80x40 images, got 81x40"):
        view_to_encoder(torch.rand(1, 3, 40, 81), cut, (32, 64), "bilinear_antialias")
    with pytest.raises(ValueError, match="encoder input"):
        view_to_encoder(images, cut, (64, 64), "bilinear_antialias")
    with pytest.raises(ValueError, match="depth_scale"):
        CameraView((40, 80), (32, 64), (0, 0, 32, 64), float("nan"))


def test_forward_without_view_is_unchanged_and_the_identity_view_matches_it(golden):
    """view=None is exactly the path the golden fixture was made with; a view of the whole
    canvas reproduces it (only the final bilinear resize is roi_align's)."""
    model = load_checkpoint(golden.checkpoint, backbone_weights=str(golden.backbone))
    assert model.config.camera is None  # the fixture predates the record: it still loads
    image = torch.from_numpy(golden.image.copy()).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        plain = model(image)[0, 0].numpy()
        whole = CameraView(golden.image.shape[:2], model.input_size, (0, 0, 64, 64), 1.0)
        viewed = model(image, view=whole)[0, 0].numpy()
    golden.assert_matches(plain)
    golden.assert_matches(viewed, atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="return_aux"):
        model(image, view=whole, return_aux=True)


def test_forward_with_a_view_maps_depth_to_the_input_grid():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    intr = Intrinsics(120.0, 120.0, 79.5, 59.5, 160, 120)
    view = canonical_view(intr, KITTI, model.input_size)
    image = torch.rand(2, 3, 120, 160)
    with torch.inference_mode():
        depth = model(image, view=view)
        half = model(image, output_size=(60, 80), view=view)
        encoded = view_to_encoder(image, view, model.input_size, "bilinear_antialias")
        raw = model(encoded)  # the encoder input as a plain image of encoder size
    assert depth.shape == (2, 1, 120, 160) and half.shape == (2, 1, 60, 80)
    assert torch.isfinite(depth).all()
    expected = view_to_image(raw, view, (120, 160))
    torch.testing.assert_close(depth, expected, atol=1e-4, rtol=1e-5)


def test_onnx_backend_with_a_view_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements/training.txt")
    from space_clip_ros.inference.onnx_runtime import OnnxSpaceClip
    from space_clip_ros.model.onnx_export import export_onnx

    torch.manual_seed(1)
    model = build_model(tiny_config()).eval()
    onnx = OnnxSpaceClip(export_onnx(model, tmp_path / "tiny.onnx"), torch.device("cpu"))
    intr = Intrinsics(400.0, 420.0, 300.0, 100.0, 640, 240)
    view = canonical_view(intr, KITTI, model.input_size)
    assert view.depth_scale != 1.0 and view.padding != (0, 0, 0, 0)
    image = torch.rand(1, 3, 240, 640)
    with torch.inference_mode():
        expected = model(image, output_size=(120, 320), view=view)
    got = onnx(image, output_size=(120, 320), view=view)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(onnx(image), model(image).detach(), atol=1e-4, rtol=1e-4)


def test_plan_view_assumes_the_training_camera_loudly_and_skips_old_checkpoints():
    plan = plan_view(KITTI, None, 1242, 375, (224, 224), fix="pass --camera-info FILE")
    assert plan.intrinsics == assumed_intrinsics(KITTI, 1242, 375)
    assert plan.intrinsics.fx == 721.5377 and plan.intrinsics.cx == 620.5
    assert (
        "assuming fx = 721.54 px" in plan.warning
        and "Fix: pass --camera-info FILE" in plan.warning
    )
    assert "KITTI recipe" in plan.warning
    assert plan.view == canonical_view(plan.intrinsics, KITTI, (224, 224))
    given = Intrinsics(600.0, 600.0, 639.5, 359.5, 1280, 720)
    plan = plan_view(KITTI, given, 1280, 720, (224, 224))
    assert plan.warning is None and plan.intrinsics is given
    old = plan_view(None, given, 1280, 720, (224, 224), source="ckpt/config.yaml")
    assert old.view is None and "ckpt/config.yaml: records no training camera" in old.warning
    with pytest.raises(ValueError, match="scale them to the image"):
        plan_view(KITTI, given, 640, 360, (224, 224))


def test_release_and_recipe_cameras():
    kitti = release_camera("kitti", (352, 704))
    # random 352x704 crops of the 1242x375 frame, flipped half the time
    assert kitti.crop_size == (352, 704) and kitti.focal == (721.5377, 721.5377)
    assert kitti.principal_point == (351.5, pytest.approx(172.854 - 11.5))
    nyu = release_camera("nyu", (480, 640))
    assert nyu.focal == (518.8579, 519.4696)
    assert nyu.principal_point == (319.5, pytest.approx(253.7362))
    # encoder focal lengths of the paper's 224x224 input (the 229 and 459)
    encoder = crop_intrinsics(kitti).scaled(224, 224)
    assert (round(encoder.fx, 1), round(encoder.fy, 1)) == (229.6, 459.2)


def test_checkpoint_records_the_camera_and_old_configs_still_load(tmp_path):
    config = tiny_config()
    config.camera = KITTI
    path = save_checkpoint(build_model(config), tmp_path / "ckpt")
    written = yaml.safe_load((path / "config.yaml").read_text())
    assert written["camera"] == {
        "crop_size": [352, 704],
        "focal": [721.5377, 721.5377],
        "principal_point": [351.5, 149.854],
        "source": "KITTI recipe",
    }
    assert load_checkpoint(path).config.camera == KITTI
    del written["camera"]  # a config from before the record
    (path / "config.yaml").write_text(yaml.safe_dump(written))
    assert load_checkpoint(path).config.camera is None


@pytest.mark.parametrize(
    "camera, message",
    [
        (
            {"crop_size": [352, 704], "focal": [721.5, 721.5]},
            "'camera.principal_point' is missing",
        ),
        (
            {"crop_size": [352, 704], "focal": [0.0, 721.5], "principal_point": [351.5, 150]},
            "camera.focal",
        ),
        (
            {"crop_size": [352, 704], "focal": [721.5, 721.5], "principal_point": [800, 150]},
            "camera.principal_point",
        ),
        ({"crop_size": [352, 704], "focl": 1}, "did you mean 'camera.focal'"),
    ],
)
def test_a_bad_camera_record_names_the_field(tmp_path, camera, message):
    data = tiny_config().to_dict()
    data["camera"] = camera
    with pytest.raises(ConfigError, match=message):
        SpaceClipConfig.from_dict(data, source="config.yaml")
    path = save_checkpoint(build_model(tiny_config()), tmp_path / "ckpt")
    (path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_depth_scale_is_the_focal_ratio_for_any_same_shaped_camera():
    for factor in (0.5, 0.75, 1.5, 2.0, 3.3):
        intr = replace(crop_intrinsics(KITTI), fx=721.5377 * factor, fy=721.5377 * factor)
        view = canonical_view(intr, KITTI, (224, 224))
        assert view.footprint == (0, 0, 224, 224)
        assert math.isclose(view.depth_scale, factor, rel_tol=1e-12)
