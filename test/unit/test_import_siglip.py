"""space-clip-import for the release's SigLIP checkpoints (configs/nyu_siglip.yaml).

The same equivalence tests as the CLIP import (test_import_reference.py): a model of our own in
the release's exact layout (transformers SiglipVisionModel names under
clip_vision_model.vision_model., the decoder in the release's names, saved as the release saves
from DDP) must import to the same depth; and, where transformers is installed, the renamed
tower must compute what transformers' SiglipVisionModel computes from the original names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_import_reference import _invert, _to_reference

from space_clip_ros.cli.import_reference import main
from space_clip_ros.errors import ConfigError
from space_clip_ros.model import DecoderConfig, load_checkpoint
from space_clip_ros.model.decoder import SpaceClipDecoder
from space_clip_ros.model.encoder_record import record_of_backbone
from space_clip_ros.model.import_reference import BACKBONE_PREFIX, DECODER_KEY_MAP
from space_clip_ros.model.import_siglip import (
    SIGLIP_KEY_MAP,
    siglip_to_timm,
    siglip_tower_and_config,
    timm_trunk_shapes,
)
from space_clip_ros.shared import attach
from testing import tiny_hosts as th

torch.set_num_threads(2)
QKV = re.compile(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)")


def to_release_tower(trunk: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm SigLIP trunk tensors in transformers SiglipVisionModel names (q/k/v split)."""
    rules, out = _invert(SIGLIP_KEY_MAP), {}
    pool_in = {}
    for key, tensor in trunk.items():
        match = QKV.fullmatch(key)
        if match:
            for name, part in zip("qkv", tensor.chunk(3, dim=0)):
                out[f"encoder.layers.{match[1]}.self_attn.{name}_proj.{match[2]}"] = part.clone()
        elif key == "pos_embed":
            out["embeddings.position_embedding.weight"] = tensor[0].clone()
        elif key == "attn_pool.latent":
            out["head.probe"] = tensor.clone()
        elif key.startswith(("attn_pool.q.", "attn_pool.kv.")):
            pool_in[key] = tensor
        else:
            out[_to_reference(key, rules)] = tensor.clone()
    for kind in ("weight", "bias"):
        out[f"head.attention.in_proj_{kind}"] = torch.cat(
            [pool_in[f"attn_pool.q.{kind}"], pool_in[f"attn_pool.kv.{kind}"]]
        )
    return out


def to_release_state(tower: dict, decoder: dict) -> dict[str, torch.Tensor]:
    state = {BACKBONE_PREFIX + k: v for k, v in to_release_tower(tower).items()}
    rules = _invert(DECODER_KEY_MAP)
    state.update({_to_reference(k, rules): v.clone() for k, v in decoder.items()})
    return state


def save_release(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """As the release's save_checkpoint writes it, from DDP ('module.' prefixes)."""
    model = {f"module.{k}": v for k, v in state.items()}
    torch.save({"epoch": 3, "model": model, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


@pytest.fixture()
def release_file(tmp_path):
    cfg = th.siglip_config()
    cfg.backbone.input_resize = "pil_bicubic_uint8"  # the release's resize to the encoder
    model = th.standalone(cfg, seed=5)
    state = to_release_state(model.backbone.visual.state_dict(), model.decoder.state_dict())
    tower_cfg = tmp_path / "tower.json"
    tower_cfg.write_text(json.dumps(th.TINY_SIGLIP_CFG))
    return model, save_release(tmp_path / "best_checkpoint.pt", state), tower_cfg


def test_imported_siglip_checkpoint_reproduces_the_source_depth(release_file, tmp_path, capsys):
    source, path, tower_cfg = release_file
    out, tower = tmp_path / "imported", tmp_path / "tower.safetensors"
    code = main([str(path), str(out), "--backbone-out", str(tower), "--model-cfg", str(tower_cfg)])
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    b, r = saved["backbone"], saved["encoder_record"]
    assert (b["mean"], b["std"], b["input_resize"]) == ([0.5] * 3, [0.5] * 3, "pil_bicubic_uint8")
    assert saved["decoder"]["semantic_layers"] == [4, 3, 2, 1]
    assert (r["prefix_tokens"], r["pooling"], r["activation"]) == (
        0,
        "attention_pool",
        "gelu_tanh",
    )
    assert all(k.startswith("visual.trunk.") for k in load_file(tower))
    imported = load_checkpoint(out, backbone_weights=str(tower))
    # the record fingerprints exactly the tower the import wrote
    assert imported.config.encoder_record.weights == record_of_backbone(imported.backbone).weights
    x = torch.rand(2, 3, 90, 250)
    with torch.no_grad():
        torch.testing.assert_close(imported(x), source(x), rtol=1e-5, atol=1e-5)


def test_the_release_layout_of_vit_b16_siglip_is_open_clips_vit_b16_siglip():
    """Full size, with real (zero) tensors: the release's SigLIP base tower maps onto every
    tensor of timm's vit_base_patch16_siglip_224, and the paper's decoder settings come back."""
    shapes = timm_trunk_shapes(
        {"vision_cfg": {"timm_model_name": "vit_base_patch16_siglip_224", "timm_pool": "map"}},
        (224, 224),
    )
    trunk = {k: torch.zeros(s) for k, s in shapes.items()}
    decoder = SpaceClipDecoder(768, DecoderConfig(semantic_layers=[12, 9, 6, 3])).state_dict()
    hf = to_release_tower(trunk)
    assert {k: tuple(v.shape) for k, v in siglip_to_timm(hf, "layout").items()} == shapes
    release_yaml = {
        "clip_model_name": "google/siglip-base-patch16-224",
        "vision_image_mean": [0.5, 0.5, 0.5],
        "vision_image_std": [0.5, 0.5, 0.5],
        "clip_input_size": 224,
        "main_path_indices": [12, 9, 6, 3],
        "decoder_channels": [256, 128, 64, 32],
    }
    tower, cfg = siglip_tower_and_config(decoder, hf, release_yaml, None, Path("layout.pt"))
    b, d, r = cfg.backbone, cfg.decoder, cfg.encoder_record
    assert (b.model_name, b.pretrained, b.input_size) == ("ViT-B-16-SigLIP", "webli", (224, 224))
    assert (d.semantic_layers, d.structural_layers) == ([12, 9, 6, 3], [2, 1, 0])
    assert (r.width, r.layers, r.grid, r.patch_size) == (768, 12, (14, 14), (16, 16))
    assert set(tower) == {f"trunk.{k}" for k in shapes}
    with pytest.raises(ConfigError, match="clip_input_size 256 but the tower's positions"):
        siglip_tower_and_config(decoder, hf, {"clip_input_size": 256}, None, Path("x"))
    with pytest.raises(ConfigError, match="is not google/siglip-base-patch16-256"):
        wrong = {"clip_model_name": "google/siglip-base-patch16-256"}
        siglip_tower_and_config(decoder, hf, wrong, None, Path("x"))
    with pytest.raises(ConfigError, match="not a SigLIP tower this tool knows"):
        siglip_tower_and_config(decoder, hf, {"clip_model_name": "x/y"}, None, Path("x"))


def test_transformers_siglip_base_names_are_the_ones_mapped():
    """Every tensor of transformers' SiglipVisionModel (base-patch16-224's config, built on the
    meta device) maps onto timm's vit_base_patch16_siglip_224, shape for shape."""
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        hf = transformers.SiglipVisionModel(transformers.SiglipVisionConfig())
    shapes = timm_trunk_shapes(
        {"vision_cfg": {"timm_model_name": "vit_base_patch16_siglip_224", "timm_pool": "map"}},
        (224, 224),
    )
    mapped = siglip_to_timm(hf.state_dict(), "transformers")
    assert {k: tuple(v.shape) for k, v in mapped.items()} == shapes


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_pytorch_tanh"])
def test_the_renamed_tower_computes_what_transformers_computes(hidden_act):
    """Hidden states 0..L and the pooled embedding, transformers' SiglipVisionModel against
    the timm tower holding its renamed weights. With the exact GELU they agree to fp32
    rounding; with the release's tanh approximation they differ by that approximation only."""
    pytest.importorskip("transformers")
    model = th.standalone(th.siglip_config())
    host = th.hf_siglip_host(model, hidden_act=hidden_act)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = model.backbone(x, list(range(5)))
        theirs = host(pixel_values=x, output_hidden_states=True)
    tower = model.backbone.tower
    tolerance = 1e-5 if hidden_act == "gelu" else 5e-3
    for k in range(5):
        hf_grid = tower.grid(theirs.hidden_states[k])
        torch.testing.assert_close(ours.hidden[k], hf_grid, rtol=0, atol=tolerance)
    torch.testing.assert_close(ours.global_embedding, theirs.pooler_output, rtol=0, atol=tolerance)


def test_an_imported_release_checkpoint_attaches_to_the_transformers_tower_it_names(tmp_path):
    """The release trained on transformers' SiglipVisionModel (gelu_pytorch_tanh): its imported
    record matches that very tower exactly (weights, activation, normalisation): no warning."""
    pytest.importorskip("transformers")
    model = th.standalone(th.siglip_config(), seed=6)
    host = th.hf_siglip_host(model, hidden_act="gelu_pytorch_tanh")  # the release's tower
    state = to_release_state(model.backbone.visual.state_dict(), model.decoder.state_dict())
    path = save_release(tmp_path / "best.pt", state)
    tower_cfg = tmp_path / "tower.json"
    tower_cfg.write_text(json.dumps(th.TINY_SIGLIP_CFG))
    assert main([str(path), str(tmp_path / "ckpt"), "--model-cfg", str(tower_cfg)]) == 0
    with attach(host, tmp_path / "ckpt", mean=th.SIGLIP_MEAN, std=th.SIGLIP_STD) as tap:
        assert tap.warnings == []
        with torch.no_grad():
            host(pixel_values=torch.randn(1, 3, 64, 64))
        assert torch.isfinite(tap.depth()).all()
