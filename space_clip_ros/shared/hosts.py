"""Which encoder a user hands to attach(): its Tower, and the normalisation it says it expects.

Supported hosts, each by the tower definition the standalone model uses for that family:

- an open_clip CLIP model (or CustomTextCLIP) or its `.visual`: open_clip's own ViT
  (model/backbone.py OpenClipTower) or, for SigLIP, a TimmModel whose `.trunk` is a timm ViT;
- a timm VisionTransformer (SigLIP, as VLAs load it with timm.create_model);
- a transformers CLIPVisionModel / SiglipVisionModel (or CLIPModel / SiglipModel): transformers
  is imported only for such a host (hf_towers.py);
- any of these wrapped by torch.compile (the wrapper's `_orig_mod`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
from torch import nn

from space_clip_ros.errors import ConfigError
from space_clip_ros.model.backbone import OpenClipTower, TimmTower, Tower
from space_clip_ros.model.open_clip_api import VisionTransformer as OpenClipVisionTransformer

log = logging.getLogger(__name__)


@dataclass
class Host:
    tower: Tower
    description: str  # for messages: "open_clip VisionTransformer", ...
    # The normalisation the host's own metadata declares (open_clip's preprocess_cfg, timm's
    # pretrained_cfg); None when it carries none (transformers models, hand-built towers).
    mean: Optional[tuple[float, float, float]] = None
    std: Optional[tuple[float, float, float]] = None
    compiled: bool = False  # handed over inside a torch.compile wrapper


def recognise(encoder: nn.Module) -> Host:
    """The Host of an encoder, or a ConfigError naming what is supported."""
    if not isinstance(encoder, nn.Module):
        raise ConfigError(
            f"is a {type(encoder).__name__}, not a torch module",
            field="encoder",
            fix="pass the encoder model itself (an open_clip, timm or transformers module)",
        )
    compiled = hasattr(encoder, "_orig_mod")
    module = getattr(encoder, "_orig_mod", encoder)
    metadata: list[dict] = []
    if isinstance(getattr(module, "visual", None), nn.Module):  # an open_clip CLIP model
        module = module.visual
    metadata.append(getattr(module, "preprocess_cfg", None) or {})
    if isinstance(getattr(module, "trunk", None), TimmVisionTransformer):  # open_clip TimmModel
        module = module.trunk
    if isinstance(module, OpenClipVisionTransformer):
        if module.attn_pool is not None:
            raise ConfigError(
                "this open_clip tower pools with an attentional pooler (CoCa-style); SPACE-CLIP "
                "reads the class token",
                field="encoder",
                fix="use a plain open_clip ViT (ViT-B-16, ViT-L-14, ...) or a SigLIP tower",
            )
        tower: Tower = OpenClipTower(module)
        description = "open_clip VisionTransformer"
    elif isinstance(module, TimmVisionTransformer):
        metadata.append(getattr(module, "pretrained_cfg", None) or {})
        tower = TimmTower(module)
        description = "timm VisionTransformer"
    elif type(module).__module__.startswith("transformers."):
        from .hf_towers import hf_tower  # transformers hosts only

        tower = hf_tower(module)
        description = f"transformers {type(module).__name__}"
    else:
        raise ConfigError(
            f"{type(module).__module__}.{type(module).__name__} is not an encoder attach() knows",
            field="encoder",
            fix="pass an open_clip CLIP model or its .visual, a timm VisionTransformer, or a "
            "transformers CLIPVisionModel / SiglipVisionModel",
        )
    mean, std = _declared_normalisation(metadata)
    return Host(tower, description, mean, std, compiled)


def _declared_normalisation(
    metadata: list[dict],
) -> tuple[Optional[tuple], Optional[tuple]]:
    """The first mean/std pair a host's metadata declares (open_clip's before timm's)."""
    for cfg in metadata:
        mean, std = cfg.get("mean"), cfg.get("std")
        if mean is not None and std is not None and len(mean) == 3 and len(std) == 3:
            return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return None, None
