"""Sanity bounds on the sizes a model config asks for, checked before anything is allocated.

A config is data from a file that may be a typo or hostile: `width: 1000000` in a custom
backbone model_cfg would make open_clip allocate terabytes (or gigabytes, then fail) before any
later check sees it. The bounds are generous (several times the largest open_clip ViT,
ViT-bigG-14: width 1664, 48 blocks, 1.8 G vision parameters) and each failure names the field.
Registry towers (model_cfg null) are open_clip's own and trusted.
"""

from __future__ import annotations

from typing import Any, Callable

from space_clip_ros.errors import ConfigError, quote

# (low, high) per integer field of model_cfg.vision_cfg and of model_cfg itself.
VISION_INT_BOUNDS = {
    "width": (1, 8192),
    "layers": (1, 128),
    "head_width": (1, 1024),
    "patch_size": (1, 512),
}
MLP_RATIO_BOUNDS = (0.125, 16.0)
EMBED_DIM_BOUNDS = (1, 8192)
DECODER_WIDTH_MAX = 4096  # decoder channels, FiLM hidden and head widths
INPUT_SIDE_MAX = 4096  # backbone.input_size, each side, pixels
MAX_TOKENS = 16384  # patch tokens per image: attention is quadratic in them
# 4 G parameters = 16 GB in fp32: more than any real tower, less than any machine's surprise.
MAX_BACKBONE_PARAMETERS = 4_000_000_000


def check_sizes(cfg: Any, source: str) -> None:
    """Raise ConfigError naming the first field of cfg (a SpaceClipConfig) outside its bounds."""

    def bad(name: str, value: Any, why: str, fix: str) -> ConfigError:
        return ConfigError(f"{quote(value)} {why}", source=source, field=name, fix=fix)

    b, d = cfg.backbone, cfg.decoder
    for i, side in enumerate(b.input_size):
        if side > INPUT_SIDE_MAX:
            raise bad(
                f"backbone.input_size[{i}]",
                side,
                f"is above {INPUT_SIDE_MAX} pixels",
                "use the encoder's input size, e.g. [224, 224] or [224, 672] for KITTI",
            )
    widths = {f"decoder.semantic_channels[{i}]": c for i, c in enumerate(d.semantic_channels)}
    widths.update(
        {f"decoder.structural_channels[{i}]": c for i, c in enumerate(d.structural_channels)}
    )
    widths.update({"decoder.film_hidden": d.film_hidden, "decoder.head_hidden": d.head_hidden})
    for name, width in widths.items():
        if width > DECODER_WIDTH_MAX:
            raise bad(
                name,
                width,
                f"is above {DECODER_WIDTH_MAX}",
                "use the paper's widths ([256, 128, 64, 32], film_hidden 256, head_hidden 16)",
            )
    if b.model_cfg is not None:
        _check_model_cfg(b.model_cfg, tuple(b.input_size), bad)


def _check_model_cfg(model_cfg: dict, input_size: tuple[int, int], bad: Callable) -> None:
    prefix = "backbone.model_cfg"
    fix_shape = "give an open_clip model config: {embed_dim: N, vision_cfg: {width: ..., ...}}"
    vision = model_cfg.get("vision_cfg")
    if not isinstance(vision, dict):
        raise bad(f"{prefix}.vision_cfg", vision, "is not a mapping", fix_shape)
    if "embed_dim" not in model_cfg:
        raise bad(f"{prefix}.embed_dim", None, "is missing", fix_shape)
    _check_int(f"{prefix}.embed_dim", model_cfg["embed_dim"], EMBED_DIM_BOUNDS, bad)
    if vision.get("timm_model_name"):
        return  # timm builds the trunk from its own registry entry: no sizes here to check
    for key, bounds in VISION_INT_BOUNDS.items():
        if key in vision:
            value = vision[key]
            if key == "patch_size" and isinstance(value, (list, tuple)) and len(value) == 2:
                for i, side in enumerate(value):
                    _check_int(f"{prefix}.vision_cfg.patch_size[{i}]", side, bounds, bad)
            else:
                _check_int(f"{prefix}.vision_cfg.{key}", value, bounds, bad)
    ratio = vision.get("mlp_ratio", 4.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise bad(f"{prefix}.vision_cfg.mlp_ratio", ratio, "is not a number", "use e.g. 4.0")
    if not MLP_RATIO_BOUNDS[0] <= ratio <= MLP_RATIO_BOUNDS[1]:
        raise bad(
            f"{prefix}.vision_cfg.mlp_ratio",
            ratio,
            f"is outside [{MLP_RATIO_BOUNDS[0]}, {MLP_RATIO_BOUNDS[1]}]",
            "use e.g. 4.0",
        )
    width, layers = vision.get("width", 768), vision.get("layers", 12)
    patch = vision.get("patch_size", 16)
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    tokens = (input_size[0] // ph) * (input_size[1] // pw)
    if tokens > MAX_TOKENS:
        raise bad(
            f"{prefix}.vision_cfg.patch_size",
            patch,
            f"cuts backbone.input_size {list(input_size)} into {tokens} tokens "
            f"(at most {MAX_TOKENS})",
            "use a larger patch size or a smaller backbone.input_size",
        )
    # Per block: attention 4 w^2, MLP 2 * mlp_ratio * w^2 (biases and norms are negligible).
    parameters = int(layers * (4 + 2 * ratio) * width * width)
    if parameters > MAX_BACKBONE_PARAMETERS:
        raise bad(
            f"{prefix}.vision_cfg",
            {"width": width, "layers": layers, "mlp_ratio": ratio},
            f"describes about {parameters / 1e9:.1f} G parameters "
            f"(at most {MAX_BACKBONE_PARAMETERS / 1e9:.0f} G)",
            "check width and layers: ViT-B-16 is width 768, 12 layers",
        )


def _check_int(name: str, value: Any, bounds: tuple[int, int], bad: Callable) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(
            name, value, "is not an integer", f"use an integer in [{bounds[0]}, {bounds[1]}]"
        )
    if not bounds[0] <= value <= bounds[1]:
        raise bad(
            name,
            value,
            f"is outside [{bounds[0]}, {bounds[1]}]",
            "check the value (ViT-B-16: width 768, layers 12, head_width 64, patch_size 16)",
        )
