"""SpaceClip: frozen CLIP vision tower + trainable dual-pathway decoder, images in, metres out.

The module owns its preprocessing (resize to the encoder input, CLIP normalisation) so that the
node, the CLI, training and the ONNX export all feed it the same thing: RGB floats in [0, 1].
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from .backbone import (
    BackboneFeatures,
    BackboneWeights,
    ClipVisionBackbone,
    resolve_backbone_weights,
)
from .canonical_camera import PAD_MODE, CameraView
from .config import ConfigError, DecoderConfig, SpaceClipConfig
from .decoder import SpaceClipDecoder


def resolve_layers(cfg: SpaceClipConfig, num_layers: int) -> SpaceClipConfig:
    """A copy of cfg with the layer lists filled in for an L-block tower and checked against L."""
    cfg = copy.deepcopy(cfg)
    d = cfg.decoder
    if d.semantic_layers is None:
        d.semantic_layers = [num_layers, 3 * num_layers // 4, num_layers // 2, num_layers // 4]
    if d.structural_layers is None:
        d.structural_layers = [2, 1, 0]
    for name in ("semantic_layers", "structural_layers"):
        bad = [k for k in getattr(d, name) if not 0 <= k <= num_layers]
        if bad:
            raise ConfigError(
                f"contains {bad}, but backbone '{cfg.backbone.model_name}' has hidden states "
                f"0..{num_layers}",
                field=f"decoder.{name}",
                fix="use indices in that range or null for the default",
            )
    return cfg


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) to size; antialiased when shrinking so a 1242-wide frame does not alias at 224.

    The one resize on the way into the encoder and out of the head, shared with the ONNX Runtime
    backend so both backends see identical pixels.
    """
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    shrinking = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    if shrinking and x.dtype != torch.float32:
        x = x.float()  # antialiased kernels are float32-only on some devices (bf16 on CPU)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def resize_to_encoder(x: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] to the encoder's input size by backbone.input_resize.

    The one encoder-input resize of training, evaluation and inference. pil_bicubic_uint8 is the
    SPACE-CLIP release's PIL bicubic on 8-bit images, pass for pass as PIL does it: quantise to
    8 bits, resample the width, round to 8 bits, resample the height, round (torch's antialiased
    bicubic is PIL's kernel; the result is within one grey level of PIL's).
    """
    if method == "bilinear_antialias" or tuple(x.shape[-2:]) == tuple(size):
        return resize_bilinear(x, size)
    if method != "pil_bicubic_uint8":
        raise ValueError(f"unknown input_resize {method!r}")
    levels = (x.float().clamp(0.0, 1.0) * 255.0).round()
    for step in ((levels.shape[-2], size[1]), tuple(size)):
        levels = F.interpolate(
            levels, size=step, mode="bicubic", align_corners=False, antialias=True
        )
        levels = levels.round().clamp(0.0, 255.0)
    return levels.div(255.0).to(x.dtype)


def view_to_encoder(
    images: torch.Tensor, view: CameraView, size: tuple[int, int], method: str
) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] to the size encoder input of a view: resize_to_encoder to
    the footprint, placed on the canvas, the rest filled by repeating the image's edge pixels
    (PAD_MODE; cut where the footprint reaches past the canvas)."""
    if tuple(images.shape[-2:]) != tuple(view.image_size):
        raise ValueError(
            f"the view was made for {view.image_size[1]}x{view.image_size[0]} images, got "
            f"{images.shape[-1]}x{images.shape[-2]}: plan the view for this image size"
        )
    if tuple(view.encoder_size) != tuple(size):
        raise ValueError(
            f"the view was planned for a {tuple(view.encoder_size)} encoder input, this "
            f"model's is {tuple(size)}"
        )
    resized = resize_to_encoder(images, view.footprint[2:], method)
    left, right, top, bottom = view.padding
    height, width = resized.shape[-2:]
    kept = resized[
        ..., max(-top, 0) : height - max(-bottom, 0), max(-left, 0) : width - max(-right, 0)
    ]
    margins = (max(left, 0), max(right, 0), max(top, 0), max(bottom, 0))
    return F.pad(kept, margins, mode=PAD_MODE) if any(margins) else kept


def view_to_image(
    depth: torch.Tensor, view: CameraView, out_size: tuple[int, int]
) -> torch.Tensor:
    """Decoder depth (B, 1, h, w) over a view's canvas to metres on the input image's pixel grid
    at out_size: (B, 1, H_out, W_out) float32, NaN where the view cut the image off.

    roi_align samples the footprint's rectangle: bilinear, averaging several samples per output
    pixel when shrinking (torchvision's kernel, on the depth's device).
    """
    top, left, height, width = view.footprint
    sy, sx = depth.shape[-2] / view.encoder_size[0], depth.shape[-1] / view.encoder_size[1]
    box = [left * sx, top * sy, (left + width) * sx, (top + height) * sy]
    boxes = torch.tensor([[i, *box] for i in range(depth.shape[0])], dtype=torch.float32)
    with torch.autocast(depth.device.type, enabled=False):
        out = roi_align(depth.float(), boxes.to(depth.device), tuple(out_size), aligned=True)
        out = out * float(view.depth_scale)
    if not view.covers_image:
        out = out * _inside_canvas(view, out_size, depth.device)
    return out


def _inside_canvas(
    view: CameraView, out_size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """1 where an output pixel's centre falls on the encoder canvas, NaN where it was cut."""
    top, left, height, width = view.footprint
    (canvas_h, canvas_w), (out_h, out_w) = view.encoder_size, out_size
    u = left + (torch.arange(out_w, device=device) + 0.5) * width / out_w
    v = top + (torch.arange(out_h, device=device) + 0.5) * height / out_h
    inside = ((v >= 0) & (v < canvas_h))[:, None] & ((u >= 0) & (u < canvas_w))
    return torch.where(inside, 1.0, float("nan"))


class SpaceClip(nn.Module):
    """Built by build_model (the factory resolves and loads the backbone's weights); the
    constructor only builds modules: weights resolved by resolve_backbone_weights decide the
    tower's activation and normalisation."""

    def __init__(
        self, config: SpaceClipConfig, backbone_weights: Optional[BackboneWeights] = None
    ) -> None:
        super().__init__()
        self.backbone = ClipVisionBackbone(config.backbone, backbone_weights)
        self.config = resolve_layers(config, self.backbone.num_layers)
        self.decoder = SpaceClipDecoder(self.backbone.width, self.config.decoder)
        self._layers = layers_read(self.config.decoder)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.config.backbone.input_size)

    def forward(
        self,
        images: torch.Tensor,
        output_size: tuple[int, int] | None = None,
        return_aux: bool = False,
        view: CameraView | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Metric depth (B, 1, H_out, W_out) for RGB images (B, 3, H, W) in [0, 1].

        output_size defaults to the input size; aux maps (return_aux) stay at their stage
        resolution so the loss can resize them to whatever ground truth it compares with.
        view (canonical_camera.canonical_view / plan_view): show the encoder the input as the
        training camera and return metres for the input camera; None resizes the whole frame
        to the encoder (the training crops' path, and checkpoints without a camera record).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if view is not None and return_aux:
            raise ValueError("return_aux is for training, which feeds crops without a view")
        out_size = tuple(output_size) if output_size is not None else tuple(images.shape[-2:])
        method = self.config.backbone.input_resize
        resized = (
            resize_to_encoder(images, self.input_size, method)
            if view is None
            else view_to_encoder(images, view, self.input_size, method)
        )
        x = self.backbone.normalize(resized)
        with torch.no_grad():
            feats = self.backbone(x, self._layers)
        depth, aux = decode(self.decoder, self.config.decoder, feats, out_size, return_aux, view)
        return (depth, aux) if return_aux else depth


def layers_read(cfg: DecoderConfig) -> list[int]:
    """The hidden states a decoder reads (a resolved config's layer lists), ascending."""
    structural = set(cfg.structural_layers) if cfg.use_structural else set()
    return sorted(set(cfg.semantic_layers) | structural)


def decode(
    decoder: SpaceClipDecoder,
    cfg: DecoderConfig,
    feats: BackboneFeatures,
    output_size: tuple[int, int],
    return_aux: bool = False,
    view: Optional[CameraView] = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(depth (B, 1, *output_size) in metres, aux maps) from a tower's hidden states.

    The decoder half of SpaceClip.forward, shared with space_clip_ros.shared's tap on a host
    encoder, so the two decode the same features identically. view: the camera view the
    encoder input was made with (view_to_encoder); the depth then comes back on the input
    image's pixel grid in the input camera's metres (view_to_image).
    """
    dtype = decoder.head[1].weight.dtype
    hidden = {k: h.to(dtype) for k, h in feats.hidden.items()}
    depth, aux = decoder(
        [hidden[k] for k in cfg.semantic_layers],
        [hidden[k] for k in cfg.structural_layers] if cfg.use_structural else [],
        feats.global_embedding.to(dtype),
        return_aux=return_aux,
    )
    if view is not None:
        return view_to_image(depth, view, tuple(output_size)), aux
    with torch.autocast(depth.device.type, enabled=False):  # fp32 out: no depth terraces
        depth = resize_bilinear(depth.float(), tuple(output_size))
    return depth, aux


def build_model(config: SpaceClipConfig, backbone_weights: str | None = None) -> SpaceClip:
    """The one place every SpaceClip is built: node, CLI, training and export all call this.

    The weights are resolved first (a BackboneWeightsError names the setting before anything is
    built), the model is built once, then the weights are loaded. backbone_weights: a local file
    overriding config.backbone.pretrained.
    """
    weights = resolve_backbone_weights(config.backbone, backbone_weights)
    model = SpaceClip(config, weights)
    model.backbone.load_weights(weights)
    return model


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
