"""Standard monocular-depth metrics (Eigen et al.): training, the demo and the LiDAR tool.

One implementation so that the number the node reports live and the number training/evaluate.py
prints are computed the same way. Besides the whole-image metrics: the same metrics on pixels near
ground-truth depth discontinuities ("boundary") and away from them ("interior"), as the SPACE-CLIP
authors' controlled study defines them (see ``boundary_masks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

import cv2
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
# dense: the authors' rule for (nearly) dense ground truth such as NYU's Kinect depth; sparse: the
# rule for LiDAR truth (KITTI's annotated depth, a live Velodyne scan); see boundary_masks.
BoundaryRule = Literal["dense", "sparse"]
BOUNDARY_RULES = ("dense", "sparse")
# Log-depth jump that makes a boundary: 0.05 is the primary threshold, 0.03 and 0.10 sensitivity
# checks (the authors' controlled NYU study). The band around it is a 7x7 square (radius 3).
BOUNDARY_THRESHOLDS = (0.05, 0.03, 0.10)
BOUNDARY_RADIUS = 3


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


def log_depth_jumps(gt: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|log-depth difference| to the right and downward neighbour, 0 where either is not valid.

    Computed once per image and compared with each threshold (depth_edges).
    """
    log = np.zeros(valid.shape)
    log[valid] = np.log(np.asarray(gt, dtype=np.float64)[valid])
    across = np.abs(np.diff(log, axis=1)) * (valid[:, 1:] & valid[:, :-1])
    down = np.abs(np.diff(log, axis=0)) * (valid[1:] & valid[:-1])
    return across, down


def depth_edges(
    gt: np.ndarray,
    valid: np.ndarray,
    threshold: float,
    jumps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Both pixels of every 4-adjacent pair of valid pixels whose log-depths differ by > threshold.

    Only pairs where both pixels are measured count: a jump next to a hole is not observed.
    """
    across, down = log_depth_jumps(gt, valid) if jumps is None else jumps
    across, down = across > threshold, down > threshold
    edge = np.zeros(valid.shape, dtype=bool)
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    edge[1:] |= down
    edge[:-1] |= down
    return edge


def _square(mask: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    """Binary dilation (grow) or erosion by a (2r+1)^2 square; outside the image counts as False.

    OpenCV's morphology rather than a hand-written loop; the constant 0 border makes erosion eat
    the image edges, as a neighbourhood reaching outside the image is not fully measured.
    """
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    op = cv2.dilate if grow else cv2.erode
    out = op(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)


def boundary_masks(
    gt: np.ndarray,
    valid: np.ndarray,
    threshold: float = BOUNDARY_THRESHOLDS[0],
    radius: int = BOUNDARY_RADIUS,
    rule: BoundaryRule = "dense",
    jumps: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(boundary, interior) pixel masks inside `valid` (the range- and crop-checked truth).

    Edges are depth_edges(threshold); the boundary band is their dilation by a square of the
    given radius. Which valid pixels can be classified depends on the truth's density:

    - dense (the SPACE-CLIP authors' definition, for NYU): only pixels whose whole square
      neighbourhood is valid (the valid mask eroded by the same square), so holes and crop
      borders, where a jump could go unseen, are neither boundary nor interior.
    - sparse (LiDAR): a square of fully measured pixels almost never exists in a projected scan,
      so the dense rule would leave no pixel. Instead a valid pixel qualifies when at least one
      4-neighbour is measured too (its local continuity was observed); boundary = qualifying
      pixels within the band, interior = the other qualifying pixels. An edge between two
      unmeasured pixels is invisible, so a sparse "interior" pixel may still sit near a real
      discontinuity: sparse numbers compare models on the same scans, not with dense NYU ones.

    `jumps` (log_depth_jumps of the same gt and valid) saves recomputing them per threshold.
    """
    valid = np.asarray(valid, dtype=bool)
    near = _square(depth_edges(gt, valid, threshold, jumps), radius, grow=True)
    if rule == "dense":
        qualifies = _square(valid, radius, grow=False)
    elif rule == "sparse":
        neighbour = np.zeros_like(valid)
        neighbour[:, 1:] |= valid[:, :-1]
        neighbour[:, :-1] |= valid[:, 1:]
        neighbour[1:] |= valid[:-1]
        neighbour[:-1] |= valid[1:]
        qualifies = valid & neighbour
    else:
        raise ValueError(f"unknown boundary rule {rule!r}; use 'dense' or 'sparse'")
    return qualifies & near, qualifies & ~near


def region_name(kind: str, threshold: float) -> str:
    """'boundary_0.05', 'interior_0.10': the keys region_metrics and the reports use."""
    return f"{kind}_{threshold:.2f}"


def region_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    rule: BoundaryRule,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    thresholds: Iterable[float] = BOUNDARY_THRESHOLDS,
    scored: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics on the boundary and interior pixels of one image, per threshold, with pixel counts.

    {'boundary_0.05': {abs_rel.., 'pixels': n}, 'interior_0.05': {...}, ...}; an empty region
    has NaN metrics and 0 pixels (skipped by RunningRegions, as by RunningMetrics). The masks come
    from the ground truth alone (`valid`); `scored`, when given, then limits which of their pixels
    are scored (e.g. where a published depth image has a value), so a blank in the prediction never
    moves a boundary.
    """
    regions = {}
    valid = np.asarray(valid, dtype=bool)
    jumps = log_depth_jumps(gt, valid)
    for threshold in thresholds:
        boundary, interior = boundary_masks(gt, valid, threshold, BOUNDARY_RADIUS, rule, jumps)
        for kind, mask in (("boundary", boundary), ("interior", interior)):
            if scored is not None:
                mask = mask & scored
            metrics = compute_metrics(pred, gt, mask, min_depth, max_depth)
            regions[region_name(kind, threshold)] = {**metrics, "pixels": int(mask.sum())}
    return regions


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


@dataclass
class RunningRegions:
    """Per-region means of region_metrics over images, each over the images where it has pixels.

    A region has its own denominator (images, pixels), as in the authors' study: an image
    without a discontinuity has no boundary pixels and must not count as a perfect boundary.
    """

    running: dict[str, RunningMetrics] = field(default_factory=dict)
    pixels: dict[str, int] = field(default_factory=dict)

    def update(self, regions: dict[str, dict[str, float]]) -> None:
        for name, metrics in regions.items():
            self.running.setdefault(name, RunningMetrics()).update(metrics)
            if metrics["pixels"] > 0:
                self.pixels[name] = self.pixels.get(name, 0) + int(metrics["pixels"])

    def mean(self) -> dict[str, dict[str, float]]:
        return {
            name: {**r.mean(), "images": r.count, "pixels": self.pixels.get(name, 0)}
            for name, r in self.running.items()
        }


def format_table(rows: Iterable[tuple[str, dict[str, float]]], name_width: int = 12) -> str:
    """A fixed-width text table, one row per named metrics dict."""
    header = f"{'':<{name_width}}" + "".join(f"{n:>10}" for n in METRIC_NAMES)
    lines = [header]
    for name, m in rows:
        lines.append(f"{name:<{name_width}}" + "".join(f"{m[n]:>10.4f}" for n in METRIC_NAMES))
    return "\n".join(lines)
