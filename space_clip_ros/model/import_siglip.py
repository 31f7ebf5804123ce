"""The SPACE-CLIP release's SigLIP checkpoints, mapped onto the timm tower open_clip runs.

The release's configs/nyu_siglip.yaml trains the same decoder on a transformers
SiglipVisionModel (`google/siglip-base-patch16-224`, mean = std = 0.5). Its checkpoint holds
that tower under the same `clip_vision_model.vision_model.*` prefix as the CLIP one, in HF
SigLIP names: no class token and no pre-LayerNorm (hidden state 0 is the patch embedding plus
positions), and a multihead attention-pooling head whose output is the global embedding. This
module renames it into timm's VisionTransformer (open_clip's ViT-B-16-SigLIP trunk), where the
same things are `norm_pre` (an identity), the blocks and `attn_pool`:

- q/k/v projections are concatenated into `attn.qkv` (timm keeps them fused);
- the pooling head's `attention.in_proj` is split into `attn_pool.q` (its first third) and
  `attn_pool.kv` (the rest), its `probe` becomes `attn_pool.latent`;
- positions gain timm's leading batch axis.

space_clip_ros.model.import_reference dispatches here when the file holds a SigLIP tower; the
HF SigLIP host of space_clip_ros.shared uses `siglip_to_timm` to fingerprint its weights in the
same names as the timm tower. One difference stays: HF SigLIP computes GELU with the tanh
approximation (`gelu_pytorch_tanh`), timm's SigLIP trunk the exact GELU (they differ by at most
about 5e-4 per activation); the record says which one the decoder was trained on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import open_clip
import timm
import torch

from space_clip_ros.errors import ConfigError, quote

from .config import BackboneConfig, SpaceClipConfig, validate
from .encoder_record import record_of_state
from .import_reference import (
    BACKBONE_PREFIX,
    IGNORED_BACKBONE_KEYS,
    QKV_RE,
    ReferenceImportError,
    _compile,
    _count,
    _rename,
    infer_decoder_config,
    merge_qkv,
)
from .space_clip import resolve_layers

# HF SiglipVisionModel (under vision_model.) -> timm VisionTransformer ({i}: block index).
# Not here: q/k/v (QKV_RE, concatenated), positions and the pooling head's probe and in_proj.
SIGLIP_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("embeddings.patch_embedding", "patch_embed.proj"),
    ("post_layernorm", "norm"),
    ("encoder.layers.{i}.layer_norm1", "blocks.{i}.norm1"),
    ("encoder.layers.{i}.layer_norm2", "blocks.{i}.norm2"),
    ("encoder.layers.{i}.self_attn.out_proj", "blocks.{i}.attn.proj"),
    ("encoder.layers.{i}.mlp.fc1", "blocks.{i}.mlp.fc1"),
    ("encoder.layers.{i}.mlp.fc2", "blocks.{i}.mlp.fc2"),
    ("head.attention.out_proj", "attn_pool.proj"),
    ("head.layernorm", "attn_pool.norm"),
    ("head.mlp.fc1", "attn_pool.mlp.fc1"),
    ("head.mlp.fc2", "attn_pool.mlp.fc2"),
)
POSITIONS = "embeddings.position_embedding.weight"
PROBE = "head.probe"
POOL_IN_PROJ = re.compile(r"head\.attention\.in_proj_(weight|bias)")
_RULES = _compile(SIGLIP_KEY_MAP)

# The release's clip_model_name (HF hub id) -> open_clip architecture (its 'webli' weights are
# open_clip's conversion of the same big_vision checkpoint; --backbone-out keeps the file's own).
HF_SIGLIP_TO_OPEN_CLIP = {
    "google/siglip-base-patch16-224": "ViT-B-16-SigLIP",
    "google/siglip-base-patch16-256": "ViT-B-16-SigLIP-256",
    "google/siglip-base-patch16-384": "ViT-B-16-SigLIP-384",
    "google/siglip-base-patch16-512": "ViT-B-16-SigLIP-512",
    "google/siglip-large-patch16-256": "ViT-L-16-SigLIP-256",
    "google/siglip-large-patch16-384": "ViT-L-16-SigLIP-384",
    "google/siglip-so400m-patch14-224": "ViT-SO400M-14-SigLIP",
    "google/siglip-so400m-patch14-384": "ViT-SO400M-14-SigLIP-384",
}
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)  # the release's vision_image_mean/std for SigLIP
# transformers' SigLIP towers compute gelu_pytorch_tanh (SiglipVisionConfig.hidden_act).
HF_SIGLIP_ACTIVATION = "gelu_tanh"


def is_siglip_tower(hf: dict[str, torch.Tensor]) -> bool:
    """An HF vision tower without a class token and with SigLIP's attention-pooling probe."""
    return PROBE in hf and "embeddings.class_embedding" not in hf


def siglip_to_timm(hf: dict[str, torch.Tensor], source: object) -> dict[str, torch.Tensor]:
    """HF SiglipVisionModel tensors (without the vision_model. prefix) in timm trunk names."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, tensor in hf.items():
        if key in IGNORED_BACKBONE_KEYS:
            continue
        match = QKV_RE.fullmatch(key)
        pool = POOL_IN_PROJ.fullmatch(key)
        if match:
            qkv.setdefault((match[1], match[3]), {})[match[2]] = tensor
        elif pool:
            width = tensor.shape[0] // 3
            out[f"attn_pool.q.{pool[1]}"] = tensor[:width].clone()
            out[f"attn_pool.kv.{pool[1]}"] = tensor[width:].clone()
        elif key == POSITIONS:
            out["pos_embed"] = tensor[None]
        elif key == PROBE:
            out["attn_pool.latent"] = tensor
        else:
            ours = _rename(key, _RULES)
            if ours is None:
                raise ReferenceImportError(
                    f"SigLIP tower tensor '{BACKBONE_PREFIX}{key}' has no timm counterpart",
                    source=source,
                    fix="only plain HF SiglipVisionModel towers (with the pooling head) are "
                    "imported",
                )
            out[ours] = tensor
    out.update(merge_qkv(qkv, "blocks.{}.attn.qkv.{}".format, source))
    return out


def timm_trunk_shapes(model_cfg: dict, input_size: tuple[int, int]) -> dict[str, tuple]:
    """Every tensor name and shape of the timm trunk an open_clip model config builds (on the
    meta device: nothing is allocated), as model/backbone.py builds it."""
    vision = model_cfg.get("vision_cfg")
    if not isinstance(vision, dict) or not vision.get("timm_model_name"):
        raise ConfigError(
            "describes no timm tower",
            source="--model-cfg",
            fix='give {"embed_dim": N, "vision_cfg": {"timm_model_name": ..., "timm_pool": '
            '"map", "timm_proj": "none"}} for a SigLIP tower',
        )
    try:
        with torch.device("meta"):
            trunk = timm.create_model(
                vision["timm_model_name"],
                pretrained=False,
                num_classes=0,
                global_pool=vision.get("timm_pool") or "token",
                img_size=tuple(input_size),
            )
    except (RuntimeError, TypeError, ValueError) as exc:  # unknown name, bad arguments
        raise ConfigError(
            f"timm cannot build {quote(vision['timm_model_name'])} ({quote(str(exc))})",
            source="--model-cfg",
            fix="name a timm VisionTransformer (timm.list_models('*siglip*'))",
        ) from exc
    return {k: tuple(v.shape) for k, v in trunk.state_dict().items() if not k.startswith("head.")}


def _native_size(model_cfg: dict) -> Optional[int]:
    """The square input size an open_clip model config is made for (None: not said)."""
    size = (model_cfg.get("vision_cfg") or {}).get("image_size")
    if isinstance(size, (list, tuple)):
        return size[0] if len(set(size)) == 1 else -1
    return size


def siglip_tower_and_config(
    decoder: dict[str, torch.Tensor],
    hf: dict[str, torch.Tensor],
    reference: Optional[dict[str, Any]],
    model_cfg: Optional[dict],
    source: Path,
) -> tuple[dict[str, torch.Tensor], SpaceClipConfig]:
    """(tower in 'trunk.' names, for --backbone-out; the imported model's config with its
    encoder record), every setting from the tensors and checked against the release YAML."""
    ref = reference or {}
    tower = siglip_to_timm(hf, source)
    width = tower["pos_embed"].shape[-1]
    patch = tower["patch_embed.proj.weight"].shape[-1]
    grid = round(tower["pos_embed"].shape[1] ** 0.5)
    layers = _count(tower, r"blocks\.(\d+)\.")
    image_size = grid * patch
    if "clip_input_size" in ref and ref["clip_input_size"] != image_size:
        raise ConfigError(
            f"clip_input_size {ref['clip_input_size']} but the tower's positions are for "
            f"{image_size}x{image_size}",
            source=source,
            fix="use the YAML the checkpoint was trained with",
        )
    if model_cfg is not None:
        candidates, pretrained = {"imported-siglip": model_cfg}, None
    else:
        hf_name = ref.get("clip_model_name")
        if hf_name is not None and hf_name not in HF_SIGLIP_TO_OPEN_CLIP:
            raise ConfigError(
                f"clip_model_name {quote(hf_name)} is not a SigLIP tower this tool knows",
                source=source,
                fix=f"use one of {', '.join(HF_SIGLIP_TO_OPEN_CLIP)}, or describe the tower "
                "with --model-cfg",
            )
        names = [HF_SIGLIP_TO_OPEN_CLIP[hf_name]] if hf_name else HF_SIGLIP_TO_OPEN_CLIP.values()
        candidates = {n: open_clip.get_model_config(n) for n in names}
        pretrained = "webli"
    shapes = {k: tuple(v.shape) for k, v in tower.items()}
    name = next(
        (
            n
            for n, cfg in candidates.items()
            if _native_size(cfg) in (None, image_size)
            and timm_trunk_shapes(cfg, (image_size,) * 2) == shapes
        ),
        None,
    )
    if name is None:
        raise ConfigError(
            f"the SigLIP tower (width {width}, patch {patch}, {layers} blocks, {image_size} px) "
            f"is not {ref.get('clip_model_name') or 'a known SigLIP tower'}"
            + (" as --model-cfg describes it" if model_cfg is not None else ""),
            source=source,
            fix="give the open_clip model config of the tower (a timm_model_name with "
            "timm_pool: map) with --model-cfg FILE.json",
        )
    mean = tuple(float(v) for v in ref.get("vision_image_mean", SIGLIP_MEAN))
    std = tuple(float(v) for v in ref.get("vision_image_std", SIGLIP_STD))
    backbone = BackboneConfig(
        model_name=name,
        pretrained=pretrained,
        model_cfg=model_cfg,
        mean=mean,
        std=std,
        input_size=(image_size, image_size),
        input_resize="pil_bicubic_uint8",
    )
    config = SpaceClipConfig(
        backbone=backbone, decoder=infer_decoder_config(decoder, layers, ref, source)
    )
    validate(config, str(source))
    config = resolve_layers(config, layers)
    config.encoder_record = record_of_state(
        tower,
        "siglip",
        mean,
        std,
        HF_SIGLIP_ACTIVATION,
        f"SPACE-CLIP release {Path(source).name}: transformers "
        f"{ref.get('clip_model_name', 'SiglipVisionModel')}",
    )
    return {f"trunk.{k}": v for k, v in tower.items()}, config
