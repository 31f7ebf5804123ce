"""SPACE-CLIP's trainable decoder: FiLM semantic pathway, structural pathway, gated fusion.

Every layer here is described in docs/ARCHITECTURE.md ("The model"); comments only note choices
the paper leaves open.
Convolutions followed by BatchNorm carry no bias (it would be cancelled by the BN shift).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class UpBlock(nn.Sequential):
    """x2 upsampling: 2x2 stride-2 transposed conv, then 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.ConvTranspose2d(cin, cout, 2, stride=2), conv_bn_relu(cout, cout))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SkipGate(nn.Module):
    """skip * (1 + sigmoid(conv1x1(state))): the decoder state decides how much of a skip passes.

    The (1 + .) form keeps the skip at full strength when the gate is undecided, so gating can
    only emphasise, never erase, a pathway early in training.
    """

    def __init__(self, state_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(state_channels, skip_channels, 1)

    def forward(self, skip: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return resize_to(skip, state) * (1 + torch.sigmoid(self.conv(state)))


class DepthHead(nn.Sequential):
    """3x3 conv (c -> hidden)-BN-ReLU-3x3 conv (hidden -> 1)-ReLU: non-negative metric depth.

    The last conv starts near a constant INITIAL_DEPTH_M. With PyTorch's default init the final
    ReLU is often dead everywhere (all-zero depth, no gradient, log-losses undefined); starting
    at a plausible depth keeps it alive. The paper does not specify an initialisation.
    """

    INITIAL_DEPTH_M = 10.0

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__(conv_bn_relu(cin, hidden), nn.Conv2d(hidden, 1, 3, padding=1), nn.ReLU())
        nn.init.normal_(self[1].weight, std=1e-2)
        nn.init.constant_(self[1].bias, self.INITIAL_DEPTH_M)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv always runs in fp32, whatever autocast says.

        Its output is the depth itself: in bf16 (8-bit mantissa) a 32-64 m depth can only take
        steps of 0.25 m, which terraces the point cloud. Everything before it may run in half.
        """
        hidden = self[0](x)
        last = self[1]
        with torch.autocast(hidden.device.type, enabled=False):
            depth = F.conv2d(
                hidden.float(), last.weight.float(), last.bias.float(), padding=last.padding
            )
            return self[2](depth)


class AuxDepthHead(nn.Sequential):
    """Auxiliary depth for multi-scale supervision: 3x3 conv-BN-ReLU, 1x1 conv to depth, ReLU.

    The last conv is 1x1 as in the SPACE-CLIP release (checkpoints it writes import unchanged);
    it starts near DepthHead.INITIAL_DEPTH_M for the same dead-ReLU reason as the main head.
    """

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__(conv_bn_relu(cin, hidden), nn.Conv2d(hidden, 1, 1), nn.ReLU())
        nn.init.normal_(self[1].weight, std=1e-2)
        nn.init.constant_(self[1].bias, DepthHead.INITIAL_DEPTH_M)


class FiLM(nn.Module):
    """Per-channel affine modulation of a token grid by the image's global embedding.

    Follows the paper literally (tokens' = gamma * tokens + beta with gamma, beta straight from
    the MLP) so that the public checkpoints' semantics are reproduced.
    """

    def __init__(self, global_dim: int, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(global_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * width)
        )

    def forward(self, grid: torch.Tensor, global_embedding: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mlp(global_embedding).chunk(2, dim=-1)
        return gamma[..., None, None] * grid + beta[..., None, None]


class SemanticPathway(nn.Module):
    """High-level layers, FiLM-conditioned on the global embedding, projected to stage widths."""

    def __init__(self, width: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.film = (
            nn.ModuleList(FiLM(width, width, cfg.film_hidden) for _ in cfg.semantic_channels)
            if cfg.use_film
            else None
        )
        self.proj = nn.ModuleList(nn.Conv2d(width, c, 1) for c in cfg.semantic_channels)

    def forward(
        self, grids: list[torch.Tensor], global_embedding: torch.Tensor
    ) -> list[torch.Tensor]:
        out = []
        for i, grid in enumerate(grids):
            if self.film is not None:
                grid = self.film[i](grid, global_embedding)
            out.append(self.proj[i](grid))
        return out


class StructuralPathway(nn.Module):
    """Low-level layers through a small decoder of their own, giving one state per fused stage."""

    def __init__(self, width: int, channels: list[int]) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(width, c, 1) for c in channels)
        ins = [width] + channels[
            :-1
        ]  # stage 0 upsamples the raw grid of the first structural layer
        self.up = nn.ModuleList(UpBlock(cin, c) for cin, c in zip(ins, channels))
        self.fuse = nn.ModuleList(conv_bn_relu(2 * c, c) for c in channels)

    def forward(self, grids: list[torch.Tensor]) -> list[torch.Tensor]:
        state = grids[0]
        states = []
        for i, grid in enumerate(grids):
            state = self.up[i](state)
            skip = resize_to(self.proj[i](grid), state)
            state = self.fuse[i](torch.cat([state, skip], dim=1))
            states.append(state)
        return states


class FusionStage(nn.Module):
    def __init__(self, cin: int, cout: int, n_skips: int, dropout: float) -> None:
        super().__init__()
        self.up = UpBlock(cin, cout)
        self.gates = nn.ModuleList(SkipGate(cout, cout) for _ in range(n_skips))
        self.fuse = conv_bn_relu((1 + n_skips) * cout, cout)
        self.refine = ResidualBlock(cout, dropout)

    def forward(self, state: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        up = self.up(state)
        gated = [gate(skip, up) for gate, skip in zip(self.gates, skips)]
        return self.refine(self.fuse(torch.cat([up, *gated], dim=1)))


class SpaceClipDecoder(nn.Module):
    """Dual-pathway decoder: 4 fusion stages, each doubling resolution (grid x16 at the head)."""

    def __init__(self, width: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        sem = cfg.semantic_channels
        self.semantic = SemanticPathway(width, cfg)
        self.structural = (
            StructuralPathway(width, list(cfg.structural_channels)) if cfg.use_structural else None
        )
        n_struct = len(cfg.structural_channels) if cfg.use_structural else 0
        ins = [sem[0]] + list(sem[:-1])  # stage 0 starts from the projected deepest semantic grid
        self.stages = nn.ModuleList(
            FusionStage(cin, c, 1 + (i < n_struct), cfg.dropout)
            for i, (cin, c) in enumerate(zip(ins, sem))
        )
        self.head = DepthHead(sem[-1], cfg.head_hidden)
        self.aux_heads = nn.ModuleList(
            AuxDepthHead(c, max(c // 2, 1)) for c in sem[: cfg.aux_heads]
        )

    def forward(
        self,
        semantic_grids: list[torch.Tensor],
        structural_grids: list[torch.Tensor],
        global_embedding: torch.Tensor,
        return_aux: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        sem = self.semantic(semantic_grids, global_embedding)
        struct = self.structural(structural_grids) if self.structural is not None else []
        state = sem[0]
        aux = []
        for i, stage in enumerate(self.stages):
            skips = [sem[i]] + ([struct[i]] if i < len(struct) else [])
            state = stage(state, skips)
            if return_aux and i < len(self.aux_heads):
                aux.append(self.aux_heads[i](state))
        return self.head(state), aux
