"""training/export.py: node checkpoints from a training state, ONNX checked with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from safetensors.torch import load_file

from space_clip_ros.model import build_model, load_checkpoint
from space_clip_ros.model.onnx_export import check_onnx, export_onnx
from testing.tiny import tiny_config
from training.config import load_train_config
from training.export import main
from training.mini_datasets import make_mini_kitti
from training.train import Trainer

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"


def test_onnx_export_matches_pytorch_with_a_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    path = export_onnx(model, tmp_path / "tiny.onnx", opset=17, batch=1)
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version >= 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    error = check_onnx(model, path, batch=3)  # traced at batch 1, run at batch 3
    assert error < 1e-4, error


def test_export_writes_node_checkpoints_from_a_training_state(tmp_path):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=4, n_test=1)
    run = tmp_path / "run"
    Trainer(
        load_train_config(TINY, [f"data.root={mini.root}", f"run.out_dir={run}", "optim.epochs=1"])
    ).fit()
    assert main(["--run", str(run), "--weights", "ema", "--out", str(tmp_path / "ema")]) == 0
    assert (
        main(
            [
                "--state",
                str(run / "state_last.pt"),
                "--weights",
                "raw",
                "--out",
                str(tmp_path / "raw"),
            ]
        )
        == 0
    )
    for exported, written in (("ema", "last_ema"), ("raw", "last")):
        a = load_file(tmp_path / exported / "decoder.safetensors")
        b = load_file(run / "checkpoints" / written / "decoder.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), exported
    ema, raw = (
        load_file(tmp_path / "ema" / "decoder.safetensors"),
        load_file(tmp_path / "raw" / "decoder.safetensors"),
    )
    assert any(not torch.equal(ema[k], raw[k]) for k in ema), (
        "EMA and raw weights must differ after training"
    )
    model = load_checkpoint(tmp_path / "ema")
    with torch.no_grad():
        depth = model(torch.rand(1, 3, 60, 160))
    assert depth.shape == (1, 1, 60, 160) and np.isfinite(depth.numpy()).all()
    # the trainer's checkpoints and the exported ones record the same (training) encoder
    trained = load_checkpoint(run / "checkpoints" / "last").config.encoder_record
    assert trained is not None and trained.layers == 4
    assert model.config.encoder_record == trained
