"""NYU Depth v2 (BTS/AdaBins format) on a generated mini tree.

Reading, crops, bad files, training, evaluation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from space_clip_ros.metrics import compute_metrics, crop_mask, valid_mask
from training import evaluate as evaluate_tool
from training.config import ConfigError, DataConfig, load_train_config
from training.datasets import DatasetError, NyuDepth, collate_eval, make_dataset, read_nyu_filelist
from training.mini_datasets import make_mini_nyu
from training.train import Trainer

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.yaml"
NYU_YAML = REPO / "training" / "configs" / "nyu.yaml"
# nyu.yaml's lists, which the mini dataset writes: training minus the held-out scene group, the
# validation group, the test split
NYU_LISTS = load_train_config(NYU_YAML).data
NYU_TRAIN_LIST, NYU_VAL_LIST, NYU_TEST_LIST = (
    NYU_LISTS.train_list,
    NYU_LISTS.val_list,
    NYU_LISTS.test_list,
)
# tiny.yaml is a KITTI recipe; these turn it into NYU's (what configs/nyu.yaml sets).
TINY_NYU = [
    "data.dataset=nyu",
    f"data.train_list={NYU_TRAIN_LIST}",
    f"data.val_list={NYU_VAL_LIST}",
    f"data.test_list={NYU_TEST_LIST}",
    "data.crop_size=[416,544]",
    "data.rotate_deg=2.5",
    "data.max_depth=10",
    "eval.crop=nyu",
]
NO_AUGMENT = [
    "data.rotate_deg=0",
    "data.color_prob=0",
    "data.hflip=false",
    "model.decoder.dropout=0",
]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_nyu(tmp_path_factory.mktemp("nyu"), n_train=4, n_test=2)


def nyu_cfg(mini, **overrides) -> DataConfig:
    data = load_train_config(NYU_YAML, [f"data.root={mini.root}", "data.num_workers=0"]).data
    return dataclasses.replace(data, **overrides)


def raw_mm(path: Path) -> np.ndarray:
    raw = np.asarray(Image.open(path))
    assert raw.dtype == np.uint16
    return raw.astype(np.float64)


def test_lists_resolve_to_the_bts_layout(mini):
    train = read_nyu_filelist(mini.train_list, mini.root)
    assert train[0].image == mini.root / "sync" / "bedroom_0004" / "rgb_00045.jpg"
    assert train[0].depth == mini.root / "sync" / "bedroom_0004" / "sync_depth_00045.png"
    assert train[0].focal == pytest.approx(518.8579)
    assert (
        mini.train_list == mini.root / NYU_TRAIN_LIST
        and mini.test_list == mini.root / NYU_TEST_LIST
    )
    assert mini.val_list == mini.root / NYU_VAL_LIST
    val = read_nyu_filelist(mini.val_list, mini.root)
    assert {s.image.parent.name for s in val} == {"bedroom_0016a", "bedroom_0016b"}
    test = read_nyu_filelist(mini.test_list, mini.root)
    assert test[0].image == mini.root / "official_splits" / "test" / "kitchen" / "rgb_00001.jpg"
    assert all(s.image.is_file() and s.depth.is_file() for s in train + test)


def test_eval_items_are_full_frames_with_metric_depth_and_the_nyu_crop(mini):
    ds = make_dataset(nyu_cfg(mini), Path(NYU_TEST_LIST), train=False)
    assert isinstance(ds, NyuDepth) and len(ds) == 2
    item = ds[0]
    assert item["image"].shape == (3, 480, 640) and item["box"].tolist() == [0, 0]
    mm = raw_mm(ds.samples[0].depth)
    assert np.allclose(item["gt"].numpy(), mm / 1000.0, atol=1e-6), "depth PNG is millimetres"
    gt = item["gt"].numpy()
    assert (gt == 0).any() and (gt > 10).any() and 0.5 < gt[gt > 0].min() and gt.max() < 13
    mask = valid_mask(gt, 1e-3, 10.0, "nyu")
    assert (
        not mask[:45].any()
        and not mask[471:].any()
        and not mask[:, :41].any()
        and not mask[:, 601:].any()
    )
    assert mask.sum() == ((gt > 1e-3) & (gt < 10) & crop_mask(480, 640, "nyu")).sum()


def test_train_items_are_valid_box_crops_with_masks(mini):
    plain = nyu_cfg(mini, crop_size=(427, 565), rotate_deg=0.0, hflip=False, color_prob=0.0)
    ds = NyuDepth(plain, Path(NYU_TRAIN_LIST), train=True, seed=1)
    item = ds[0]
    mm = raw_mm(ds.samples[0].depth)[45:472, 43:608]  # the valid box (blank border dropped)
    assert item["depth"].shape == (1, 427, 565)
    assert np.allclose(item["depth"][0].numpy(), mm / 1000.0, atol=1e-6)
    depth = item["depth"]
    assert torch.equal(item["mask"], (depth > 1e-3) & (depth < 10))
    assert not item["mask"][depth == 0].any() and not item["mask"][depth > 10].any()
    assert (depth > 10).any() and (depth == 0).any()  # the cap and the holes both apply

    ds = NyuDepth(
        nyu_cfg(mini), Path(NYU_TRAIN_LIST), train=True, seed=1
    )  # the recipe: rotation, crop, flip, colour
    item = ds[2]
    assert item["image"].shape == (3, 416, 544) and item["depth"].shape == (1, 416, 544)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert torch.equal(item["mask"], (item["depth"] > 1e-3) & (item["depth"] < 10))
    assert torch.equal(item["image"], ds[2]["image"]), "same (seed, epoch, index), same sample"


def test_config_defaults_and_validation():
    cfg = load_train_config(NYU_YAML)
    assert (cfg.data.dataset, cfg.data.max_depth, cfg.eval.crop) == ("nyu", 10.0, "nyu")
    assert cfg.data.crop_size == (416, 544) and cfg.data.rotate_deg == 2.5
    assert load_train_config(REPO / "training" / "configs" / "kitti.yaml").data.dataset == "kitti"
    with pytest.raises(ConfigError, match="data.dataset"):
        load_train_config(NYU_YAML, ["data.dataset=nyuv2"])
    with pytest.raises(ConfigError, match="nyu_valid_box"):
        load_train_config(NYU_YAML, ["data.crop_size=[448,544]"])


def nyu_train_config(root: Path) -> DataConfig:
    """The training data config of a mini NYU tree, strict (the default)."""
    return DataConfig(
        dataset="nyu",
        root=str(root),
        train_list=NYU_TRAIN_LIST,
        crop_size=(416, 544),
        max_depth=10.0,
        num_workers=0,
    )


def test_missing_files_fail_in_strict_mode_and_are_skipped_in_lenient_mode(mini, tmp_path):
    root = make_mini_nyu(tmp_path / "nyu", n_train=3, n_test=1).root
    sample = read_nyu_filelist(root / NYU_TRAIN_LIST, root)[1]
    sample.depth.unlink()
    cfg = nyu_train_config(root)
    with pytest.raises(DatasetError) as info:
        make_dataset(cfg, Path(NYU_TRAIN_LIST), train=True)
    assert (
        str(sample.depth) in str(info.value)
        and "official_splits" in str(info.value)
        and "strict=false" in str(info.value)
    )
    lenient = make_dataset(
        dataclasses.replace(cfg, strict=False), Path(NYU_TRAIN_LIST), train=True
    )
    assert len(lenient) == 2 and lenient.skipped == [str(sample.depth)]
    with pytest.raises(DatasetError, match="nyudepthv2"):
        make_dataset(cfg, Path("splits/nope.txt"), train=True)


def test_corrupt_and_wrong_size_files_fail_in_strict_mode_and_are_skipped_in_lenient_mode(
    tmp_path,
):
    root = make_mini_nyu(tmp_path / "nyu", n_train=3, n_test=1).root
    samples = read_nyu_filelist(root / NYU_TRAIN_LIST, root)
    samples[0].image.write_bytes(b"not a jpeg")
    Image.fromarray(np.full((240, 320), 1500, dtype=np.uint16)).save(
        samples[1].depth
    )  # a half-size depth map
    cfg = nyu_train_config(root)
    strict = make_dataset(cfg, Path(NYU_TRAIN_LIST), train=True)
    with pytest.raises(DatasetError, match=str(samples[0].image)):
        strict[0]
    with pytest.raises(DatasetError, match="is \\(480, 640\\)"):
        strict[1]
    lenient = make_dataset(
        dataclasses.replace(cfg, strict=False), Path(NYU_TRAIN_LIST), train=True
    )
    assert lenient[0]["image"].shape == (3, 416, 544)  # samples 0 and 1 replaced by sample 2
    assert lenient.skipped == [str(samples[0].image), str(samples[1].image)]


@pytest.mark.slow
def test_a_few_steps_on_mini_nyu_reduce_the_loss(mini, tmp_path):
    cfg = load_train_config(
        TINY,
        [
            f"data.root={mini.root}",
            f"run.out_dir={tmp_path}",
            *TINY_NYU,
            "optim.batch_size=4",
            "optim.lr=1e-2",
            "optim.epochs=100",
            *NO_AUGMENT,
        ],
    )
    trainer = Trainer(cfg)
    batch = next(iter(trainer.loader))
    assert batch["depth"].shape == (4, 1, 416, 544)
    losses = [trainer.train_step(batch)[0].total.item() for _ in range(8)]
    # Adam's first step at lr 1e-2 may overshoot by a hair; from then on every step must help
    assert all(b < a for a, b in zip(losses[1:], losses[2:])), losses
    assert losses[-1] < 0.95 * losses[0], losses


@pytest.mark.slow
def test_evaluate_on_mini_nyu_uses_the_nyu_crop_and_10m_cap(mini, tmp_path):
    out = tmp_path / "run"
    Trainer(
        load_train_config(
            TINY, [f"data.root={mini.root}", f"run.out_dir={out}", *TINY_NYU, "optim.epochs=1"]
        )
    ).fit()
    report_path = tmp_path / "eval.json"
    rc = evaluate_tool.main(
        [
            "--checkpoint",
            str(out / "checkpoints" / "last"),
            "--config",
            str(TINY),
            "--device",
            "cpu",
            "--json",
            str(report_path),
            "--set",
            f"data.root={mini.root}",
            "--set",
            "data.num_workers=0",
            *[arg for o in TINY_NYU for arg in ("--set", o)],
        ]
    )
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert (
        report["dataset"] == "nyu"
        and report["max_depth"] == 10.0
        and list(report["metrics"]) == ["nyu"]
    )
    metrics = report["metrics"]["nyu"]
    assert metrics["count"] == 2 and np.isfinite(metrics["abs_rel"])

    # the same numbers by hand: full-frame prediction, Eigen NYU crop, pixels in (1e-3, 10) m
    from space_clip_ros.model import load_checkpoint

    model = load_checkpoint(out / "checkpoints" / "last", device="cpu")
    cfg = load_train_config(TINY, [f"data.root={mini.root}", "data.num_workers=0", *TINY_NYU])
    loader = DataLoader(
        make_dataset(cfg.data, Path(NYU_TEST_LIST), train=False),
        batch_size=2,
        collate_fn=collate_eval,
    )
    batch = next(iter(loader))
    pred = evaluate_tool.predict(model, batch["image"], flip_tta=False).numpy()[:, 0]
    abs_rel = [
        compute_metrics(p, g.numpy(), valid_mask(g.numpy(), 1e-3, 10.0, "nyu"), 1e-3, 10.0)[
            "abs_rel"
        ]
        for p, g in zip(pred, batch["gt"])
    ]
    assert metrics["abs_rel"] == pytest.approx(np.mean(abs_rel), rel=1e-5)
