"""Checkpoint format: exact round trip, strict validation, backbone weight sources."""

import json
import re

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from space_clip_ros.model import (
    BackboneWeightsError,
    CheckpointError,
    ConfigError,
    SpaceClipConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from testing.tiny import tiny_config, tiny_timm_config

torch.set_num_threads(2)


@pytest.fixture()
def trained(tmp_path):
    """A tiny model with non-default decoder weights and BN statistics, saved to disk."""
    torch.manual_seed(1)
    model = build_model(tiny_config())
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.train()
    model(torch.rand(2, 3, 64, 64))  # moves BN running statistics away from their init
    model.eval()
    save_checkpoint(model, tmp_path / "ckpt", metadata={"epoch": 3})
    return model, tmp_path / "ckpt"


def test_round_trip_is_exact(trained):
    model, path = trained
    loaded = load_checkpoint(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    x = torch.rand(1, 3, 40, 120)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)
    assert load_checkpoint(path / "decoder.safetensors").config == loaded.config


def test_checkpoint_holds_decoder_only_and_config(trained):
    model, path = trained
    tensors = load_file(str(path / "decoder.safetensors"))
    assert set(tensors) == set(model.decoder.state_dict())
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    assert cfg["backbone"]["model_name"] == "tiny-vit"
    assert cfg["decoder"]["semantic_layers"] == [4, 3, 2, 1]


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found.*Fix"):
        load_checkpoint(tmp_path / "nope")


def test_missing_config(trained):
    _, path = trained
    (path / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match=r"config.yaml: missing"):
        load_checkpoint(path)


def test_missing_weights(trained):
    _, path = trained
    (path / "decoder.safetensors").unlink()
    with pytest.raises(CheckpointError, match="decoder.safetensors: missing"):
        load_checkpoint(path)


def test_pickle_files_are_refused(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CheckpointError, match="not a .safetensors file.*never loaded"):
        load_checkpoint(tmp_path / "model.pt")


def test_corrupt_safetensors(trained):
    _, path = trained
    (path / "decoder.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)


def test_unknown_config_field_names_file_field_and_suggestion(trained):
    _, path = trained
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    cfg["decoder"]["semantic_channel"] = cfg["decoder"].pop("semantic_channels")
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(
        CheckpointError,
        match=r"config.yaml: unknown field 'decoder.semantic_channel'.*semantic_channels",
    ):
        load_checkpoint(path)


def test_wrong_type_in_config(trained):
    _, path = trained
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    cfg["decoder"]["use_film"] = "yes"
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match="'decoder.use_film' must be true or false"):
        load_checkpoint(path)


def test_bad_yaml_syntax(trained):
    _, path = trained
    (path / "config.yaml").write_text("backbone: [unclosed\n")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_checkpoint(path)


def test_version_mismatch(trained):
    _, path = trained
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    cfg["version"] = 99
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match="'version' is 99"):
        load_checkpoint(path)


def _write_config(path, **decoder):
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    cfg["decoder"].update(decoder)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_missing_keys_when_config_expects_more(trained, tmp_path):
    model = build_model(tiny_config(use_film=False))
    save_checkpoint(model, tmp_path / "nofilm")
    _write_config(tmp_path / "nofilm", use_film=True)
    with pytest.raises(CheckpointError, match=r"missing key 'semantic.film.*use_film=True.*Fix"):
        load_checkpoint(tmp_path / "nofilm")


def test_unexpected_keys_when_config_expects_less(trained):
    _, path = trained
    _write_config(path, use_structural=False)
    with pytest.raises(
        CheckpointError, match=r"unexpected key '(stages|structural)\..*\(54 unexpected\).*Fix"
    ):
        load_checkpoint(path)


def test_shape_mismatch_names_key_and_shapes(trained):
    _, path = trained
    _write_config(path, head_hidden=6)
    with pytest.raises(
        CheckpointError, match=r"key 'head.0.0.weight' has shape \(4, 8, 3, 3\).*\(6, 8, 3, 3\)"
    ):
        load_checkpoint(path)


def test_config_value_validation():
    with pytest.raises(ConfigError, match="'decoder.semantic_channels' has 3 entries"):
        SpaceClipConfig.from_dict({"decoder": {"semantic_channels": [1, 2, 3]}}, source="x.yaml")
    with pytest.raises(ConfigError, match="x.yaml: field 'decoder.dropout'"):
        SpaceClipConfig.from_dict({"decoder": {"dropout": 1.5}}, source="x.yaml")


def test_config_round_trip(tmp_path):
    cfg = tiny_config()
    cfg.save(tmp_path / "c.yaml")
    assert SpaceClipConfig.load(tmp_path / "c.yaml") == cfg
    assert SpaceClipConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def _tiny_clip_weights(tmp_path, suffix):
    """A full-CLIP-style state dict ('visual.*' keys) for the tiny tower.

    Different from the seed-0 init.
    """
    torch.manual_seed(123)
    donor = build_model(tiny_config())
    with torch.no_grad():
        for p in donor.backbone.parameters():
            p.normal_()
    state = {f"visual.{k}": v.clone() for k, v in donor.backbone.visual.state_dict().items()}
    state["visual.proj"] = torch.zeros(32, 16)
    state["text.unused"] = torch.zeros(1)
    path = tmp_path / f"clip{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return donor, path


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_backbone_from_local_file(tmp_path, suffix):
    donor, path = _tiny_clip_weights(tmp_path, suffix)
    cfg = tiny_config()
    cfg.backbone.pretrained = str(path)
    model = build_model(cfg)
    for k, v in donor.backbone.visual.state_dict().items():
        assert torch.equal(model.backbone.visual.state_dict()[k], v), k


def test_backbone_weights_override_at_load(trained, tmp_path):
    _, path = trained
    donor, weights = _tiny_clip_weights(tmp_path, ".safetensors")
    model = load_checkpoint(path, backbone_weights=str(weights))
    assert torch.equal(model.backbone.visual.conv1.weight, donor.backbone.visual.conv1.weight)


def test_backbone_weights_of_another_architecture(tmp_path):
    path = tmp_path / "wrong.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(8, 3, 16, 16)}, str(path))
    cfg = tiny_config()
    cfg.backbone.pretrained = str(path)
    with pytest.raises(
        BackboneWeightsError, match="(?s)wrong.safetensors: weights do not fit.*Fix"
    ):
        build_model(cfg)


def test_unknown_tag_lists_known_tags():
    cfg = tiny_config()
    cfg.backbone.model_name, cfg.backbone.model_cfg, cfg.backbone.pretrained = (
        "ViT-B-16",
        None,
        "no_such_tag",
    )
    cfg.backbone.input_size = (224, 224)
    with pytest.raises(BackboneWeightsError, match="known tags: .*openai"):
        build_model(cfg)


def test_offline_tag_fails_fast_with_fix(monkeypatch):
    """HF_HUB_OFFLINE is set by conftest: nothing cached, so the error comes at once with a fix."""
    cfg = SpaceClipConfig()
    with pytest.raises(
        BackboneWeightsError, match="could not fetch open_clip weights ViT-B-16/openai.*Fix"
    ):
        build_model(cfg)


def test_positional_embeddings_are_resampled_for_another_input_size(tmp_path):
    """Square pretrained weights into an aspect-preserving encoder.

    Positions are resampled, the rest is loaded verbatim.
    """
    donor, path = _tiny_clip_weights(tmp_path, ".safetensors")
    cfg = tiny_config()
    cfg.backbone.pretrained, cfg.backbone.input_size = str(path), (64, 192)
    model = build_model(cfg)
    pos = model.backbone.visual.positional_embedding
    assert pos.shape == (1 + 4 * 12, 32)
    torch.testing.assert_close(
        pos[0], donor.backbone.visual.positional_embedding[0]
    )  # class token untouched
    assert torch.equal(model.backbone.visual.conv1.weight, donor.backbone.visual.conv1.weight)


def test_timm_tower_weights_from_an_open_clip_file(tmp_path):
    donor = build_model(tiny_timm_config())
    with torch.no_grad():
        for p in donor.backbone.parameters():
            p.normal_()
    path = tmp_path / "timm_clip.safetensors"
    save_file(
        {
            f"visual.trunk.{k}": v.contiguous()
            for k, v in donor.backbone.visual.state_dict().items()
        },
        str(path),
    )
    cfg = tiny_timm_config(input_size=(64, 128))
    cfg.backbone.pretrained = str(path)
    model = build_model(cfg)
    assert model.backbone.visual.pos_embed.shape[1] == 1 + 4 * 8
    assert torch.equal(
        model.backbone.visual.blocks[3].mlp.fc1.weight,
        donor.backbone.visual.blocks[3].mlp.fc1.weight,
    )


def test_decoder_with_3x3_aux_kernels_of_earlier_versions_still_loads(trained, caplog):
    """Aux heads' last conv was 3x3 before it matched the release (1x1): the centre tap is kept."""
    model, path = trained
    state = load_file(str(path / "decoder.safetensors"))
    old = dict(state)
    last_convs = [k for k in state if re.fullmatch(r"aux_heads\.\d\.1\.weight", k)]
    assert len(last_convs) == 3
    for key in last_convs:
        kernel = torch.randn(*state[key].shape[:2], 3, 3)
        kernel[..., 1, 1] = state[key][..., 0, 0]
        old[key] = kernel
    save_file(old, str(path / "decoder.safetensors"))
    with caplog.at_level("WARNING"):
        loaded = load_checkpoint(path)
    assert "centre tap" in caplog.text
    for key, tensor in state.items():
        assert torch.equal(loaded.decoder.state_dict()[key], tensor), key
    x = torch.rand(1, 3, 40, 120)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)
