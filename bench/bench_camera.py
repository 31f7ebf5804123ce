"""Metric depth on other cameras: a tiny model trained at KITTI's camera, read through cameras with
other focal lengths, sizes and aspects, with and without the canonical-camera mapping.

Trains the tiny SPACE-CLIP (testing/tiny.py) with the real trainer on the procedural street
rendered at KITTI's camera (KB-crop frames, random 352x704 crops, the paper's augmentations),
then scores it on fresh streets rendered with exact depth through each test camera. Everything
is rendered at a quarter of the resolution with the intrinsics scaled: the same field of view,
aspect and principal point as the full-size camera (the tiny encoder sees 64x64 pixels either
way). Prints one table: AbsRel and the median of the per-image median ratio predicted / true
depth, per camera and per way of showing it to the encoder:

- none:      today's path, the whole frame resized to the encoder (view=None)
- focal:     the same resize, depth times the encoder focal ratio (one number, no anisotropy fix)
- canonical: model/canonical_camera.canonical_view (what inference uses)
- grey:      as canonical, but the canvas around the image filled with grey (0.5), not with
             the image's edge pixels repeated
- centred:   as canonical, but the principal point goes to the canvas centre, not to where it
             sat in the training crops

    python bench/bench_camera.py --out /tmp/bench_camera          # train (~5 CPU-min/model), score
    python bench/bench_camera.py --out /tmp/bench_camera --skip-training   # score saved models
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import yaml
from PIL import Image

from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.depth_files import write_png16
from space_clip_ros.metrics import compute_metrics, valid_mask
from space_clip_ros.model import SpaceClip, load_checkpoint
from space_clip_ros.model.canonical_camera import (
    KITTI_FRAME,
    CameraView,
    canonical_view,
    crop_intrinsics,
)
from space_clip_ros.model.config import CameraConfig
from space_clip_ros.model.space_clip import resize_to_encoder, view_to_image
from space_clip_ros.scenes.street import DriveConfig, SyntheticDrive, render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training/, testing/: source tree

from testing.tiny import tiny_config  # noqa: E402
from training.config import load_train_config  # noqa: E402
from training.train import Trainer  # noqa: E402

SCALE = 4  # render every camera at 1/SCALE of its size, intrinsics scaled alike
KB_CROP = (352, 1216)
TRAIN_CROP = (352, 704)
# KITTI's KB crop (bottom 352 rows, centred 1216 columns of the 1242x375 frame)
KB_CAMERA = Intrinsics(
    KITTI_FRAME.fx,
    KITTI_FRAME.fy,
    KITTI_FRAME.cx - (KITTI_FRAME.width - KB_CROP[1]) // 2,
    KITTI_FRAME.cy - (KITTI_FRAME.height - KB_CROP[0]),
    KB_CROP[1],
    KB_CROP[0],
)
TRAIN_DRIVES, TRAIN_FRAMES = 8, 50
TEST_SEEDS, TEST_FRAMES = (101, 102, 103), (3, 11, 19, 27)
MIN_DEPTH, MAX_DEPTH = 1e-3, 80.0
# data.focal_scale of each model: the paper's recipe, and two zoom ranges (the robot cameras
# below need views that shrink the image to 0.35-0.45 of its size)
MODELS = {"paper": (1.0, 1.0), "focal-aug": (0.5, 2.0), "wide-aug": (0.33, 2.0)}
METHODS = ("none", "focal", "canonical", "grey", "centred")


def small(intr: Intrinsics) -> Intrinsics:
    return intr.scaled(round(intr.width / SCALE), round(intr.height / SCALE))


def test_cameras(canonical: Intrinsics) -> dict[str, Intrinsics]:
    """Full-size test cameras by name; the focal sweep keeps the training crop's frame."""
    cameras = {}
    for factor in (0.5, 0.75, 1.0, 1.5, 2.0):
        cameras[f"704x352 crop, focal x{factor:g}"] = replace(
            canonical, fx=canonical.fx * factor, fy=canonical.fy * factor
        )
    cameras["KITTI KB crop 1216x352"] = KB_CAMERA
    cameras["KITTI frame 1242x375"] = KITTI_FRAME
    for (width, height), focal in (
        ((640, 480), 525.0),
        ((1280, 720), 600.0),
        ((1920, 1080), 1000.0),
    ):
        cameras[f"{width}x{height}, f {focal:g}"] = Intrinsics(
            focal, focal, (width - 1) / 2, (height - 1) / 2, width, height
        )
    return cameras


# ---------------------------------------------------------------------------------- training


def write_dataset(root: Path) -> None:
    """KB-crop-sized street frames in KITTI's layout (raw/, annotated/, splits/), exact depth."""
    camera = small(KB_CAMERA)
    lines = {"train": [], "val": []}
    drives = [("train", seed) for seed in range(TRAIN_DRIVES)] + [("val", 50)]
    for split, seed in drives:
        drive = f"2011_09_26_drive_{seed:04d}_sync"
        street = SyntheticDrive(DriveConfig(seed=seed, speed_mps=7.0))
        for index in range(TRAIN_FRAMES if split == "train" else 8):
            rgb, depth = render(street.scene(index), camera, street.pose(index))
            name = f"{index:010d}.png"
            image = root / "raw" / "2011_09_26" / drive / "image_02" / "data" / name
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(image)
            gt = f"{drive}/proj_depth/groundtruth/image_02/{name}"
            (root / "annotated" / split / gt).parent.mkdir(parents=True, exist_ok=True)
            write_png16(root / "annotated" / split / gt, depth)
            lines[split].append(f"2011_09_26/{drive}/image_02/data/{name} {gt} {camera.fx}")
    (root / "splits").mkdir(exist_ok=True)
    for split, entries in lines.items():
        (root / "splits" / f"{split}.txt").write_text("\n".join(entries) + "\n")


def train(
    root: Path, out: Path, focal_scale: tuple[float, float], epochs: int, seed: Optional[int]
) -> Path:
    camera = small(KB_CAMERA)
    tiny = tiny_config().to_dict()
    data = {
        "root": str(root),
        "train_list": "splits/train.txt",
        "val_list": "splits/val.txt",
        "crop_size": [TRAIN_CROP[0] // SCALE, TRAIN_CROP[1] // SCALE],
        "kb_crop": [camera.height, camera.width],
        "intrinsics": [camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height],
        "focal_scale": list(focal_scale),
        "num_workers": 0,
    }
    overrides = {
        # SILog alone: the SSIM term's 11x11 window costs 85 % of a tiny-model CPU step in its
        # backward pass (measured), and dense exact depth needs no structure prior.
        "loss": {"silog_weight": 1.0, "ssim_weight": 0.0},
        "optim": {"lr": 2e-3, "batch_size": 8, "epochs": epochs, "warmup_frac": 0.02},
        "eval": {"crop": "none", "every_epochs": max(epochs // 4, 1)},
        "run": {"out_dir": str(out), "log_every": 50, "image_every": 0, "tqdm": False},
    }
    if seed is not None:
        overrides["run"]["seed"] = seed
    config_file = out.parent / f"{out.name}.yaml"
    config_file.write_text(yaml.safe_dump({"model": tiny, "data": data, **overrides}))
    trainer = Trainer(load_train_config(config_file))
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit()
    print(
        f"# trained {out.name}: {trainer.step} steps in {time.perf_counter() - start:.0f} s "
        f"({time.process_time() - cpu:.0f} s of CPU time)"
    )
    return out / "checkpoints" / "last_ema"


# ---------------------------------------------------------------------------------- scoring


def views(intr: Intrinsics, camera: CameraConfig, size: tuple[int, int]) -> dict:
    """Each method's view (None = today's resize of the whole frame)."""
    canon = crop_intrinsics(camera)
    k_x = (intr.fx / intr.width) / (canon.fx / canon.width)
    k_y = (intr.fy / intr.height) / (canon.fy / canon.height)
    whole = (0, 0, size[0], size[1])
    image = (intr.height, intr.width)
    centre = ((canon.width - 1) / 2.0, (canon.height - 1) / 2.0)
    return {
        "none": None,
        "focal": CameraView(image, size, whole, math.sqrt(k_x * k_y)),
        "canonical": canonical_view(intr, camera, size),
        "grey": canonical_view(intr, camera, size),
        "centred": canonical_view(intr, replace(camera, principal_point=centre), size),
    }


def grey_canvas(model: SpaceClip, image: torch.Tensor, view: CameraView) -> torch.Tensor:
    """The view's footprint on a grey canvas: the encoder input built here, fed as a plain
    image of the encoder's size (no resize), the decoder's depth mapped back by the view."""
    method = model.config.backbone.input_resize
    footprint = resize_to_encoder(image, view.footprint[2:], method)
    canvas = torch.nn.functional.pad(footprint, view.padding, value=0.5)
    return view_to_image(model(canvas), view, view.image_size)


@dataclass
class Score:
    abs_rel: list[float]
    ratio: list[float]


def score(model: SpaceClip, cameras: dict[str, Intrinsics]) -> dict[str, dict[str, Score]]:
    results: dict[str, dict[str, Score]] = {}
    for name, full in cameras.items():
        intr = small(full)
        per_method = {m: Score([], []) for m in METHODS}
        for seed in TEST_SEEDS:
            street = SyntheticDrive(DriveConfig(seed=seed))
            for index in TEST_FRAMES:
                rgb, depth = render(street.scene(index), intr, street.pose(index))
                image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
                mask = valid_mask(depth, MIN_DEPTH, MAX_DEPTH)
                for method, view in views(intr, model.config.camera, model.input_size).items():
                    with torch.inference_mode():
                        if method == "grey":
                            pred = grey_canvas(model, image, view)[0, 0].numpy()
                        else:
                            pred = model(image, view=view)[0, 0].numpy()
                    metrics = compute_metrics(pred, depth, mask, MIN_DEPTH, MAX_DEPTH)
                    per_method[method].abs_rel.append(metrics["abs_rel"])
                    per_method[method].ratio.append(float(np.median(pred[mask] / depth[mask])))
        results[name] = per_method
    return results


def print_table(label: str, results: dict[str, dict[str, Score]]) -> None:
    print(f"\n### {label}\n")
    head = " | ".join(f"{m} AbsRel | {m} scale" for m in METHODS)
    print(f"| camera (full size) | {head} |")
    print("|---|" + "---:|" * (2 * len(METHODS)))
    for name, per_method in results.items():
        cells = " | ".join(
            f"{statistics.fmean(s.abs_rel):.3f} | {statistics.median(s.ratio):.3f}"
            for s in per_method.values()
        )
        print(f"| {name} | {cells} |")
    worst = {
        m: max(abs(statistics.median(r[m].ratio) - 1.0) for r in results.values()) for m in METHODS
    }
    print(
        "\nlargest median scale error: "
        + ", ".join(f"{m} {100 * e:.1f} %" for m, e in worst.items())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="work directory (data, runs)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of 50 steps per model")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument(
        "--seed", type=int, help="training seed (default: run.seed's default, as in the tables)"
    )
    parser.add_argument(
        "--skip-training", action="store_true", help="score the models already under --out"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "street_kitti"
    if not args.skip_training and not (data / "splits" / "val.txt").is_file():
        start = time.perf_counter()
        write_dataset(data)
        print(f"# rendered the training street in {time.perf_counter() - start:.0f} s")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread, 1/{SCALE} resolution")
    for name in args.models:
        run = args.out / (f"run_{name}" if args.seed is None else f"run_{name}_seed{args.seed}")
        checkpoint = (
            run / "checkpoints" / "last_ema"
            if args.skip_training
            else train(data, run, MODELS[name], args.epochs, args.seed)
        )
        model = load_checkpoint(checkpoint).eval()
        camera = crop_intrinsics(model.config.camera)
        seed = "default" if args.seed is None else args.seed
        print(
            f"# {name} (seed {seed}): focal_scale {list(MODELS[name])}, "
            f"record {model.config.camera}"
        )
        print_table(
            f"model '{name}'", score(model, test_cameras(camera.scaled(*TRAIN_CROP[::-1])))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
