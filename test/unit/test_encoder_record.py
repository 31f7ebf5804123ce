"""The encoder record in config.yaml: written by every checkpoint writer, kept, validated.

Writers: save_checkpoint (the trainer's checkpoints, training.export) measures the tower it
runs; space-clip-import records the tower in the release's file. A model loaded from a
checkpoint keeps the record it was loaded with (what its decoder was trained on).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml
from test_import_reference import release_file  # noqa: F401  (the CLIP release fixture)

from space_clip_ros.cli.import_reference import main as import_main
from space_clip_ros.errors import ConfigError
from space_clip_ros.model import CheckpointError, SpaceClipConfig, build_model, load_checkpoint
from space_clip_ros.model.encoder_record import (
    classify_activation,
    held_precision,
    record_of_backbone,
    weights_fingerprint,
)
from testing import tiny_hosts as th
from training.export import main as export_main

torch.set_num_threads(2)


def test_fingerprint_tells_weights_apart_and_recognises_half_copies():
    model = th.standalone(th.clip_config())
    state = model.backbone.tower.canonical_state()
    fp = weights_fingerprint(state)
    assert len({fp.float32, fp.bfloat16, fp.float16}) == 3
    half = {k: v.to(torch.bfloat16) for k, v in state.items()}
    assert held_precision(half) == "bfloat16"
    assert weights_fingerprint(half).bfloat16 == fp.bfloat16  # a bf16 copy: same weights
    nudged = dict(state)
    key = "transformer.resblocks.2.mlp.c_fc.weight"
    nudged[key] = state[key].clone()
    nudged[key][0, 0] += 1e-3
    assert weights_fingerprint(nudged).float32 != fp.float32


def test_activation_is_told_by_its_values():
    assert classify_activation(torch.nn.GELU()) == "gelu"
    assert classify_activation(torch.nn.GELU(approximate="tanh")) == "gelu_tanh"
    assert classify_activation(torch.nn.ReLU()) == "other"
    assert classify_activation(None) == "other"
    import open_clip

    assert classify_activation(open_clip.transformer.QuickGELU()) == "quick_gelu"


def test_the_record_is_measured_at_save_and_kept_through_load_and_export(tmp_path, capsys):
    model = th.standalone(th.siglip_config())
    ckpt = th.saved(model, tmp_path / "ckpt")
    record = SpaceClipConfig.load(ckpt / "config.yaml").encoder_record
    assert record == record_of_backbone(model.backbone)
    assert (record.prefix_tokens, record.pooling, record.activation) == (
        0,
        "attention_pool",
        "gelu",
    )
    assert (record.mean, record.std) == ((0.5,) * 3, (0.5,) * 3)
    # loaded with other tower weights and re-exported: still the training tower's record
    other = th.saved(th.standalone(th.siglip_config(), seed=8), tmp_path / "other")
    weights = tmp_path / "other_tower.safetensors"
    from safetensors.torch import save_file

    tower = load_checkpoint(other).backbone.visual.state_dict()
    save_file({f"visual.trunk.{k}": v.contiguous() for k, v in tower.items()}, str(weights))
    args = ["--checkpoint", str(ckpt), "--backbone-weights", str(weights)]
    assert export_main([*args, "--out", str(tmp_path / "exported")]) == 0
    assert "encoder record kept from the checkpoint" in capsys.readouterr().out
    kept = SpaceClipConfig.load(tmp_path / "exported" / "config.yaml").encoder_record
    assert kept == record


def test_export_adds_a_record_to_a_checkpoint_written_before_records(tmp_path, capsys):
    model = build_model(th.clip_config())  # its random tower is the one the config rebuilds
    ckpt = th.saved(model, tmp_path / "ckpt")
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    del config["encoder_record"]
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_checkpoint(ckpt).config.encoder_record is None  # old checkpoints still load
    assert export_main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "new")]) == 0
    assert "encoder record measured from the backbone" in capsys.readouterr().out
    record = SpaceClipConfig.load(tmp_path / "new" / "config.yaml").encoder_record
    assert record == record_of_backbone(model.backbone)


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("pooling", "cls", "encoder_record.pooling' is 'cls'"),
        ("width", 0, "encoder_record.width' is 0"),
        ("grid", [14], "encoder_record.grid' is [14]"),
        ("std", [0.5, 0.0, 0.5], "encoder_record.std"),
    ],
)
def test_an_edited_record_is_refused_naming_the_field(tmp_path, field, value, problem):
    ckpt = th.saved(th.standalone(th.clip_config()), tmp_path / "ckpt")
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    config["encoder_record"][field] = value
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(ckpt)
    assert problem in str(refused.value) and "Fix: re-export the checkpoint" in str(refused.value)


def test_a_digest_that_is_not_one_is_refused(tmp_path):
    cfg = th.clip_config()
    record = record_of_backbone(th.standalone(cfg).backbone)
    cfg.encoder_record = dataclasses.replace(
        record, weights=dataclasses.replace(record.weights, bfloat16="abc")
    )
    with pytest.raises(ConfigError, match="encoder_record.weights.bfloat16' is not a SHA-256"):
        SpaceClipConfig.from_dict(cfg.to_dict())


def test_the_clip_import_records_the_tower_of_the_release_file(release_file, tmp_path):  # noqa: F811
    _, path, model_cfg = release_file
    out, tower = tmp_path / "imported", tmp_path / "tower.safetensors"
    args = [str(path), str(out), "--backbone-out", str(tower), "--model-cfg", str(model_cfg)]
    assert import_main(args) == 0
    imported = load_checkpoint(out, backbone_weights=str(tower))
    record = imported.config.encoder_record
    assert (record.pooling, record.activation, record.prefix_tokens) == (
        "class_token",
        "quick_gelu",
        1,
    )
    assert record == dataclasses.replace(
        record_of_backbone(imported.backbone), source=record.source
    )


def test_a_tower_held_in_half_precision_is_not_recorded(tmp_path):
    """Its fp32 digest would fingerprint the rounded weights, not the training ones."""
    from space_clip_ros.model import save_checkpoint

    model = build_model(th.clip_config())
    model.backbone.visual.to(torch.bfloat16)
    with pytest.raises(ValueError, match="held in bfloat16: record it in float32"):
        save_checkpoint(model, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt" / "config.yaml").exists()
