"""A tiny randomly initialised SPACE-CLIP for tests, smoke runs and CI (builds in milliseconds).

Same code path as the real model: an open_clip ViT described by a custom model_cfg (64x64
input, 16-pixel patches, 4 blocks of width 32) and the full dual-pathway decoder with narrow
channels. Its depth is meaningless; its shapes, dtypes and data flow are the real ones.

Defined once, in training/configs/tiny.yaml's model section, read here through the trainer's
own recipe loader: the model the tests, benches and golden fixture build is the one the tiny
training recipe trains.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Union

from space_clip_ros.model.config import BackboneConfig, SpaceClipConfig

TINY_RECIPE = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"


@functools.lru_cache(maxsize=1)
def _recipe_model() -> SpaceClipConfig:
    from training.config import load_train_config

    return load_train_config(TINY_RECIPE).model


def tiny_config(**decoder_overrides) -> SpaceClipConfig:
    """tiny.yaml's model, a fresh copy each call; keyword arguments replace decoder fields."""
    cfg = copy.deepcopy(_recipe_model())
    for key, value in decoder_overrides.items():
        if not hasattr(cfg.decoder, key):
            raise TypeError(f"DecoderConfig has no field {key!r}")
        setattr(cfg.decoder, key, value)
    return cfg


TINY_OPEN_CLIP_CFG = tiny_config().backbone.model_cfg  # open_clip model_cfg of the tiny tower

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


def tiny_timm_config(input_size: tuple[int, int] = (64, 64)) -> SpaceClipConfig:
    cfg = tiny_config()
    cfg.backbone = BackboneConfig(
        model_name="tiny-timm", pretrained=None, model_cfg=TINY_TIMM_CFG, input_size=input_size
    )
    return cfg


def save_tiny_checkpoint(directory: Union[str, Path]) -> Path:
    """The one builder of a tiny checkpoint: random weights, saved as directory/tiny (decoder
    and config.yaml, what the node loads); about a second on a CPU."""
    from space_clip_ros.model import build_model, save_checkpoint

    return save_checkpoint(build_model(tiny_config()), Path(directory) / "tiny")
