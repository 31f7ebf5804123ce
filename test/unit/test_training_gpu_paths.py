"""The trainer's GPU-only paths, shown on CPU: precision choice, SyncBatchNorm, loss scaler and
RNG resume, CUDA backend flags, persistent workers and DDP's every-parameter-used requirement."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from space_clip_ros.model import build_model
from space_clip_ros.model.config import ConfigError
from testing.tiny import tiny_config
from training import state as training_state
from training.config import LossConfig, load_train_config
from training.datasets import KittiDepth
from training.losses import depth_loss
from training.mini_datasets import make_mini_kitti
from training.train import (
    ResumableSampler,
    amp_dtype_for,
    configure_cuda_backends,
    loader_options,
    sync_batchnorm,
)

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.yaml"
CUDA0 = torch.device("cuda", 0)


def test_short_aux_weights_are_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"loss.aux_weights.*1 weights.*aux_heads is 3.*Fix"):
        load_train_config(TINY, ["loss.aux_weights=[0.1]"])
    with pytest.raises(ConfigError, match="loss.aux_weights"):
        load_train_config(TINY, ["model.decoder.aux_heads=2"])
    cfg = load_train_config(TINY, ["model.decoder.aux_heads=2", "loss.aux_weights=[0.1, 0.0]"])
    assert cfg.loss.aux_weights == [0.1, 0.0]


def test_every_decoder_parameter_gets_a_gradient_as_ddp_requires():
    """DDP without find_unused_parameters fails on a parameter outside the graph: zero-weight aux
    terms must still be in it."""
    torch.manual_seed(0)
    model = build_model(tiny_config(dropout=0.0)).train()
    pred, aux = model(torch.rand(2, 3, 32, 64), return_aux=True)
    gt = torch.rand(2, 1, 32, 64) * 20 + 1
    terms = depth_loss(pred, aux, gt, gt > 0, LossConfig(aux_weights=[0.1, 0.0, 0.0]))
    terms.total.backward()
    unused = [n for n, p in model.decoder.named_parameters() if p.grad is None]
    assert unused == []


def test_precision_comes_from_the_runtime_capability_check_not_is_bf16_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))  # T4
    assert amp_dtype_for("auto", CUDA0) == torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))  # A100
    assert amp_dtype_for("auto", CUDA0) == torch.bfloat16
    assert amp_dtype_for("fp16", CUDA0) == torch.float16
    assert amp_dtype_for("fp32", CUDA0) is None
    assert amp_dtype_for("auto", torch.device("cpu")) is None  # CPU trains in fp32


def test_syncbatchnorm_under_multi_gpu_ddp_only(caplog):
    def count(module: nn.Module, kind: type) -> int:
        return sum(isinstance(m, kind) for m in module.modules())

    decoder = build_model(tiny_config()).decoder
    bns = count(decoder, nn.BatchNorm2d)
    assert bns > 0
    assert sync_batchnorm(decoder, 1, CUDA0) is decoder and count(decoder, nn.SyncBatchNorm) == 0
    with caplog.at_level(logging.WARNING):
        assert sync_batchnorm(decoder, 2, torch.device("cpu")) is decoder
    assert "SyncBatchNorm needs CUDA" in caplog.text and count(decoder, nn.SyncBatchNorm) == 0
    keys = set(decoder.state_dict())
    synced = sync_batchnorm(decoder, 2, CUDA0)  # conversion itself needs no GPU
    assert count(synced, nn.SyncBatchNorm) == bns and count(synced, nn.BatchNorm2d) == 0
    assert set(synced.state_dict()) == keys  # checkpoints keep their names


def test_fp16_resume_from_a_bf16_or_fp32_state_with_empty_scaler_state():
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # stands in for the CUDA fp16 scaler
    with pytest.raises(RuntimeError, match="empty"):
        scaler.load_state_dict({})  # what resume used to call
    training_state.restore_scaler(scaler, {}, "state_last.pt")
    assert scaler.get_scale() == 65536.0
    other = torch.amp.GradScaler("cpu", enabled=True, init_scale=128.0)
    training_state.restore_scaler(scaler, other.state_dict(), "state_last.pt")
    assert scaler.get_scale() == 128.0
    disabled = torch.amp.GradScaler("cpu", enabled=False)  # bf16 run resuming an fp16 state
    training_state.restore_scaler(disabled, other.state_dict(), "state_last.pt")


def test_cuda_rng_restored_per_visible_device(monkeypatch, caplog):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(
        torch.cuda, "set_rng_state_all", lambda s: pytest.fail("fails with fewer GPUs")
    )
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: restored.append((s, i)))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [])
    state = training_state.capture_rng()
    state["cuda"] = [torch.zeros(4, dtype=torch.uint8), torch.ones(4, dtype=torch.uint8)]
    with caplog.at_level(logging.WARNING):
        training_state.restore_rng(state)
    assert [i for _, i in restored] == [0] and torch.equal(restored[0][0], state["cuda"][0])
    assert "saved for 2 device(s), 1 visible" in caplog.text


def test_cuda_backend_flags():
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    try:
        torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        configure_cuda_backends()
        assert torch.backends.cudnn.benchmark
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        (
            torch.backends.cudnn.benchmark,
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
        ) = saved


def test_persistent_workers_see_each_epoch(tmp_path):
    """A persistent worker keeps its dataset copy: the epoch that seeds the augmentation must
    come with the indices, or every epoch would repeat the first one's crops."""
    assert loader_options(2, torch.device("cpu"))["persistent_workers"]
    assert not loader_options(0, torch.device("cpu"))["persistent_workers"]
    mini = make_mini_kitti(tmp_path, n_train=2, n_test=1)
    cfg = load_train_config(TINY, [f"data.root={mini.root}"]).data
    dataset = KittiDepth(cfg, mini.train_list, train=True, seed=3)
    sampler = ResumableSampler(DistributedSampler(dataset, 1, 0, shuffle=False), 1)
    loader = DataLoader(
        dataset, batch_size=1, sampler=sampler, **loader_options(1, torch.device("cpu"))
    )
    seen = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen.append([b["image"] for b in loader])
    for epoch in range(2):
        dataset.set_epoch(epoch)
        expected = [dataset[i]["image"][None] for i in range(len(dataset))]
        assert all(torch.equal(a, b) for a, b in zip(seen[epoch], expected)), epoch
    assert not torch.equal(seen[0][0], seen[1][0])
    assert np.isfinite(seen[1][0].numpy()).all()
