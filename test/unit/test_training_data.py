"""KITTI Eigen-split dataset on a generated mini tree in KITTI's exact on-disk layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from space_clip_ros.errors import run_tool
from space_clip_ros.io.depth_files import read_png16
from training.config import DataConfig
from training.datasets import DatasetError, KittiDepth, augment, read_filelist
from training.mini_datasets import KITTI_TEST_DRIVE, KITTI_TRAIN_DRIVE, make_mini_kitti
from training.mini_datasets import main as mini_datasets_main


@pytest.fixture
def mini(tmp_path):
    return make_mini_kitti(tmp_path / "kitti", n_train=4, n_test=2, size=(60, 160))


def data_cfg(mini, **overrides) -> DataConfig:
    cfg = DataConfig(
        root=str(mini.root),
        train_list=str(mini.train_list),
        val_list=str(mini.val_list),
        test_list=str(mini.test_list),
        crop_size=(48, 96),
        kb_crop=(56, 144),
        num_workers=0,
    )
    return dataclasses.replace(cfg, **overrides)


def test_layout_is_kittis(mini):
    assert (
        mini.root
        / "raw"
        / "2011_09_26"
        / KITTI_TRAIN_DRIVE
        / "image_02"
        / "data"
        / "0000000000.png"
    ).is_file()
    gt = (
        mini.root
        / "annotated"
        / "train"
        / KITTI_TRAIN_DRIVE
        / "proj_depth"
        / "groundtruth"
        / "image_02"
        / "0000000005.png"
    )
    assert np.asarray(Image.open(gt)).dtype == np.uint16
    assert (mini.root / "annotated" / "val" / KITTI_TEST_DRIVE).is_dir()
    depth = read_png16(gt)
    assert depth.max() < 80 and (depth == 0).mean() > 0.5  # metres, sparse


def test_train_items_are_augmented_crops_with_valid_masks(mini):
    ds = KittiDepth(data_cfg(mini), mini.train_list, train=True, seed=3)
    assert len(ds) == 4
    item = ds[1]
    assert item["image"].shape == (3, 48, 96) and item["image"].dtype == torch.float32
    assert item["depth"].shape == (1, 48, 96) and item["mask"].dtype == torch.bool
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert torch.equal(item["mask"], (item["depth"] > 1e-3) & (item["depth"] < 80))
    assert 0.1 < item["mask"].float().mean() < 0.5
    again = ds[1]
    assert torch.equal(item["image"], again["image"]), (
        "same (seed, epoch, index) must give the same sample"
    )
    ds.set_epoch(1)
    assert not torch.equal(item["image"], ds[1]["image"]), "a new epoch draws new augmentations"


def test_augment_without_randomness_is_a_plain_crop_and_photometric_range_holds():
    rng = np.random.default_rng(0)
    image = rng.random((56, 144, 3), dtype=np.float32)
    depth = rng.random((56, 144), dtype=np.float32) * 50
    cfg = DataConfig(
        crop_size=(56, 144), kb_crop=(56, 144), rotate_deg=0.0, hflip=False, color_prob=0.0
    )
    out_image, out_depth = augment(image, depth, cfg, np.random.default_rng(1))
    assert np.array_equal(out_image, image) and np.array_equal(out_depth, depth)
    jitter = dataclasses.replace(cfg, color_prob=1.0)
    flat = np.full((56, 144, 3), 0.5, dtype=np.float32)
    jittered, _ = augment(flat, depth, jitter, np.random.default_rng(2))
    ratio = jittered / 0.5  # = 0.5**(gamma-1) * brightness * colour, each factor in [0.9, 1.1]
    assert ratio.min() >= 0.9**2 * 0.5**0.1 - 1e-6 and ratio.max() <= 1.1**2 * 0.5**-0.1 + 1e-6
    rotated = dataclasses.replace(cfg, rotate_deg=1.0)
    _, rot_depth = augment(image, depth, rotated, np.random.default_rng(3))
    assert set(np.unique(rot_depth)) <= set(np.unique(depth)) | {0.0}, (
        "depth is rotated with nearest neighbour"
    )


def test_eval_items_are_kb_crops_with_native_ground_truth(mini):
    ds = KittiDepth(data_cfg(mini), mini.test_list, train=False)
    assert len(ds) == 2 and ds.no_gt == 1  # the 'None' line is a known gap, not an error
    item = ds[0]
    assert item["gt"].shape == (60, 160)
    top, left = item["box"].tolist()
    assert (top, left) == (60 - 56, (160 - 144) // 2)
    sample = ds.samples[0]
    raw = np.asarray(Image.open(sample.image), dtype=np.float32) / 255
    assert np.allclose(
        item["image"].numpy().transpose(1, 2, 0), raw[top : top + 56, left : left + 144]
    )


def test_old_bts_lists_without_the_date_folder_resolve(mini):
    lines = mini.train_list.read_text().splitlines()
    old = mini.root / "splits" / "old.txt"
    old.write_text("\n".join(line.split("/", 1)[1] for line in lines) + "\n")
    assert read_filelist(old, mini.root) == read_filelist(mini.train_list, mini.root)


def test_missing_files_fail_in_strict_mode_and_are_skipped_in_lenient_mode(mini):
    sample = read_filelist(mini.train_list, mini.root)[2]
    sample.depth.unlink()
    with pytest.raises(DatasetError) as info:
        KittiDepth(data_cfg(mini), mini.train_list, train=True)
    assert str(sample.depth) in str(info.value) and "strict=false" in str(info.value)
    lenient = KittiDepth(data_cfg(mini, strict=False), mini.train_list, train=True)
    assert len(lenient) == 3 and lenient.skipped == [str(sample.depth)]


def test_corrupt_files_fail_in_strict_mode_and_are_skipped_in_lenient_mode(mini):
    sample = read_filelist(mini.train_list, mini.root)[0]
    sample.image.write_bytes(b"not a png")
    strict = KittiDepth(data_cfg(mini), mini.train_list, train=True)
    with pytest.raises(DatasetError, match=str(sample.image)):
        strict[0]
    lenient = KittiDepth(data_cfg(mini, strict=False), mini.train_list, train=True)
    item = lenient[0]  # replaced by the next readable sample
    assert item["image"].shape == (3, 48, 96)
    assert lenient.skipped == [str(sample.image)]


def test_missing_list_names_the_fix(mini):
    with pytest.raises(DatasetError, match="prepare_kitti"):
        KittiDepth(data_cfg(mini), Path("splits/nope.txt"), train=True)


@pytest.mark.parametrize("dataset", ["kitti", "nyu"])
def test_cli_writes_a_dataset_and_refuses_a_used_folder(dataset, tmp_path, capsys):
    root = tmp_path / dataset
    argv = [dataset, str(root), "--train", "1", "--test", "1"]
    assert run_tool("mini", mini_datasets_main, argv) == 0
    assert (root / "splits").is_dir() and not (tmp_path / f"{dataset}.partial").exists()
    assert run_tool("mini", mini_datasets_main, argv) == 2
    assert "already exists" in capsys.readouterr().err
