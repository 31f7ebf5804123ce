"""The two KITTI evaluation protocols (standard, the release's reference) and selection by them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from space_clip_ros.io.depth_files import read_png16
from space_clip_ros.metrics import compute_metrics, valid_mask
from space_clip_ros.model import build_model, save_checkpoint
from space_clip_ros.model.config import ConfigError
from testing.tiny import tiny_config
from training.config import load_train_config
from training.datasets import collate_eval
from training.evaluate import (
    REFERENCE_SIZE,
    ReferenceProtocolItems,
    evaluate,
    main,
    make_eval_dataset,
    results_table,
)
from training.mini_datasets import make_mini_kitti
from training.train import Trainer

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_kitti(tmp_path_factory.mktemp("kitti"), n_train=2, n_test=2, n_val=1)


def cfg_for(mini, *overrides):
    return load_train_config(TINY, [f"data.root={mini.root}", *overrides])


class ConstantDepth(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.decoder = torch.nn.Linear(1, 1)
        self.value = value

    def forward(self, images):
        return torch.full((images.shape[0], 1, *images.shape[-2:]), self.value)


def test_reference_items_are_the_releases_352x704_frame_and_nearest_gt(mini):
    cfg = cfg_for(mini)
    items = make_eval_dataset(cfg.data, Path(cfg.data.test_list), "reference")
    assert isinstance(items, ReferenceProtocolItems) and len(items) == 2
    item, sample = items[0], items.samples[0]
    h, w = REFERENCE_SIZE
    with Image.open(sample.image) as img:
        expected = np.asarray(img.convert("RGB").resize((w, h), Image.BICUBIC)) / 255.0
    np.testing.assert_allclose(item["image"].numpy().transpose(1, 2, 0), expected, atol=1e-6)
    gt = read_png16(sample.depth)
    rows = (np.arange(h) + 0.5) * gt.shape[0] / h
    cols = (np.arange(w) + 0.5) * gt.shape[1] / w
    nearest = gt[rows.astype(int)][:, cols.astype(int)]
    np.testing.assert_array_equal(item["gt"].numpy(), nearest)
    assert item["box"].tolist() == [0, 0]


def test_reference_metrics_use_eigen_fractions_on_the_352x704_map(mini):
    cfg = cfg_for(mini)
    items = make_eval_dataset(cfg.data, Path(cfg.data.val_list), "reference")
    batch = {
        "image": torch.stack([items[0]["image"]]),
        "gt": [items[0]["gt"]],
        "box": torch.tensor([[0, 0]]),
    }
    got = evaluate(ConstantDepth(12.0), [batch], ("eigen",))["eigen"]
    gt = items[0]["gt"].numpy()
    expected = compute_metrics(np.full_like(gt, 12.0), gt, valid_mask(gt, crop="eigen"))
    assert got["abs_rel"] == pytest.approx(expected["abs_rel"])
    standard = evaluate(
        ConstantDepth(12.0),
        torch.utils.data.DataLoader(
            make_eval_dataset(cfg.data, Path(cfg.data.val_list), "standard"),
            batch_size=1,
            collate_fn=collate_eval,
        ),
        ("eigen",),
    )["eigen"]
    assert standard["abs_rel"] != pytest.approx(got["abs_rel"])  # different pixels, scales


def test_evaluate_cli_reports_the_protocol(mini, tmp_path, capsys):
    checkpoint = save_checkpoint(build_model(tiny_config()), tmp_path / "ckpt")
    out = tmp_path / "r.json"
    args = ["--checkpoint", str(checkpoint), "--config", str(TINY), "--device", "cpu"]
    args += ["--set", f"data.root={mini.root}", "--json", str(out)]
    assert main([*args, "--protocol", "reference"]) == 0
    report = json.loads(out.read_text())
    assert report["protocol"] == "reference" and list(report["metrics"]) == ["eigen"]
    # the test list by default (2 images; the validation list has 1)
    assert report["metrics"]["eigen"]["count"] == 2 and report["list"] == str(cfg_test_list(mini))
    assert main(args) == 0  # standard by default: eigen and garg
    report = json.loads(out.read_text())
    assert report["protocol"] == "standard" and list(report["metrics"]) == ["eigen", "garg"]
    printed = capsys.readouterr().out
    assert "protocol: standard" in printed


def cfg_test_list(mini) -> str:
    return cfg_for(mini).data.test_list


def test_evaluate_headlines_metric_depth_with_median_scaled_and_regions_beside(mini, tmp_path):
    """A scale error: the headline shows it, the labelled median-scaled row hides it."""
    out = tmp_path / "r.json"
    checkpoint = save_checkpoint(build_model(tiny_config()), tmp_path / "ckpt")
    args = ["--checkpoint", str(checkpoint), "--config", str(TINY), "--device", "cpu"]
    assert main([*args, "--set", f"data.root={mini.root}", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (
        report["scaling"].startswith("none: metric depth") and report["boundary_rule"] == "sparse"
    )
    eigen = report["metrics"]["eigen"]
    assert set(eigen["median_scaled"]) >= {"abs_rel", "rmse", "delta1"}
    assert eigen["median_scaled"]["abs_rel"] != eigen["abs_rel"]
    assert set(eigen["regions"]) == {
        f"{kind}_{t}" for kind in ("boundary", "interior") for t in ("0.03", "0.05", "0.10")
    }
    assert all(set(r) >= {"abs_rel", "images", "pixels"} for r in eigen["regions"].values())

    constant = ConstantDepth(12.0)
    loader = [
        {
            "image": torch.zeros(1, 3, 8, 8),
            "gt": [torch.full((8, 8), 6.0)],
            "box": torch.tensor([[0, 0]]),
        }
    ]
    results = evaluate(constant, loader, ("none",), boundary_rule="dense")["none"]
    assert results["abs_rel"] == pytest.approx(1.0)  # twice too far: metric AbsRel 1
    assert results["median_scaled"]["abs_rel"] == pytest.approx(0.0)  # the scale error hidden
    table = results_table({"none": results})
    rows = [line.split()[0:2] for line in table.splitlines()[1:]]
    assert rows[0] == ["none", "1.0000"] and rows[1][:1] == ["none"]
    assert table.splitlines()[2].startswith("none median-scaled")


def test_training_selects_by_the_configured_protocol(mini, tmp_path):
    trainer = Trainer(
        cfg_for(mini, f"run.out_dir={tmp_path}", "eval.protocol=reference", "run.ema_decay=0")
    )
    assert isinstance(trainer.val_loader.dataset, ReferenceProtocolItems)
    metrics = trainer.validate()
    assert (
        list(metrics["raw"]) == ["eigen"] and metrics["raw"]["eigen"]["count"] == 1
    )  # the validation drive
    with pytest.raises(ConfigError, match="eval.protocol.*reference.*nyu"):
        cfg_for(mini, "data.dataset=nyu", "eval.protocol=reference", "eval.crop=nyu")
    with pytest.raises(ConfigError, match="eval.protocol"):
        cfg_for(mini, "eval.protocol=paper")
