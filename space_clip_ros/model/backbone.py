"""Frozen open_clip vision tower exposing every block's hidden state and the global embedding.

open_clip's own forward returns only the pooled embedding (and forward_intermediates does not
expose hidden state 0, the sequence entering the first block), so this adapter walks the
tower's submodules itself. Two tower families are supported, each by a small walker:
open_clip-native ViTs (ViT-B/32, B/16, L/14, H/14, custom configs) and timm VisionTransformer
trunks (SigLIP and other open_clip configs with a `timm_model_name`). Anything else (EVA's
rotary towers, ConvNeXt, ResNets) is refused with a clear message.

The tower is built at the configured input size; pretrained positional embeddings are resampled
to that grid when the weights are loaded, so an aspect-preserving input costs nothing per frame.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

import open_clip
import timm
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
from torch import nn

from space_clip_ros.errors import quote

from .config import BackboneConfig, ConfigError, check_weights_source
from .open_clip_api import (
    CLIPVisionCfg,
    VisionTransformer,
    build_vision_tower,
    download_pretrained,
)
from .torch_files import load_safetensors, load_torch_file
from .weight_checks import nonfinite_problem

log = logging.getLogger(__name__)

# Seed for towers built without pretrained weights: makes "random" backbones reproducible, so a
# test checkpoint saved and reloaded predicts exactly the same depth.
RANDOM_BACKBONE_SEED = 0


class BackboneWeightsError(ConfigError, RuntimeError):
    """The backbone's pretrained weights could not be obtained or do not fit the architecture."""


@dataclass
class BackboneFeatures:
    hidden: dict[int, torch.Tensor]  # layer index -> (B, width, grid_h, grid_w)
    global_embedding: (
        torch.Tensor
    )  # (B, width): class token after the final LayerNorm, before projection


@dataclass(frozen=True)
class BackboneWeights:
    """Where a backbone's pretrained weights come from, resolved before anything is built.

    path: a local file (given, or the open_clip cache after a download), None for random
    weights; field: the setting that chose them (named in every error); tag_cfg: the pretrained
    tag's open_clip config (activation, normalisation), {} for a file or random weights.
    """

    path: Optional[Path]
    field: str
    tag_cfg: dict
    from_file: bool  # the user named a local file (QuickGELU cannot be told from it)


def resolve_backbone_weights(
    cfg: BackboneConfig, weights_override: str | None = None
) -> BackboneWeights:
    """The weights a backbone of `cfg` will load: the override file, or backbone.pretrained (a
    file, an open_clip tag fetched into or found in the local cache, or null: random weights).

    The one place weights are looked up (a download, or an offline cache lookup after a probe of
    the host), so a model is built once, knowing its weights, and a failure is a
    BackboneWeightsError naming the setting before any tower exists.
    """
    tag_cfg = _pretrained_tag_cfg(cfg.model_name, cfg.pretrained)
    if weights_override:  # the config's own value was checked when it was read
        check_weights_source(weights_override, "backbone_weights")
    pretrained = weights_override if weights_override is not None else cfg.pretrained
    # Name what the user set, so the message says which setting to change.
    field = "backbone_weights" if weights_override is not None else "backbone.pretrained"
    if not pretrained:
        return BackboneWeights(None, field, tag_cfg, from_file=False)
    path = Path(os.path.expanduser(pretrained))
    if path.is_file():
        return BackboneWeights(path, field, tag_cfg, from_file=True)
    if not tag_cfg or pretrained != cfg.pretrained:
        tags = open_clip.list_pretrained_tags_by_model(cfg.model_name)
        fix = (
            "give an existing weights file, or leave backbone_weights empty to use the "
            "checkpoint's backbone.pretrained"
            if field == "backbone_weights"
            else "give a tag, an existing weights file, or null for random weights"
        )
        raise BackboneWeightsError(
            f"{quote(pretrained)} is neither a file nor an open_clip pretrained tag for "
            f"{cfg.model_name} (known tags: {', '.join(tags) or 'none'})",
            field=field,
            fix=fix,
        )
    try:
        return BackboneWeights(_fetch_pretrained(tag_cfg), field, tag_cfg, from_file=False)
    except Exception as exc:  # network, HF hub and filesystem errors all end here
        raise BackboneWeightsError(
            f"could not fetch open_clip weights {cfg.model_name}/{pretrained} "
            f"({type(exc).__name__}: {quote(str(exc))})",
            fix="on a machine with internet run "
            '`python -c "import open_clip; open_clip.create_model('
            f"'{cfg.model_name}', pretrained='{pretrained}')\"` to fill the cache, "
            "or set backbone.pretrained (or the backbone_weights override) to a local "
            "weights file",
        ) from exc


class ClipVisionBackbone(nn.Module):
    """The frozen tower of `cfg`, built once and never fetching anything: `weights` (from
    resolve_backbone_weights) decides the activation and normalisation their tag implies, and
    load_weights() reads them into it. No weights: a seeded random tower (tests, dry runs)."""

    def __init__(self, cfg: BackboneConfig, weights: Optional[BackboneWeights] = None) -> None:
        super().__init__()
        self.cfg = cfg
        weights = weights or BackboneWeights(None, "backbone.pretrained", {}, from_file=False)
        model_cfg = (
            cfg.model_cfg
            if cfg.model_cfg is not None
            else open_clip.get_model_config(cfg.model_name)
        )
        if model_cfg is None:
            raise ConfigError(
                f"{quote(cfg.model_name)} is not an open_clip architecture",
                field="backbone.model_name",
                fix="use one of open_clip.list_models() (e.g. ViT-B-16, ViT-L-14) or give "
                "backbone.model_cfg",
            )
        # The config's pretrained tag fixes activation and normalisation even when the weights
        # themselves come from an override file (a local copy of the same tag).
        tag_cfg = weights.tag_cfg
        vision_cfg = _vision_cfg(model_cfg, cfg.input_size)
        quick_gelu = resolve_quick_gelu(cfg, model_cfg, tag_cfg, from_file=weights.from_file)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_BACKBONE_SEED)
            if vision_cfg.timm_model_name:
                self.tower: BuildableTower = TimmTower.build(cfg.model_name, vision_cfg)
            else:
                self.tower = OpenClipTower.build(
                    cfg.model_name, model_cfg.get("embed_dim"), vision_cfg, quick_gelu
                )
        self.visual = self.tower.module
        self.width, self.num_layers = self.tower.width, self.tower.num_layers
        self.patch_size: tuple[int, int] = self.tower.patch_size
        if any(s % p for s, p in zip(cfg.input_size, self.patch_size)):
            raise ConfigError(
                f"{list(cfg.input_size)} is not a multiple of the patch size "
                f"{list(self.patch_size)}",
                field="backbone.input_size",
                fix="round each side to a multiple of the patch size",
            )
        mean = cfg.mean or tag_cfg.get("mean") or open_clip.OPENAI_DATASET_MEAN
        std = cfg.std or tag_cfg.get("std") or open_clip.OPENAI_DATASET_STD
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ClipVisionBackbone":
        """Always eval: the backbone is frozen, so dropout / patch dropout must never switch on."""
        return super().train(False)

    def load_weights(self, weights: BackboneWeights) -> None:
        """Read the resolved weights file into the tower, strictly; refuse NaN/inf."""
        path, field = weights.path, weights.field
        if path is None:
            log.warning(
                "backbone %s has RANDOM weights (pretrained: null): features are meaningless",
                self.cfg.model_name,
            )
            return
        state = self.tower.adapt_state(_read_state_dict(path, field))
        problem = nonfinite_problem(state)  # such a tower loads and makes every depth NaN
        if problem:
            raise BackboneWeightsError(
                f"{problem} (set by {field})",
                source=path,
                fix="the file is damaged or came from a diverged run: re-download or re-export it",
            )
        try:
            result = self.visual.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise BackboneWeightsError(
                f"weights do not fit backbone {self.cfg.model_name} (set by {field}): "
                f"{quote(str(exc), 600)}",
                source=path,
                fix="use weights of the same open_clip architecture as backbone.model_name",
            ) from exc
        if result.missing_keys or result.unexpected_keys:
            raise BackboneWeightsError(
                f"weights do not fit backbone {self.cfg.model_name} (set by {field}): "
                f"missing {quote(result.missing_keys[:3])}, "
                f"unexpected {quote(result.unexpected_keys[:3])}",
                source=path,
                fix="use weights of the same open_clip architecture",
            )
        log.info("backbone %s: loaded weights from %s", self.cfg.model_name, path)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward(self, images: torch.Tensor, layers: list[int]) -> BackboneFeatures:
        """Hidden states of the requested layers (0 = entering block 1, k = output of block k).

        images: normalised (B, 3, H, W) at backbone.input_size.
        """
        dtype = next(self.visual.parameters()).dtype
        return self.tower.run(images.to(dtype), set(layers))


class Tower:
    """One tower family's definition of what SPACE-CLIP reads from it.

    Shared by ClipVisionBackbone, which runs the blocks itself, and space_clip_ros.shared, which
    reads the same states from a host encoder's own forward through hooks: hidden state 0 is the
    output of `hidden0_module` (the sequence entering block 1, after any pre-LayerNorm), hidden
    state k the output of `blocks[k - 1]`, `grid` cuts the patch tokens into (B, width, gh, gw)
    and `pool` makes the global embedding from the last block's output. One definition of each,
    so the standalone model and a tap on a host cannot drift apart.
    """

    module: nn.Module
    width: int
    num_layers: int
    patch_size: tuple[int, int]
    grid_size: tuple[int, int]
    prefix: int  # class/register tokens before the patch tokens
    pooling: str  # config.POOLINGS
    batch_first: bool = True  # the blocks' token layout (open_clip towers may run (N, B, C))

    @property
    def blocks(self) -> Sequence[nn.Module]:
        raise NotImplementedError

    @property
    def hidden0_module(self) -> nn.Module:
        """The module whose output is hidden state 0 (batch-first tokens)."""
        raise NotImplementedError

    @property
    def patch_conv(self) -> nn.Module:
        """The patch embedding's convolution: its (B, C, gh, gw) output gives a call's grid."""
        raise NotImplementedError

    @property
    def activation(self) -> Optional[nn.Module]:
        """The blocks' MLP activation (None when the family keeps it elsewhere)."""
        raise NotImplementedError

    def canonical_state(self) -> dict[str, torch.Tensor]:
        """The tensors hidden states and the global embedding depend on, in this family's
        canonical names: what the weights fingerprint hashes."""
        raise NotImplementedError

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The global embedding (B, width) from the last block's batch-first output."""
        raise NotImplementedError

    def tokens(self, output: torch.Tensor | tuple) -> torch.Tensor:
        """A block's output (a tensor, or a tuple led by one) as batch-first (B, N, C) tokens."""
        x = output[0] if isinstance(output, tuple) else output
        return x if self.batch_first else x.transpose(0, 1)

    def grid(
        self, tokens: torch.Tensor, grid_size: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        """(B, prefix + gh*gw, C) tokens -> (B, C, gh, gw) patch grid."""
        b, _, c = tokens.shape
        patches = tokens[:, self.prefix :].transpose(1, 2)
        return patches.reshape(b, c, *(grid_size or self.grid_size))


class BuildableTower(Tower):
    """A family ClipVisionBackbone builds, loads weights into and runs itself."""

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A CLIP checkpoint's tensors renamed and resampled for this tower's module."""
        raise NotImplementedError

    def run(self, images: torch.Tensor, wanted: set[int]) -> BackboneFeatures:
        raise NotImplementedError


def _resample_positions(pos: torch.Tensor, grid: tuple[int, int], prefix: int) -> torch.Tensor:
    """Pretrained (square-grid) positional embeddings bicubically resampled to grid."""
    squeeze = pos.ndim == 2
    out = resample_abs_pos_embed(
        pos[None] if squeeze else pos, new_size=list(grid), num_prefix_tokens=prefix
    )
    return out[0] if squeeze else out


class OpenClipTower(BuildableTower):
    """open_clip-native ViTs (a CLIP model's `.visual`): class token, ln_pre, ln_post."""

    POOLINGS = {"tok": "class_token", "avg": "mean_patch"}

    def __init__(self, visual: VisionTransformer) -> None:
        self.module = visual
        self.width = visual.transformer.width
        self.num_layers = len(visual.transformer.resblocks)
        self.patch_size = tuple(visual.patch_size)
        self.grid_size = tuple(visual.grid_size)
        self.prefix = 1
        self.pooling = self.POOLINGS.get(getattr(visual, "pool_type", "tok"), "other")
        self.batch_first = getattr(visual.transformer, "batch_first", True)

    @classmethod
    def build(
        cls, name: str, embed_dim: int, vision_cfg: CLIPVisionCfg, quick_gelu: bool
    ) -> "OpenClipTower":
        try:
            visual = build_vision_tower(embed_dim, vision_cfg, quick_gelu=quick_gelu)
        except (TypeError, ValueError, KeyError, AttributeError, AssertionError) as exc:
            # a value of the wrong kind in a custom model_cfg (e.g. act_kwargs: 3)
            raise ConfigError(
                f"open_clip cannot build this tower ({type(exc).__name__}: {quote(str(exc))})",
                field="backbone.model_cfg",
                fix="compare the values with an open_clip model config "
                "(open_clip.get_model_config('ViT-B-16'))",
            ) from exc
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
            raise ConfigError(
                f"'{name}' builds a {type(visual).__name__} with attentional pooling or a "
                "non-ViT trunk",
                field="backbone.model_name",
                fix="use a plain open_clip ViT (ViT-B-16, ViT-L-14, ...) or a timm ViT tower "
                "(SigLIP)",
            )
        # The projection to the joint text-image space is never used (the decoder reads the
        # pre-projection class token); dropping it makes the count match the paper's 85.8 M.
        visual.proj = None
        _sequence_first(visual)
        return cls(visual)

    @property
    def blocks(self) -> Sequence[nn.Module]:
        return self.module.transformer.resblocks

    @property
    def hidden0_module(self) -> nn.Module:
        return self.module.ln_pre

    @property
    def patch_conv(self) -> nn.Module:
        return self.module.conv1

    @property
    def activation(self) -> Optional[nn.Module]:
        return getattr(self.blocks[0].mlp, "gelu", None)

    def canonical_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.module.state_dict().items() if k != "proj"}

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.module._pool(tokens)
        return pooled

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = {
            k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")
        } or state
        state.pop("proj", None)
        pos = state.get("positional_embedding")
        if pos is not None and pos.shape != self.module.positional_embedding.shape:
            state["positional_embedding"] = _resample_positions(pos, self.grid_size, prefix=1)
        return state

    def run(self, images: torch.Tensor, wanted: set[int]) -> BackboneFeatures:
        v = self.module
        x = v.conv1(images).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = v.ln_pre(torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype))
        hidden = {0: self.grid(x)} if 0 in wanted else {}
        if not self.batch_first:
            x = x.transpose(0, 1)
        for k, block in enumerate(self.blocks, start=1):
            x = block(x)
            if k in wanted:
                hidden[k] = self.grid(self.tokens(x))
        return BackboneFeatures(hidden=hidden, global_embedding=self.pool(self.tokens(x)))


def _sequence_first(visual: VisionTransformer) -> None:
    """Run the blocks on (tokens, batch, width) tensors, as CLIP's original code did.

    A batch-first nn.MultiheadAttention transposes its input to that layout itself, as a view,
    and under CPU autocast its input projection on that view multiplied against a broadcast
    copy of the weight: bf16 at batch 4 ran 13x slower per image than at batch 1 (profiled:
    aten::copy_ inside aten::bmm, 65 % of the time; bench/bench_precision.py). Fed the layout
    it wants, the attention reads LayerNorm's contiguous output. Same weights, same results.
    """
    visual.transformer.batch_first = False
    for block in visual.transformer.resblocks:
        block.attn.batch_first = False


class TimmTower(BuildableTower):
    """timm VisionTransformer trunks (SigLIP's towers in open_clip).

    Class/register tokens or none; the global embedding comes from the trunk's own pooling
    (class token, mean, or SigLIP's attention pool).
    """

    POOLINGS = {"token": "class_token", "avg": "mean_patch", "map": "attention_pool"}

    def __init__(self, trunk: TimmVisionTransformer) -> None:
        self.module = trunk
        self.width = trunk.embed_dim
        self.num_layers = len(trunk.blocks)
        self.patch_size = tuple(trunk.patch_embed.patch_size)
        self.grid_size = tuple(trunk.patch_embed.grid_size)
        self.prefix = trunk.num_prefix_tokens
        self.pooling = self.POOLINGS.get(trunk.global_pool, "other")

    @classmethod
    def build(cls, name: str, vision_cfg: CLIPVisionCfg) -> "TimmTower":
        pool = {"": "token", None: "token"}.get(vision_cfg.timm_pool, vision_cfg.timm_pool)
        try:
            trunk = timm.create_model(
                vision_cfg.timm_model_name,
                pretrained=False,
                num_classes=0,
                global_pool=pool,
                img_size=tuple(vision_cfg.image_size),
            )
        except (
            TypeError,
            ValueError,
            RuntimeError,
        ) as exc:  # towers that take no img_size / this pool
            raise ConfigError(
                f"'{name}': timm tower {vision_cfg.timm_model_name} cannot be built here ({exc})",
                field="backbone.model_name",
                fix="use an open_clip-native ViT or a timm ViT tower such as SigLIP",
            ) from exc
        if not isinstance(trunk, TimmVisionTransformer):
            raise ConfigError(
                f"'{name}' is a timm {type(trunk).__name__} ({vision_cfg.timm_model_name}); only "
                "timm VisionTransformer trunks (e.g. SigLIP) and open_clip-native ViTs are "
                "supported (EVA's rotary embeddings are not)",
                field="backbone.model_name",
                fix="pick ViT-B-16, ViT-L-14, ViT-B-16-SigLIP, ...",
            )
        return cls(trunk)

    @property
    def blocks(self) -> Sequence[nn.Module]:
        return self.module.blocks

    @property
    def hidden0_module(self) -> nn.Module:
        return self.module.norm_pre

    @property
    def patch_conv(self) -> nn.Module:
        return self.module.patch_embed.proj

    @property
    def activation(self) -> Optional[nn.Module]:
        return getattr(self.blocks[0].mlp, "act", None)

    def canonical_state(self) -> dict[str, torch.Tensor]:
        state = self.module.state_dict()
        return {k: v for k, v in state.items() if not k.startswith("head.")}

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        t = self.module
        return t.fc_norm(t.pool(t.norm(tokens)))

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        prefix = "visual.trunk."
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)} or state
        pos = state.get("pos_embed")
        if pos is not None and pos.shape != self.module.pos_embed.shape:
            embedded_prefix = 0 if getattr(self.module, "no_embed_class", False) else self.prefix
            state["pos_embed"] = _resample_positions(pos, self.grid_size, prefix=embedded_prefix)
        return state

    def run(self, images: torch.Tensor, wanted: set[int]) -> BackboneFeatures:
        t = self.module
        x = t.norm_pre(t._pos_embed(t.patch_embed(images)))
        hidden = {0: self.grid(x)} if 0 in wanted else {}
        for k, block in enumerate(self.blocks, start=1):
            x = block(x)
            if k in wanted:
                hidden[k] = self.grid(x)
        return BackboneFeatures(hidden=hidden, global_embedding=self.pool(x))


def _vision_cfg(model_cfg: dict, input_size: tuple[int, int]) -> CLIPVisionCfg:
    """open_clip's CLIPVisionCfg from a model config, at input_size; unknown keys named."""
    vision = model_cfg.get("vision_cfg")
    if not isinstance(vision, dict):
        raise ConfigError(
            f"is {quote(vision)}, not a mapping",
            field="backbone.model_cfg.vision_cfg",
            fix="give an open_clip vision config: {width: ..., layers: ..., patch_size: ...}",
        )
    known = [f.name for f in dataclasses.fields(CLIPVisionCfg)]
    for key in vision:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(
                f"unknown key {quote(key, 80)}",
                field="backbone.model_cfg.vision_cfg",
                fix=f"remove it or correct the name ({hint})",
            )
    return CLIPVisionCfg(**{**vision, "image_size": tuple(input_size)})


def resolve_quick_gelu(
    cfg: BackboneConfig, model_cfg: dict, tag_cfg: dict, from_file: bool
) -> bool:
    """QuickGELU or GELU: explicit, else from the pretrained tag or the model name, else refused.

    OpenAI's towers were trained with QuickGELU; open_clip marks them by the 'openai' tag and the
    '-quickgelu' model names. A local weights file says nothing, and the wrong activation does not
    fail, it silently degrades the features: for an architecture that has OpenAI weights the
    config must then say which.
    """
    if cfg.quick_gelu is not None:
        return cfg.quick_gelu
    if "quick_gelu" in tag_cfg or "quick_gelu" in model_cfg:
        return bool(tag_cfg.get("quick_gelu", False) or model_cfg.get("quick_gelu", False))
    timm_tower = bool(model_cfg.get("vision_cfg", {}).get("timm_model_name"))
    if (
        from_file
        and not timm_tower
        and "openai" in open_clip.list_pretrained_tags_by_model(cfg.model_name)
    ):
        raise ConfigError(
            f"the weights come from a local file and '{cfg.model_name}' has OpenAI weights "
            "(QuickGELU) as well as GELU ones: the activation cannot be told from the file",
            field="backbone.quick_gelu",
            fix="set backbone.quick_gelu: true for OpenAI weights (false for LAION, DataComp "
            f"and other GELU weights), or name the model '{cfg.model_name}-quickgelu'",
        )
    return False


def _pretrained_tag_cfg(model_name: str, pretrained: str | None) -> dict:
    if not pretrained or Path(os.path.expanduser(pretrained)).is_file():
        return {}
    return dict(open_clip.get_pretrained_cfg(model_name, pretrained) or {})


def _fetch_pretrained(tag_cfg: dict) -> Path:
    """Cached file or open_clip download; fails in seconds, not minutes, when offline.

    open_clip/huggingface_hub retry an unreachable hub for about a minute before looking in the
    cache, so a robot without internet would stall at start-up. Probe the host first and, when
    it is unreachable, answer from the local cache or fail at once.
    """
    hf_hub = tag_cfg.get("hf_hub") or ""
    url = tag_cfg.get("url") or ""
    host = "huggingface.co" if hf_hub else urlparse(url).hostname
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if host and (offline or not _reachable(host)):
        if hf_hub:
            from huggingface_hub import try_to_load_from_cache

            repo_id, filename = os.path.split(
                hf_hub
            )  # open_clip's own convention: "org/repo/[file]"
            for name in (
                [filename]
                if filename
                else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            ):
                cached = try_to_load_from_cache(repo_id, name)
                if isinstance(cached, str):
                    return Path(cached)
        raise ConnectionError(
            f"{host} is unreachable (or HF_HUB_OFFLINE is set) and the weights are not in the "
            "local cache"
        )
    return Path(download_pretrained(tag_cfg))


def _reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _read_state_dict(path: Path, field: str) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch file, never unpickling arbitrary objects."""
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(path)
        else:
            state = load_torch_file(path, field=field)
    except ConfigError as exc:  # torch too old to read torch files safely
        raise BackboneWeightsError(str(exc)) from exc
    except Exception as exc:
        raise BackboneWeightsError(
            f"cannot read backbone weights (set by {field}): "
            f"{type(exc).__name__}: {quote(str(exc))}",
            source=path,
            fix="use an open_clip state dict saved as .safetensors or with torch.save "
            "(TorchScript archives are not loaded)",
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneWeightsError(
            f"expected a state dict of tensors (set by {field}), found {type(state).__name__}",
            source=path,
            fix="save the model's state_dict(), not the model object",
        )
    return {k.removeprefix("module."): v for k, v in state.items()}
