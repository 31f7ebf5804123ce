"""The paper's training objective: 0.5 * SILog + 0.5 * SSIM loss + weighted auxiliary SILog terms.

All terms are computed in float32 over valid ground-truth pixels only (sparse LiDAR ground truth:
most pixels carry no measurement), whatever precision the forward pass ran in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.config import LossConfig

MIN_PRED = 1e-3  # the head's ReLU can output 0; log needs a floor (= the evaluation's min depth)


def silog_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, variance_focus: float = 0.85
) -> torch.Tensor:
    """10 * sqrt(mean(g^2) - variance_focus * mean(g)^2), g = log pred - log gt over valid pixels.

    Equal to 10 * sqrt(Var(g) + (1 - variance_focus) * Mean(g)^2): mostly scale-invariant, with a
    little weight on the absolute scale so the network still learns metres.
    """
    if not mask.any():
        return pred.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    g = torch.log(pred.float()[mask].clamp_min(MIN_PRED)) - torch.log(gt.float()[mask])
    d = (g**2).mean() - variance_focus * g.mean() ** 2
    return 10.0 * torch.sqrt(d.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0
) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004) of (B,1,H,W) maps with a Gaussian window, zero padding."""
    w = _gaussian_window(window, sigma, x)
    pad = window // 2
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = F.conv2d(x, w, padding=pad), F.conv2d(y, w, padding=pad)
    var_x = F.conv2d(x * x, w, padding=pad) - mu_x**2
    var_y = F.conv2d(y * y, w, padding=pad) - mu_y**2
    cov = F.conv2d(x * y, w, padding=pad) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )


def masked_ssim_map(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """SSIM whose window statistics count only pixels with ground truth (normalised convolution).

    Each window's means, variances and covariance are Gaussian-weighted over its valid pixels
    alone, so empty LiDAR pixels do not enter as zeros; a pixel without valid neighbours gets 1.
    """
    w = _gaussian_window(window, sigma, x)
    pad = window // 2
    c1, c2 = 0.01**2, 0.03**2
    m = mask.to(x.dtype)
    weight = F.conv2d(m, w, padding=pad)
    norm = weight.clamp_min(1e-6)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t * m, w, padding=pad) / norm

    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x**2
    var_y = mean(y * y) - mu_y**2
    cov = mean(x * y) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return torch.where(weight > 1e-6, ssim, torch.ones_like(ssim))


def ssim_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, masked: bool = False
) -> torch.Tensor:
    """Mean of 1 - SSIM over valid pixels, both maps scaled per image by the valid GT's range.

    SSIM's constants assume values in [0, 1], so each image is mapped with (d - min) / (max - min)
    of its own valid ground truth (as in the SPACE-CLIP release) and clamped to [0, 1].
    masked=False is the paper's term: pixels without ground truth enter each 11x11 window as 0,
    so with sparse LiDAR a perfect dense prediction still scores a high loss (about 0.96) while
    one copying the sparsity scores 0. masked=True counts only valid pixels in each window.
    """
    if not mask.any():
        return pred.sum() * 0.0
    pred, gt = pred.float(), gt.float()
    big = torch.finfo(torch.float32).max
    lo = torch.where(mask, gt, big).amin(dim=(1, 2, 3), keepdim=True)
    hi = torch.where(mask, gt, -big).amax(dim=(1, 2, 3), keepdim=True)
    has = mask.any(dim=(1, 2, 3), keepdim=True)
    lo, hi = torch.where(has, lo, 0.0), torch.where(has, hi, 1.0)
    scale = (hi - lo).clamp_min(1e-6)
    x = ((pred - lo) / scale).clamp(0.0, 1.0)
    y = ((gt - lo) / scale).clamp(0.0, 1.0)
    ssim = masked_ssim_map(x, y, mask) if masked else ssim_map(x, y)
    return (1.0 - ssim)[mask].mean()


@dataclass
class LossTerms:
    total: torch.Tensor
    silog: torch.Tensor
    ssim: torch.Tensor
    aux: list[torch.Tensor]

    def scalars(self) -> dict[str, float]:
        """Plain floats for logging, read back in one transfer (one sync per step, not six)."""
        names = ["loss", "silog", "ssim"] + [f"aux{i}" for i in range(len(self.aux))]
        values = torch.stack(
            [t.detach().float() for t in (self.total, self.silog, self.ssim, *self.aux)]
        ).tolist()
        return dict(zip(names, values))


def depth_loss(
    pred: torch.Tensor,
    aux: list[torch.Tensor],
    gt: torch.Tensor,
    mask: torch.Tensor,
    cfg: LossConfig,
) -> LossTerms:
    """The full objective; aux maps (stage resolution) are resized bilinearly to the GT size.

    A zero-weight term is still added (times 0): every decoder parameter then takes part in the
    graph, which DistributedDataParallel requires without the cost of find_unused_parameters.
    """
    silog = silog_loss(pred, gt, mask, cfg.variance_focus)
    ssim = ssim_loss(pred, gt, mask, cfg.ssim_masked)
    total = cfg.silog_weight * silog + cfg.ssim_weight * ssim
    aux_terms = []
    for weight, aux_map in zip(cfg.aux_weights, aux):
        up = F.interpolate(
            aux_map.float(), size=gt.shape[-2:], mode="bilinear", align_corners=False
        )
        term = silog_loss(up, gt, mask, cfg.variance_focus)
        aux_terms.append(term)
        total = total + weight * term
    return LossTerms(total, silog, ssim, aux_terms)
