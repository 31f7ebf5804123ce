"""Training loss terms and the evaluation protocol against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from training.config import LossConfig
from training.evaluate import evaluate
from training.losses import depth_loss, silog_loss, ssim_loss, ssim_map


def test_silog_matches_hand_computation_over_valid_pixels():
    pred = torch.tensor([[[[2.0, 4.0], [1.0, 99.0]]]])
    gt = torch.tensor([[[[1.0, 2.0], [1.0, 0.0]]]])
    mask = gt > 0
    g = [math.log(2.0), math.log(2.0), 0.0]  # the invalid pixel (gt 0, pred 99) must not count
    mean, mean_sq = sum(g) / 3, sum(x * x for x in g) / 3
    expected = 10 * math.sqrt(mean_sq - 0.85 * mean**2)
    assert silog_loss(pred, gt, mask).item() == pytest.approx(expected, rel=1e-6)
    # equivalently 10 * sqrt(Var + 0.15 * Mean^2)
    var = mean_sq - mean**2
    assert expected == pytest.approx(10 * math.sqrt(var + 0.15 * mean**2))


def test_silog_is_scale_invariant_up_to_the_mean_term_and_zero_when_exact():
    gt = torch.rand(1, 1, 4, 4) * 10 + 1
    mask = torch.ones_like(gt, dtype=torch.bool)
    assert silog_loss(gt, gt, mask).item() < 1e-4
    scaled = silog_loss(gt * 2, gt, mask).item()
    assert scaled == pytest.approx(10 * math.sqrt(0.15) * math.log(2), rel=1e-4)


def test_ssim_of_a_window_one_matches_the_closed_form():
    x = torch.tensor([[[[0.2, 0.5], [0.9, 0.0]]]])
    y = torch.tensor([[[[0.4, 0.5], [0.3, 0.1]]]])
    c1 = 0.01**2
    expected = (2 * x * y + c1) / (x**2 + y**2 + c1)  # variances and covariance vanish
    assert torch.allclose(ssim_map(x, y, window=1), expected, atol=1e-6)


def test_ssim_interior_of_constant_maps_and_identity():
    a, b = 0.3, 0.6
    x, y = (
        torch.full((1, 1, 31, 31), a, dtype=torch.float64),
        torch.full((1, 1, 31, 31), b, dtype=torch.float64),
    )
    centre = ssim_map(x, y)[0, 0, 15, 15].item()
    assert centre == pytest.approx((2 * a * b + 0.01**2) / (a * a + b * b + 0.01**2), rel=1e-9)
    gt = torch.rand(2, 1, 16, 16) * 50 + 1
    mask = torch.rand(2, 1, 16, 16) > 0.5
    assert ssim_loss(gt.clone(), gt, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert ssim_loss(torch.full_like(gt, 25.0), gt, mask).item() > 0.1


def test_total_loss_weights_and_resizes_the_aux_maps():
    gt = torch.rand(1, 1, 8, 16) * 10 + 1
    mask = torch.ones_like(gt, dtype=torch.bool)
    pred = gt * 1.5
    aux = [
        torch.full((1, 1, 2, 4), 3.0),
        torch.full((1, 1, 4, 8), 5.0),
        torch.full((1, 1, 4, 8), 7.0),
    ]
    terms = depth_loss(pred, aux, gt, mask, LossConfig())
    aux_expected = [silog_loss(torch.full_like(gt, v), gt, mask) for v in (3.0, 5.0, 7.0)]
    expected = (
        0.5 * silog_loss(pred, gt, mask)
        + 0.5 * ssim_loss(pred, gt, mask)
        + 0.10 * aux_expected[0]
        + 0.05 * aux_expected[1]
    )
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert [t.item() for t in terms.aux] == pytest.approx(
        [t.item() for t in aux_expected], rel=1e-6
    )


class ConstantDepth(nn.Module):
    """Stands in for SpaceClip: predicts a fixed depth at the input size."""

    def __init__(self, value: float):
        super().__init__()
        self.decoder = nn.Linear(1, 1)
        self.value = value

    def forward(self, images):
        return torch.full((images.shape[0], 1, *images.shape[-2:]), self.value)


def test_evaluation_pastes_the_crop_and_applies_eigen_and_garg_crops():
    h, w = 100, 200
    gt = np.zeros((h, w), dtype=np.float32)
    gt[35, 100] = 20.0  # inside the Eigen crop (rows 33..90) but above the Garg crop (rows 40..98)
    gt[95, 100] = 8.0  # inside the Garg crop, below the Eigen crop
    gt[60, 100] = 10.0  # inside both
    gt[60, 2] = 10.0  # left of both crops (cols 7..192)
    gt[60, 150] = 90.0  # beyond max_depth
    kh, kw = 80, 190
    top, left = h - kh, (w - kw) // 2
    batch = {
        "image": torch.zeros(1, 3, kh, kw),
        "gt": [torch.from_numpy(gt)],
        "box": torch.tensor([[top, left]]),
    }
    results = evaluate(ConstantDepth(10.0), [batch], ("eigen", "garg", "none"))
    eigen_abs_rel = (abs(20 - 10) / 20 + 0.0) / 2
    garg_abs_rel = (abs(8 - 10) / 8 + 0.0) / 2
    assert results["eigen"]["abs_rel"] == pytest.approx(eigen_abs_rel)
    assert results["garg"]["abs_rel"] == pytest.approx(garg_abs_rel)
    assert results["eigen"]["rmse"] == pytest.approx(math.sqrt((10**2 + 0) / 2))
    assert results["eigen"]["delta1"] == pytest.approx(0.5)
    # crop 'none' still only sees the pasted region: the (60, 2) pixel lies left of the KB crop
    assert results["none"]["abs_rel"] == pytest.approx((0.5 + 0.25 + 0.0) / 3)
    # median-scaled numbers ride beside the metric ones, never in their place
    scaled = results["eigen"]["median_scaled"]
    assert scaled["abs_rel"] == pytest.approx((abs(20 - 15) / 20 + abs(10 - 15) / 10) / 2)
    assert results["eigen"]["abs_rel"] == pytest.approx(eigen_abs_rel)


def _sparse_scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A smooth dense depth and a LiDAR-like ground truth keeping 5 % of it."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.linspace(5.0, 40.0, 48)[:, None].expand(48, 96)
    dense = (rows + torch.rand(48, 96, generator=gen))[None, None]
    mask = torch.rand(1, 1, 48, 96, generator=gen) < 0.05
    return dense, torch.where(mask, dense, torch.zeros_like(dense)), mask


def test_paper_ssim_rewards_copying_the_sparsity_masked_ssim_does_not():
    dense, gt, mask = _sparse_scene()
    paper_dense, paper_sparse = ssim_loss(dense, gt, mask), ssim_loss(gt, gt, mask)
    assert paper_sparse.item() == pytest.approx(0.0, abs=1e-6)
    assert paper_dense.item() > 0.5  # a perfect dense prediction is punished
    masked_dense = ssim_loss(dense, gt, mask, masked=True)
    assert masked_dense.item() == pytest.approx(0.0, abs=1e-4)
    assert ssim_loss(dense * 0.5 + 10.0, gt, mask, masked=True).item() > 0.01


def test_ssim_switch_is_a_loss_config_field():
    dense, gt, mask = _sparse_scene(1)
    paper = depth_loss(dense, [], gt, mask, LossConfig())
    masked = depth_loss(dense, [], gt, mask, LossConfig(ssim_masked=True))
    assert LossConfig().ssim_masked is False
    assert paper.ssim.item() > 0.5 and masked.ssim.item() < 1e-4
