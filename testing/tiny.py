"""A tiny randomly initialised SPACE-CLIP for tests, smoke runs and CI (builds in milliseconds).

Same code path as the real model: an open_clip ViT described by a custom model_cfg (64x64
input, 16-pixel patches, 4 blocks of width 32) and the full dual-pathway decoder with narrow
channels. Its depth is meaningless; its shapes, dtypes and data flow are the real ones.

training/configs/tiny.yaml's model section is tiny_config() written out for the trainer;
test/test_tiny_config.py keeps the two equal.
"""

from __future__ import annotations

from space_clip_ros.model.config import BackboneConfig, DecoderConfig, SpaceClipConfig

TINY_OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1},
}

# timm's own 6-block, width-64 test ViT: exercises the timm tower path (SigLIP's family).
TINY_TIMM_CFG = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 64,
        "timm_model_name": "test_vit",
        "timm_pool": "token",
        "timm_proj": "none",
    },
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1},
}


def tiny_config(**decoder_overrides) -> SpaceClipConfig:
    decoder = DecoderConfig(
        semantic_channels=[16, 8, 8, 8],
        structural_channels=[16, 8, 8],
        film_hidden=16,
        head_hidden=4,
    )
    for key, value in decoder_overrides.items():
        if not hasattr(decoder, key):
            raise TypeError(f"DecoderConfig has no field {key!r}")
        setattr(decoder, key, value)
    backbone = BackboneConfig(
        model_name="tiny-vit", pretrained=None, model_cfg=TINY_OPEN_CLIP_CFG, input_size=(64, 64)
    )
    return SpaceClipConfig(backbone=backbone, decoder=decoder)


def tiny_timm_config(input_size: tuple[int, int] = (64, 64)) -> SpaceClipConfig:
    cfg = tiny_config()
    cfg.backbone = BackboneConfig(
        model_name="tiny-timm", pretrained=None, model_cfg=TINY_TIMM_CFG, input_size=input_size
    )
    return cfg
