"""Training and the camera: the record a run writes into its checkpoints, and the focal-scale
augmentation that trains the same recorded camera (training/camera.py, training/datasets.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from space_clip_ros.errors import ConfigError
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.model import load_checkpoint
from space_clip_ros.model.canonical_camera import KITTI_FRAME, canonical_view
from space_clip_ros.model.config import CameraConfig
from training.camera import principal_anchor, record_camera, training_camera
from training.config import DataConfig, load_train_config
from training.datasets import augment, zoom_crop
from training.mini_datasets import make_mini_kitti
from training.train import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_the_recipes_record_their_crops_camera():
    kitti = training_camera(load_train_config(CONFIGS / "kitti.yaml").data)
    # KB crop: the bottom 352 rows of the 375-row frame; random 352x704 crops, flipped
    assert kitti.crop_size == (352, 704) and kitti.focal == (721.5377, 721.5377)
    assert kitti.principal_point == (351.5, pytest.approx(172.854 - 23))
    nyu = training_camera(load_train_config(CONFIGS / "nyu.yaml").data)
    # the valid box [45:472, 43:608], then random 416x544 crops inside it, flipped
    assert nyu.crop_size == (416, 544) and nyu.focal == (518.8579, 519.4696)
    assert nyu.principal_point == (271.5, pytest.approx(253.7362 - 45 - (427 - 416) / 2))
    unflipped = training_camera(dataclasses.replace(DataConfig(), hflip=False))
    assert unflipped.principal_point[0] == pytest.approx(609.5593 - 13 - (1216 - 704) / 2)
    other = training_camera(
        dataclasses.replace(DataConfig(), intrinsics=[700.0, 710.0, 600.0, 180.0, 1216, 360])
    )
    assert other.focal == (700.0, 710.0) and other.principal_point[1] == pytest.approx(172.0)


def test_the_trainer_owns_model_camera(tmp_path):
    cfg = load_train_config(CONFIGS / "kitti.yaml")
    record_camera(cfg, "kitti.yaml")
    first = cfg.model.camera
    # a train_config.yaml read back holds the same record: accepted
    written = tmp_path / "train_config.yaml"
    written.write_text(yaml.safe_dump(cfg.to_dict()))
    again = load_train_config(written)
    record_camera(again, str(written))
    assert again.model.camera == first
    # a record that contradicts the data section is refused, naming the field and the fix
    again.data.crop_size = (352, 1216)
    with pytest.raises(ConfigError, match=r"model\.camera: is .*Fix: remove model\.camera"):
        record_camera(again, str(written))


@pytest.mark.parametrize(
    "override, field",
    [
        ("data.focal_scale=[2.0, 0.5]", "data.focal_scale"),
        ("data.focal_scale=[0, 2]", "data.focal_scale"),
        ("data.intrinsics=[700, 700, 600, 180]", "data.intrinsics"),
        ("data.intrinsics=[700, 700, 600, 180, 1216.5, 352]", "data.intrinsics"),
    ],
)
def test_bad_camera_options_fail_at_start(override, field):
    with pytest.raises(ConfigError, match=field):
        load_train_config(CONFIGS / "kitti.yaml", [override])


def _frame(height: int = 40, width: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.random((height, width, 3), dtype=np.float32)
    depth = rng.uniform(1.0, 50.0, (height, width)).astype(np.float32)
    return image, depth


def test_zoom_in_shows_a_smaller_window_with_depth_divided_by_the_scale():
    image, depth = _frame()
    out_image, out_depth = zoom_crop(image, depth, (20, 40), (2.0, 2.0), np.random.default_rng(4))
    assert out_image.shape == (20, 40, 3) and out_depth.shape == (20, 40)
    # a 10x20 window upsampled x2: every output depth is a frame depth / 2 (nearest neighbour)
    assert set(np.unique(out_depth * 2.0)) <= set(np.unique(depth))
    assert len(np.unique(out_depth)) <= 10 * 20
    assert out_depth.min() > 0  # the window lies inside the frame: no padding


def test_zoom_out_pads_like_inference_and_leaves_no_ground_truth_there():
    image, depth = _frame()
    out_image, out_depth = zoom_crop(image, depth, (40, 80), (0.5, 0.5), np.random.default_rng(5))
    # an 80x160 window around the 40x80 frame, shrunk to 40x80: the frame fills a quarter
    padded = out_depth == 0
    assert padded.mean() == pytest.approx(0.75, abs=0.05)
    assert set(np.unique(out_depth[~padded] * 0.5)) <= set(np.unique(depth))
    # the padding repeats the frame's edge pixels, as inference's view does (PAD_MODE):
    # constant down each column above and below the frame, varying along it
    rows = np.flatnonzero(~padded.all(axis=1))
    top, bottom = rows[0], rows[-1]
    assert top + (39 - bottom) >= 18
    for band in (out_image[: top - 1], out_image[bottom + 2 :]):
        if len(band):
            assert np.ptp(band, axis=0).max() < 1e-6 and np.ptp(band[0], axis=0).max() > 0.1


def _frame_rows(out_depth: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(~(out_depth == 0).all(axis=1))
    return int(rows[0]), int(rows[-1])


def test_zoom_out_puts_the_principal_point_where_inference_puts_it():
    """KITTI's rows: the KB crop and the training crops share them, so a zoomed-out window
    holds the frame exactly where canonical_view puts the image of a camera that sees more (the
    horizon on the crops' row), whatever the seed; across the frame the place varies as plain
    crops do."""
    image, depth = _frame(40, 120)
    camera = CameraConfig(
        crop_size=(40, 80), focal=(100.0, 100.0), principal_point=(39.5, 11.5), source="test"
    )  # a crop's principal point 12 of 40 rows down (pixel edges), on its centre line (flips)
    anchor = principal_anchor(camera)
    assert anchor == (0.3, 0.5)
    lefts = set()
    for seed in range(20):
        _, out = zoom_crop(image, depth, (40, 80), (0.5, 0.5), np.random.default_rng(seed), anchor)
        # an 80-row window whose row 0.3 * 80 = 24 is the frame's row 12: the frame spans
        # window rows 12..51, output rows 6..25
        assert _frame_rows(out) == (6, 25)
        lefts.add(int(np.flatnonzero(~(out == 0).all(axis=0))[0]))
    assert len(lefts) > 5  # random across, as plain random crops are
    # inference: the whole 120x40 frame through a camera with 2/3 the crops' focal length in
    # encoder pixels lands in rows 4..30 of the 40-row canvas; a 2/3 zoom puts it there too
    seen = canonical_view(Intrinsics(50.0, 50.0, 59.5, 11.5, 120, 40), camera, (40, 80))
    top, _, height, _ = seen.footprint
    assert (top, height) == (4, 27)
    _, out = zoom_crop(image, depth, (40, 80), (2 / 3, 2 / 3), np.random.default_rng(0), anchor)
    assert _frame_rows(out) == (top, top + height - 1)


def test_focal_scale_draws_log_uniform_scales_and_is_off_by_default():
    image, depth = _frame(88, 304)
    scales = []
    for seed in range(200):
        _, out = zoom_crop(image, depth, (88, 176), (0.5, 2.0), np.random.default_rng(seed))
        window = out[out > 0]
        scales.append(np.median(depth) / np.median(window))  # ~ s, the depth divisor
    logs = np.log(scales)
    assert logs.min() < np.log(0.6) and logs.max() > np.log(1.7)
    assert abs(np.median(logs)) < 0.15  # centred on the recorded camera
    cfg = DataConfig(crop_size=(88, 176), kb_crop=(88, 304))
    assert cfg.focal_scale == (1.0, 1.0)
    # off: augment draws exactly the plain random crop it always drew
    plain = augment(image, depth, cfg, np.random.default_rng(9))
    ones = augment(
        image, depth, dataclasses.replace(cfg, focal_scale=(1.0, 1.0)), np.random.default_rng(9)
    )
    assert all(np.array_equal(a, b) for a, b in zip(plain, ones))
    zoomed = augment(
        image, depth, dataclasses.replace(cfg, focal_scale=(0.5, 2.0)), np.random.default_rng(9)
    )
    assert zoomed[0].shape == plain[0].shape and not np.array_equal(zoomed[1], plain[1])


def test_a_training_run_writes_the_camera_into_every_checkpoint(tmp_path):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=4, n_test=2, size=(60, 160))
    frame = [180.0, 180.0, 79.5, 25.0, 160, 60]
    cfg = load_train_config(
        CONFIGS / "tiny.yaml",
        [
            f"data.root={mini.root}",
            f"run.out_dir={tmp_path / 'run'}",
            f"data.intrinsics={frame}",
            "data.focal_scale=[0.5, 2.0]",
            "optim.epochs=1",
        ],
    )
    Trainer(cfg).fit()
    expected = training_camera(cfg.data)
    # the tiny recipe: 48x96 crops of the 56x144 KB crop of 160x60 frames
    assert expected.crop_size == (48, 96) and expected.principal_point == (47.5, 25.0 - 4 - 4)
    for name in ("last", "last_ema", "best", "best_ema"):
        assert load_checkpoint(tmp_path / "run" / "checkpoints" / name).config.camera == expected
    resolved = load_train_config(tmp_path / "run" / "train_config.yaml")
    assert resolved.model.camera == expected
    assert principal_anchor(expected) == (pytest.approx(17.5 / 48), 0.5)


def test_without_intrinsics_the_calibration_follows_the_frames_size(tmp_path):
    """A mini dataset's 160x60 frames get KITTI's calibration scaled to 160x60 (the record of
    the default recipe would put the principal point outside their crops); declared
    intrinsics must be those of the frames."""
    mini = make_mini_kitti(tmp_path / "kitti", n_train=2, n_test=1, size=(60, 160))
    overrides = [f"data.root={mini.root}", f"run.out_dir={tmp_path / 'run'}", "optim.batch_size=2"]
    trainer = Trainer(load_train_config(CONFIGS / "tiny.yaml", overrides))
    scaled = KITTI_FRAME.scaled(160, 60)
    camera = trainer.model.config.camera
    assert camera.focal == (scaled.fx, scaled.fy) and camera.crop_size == (48, 96)
    assert camera.principal_point[1] == pytest.approx(scaled.cy - 4 - 4)
    wrong = [*overrides, "data.intrinsics=[180.0, 180.0, 79.5, 25.0, 1242, 375]"]
    with pytest.raises(ConfigError, match=r"data\.intrinsics: is for 1242x375 frames.*160x60"):
        Trainer(load_train_config(CONFIGS / "tiny.yaml", wrong))
