"""Tiny host encoders of every family attach() supports, random weights, no downloads.

Each host comes with a standalone SpaceClip whose tower holds the same weights, so a tap on the
host and the standalone model decode the same features: open_clip's tiny test tower
(testing/tiny.py), a tiny SigLIP-shaped timm ViT (no class token, attention pooling, registered
with timm here so the standalone model can build it by name), and transformers CLIP / SigLIP
vision models of the same shapes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import open_clip
import timm
import torch
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

from space_clip_ros.model import BackboneConfig, SpaceClip, build_model, save_checkpoint
from testing.tiny import TINY_OPEN_CLIP_CFG, tiny_config

TINY_SIGLIP_TIMM = "space_clip_test_siglip"  # timm name of the tiny SigLIP-shaped trunk
TINY_SIGLIP_ARGS = dict(
    img_size=64,
    patch_size=16,
    embed_dim=32,
    depth=4,
    num_heads=2,
    mlp_ratio=2.0,
    class_token=False,
    global_pool="map",
)
TEXT_CFG = {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1}
TINY_SIGLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 64,
        "timm_model_name": TINY_SIGLIP_TIMM,
        "timm_pool": "map",
        "timm_proj": "none",
    },
    "text_cfg": TEXT_CFG,
}
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)


def _tiny_siglip(pretrained: bool = False, **kwargs) -> VisionTransformer:
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    model = VisionTransformer(**{**TINY_SIGLIP_ARGS, **kwargs})
    # what timm's own SigLIP entries declare (timm.create_model sets it from the registry)
    model.pretrained_cfg = {"mean": SIGLIP_MEAN, "std": SIGLIP_STD}
    return model


_tiny_siglip.__name__ = TINY_SIGLIP_TIMM
if not timm.list_models(TINY_SIGLIP_TIMM):
    register_model(_tiny_siglip)


def clip_config(input_size=(64, 64)):
    cfg = tiny_config()
    cfg.backbone.input_size = tuple(input_size)
    return cfg


def siglip_config(input_size=(64, 64)):
    cfg = tiny_config()
    cfg.backbone = BackboneConfig(
        model_name="tiny-siglip",
        pretrained=None,
        model_cfg=copy.deepcopy(TINY_SIGLIP_CFG),
        mean=SIGLIP_MEAN,
        std=SIGLIP_STD,
        input_size=tuple(input_size),
    )
    return cfg


def standalone(cfg, seed: int = 0) -> SpaceClip:
    """A SpaceClip with random tower weights and a decoder moved off its initialisation
    (weights and BN statistics), so its depth varies with the image."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for p in [*model.backbone.parameters(), *model.decoder.parameters()]:
            p.add_(torch.randn_like(p) * 0.05)
    model.train()
    model(torch.rand(2, 3, *cfg.backbone.input_size))
    return model.eval()


def saved(model: SpaceClip, directory: Path) -> Path:
    return save_checkpoint(model, directory)


def open_clip_host(model: SpaceClip, quick_gelu: bool = False) -> open_clip.model.CLIP:
    """An open_clip CLIP model whose vision tower holds the standalone model's weights."""
    vision = {**TINY_OPEN_CLIP_CFG["vision_cfg"], "image_size": model.input_size}
    torch.manual_seed(4)  # the parts the standalone model lacks (proj, text tower): reproducible
    host = open_clip.model.CLIP(
        embed_dim=TINY_OPEN_CLIP_CFG["embed_dim"],
        vision_cfg=vision,
        text_cfg=TINY_OPEN_CLIP_CFG["text_cfg"],
        quick_gelu=quick_gelu,
    )
    result = host.visual.load_state_dict(model.backbone.visual.state_dict(), strict=False)
    assert result.missing_keys == ["proj"] and not result.unexpected_keys
    return host.eval()


def timm_host(model: SpaceClip) -> VisionTransformer:
    """A timm SigLIP-shaped ViT built as a VLA would (timm.create_model) with the model's tower."""
    host = timm.create_model(TINY_SIGLIP_TIMM, img_size=model.input_size, num_classes=0)
    host.load_state_dict(model.backbone.visual.state_dict())
    return host.eval()


def open_clip_siglip_host(model: SpaceClip) -> open_clip.model.CustomTextCLIP:
    """open_clip's SigLIP layout: CustomTextCLIP whose .visual is a TimmModel around the trunk."""
    torch.manual_seed(4)
    host = open_clip.model.CustomTextCLIP(
        embed_dim=TINY_SIGLIP_CFG["embed_dim"],
        vision_cfg=TINY_SIGLIP_CFG["vision_cfg"],
        text_cfg={**TEXT_CFG, "width": 32},
    )
    host.visual.trunk.load_state_dict(model.backbone.visual.state_dict())
    return host.eval()


def hf_clip_config(hidden_act: str = "gelu"):
    from transformers import CLIPVisionConfig

    v = TINY_OPEN_CLIP_CFG["vision_cfg"]
    return CLIPVisionConfig(
        hidden_size=v["width"],
        intermediate_size=4 * v["width"],
        num_hidden_layers=v["layers"],
        num_attention_heads=v["width"] // v["head_width"],
        image_size=v["image_size"],
        patch_size=v["patch_size"],
        hidden_act=hidden_act,
    )


def hf_siglip_config(hidden_act: str = "gelu"):
    from transformers import SiglipVisionConfig

    a = TINY_SIGLIP_ARGS
    return SiglipVisionConfig(
        hidden_size=a["embed_dim"],
        intermediate_size=int(a["embed_dim"] * a["mlp_ratio"]),
        num_hidden_layers=a["depth"],
        num_attention_heads=a["num_heads"],
        image_size=a["img_size"],
        patch_size=a["patch_size"],
        hidden_act=hidden_act,
    )


def hf_clip_host(model: SpaceClip, hidden_act: str = "gelu"):
    """A transformers CLIPVisionModel; the standalone tower gets its (renamed) weights."""
    from transformers import CLIPVisionModel

    from space_clip_ros.model.import_reference import backbone_to_open_clip

    torch.manual_seed(3)
    host = CLIPVisionModel(hf_clip_config(hidden_act)).eval()
    state = backbone_to_open_clip(host.state_dict(), "host")
    result = model.backbone.visual.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and not result.unexpected_keys, result
    return host


def hf_siglip_host(model: SpaceClip, hidden_act: str = "gelu"):
    """A transformers SiglipVisionModel; the standalone tower gets its (renamed) weights."""
    from transformers import SiglipVisionModel

    from space_clip_ros.model.import_siglip import siglip_to_timm

    torch.manual_seed(3)
    host = SiglipVisionModel(hf_siglip_config(hidden_act)).eval()
    model.backbone.visual.load_state_dict(siglip_to_timm(host.state_dict(), "host"))
    return host


def zero_shot_files(directory: Path) -> tuple[dict[str, Path], SpaceClip]:
    """What examples/clip_labels_and_depth.py loads, for a tiny CLIP that can read real text:
    a decoder checkpoint (trained, as far as a test goes, on the tower), the whole CLIP's weights
    and its open_clip config (the tokenizer's vocabulary and context length, a tiny width); and
    the standalone model holding the same tower (a checkpoint never holds its tower)."""
    import json

    from safetensors.torch import save_file

    model = standalone(clip_config())
    checkpoint = saved(model, directory / "checkpoint")
    name = "space-clip-test-zero-shot"
    text = {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}
    config = {
        "embed_dim": TINY_OPEN_CLIP_CFG["embed_dim"],
        "vision_cfg": {**TINY_OPEN_CLIP_CFG["vision_cfg"], "image_size": model.input_size[0]},
        "text_cfg": text,
    }
    torch.manual_seed(5)
    host = open_clip.model.CLIP(**config)
    result = host.visual.load_state_dict(model.backbone.visual.state_dict(), strict=False)
    assert result.missing_keys == ["proj"] and not result.unexpected_keys
    (directory / f"{name}.json").write_text(json.dumps(config))
    weights = directory / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in host.state_dict().items()}, str(weights))
    files = {
        "checkpoint": checkpoint,
        "clip_model_config": directory / f"{name}.json",
        "clip_model": Path(name),
        "clip_pretrained": weights,
    }
    return files, model
