"""Standard monocular-depth metrics (Eigen et al.): training, the demo and the LiDAR tool.

One implementation so that the number the node reports live and the number training/evaluate.py
prints are computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

import numpy as np

METRIC_NAMES = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "delta1",
    "delta2",
    "delta3",
)

Crop = Literal["eigen", "garg", "nyu", "none"]


def crop_mask(height: int, width: int, crop: Crop) -> np.ndarray:
    """Boolean evaluation region of the standard KITTI crops and of the Eigen NYU crop.

    Eigen (Eigen et al. 2014) and Garg (Garg et al. 2016) crops are defined as fractions of the
    ground-truth image size; both are used in the literature, with Garg the more common for the
    annotated ground truth. "nyu" is the Eigen crop of NYU Depth v2 used by BTS/AdaBins: rows
    45:471, columns 41:601 of the 480x640 frame (scaled proportionally for other sizes).
    """
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
    elif crop == "garg":
        mask[
            int(0.40810811 * height) : int(0.99189189 * height),
            int(0.03594771 * width) : int(0.96405229 * width),
        ] = True
    elif crop == "eigen":
        mask[
            int(0.3324324 * height) : int(0.91351351 * height),
            int(0.0359477 * width) : int(0.96405229 * width),
        ] = True
    elif crop == "nyu":  # integer arithmetic: exact at 480x640
        mask[45 * height // 480 : 471 * height // 480, 41 * width // 640 : 601 * width // 640] = (
            True
        )
    else:
        raise ValueError(f"unknown crop {crop!r}; use 'eigen', 'garg', 'nyu' or 'none'")
    return mask


def valid_mask(
    gt: np.ndarray, min_depth: float = 1e-3, max_depth: float = 80.0, crop: Crop = "none"
) -> np.ndarray:
    """Pixels with a ground-truth measurement inside the depth range and the crop."""
    gt = np.asarray(gt)
    mask = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
    if crop != "none":
        mask &= crop_mask(gt.shape[-2], gt.shape[-1], crop)
    return mask


def compute_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    median_scaling: bool = False,
) -> dict[str, float]:
    """Metrics over the valid ground-truth pixels of one image; predictions clipped to [min, max].

    pred and gt must have the same shape (the caller resizes the prediction to the ground truth,
    never the other way round). Returns NaN for every metric when no pixel is valid, so an empty
    frame is visible rather than silently skipped.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground truth {gt.shape}; resize the "
            "prediction"
        )
    if mask is None:
        mask = valid_mask(gt, min_depth, max_depth)
    if not mask.any():
        return {name: float("nan") for name in METRIC_NAMES}
    # As the standard (BTS/AdaBins) evaluation: a non-finite prediction is scored, not dropped
    # (+inf counts as max_depth, NaN and -inf as min_depth): a broken output cannot look perfect.
    p = np.nan_to_num(pred[mask], nan=min_depth, posinf=max_depth, neginf=min_depth)
    g = gt[mask]
    if median_scaling:
        p = p * (np.median(g) / max(np.median(p), 1e-12))
    p = np.clip(p, min_depth, max_depth)

    thresh = np.maximum(g / p, p / g)
    log_diff = np.log(p) - np.log(g)
    return {
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "silog": float(np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0)) * 100),
        "delta1": float(np.mean(thresh < 1.25)),
        "delta2": float(np.mean(thresh < 1.25**2)),
        "delta3": float(np.mean(thresh < 1.25**3)),
    }


@dataclass
class RunningMetrics:
    """Mean of per-image metrics over a sequence (the KITTI convention: average of image means)."""

    sums: dict[str, float] = field(default_factory=lambda: {n: 0.0 for n in METRIC_NAMES})
    count: int = 0

    def update(self, metrics: dict[str, float]) -> None:
        if any(not np.isfinite(metrics[n]) for n in METRIC_NAMES):
            return  # frames without valid ground truth do not dilute the mean
        for n in METRIC_NAMES:
            self.sums[n] += metrics[n]
        self.count += 1

    def mean(self) -> dict[str, float]:
        if self.count == 0:
            return {n: float("nan") for n in METRIC_NAMES}
        return {n: self.sums[n] / self.count for n in METRIC_NAMES}


def format_table(rows: Iterable[tuple[str, dict[str, float]]]) -> str:
    """A fixed-width text table, one row per named metrics dict."""
    header = f"{'':<12}" + "".join(f"{n:>10}" for n in METRIC_NAMES)
    lines = [header]
    for name, m in rows:
        lines.append(f"{name:<12}" + "".join(f"{m[n]:>10.4f}" for n in METRIC_NAMES))
    return "\n".join(lines)
