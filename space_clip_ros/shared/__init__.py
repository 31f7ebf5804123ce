"""Depth from the encoder the robot already runs: SPACE-CLIP's decoder on a host's own call.

    from space_clip_ros.shared import attach

    tap = attach(encoder, "CKPT_DIR")     # open_clip CLIP (or .visual), timm ViT (SigLIP),
                                          # transformers CLIPVisionModel / SiglipVisionModel
    features = encoder.encode_image(x)    # the host's own call, unchanged (or encoder(x))
    depth = tap.depth(size=(H, W))        # metres, from the hidden states of that same call
    tap.detach()                          # the host is exactly as before

The tower's blocks run once, in the host's call; the tap decodes what they computed. README.md
("Depth from an encoder you already run") says what is checked and what is not;
docs/ARCHITECTURE.md ("Shared encoder") how it works.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional, Union

from torch import nn

from space_clip_ros.model.checkpoint import build_decoder, read_checkpoint

from .compat import ACCEPTABLE, accepted_set, check
from .hosts import recognise
from .tap import DepthTap

log = logging.getLogger(__name__)

__all__ = ["ACCEPTABLE", "DepthTap", "attach"]


def attach(
    encoder: nn.Module,
    checkpoint: Union[str, Path],
    *,
    mean: Optional[tuple[float, float, float]] = None,
    std: Optional[tuple[float, float, float]] = None,
    accept: Iterable[str] = (),
) -> DepthTap:
    """Attach a trained SPACE-CLIP decoder (a checkpoint directory) to a host encoder.

    mean/std: the normalisation the host's images really get, when the host's own metadata
    does not say it (transformers models never do) or says it wrongly. accept: differences from
    the training encoder to run with anyway (compat.ACCEPTABLE: "weights", "activation",
    "normalization", "grid"), each logged as a warning; without it each is a ConfigError. A
    different architecture is always refused. The host is never modified: no eval(), no
    requires_grad change, no wrapper; the decoder is loaded in eval mode and follows the host's
    features to their device.
    """
    host = recognise(encoder)
    accepted = accepted_set(accept)
    config, state, weights, config_path = read_checkpoint(checkpoint)
    warnings = check(host, config, config_path, accepted, mean, std)
    tower = host.tower
    config, decoder = build_decoder(
        config, state, weights, config_path, width=tower.width, num_layers=tower.num_layers
    )
    decoder.to(next(tower.module.parameters()).device)
    if host.compiled:
        warnings.append(
            "the encoder is a torch.compile wrapper: code it compiled before attach() does "
            "not run the tap's hooks (depth() then says so); attach first, then compile, or "
            "call torch.compiler.reset() now"
        )
    for warning in warnings:
        log.warning("%s", warning)
    tap = DepthTap(tower, config, decoder, str(Path(checkpoint)), accepted, warnings)
    log.info(
        "attached %s to %s: hidden states %s, %d decoder parameters",
        tap.checkpoint,
        host.description,
        tap.layers,
        sum(p.numel() for p in decoder.parameters()),
    )
    return tap
