"""The record of the frozen encoder a decoder was trained on (config.EncoderRecord).

A decoder is only right on the features of the tower it was trained on: another architecture
fails loudly, but other weights, another activation or another normalisation give wrong depth
without any error. So every checkpoint saved from a model records that tower, measured from the
tower itself (never from what a config asked for), and space_clip_ros.shared.attach compares a
host encoder with the record. The same functions describe both sides, through the tower
definitions of model/backbone.py.

The weights fingerprint hashes the tower's tensors in canonical names (open_clip's for CLIP
towers, timm's for SigLIP towers; transformers towers are renamed into them first), once per
precision a host may hold them in.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from typing import TYPE_CHECKING, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderRecord, WeightsFingerprint

if TYPE_CHECKING:
    from .backbone import ClipVisionBackbone, Tower

FINGERPRINT_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# The activations a ViT's MLP computes, told apart by their values (class names differ between
# open_clip, timm and transformers): QuickGELU and GELU differ by up to 0.02, GELU and its tanh
# approximation by up to 5e-4, so 1e-5 separates them all.
_ACTIVATION_PROBE = torch.linspace(-4.0, 4.0, 81)
_ACTIVATION_TOLERANCE = 1e-5
_REFERENCE_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}

# Records of towers already measured, so the trainer's several saves per epoch hash once. The
# key holds the tower weakly; the stamp (each tensor's storage and in-place version counter)
# notices any change of the weights.
_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, EncoderRecord]]" = (
    weakref.WeakKeyDictionary()
)


def digest(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> str:
    """SHA-256 over (name, shape, bytes) of every tensor in name order, floats cast to dtype."""
    sha = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach()
        if tensor.is_floating_point():
            tensor = tensor.to("cpu", dtype)
        tensor = tensor.to("cpu").contiguous().reshape(-1)
        sha.update(f"{name}\0{tuple(state[name].shape)}\0".encode())
        sha.update(tensor.view(torch.uint8).numpy())
    return sha.hexdigest()


def weights_fingerprint(state: Mapping[str, torch.Tensor]) -> WeightsFingerprint:
    return WeightsFingerprint(
        **{name: digest(state, dtype) for name, dtype in FINGERPRINT_DTYPES.items()}
    )


def held_precision(state: Mapping[str, torch.Tensor]) -> str:
    """The precision a host holds its tower in: its narrowest floating dtype (a host that keeps
    norms in fp32 and matrices in bf16 is compared at bf16)."""
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    for name in ("float16", "bfloat16"):
        if FINGERPRINT_DTYPES[name] in dtypes:
            return name
    return "float32"


def classify_activation(module: Optional[nn.Module]) -> str:
    """'quick_gelu', 'gelu', 'gelu_tanh' or 'other', from the values the module computes."""
    if module is None:
        return "other"
    try:
        with torch.no_grad():
            values = module(_ACTIVATION_PROBE.clone()).float()
    except Exception:  # an activation that cannot run on a CPU float32 vector
        return "other"
    for name, reference in _REFERENCE_ACTIVATIONS.items():
        if (values - reference(_ACTIVATION_PROBE)).abs().max() < _ACTIVATION_TOLERANCE:
            return name
    return "other"


def record_of_tower(
    tower: "Tower",
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    source: str,
) -> EncoderRecord:
    """The record of a built tower (any family) fed with mean/std normalisation."""
    state = tower.canonical_state()
    if held_precision(state) != "float32":
        # a half copy cannot vouch for the fp32 weights it was rounded from
        raise ValueError(
            f"the tower is held in {held_precision(state)}: record it in float32 (save the "
            "checkpoint from a model whose backbone was not cast to half precision)"
        )
    stamp = tuple((k, t.data_ptr(), t._version) for k, t in state.items())
    cached = _CACHE.get(tower.module)
    if cached is not None and cached[0] == stamp:
        fingerprint = cached[1].weights
    else:
        fingerprint = weights_fingerprint(state)
    record = EncoderRecord(
        width=tower.width,
        layers=tower.num_layers,
        patch_size=tuple(tower.patch_size),
        grid=tuple(tower.grid_size),
        prefix_tokens=tower.prefix,
        pooling=tower.pooling,
        activation=classify_activation(tower.activation),
        mean=_rounded(mean),
        std=_rounded(std),
        weights=fingerprint,
        source=source,
    )
    _CACHE[tower.module] = (stamp, record)
    return record


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    """As the tower is fed them (float32), at 8 significant digits: the same numbers whether
    they come from a backbone's buffers or a config, without float32 noise in config.yaml."""
    as_fed = torch.tensor([float(v) for v in values], dtype=torch.float32).tolist()
    return tuple(float(f"{v:.8g}") for v in as_fed)


def record_of_backbone(backbone: "ClipVisionBackbone") -> EncoderRecord:
    """The record of the tower a SpaceClip model runs: what its decoder is being trained on."""
    cfg = backbone.cfg
    source = f"open_clip {cfg.model_name}, pretrained {cfg.pretrained or 'none (random)'}"
    return record_of_tower(
        backbone.tower,
        tuple(backbone.mean.flatten().tolist()),
        tuple(backbone.std.flatten().tolist()),
        source,
    )


def record_of_state(
    state: Mapping[str, torch.Tensor],
    family: str,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    activation: str,
    source: str,
) -> EncoderRecord:
    """The record of a tower given as tensors in canonical names, with no module built: an
    imported checkpoint's own tower. family "clip": open_clip names (class token, ln_post);
    "siglip": timm names, no class token, attention pooling. Square grids only (as released).
    """
    if family == "clip":
        positions, patch_conv, blocks = (
            "positional_embedding",
            "conv1.weight",
            "transformer.resblocks",
        )
        prefix, pooling = 1, "class_token"
    elif family == "siglip":
        positions, patch_conv, blocks = "pos_embed", "patch_embed.proj.weight", "blocks"
        prefix, pooling = 0, "attention_pool"
    else:
        raise ValueError(f"unknown tower family {family!r}")
    pos = state[positions].reshape(-1, state[positions].shape[-1])
    side = round((pos.shape[0] - prefix) ** 0.5)
    block = re.compile(re.escape(blocks) + r"\.(\d+)\.")
    return EncoderRecord(
        width=int(pos.shape[-1]),
        layers=len({m[1] for k in state for m in [block.match(k)] if m}),
        patch_size=(int(state[patch_conv].shape[-2]), int(state[patch_conv].shape[-1])),
        grid=(side, side),
        prefix_tokens=prefix,
        pooling=pooling,
        activation=activation,
        mean=_rounded(mean),
        std=_rounded(std),
        weights=weights_fingerprint(state),
        source=source,
    )
