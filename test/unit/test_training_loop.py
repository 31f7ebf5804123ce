"""The trainer end to end on CPU: tiny model, generated mini KITTI, real files, real torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from space_clip_ros.inference import TorchEstimator
from space_clip_ros.model import load_checkpoint
from training.config import load_train_config
from training.datasets import KittiDepth, collate_eval
from training.evaluate import evaluate
from training.mini_datasets import make_mini_kitti
from training.train import Trainer, lr_factor

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.yaml"
NO_AUGMENT = [
    "data.rotate_deg=0",
    "data.color_prob=0",
    "data.hflip=false",
    "model.decoder.dropout=0",
]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_kitti(tmp_path_factory.mktemp("kitti"), n_train=4, n_test=2)


def tiny_cfg(mini, out: Path, *overrides: str):
    return load_train_config(TINY, [f"data.root={mini.root}", f"run.out_dir={out}", *overrides])


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def test_schedule_warms_up_linearly_then_decays_to_min_lr():
    factors = [lr_factor(s, total=100, warmup=5, base_lr=1e-4, min_lr=1e-6) for s in range(100)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factors[5] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[5:], factors[6:]))
    assert factors[-1] * 1e-4 == pytest.approx(
        1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + np.cos(np.pi * 94 / 95))
    )


def test_a_few_steps_reduce_the_loss(mini, tmp_path):
    trainer = Trainer(
        tiny_cfg(
            mini, tmp_path, "optim.batch_size=4", "optim.lr=1e-2", "optim.epochs=100", *NO_AUGMENT
        )
    )
    batch = next(iter(trainer.loader))
    losses = [trainer.train_step(batch)[0].total.item() for _ in range(8)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.95 * losses[0], losses


@pytest.mark.slow
def test_overfitting_four_images_halves_abs_rel(mini, tmp_path):
    cfg = tiny_cfg(
        mini,
        tmp_path,
        "optim.batch_size=4",
        "optim.lr=3e-2",
        "optim.max_steps=60",
        "optim.epochs=1000",
        "eval.every_epochs=100000",
        "run.image_every=0",
        "run.ema_decay=0",
        *NO_AUGMENT,
    )
    trainer = Trainer(cfg)
    train_eval = DataLoader(
        KittiDepth(cfg.data, mini.train_list, train=False),
        batch_size=4,
        collate_fn=collate_eval,
    )
    before = evaluate(trainer.model, train_eval)["eigen"]["abs_rel"]
    trainer.fit()
    after = evaluate(trainer.model, train_eval)["eigen"]["abs_rel"]
    assert after < 0.5 * before, (before, after)


@pytest.mark.slow
def test_resume_reproduces_the_following_steps_exactly(mini, tmp_path):
    base = ["optim.epochs=3", "run.image_every=2"]  # augmentation, dropout and EMA all on
    straight = tmp_path / "straight"
    Trainer(tiny_cfg(mini, straight, *base)).fit()
    split = tmp_path / "split"
    Trainer(tiny_cfg(mini, split, *base, "run.stop_after=3")).fit()  # stops mid-epoch 1
    assert len(history(split)) == 3
    Trainer(tiny_cfg(mini, split, *base, "run.resume=auto")).fit()
    a, b = history(straight), history(split)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in b] == [r["loss"] for r in a], (
        "resumed losses must match bit for bit"
    )
    for name in ("last", "last_ema"):
        wa = load_file(straight / "checkpoints" / name / "decoder.safetensors")
        wb = load_file(split / "checkpoints" / name / "decoder.safetensors")
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name


def test_training_checkpoint_loads_and_drives_the_depth_estimator(mini, tmp_path):
    Trainer(tiny_cfg(mini, tmp_path, "optim.epochs=1")).fit()
    for name in ("last", "last_ema", "best", "best_ema"):
        assert (tmp_path / "checkpoints" / name / "decoder.safetensors").is_file(), name
    model = load_checkpoint(tmp_path / "checkpoints" / "best_ema")
    estimator = TorchEstimator(model, device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (60, 160, 3), dtype=np.uint8)
    depth = estimator.predict(image)
    assert depth.shape == (60, 160) and depth.dtype == np.float32 and np.isfinite(depth).all()


@pytest.mark.slow
def test_torchrun_two_processes_train_and_rank0_saves_once(mini, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "training.train",
        "--config",
        str(TINY),
        "--set",
        f"data.root={mini.root}",
        "--set",
        f"run.out_dir={out}",
        "--set",
        "optim.epochs=1",
        "--set",
        "optim.batch_size=2",
    ]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=150)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "2 ranks x 1 = batch 2" in output
    assert output.count("saved checkpoint at step 2") == 1, output[-4000:]
    assert [r["step"] for r in history(out)] == [1, 2], "only rank 0 logs"
    assert torch.load(out / "state_last.pt", weights_only=True)["world_size"] == 2
    load_checkpoint(out / "checkpoints" / "last")


def test_training_tools_exit_2_on_a_config_error(tmp_path):
    """One rule in every tool (space_clip_ros.errors): a bad config exits 2, before any work."""
    from training.evaluate import main as evaluate_main
    from training.export import main as export_main
    from training.train import main as train_main

    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  max_stepz: 3\n")  # misspelt field
    assert train_main(["--config", str(bad)]) == 2
    assert evaluate_main(["--config", str(bad), "--checkpoint", str(tmp_path)]) == 2
    assert export_main(["--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


def test_training_config_is_read_with_the_guarded_reader(tmp_path):
    """Aliases (YAML bombs) and empty files are refused in training configs as in config.yaml."""
    from training.config import ConfigError, load_train_config

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [1, 1]\nb: [*a, *a]\n")
    with pytest.raises(ConfigError, match="alias"):
        load_train_config(bomb)
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_train_config(empty)


def test_evaluate_checks_the_device_like_every_tool(tmp_path, capsys):
    """runtime.resolve_device, not torch.device: a bad device is exit 2 naming the flag."""
    from training.evaluate import main as evaluate_main

    config = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"
    args = ["--config", str(config), "--checkpoint", str(tmp_path)]
    assert evaluate_main([*args, "--device", "gpu0"]) == 2
    assert "--device: unknown device 'gpu0'" in capsys.readouterr().err
