"""KITTI Eigen-split / NYU Depth v2 evaluation of a checkpoint by either protocol: table and JSON.

    python -m training.evaluate --checkpoint runs/kitti/checkpoints/best_ema \\
        --config training/configs/kitti.yaml --flip-tta --json results.json  # standard protocol
    python -m training.evaluate --checkpoint checkpoints/kitti_release --protocol reference \\
        --config training/configs/kitti.yaml --flip-tta                        # the release's
    python -m training.evaluate --checkpoint runs/nyu/checkpoints/best_ema \\
        --config training/configs/nyu.yaml --flip-tta --json results.json  # crop nyu, 1e-3..10 m

It evaluates data.test_list (the final, once-only evaluation; --list for another list). The
headline numbers are metric: the prediction in metres against the ground truth, unscaled.
Median-scaled numbers (each prediction scaled by median(gt)/median(pred), which hides any scale
error) are printed beside them under their own label, for comparison with relative-depth work
only. Boundary and interior metrics (space_clip_ros.metrics.boundary_masks: log-depth jumps of
0.05, and 0.03 / 0.10 as sensitivity checks, in a 7x7 band) are reported per crop, each over the
images where the region has pixels, with its pixel count.

Protocols (training/README.md, "Numbers and protocols", says which number belongs to which):
- standard (BTS/AdaBins, most published KITTI numbers): the network sees the KB-cropped image;
  its prediction, at the crop's native resolution, is pasted into a ground-truth-sized canvas,
  so metrics are computed at native ground-truth resolution over valid pixels in
  [min_depth, max_depth] inside the Eigen or Garg crop. NYU: the full 480x640 image, the Eigen
  NYU crop ("nyu"), 1e-3..10 m.
- reference (the SPACE-CLIP release): the full frame is resized with PIL bicubic to 704x352
  (8-bit), the model resizes that to its input itself; the ground truth is resized (nearest) to
  352x704 and the Eigen crop fractions are applied there. KITTI only.
Metrics come from space_clip_ros.metrics, the same code the node's accuracy tools use.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from space_clip_ros.errors import run_tool
from space_clip_ros.evaluation.report import finite_or_none
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.io.depth_files import read_png16
from space_clip_ros.metrics import (
    BOUNDARY_RULES,
    BoundaryRule,
    RunningMetrics,
    RunningRegions,
    compute_metrics,
    format_table,
    region_metrics,
    valid_mask,
)
from space_clip_ros.model import SpaceClip, load_checkpoint
from space_clip_ros.runtime import PRECISION_NAMES, PRECISIONS, autocast, resolve_device
from training.config import (
    PROTOCOLS,
    ConfigError,
    DataConfig,
    TrainConfig,
    boundary_rule,
    load_train_config,
)
from training.datasets import DatasetError, DepthDataset, collate_eval, make_dataset

PROG = "python -m training.evaluate"
LOG = logging.getLogger("evaluate")
REFERENCE_SIZE = (352, 704)  # (height, width) the release evaluates at


class ReferenceProtocolItems(Dataset):
    """The release's evaluation items for a KITTI list: full frame and ground truth at 352x704.

    The image is resized with PIL bicubic on 8-bit RGB (the model then resizes it to its encoder
    input with its own backbone.input_resize, the release's second step for imported
    checkpoints); the ground truth is resized with nearest neighbour, so the Eigen crop
    fractions apply to the 352x704 map. box (0, 0): the prediction covers the whole map.
    """

    def __init__(self, dataset: DepthDataset) -> None:
        self.samples, self.no_gt = dataset.samples, dataset.no_gt

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        height, width = REFERENCE_SIZE
        try:
            with Image.open(sample.image) as img:
                rgb = img.convert("RGB").resize((width, height), Image.BICUBIC)
            depth = read_png16(sample.depth)
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"cannot read sample {sample.image} / {sample.depth}: {exc}",
                fix="re-extract it",
            ) from exc
        gt = np.asarray(Image.fromarray(depth).resize((width, height), Image.NEAREST))
        image = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "gt": torch.from_numpy(gt.copy()),
            "box": torch.tensor([0, 0]),
        }


def make_eval_dataset(
    data: DataConfig, list_path: Path, protocol: str, max_samples: int = 0
) -> Dataset:
    """The evaluation items of a list for a protocol (standard or reference)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}", fix=f"use {' or '.join(PROTOCOLS)}")
    dataset = make_dataset(data, list_path, train=False, max_samples=max_samples)
    if protocol == "reference":
        if data.dataset != "kitti":
            raise ConfigError(
                f"the reference protocol is the release's KITTI evaluation, not {data.dataset}",
                field="eval.protocol",
                fix="use the standard protocol",
            )
        return ReferenceProtocolItems(dataset)
    return dataset


def default_crops(cfg: TrainConfig, protocol: str) -> tuple[str, ...]:
    """eval.crop, plus the other KITTI crop under the standard protocol (both are reported)."""
    also = ("eigen", "garg") if cfg.data.dataset == "kitti" and protocol == "standard" else ()
    return tuple(dict.fromkeys((cfg.eval.crop, *also)))


@torch.no_grad()
def predict(
    model: SpaceClip, images: torch.Tensor, flip_tta: bool, amp_dtype: Optional[torch.dtype] = None
) -> torch.Tensor:
    """(B,1,H,W) metres at the input size; flip TTA averages with the mirrored image's output."""
    with autocast(images.device, amp_dtype):
        depth = model(images).float()
        if flip_tta:
            depth = 0.5 * (depth + model(images.flip(-1)).float().flip(-1))
    return depth


def evaluate(
    model: SpaceClip,
    loader: DataLoader,
    crops: tuple[str, ...] = ("eigen",),
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    flip_tta: bool = False,
    amp_dtype: Optional[torch.dtype] = None,
    boundary_rule: Optional[BoundaryRule] = None,
) -> dict[str, dict]:
    """Mean per-image metrics for each crop.

    {crop: {metric: value, ..., 'count': n, 'median_scaled': {metric: value, ...},
    'regions': {'boundary_0.05': {metric: value, ..., 'images': k, 'pixels': p}, ...}}}: the
    top-level metrics are metric (unscaled), the ones the trainer selects on; 'regions' only
    with a boundary_rule (they cost a few morphology passes per image and threshold).
    """
    was_training = model.training
    model.eval()
    device = next(model.decoder.parameters()).device
    running = {crop: RunningMetrics() for crop in crops}
    scaled = {crop: RunningMetrics() for crop in crops}
    regions = {crop: RunningRegions() for crop in crops}
    for batch in loader:
        depth = predict(model, batch["image"].to(device), flip_tta, amp_dtype).cpu().numpy()[:, 0]
        for pred, gt, (top, left) in zip(depth, batch["gt"], batch["box"].tolist()):
            gt = gt.numpy()
            canvas = np.zeros_like(gt)
            canvas[top : top + pred.shape[0], left : left + pred.shape[1]] = pred
            region = np.zeros(gt.shape, dtype=bool)
            region[top : top + pred.shape[0], left : left + pred.shape[1]] = True
            for crop in crops:
                mask = valid_mask(gt, min_depth, max_depth, crop) & region
                bounds = (min_depth, max_depth)
                running[crop].update(compute_metrics(canvas, gt, mask, *bounds))
                scaled[crop].update(compute_metrics(canvas, gt, mask, *bounds, True))
                if boundary_rule is not None:
                    regions[crop].update(region_metrics(canvas, gt, mask, boundary_rule, *bounds))
    model.train(was_training)
    results = {}
    for crop in crops:
        results[crop] = {
            **running[crop].mean(),
            "count": running[crop].count,
            "median_scaled": scaled[crop].mean(),
        }
        if boundary_rule is not None:
            results[crop]["regions"] = regions[crop].mean()
    return results


def results_table(results: dict[str, dict]) -> str:
    """Metric rows first (the headline), then the labelled median-scaled and region rows."""
    rows = [(crop, m) for crop, m in results.items()]
    rows += [(f"{crop} median-scaled", m["median_scaled"]) for crop, m in results.items()]
    for crop, m in results.items():
        rows += [
            (f"{crop} {name}", values)
            for name, values in m.get("regions", {}).items()
            if values["images"] > 0
        ]
    width = max(len(name) for name, _ in rows) + 2
    return format_table(rows, name_width=width)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a SPACE-CLIP checkpoint on the KITTI Eigen split or NYU Depth v2 "
        "(data.dataset).",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="node-format checkpoint directory (decoder.safetensors + config.yaml)",
    )
    parser.add_argument(
        "--config",
        default="training/configs/kitti.yaml",
        help="training config for the data settings",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. data.root=/data/kitti",
    )
    parser.add_argument(
        "--list",
        help="file list to evaluate (default: data.test_list of the config, the final "
        "evaluation; selection during training uses data.val_list)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=None,
        help="standard (KB crop, native GT resolution) or reference (the release's 352x704); "
        "default: eval.protocol of the config",
    )
    parser.add_argument(
        "--crop",
        nargs="+",
        default=None,
        choices=["eigen", "garg", "nyu", "none"],
        help="evaluation crop(s) (default: eval.crop; KITTI standard adds eigen and garg)",
    )
    parser.add_argument(
        "--flip-tta", action="store_true", help="average with the horizontally flipped prediction"
    )
    parser.add_argument(
        "--boundary-rule",
        choices=BOUNDARY_RULES,
        help="boundary/interior rule (default: eval.boundary_rule; auto = dense for NYU, sparse "
        "for KITTI)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISION_NAMES,
        help="autocast dtype on CUDA",
    )
    parser.add_argument(
        "--backbone-weights",
        help="local CLIP weights file instead of the config's pretrained source",
    )
    parser.add_argument("--json", type=Path, help="write the metrics here")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Exit 2 for a config, checkpoint or dataset that cannot be used (nothing ran)."""
    return run_tool(PROG, run, argv, log_level=logging.INFO)


def run(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    cfg = load_train_config(args.config, args.set)
    device = resolve_device(args.device, field="--device")  # cuda:N checked, not passed on
    model = load_checkpoint(args.checkpoint, device=device, backbone_weights=args.backbone_weights)
    protocol = args.protocol or cfg.eval.protocol
    list_path = Path(args.list or cfg.data.test_list)
    dataset = make_eval_dataset(cfg.data, list_path, protocol)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=cfg.data.num_workers,
        collate_fn=collate_eval,
    )
    amp = PRECISIONS[args.precision]  # runtime.autocast runs fp32 as it is
    crops = tuple(args.crop or default_crops(cfg, protocol))
    rule = args.boundary_rule or boundary_rule(cfg)
    results = evaluate(
        model, loader, crops, cfg.data.min_depth, cfg.data.max_depth, args.flip_tta, amp, rule
    )
    print(f"protocol: {protocol}; list: {list_path}; flip TTA: {args.flip_tta}")
    print(
        "metric depth (unscaled) first; 'median-scaled' rows hide scale errors (relative depth "
        f"only); boundary/interior: {rule} rule, log-depth jump threshold in the name"
    )
    print(results_table(results))
    print(
        f"{len(dataset)} images with ground truth ({dataset.no_gt} list entries without, skipped "
        "by the protocol)"
    )
    if args.json:
        report = {
            "checkpoint": str(args.checkpoint),
            "dataset": cfg.data.dataset,
            "protocol": protocol,
            "list": str(list_path),
            "flip_tta": args.flip_tta,
            "scaling": "none: metric depth; per crop, 'median_scaled' holds the median-scaled "
            "numbers (labelled, relative depth only)",
            "boundary_rule": rule,
            "min_depth": cfg.data.min_depth,
            "max_depth": cfg.data.max_depth,
            "images": len(dataset),
            "metrics": results,
        }
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(finite_or_none(report), indent=2, allow_nan=False) + "\n")
        LOG.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
