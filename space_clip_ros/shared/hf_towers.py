"""transformers vision towers (CLIPVisionModel, SiglipVisionModel) as model/backbone.py Towers.

Their submodules are read by name (embeddings, pre_layrnorm, encoder.layers, post_layernorm,
head), so this module never imports transformers: hosts.py recognises a transformers model by
its class and only then comes here. transformers 4.x keeps the tower under `.vision_model`,
5.x on the model itself; both are found.

The definitions are the standalone model's (docs/ARCHITECTURE.md, "The model"), in HF terms:
CLIP's hidden state 0 is pre_layrnorm's output and its global embedding the class token after
post_layernorm (pooler_output); SigLIP has no class token and no pre-LayerNorm, so hidden state
0 is the embeddings' output and the global embedding the attention-pooling head's output
(pooler_output). Weights are fingerprinted after renaming into open_clip's (CLIP) or timm's
(SigLIP) names, the names the standalone model's towers have.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from space_clip_ros.errors import ConfigError
from space_clip_ros.model.backbone import Tower
from space_clip_ros.model.import_reference import backbone_to_open_clip
from space_clip_ros.model.import_siglip import siglip_to_timm


class _HFTower(Tower):
    def __init__(self, root: nn.Module) -> None:
        self.module = root
        embeddings = root.embeddings
        conv = embeddings.patch_embedding
        self.width = conv.out_channels
        self.num_layers = len(root.encoder.layers)
        self.patch_size = tuple(conv.kernel_size)
        side = embeddings.image_size
        sides = (side, side) if isinstance(side, int) else tuple(side)
        self.grid_size = tuple(s // p for s, p in zip(sides, self.patch_size))

    @property
    def blocks(self) -> Sequence[nn.Module]:
        return self.module.encoder.layers

    @property
    def patch_conv(self) -> nn.Module:
        return self.module.embeddings.patch_embedding

    @property
    def activation(self) -> Optional[nn.Module]:
        return getattr(self.blocks[0].mlp, "activation_fn", None)


class HFClipTower(_HFTower):
    """transformers CLIPVisionModel: class token, pre_layrnorm, post_layernorm."""

    prefix = 1
    pooling = "class_token"

    @property
    def hidden0_module(self) -> nn.Module:
        return self.module.pre_layrnorm

    def canonical_state(self) -> dict[str, torch.Tensor]:
        return backbone_to_open_clip(self.module.state_dict(), "the host encoder")

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.post_layernorm(tokens[:, 0])


class HFSiglipTower(_HFTower):
    """transformers SiglipVisionModel: no class token, attention-pooling head."""

    prefix = 0
    pooling = "attention_pool"

    @property
    def hidden0_module(self) -> nn.Module:
        return self.module.embeddings

    def canonical_state(self) -> dict[str, torch.Tensor]:
        return siglip_to_timm(self.module.state_dict(), "the host encoder")

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.head(self.module.post_layernorm(tokens))


def hf_tower(model: nn.Module) -> Tower:
    """The Tower of a transformers CLIP/SigLIP vision model (or a full CLIPModel/SiglipModel)."""
    root = model
    while hasattr(root, "vision_model"):
        root = root.vision_model
    name = type(model).__name__
    if not all(hasattr(root, part) for part in ("embeddings", "encoder", "post_layernorm")):
        raise ConfigError(
            f"transformers {name} is not a CLIP or SigLIP vision tower",
            field="encoder",
            fix="pass a CLIPVisionModel, SiglipVisionModel, CLIPModel or SiglipModel",
        )
    if hasattr(root, "pre_layrnorm"):
        return HFClipTower(root)
    if getattr(root, "head", None) is None or not hasattr(root.head, "probe"):
        raise ConfigError(
            f"transformers {name} has no attention-pooling head (vision_use_head is false), "
            "so it has no global embedding for the decoder's FiLM",
            field="encoder",
            fix="use a SigLIP tower with its pooling head (google/siglip-* checkpoints)",
        )
    return HFSiglipTower(root)
